//! APDU round trips through pcscd + vpcd + the software card, in one run:
//!
//! - (a) raw `pcsc` transmit of SELECT (the floor: what pcsc-lite and vpcd cost);
//! - (b) the same SELECT through card-core's `CardSession::send` over reader-driver;
//! - (c) a full SSSE identity read (EF05 + EF05) in the fewest APDUs the card allows, and the
//!   same field by field.
//!
//! Run: `scripts/pcsc-env.sh start && cargo bench -p reader-driver --bench pcsc_roundtrip`.
//! Prints a markdown table (median and p99 per operation and per APDU).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::ffi::CString;
use std::time::{Duration, Instant};

use card_core::CardSession;
use card_core::apdu::Command;
use card_core::ssse::{self, ReadStrategy};
use firmware_tests::testenv::PcscEnv;
use firmware_tests::{VirtualSlot, shared_fixture};
use reader_driver::{EventWatcher, PcscContext, ProtocolChoice};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

const SELECT: [u8; 21] = [
    0x00, 0xa4, 0x04, 0x00, 0x0f, 0x73, 0x78, 0x31, 0x2e, 0x73, 0x68, 0x2e, 0xc9, 0xe7, 0xbb, 0xe1,
    0xb1, 0xa3, 0xd5, 0xcf, 0x00,
];

struct Stats {
    name: &'static str,
    apdus: f64,
    samples: Vec<Duration>,
}

impl Stats {
    fn quantile(&self, q: f64) -> Duration {
        let mut v = self.samples.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i]
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let env = PcscEnv::load().unwrap_or_else(|e| panic!("{e}"));
    let lease = env.lease().unwrap();
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(shared_fixture("zhangsan").unwrap()).unwrap();
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.card_present(&lease.reader) && Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
    }

    // (a) raw pcsc.
    let raw_ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = CString::new(lease.reader.clone()).unwrap();
    let raw = raw_ctx
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
        .unwrap();
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];

    // (b) CardSession over reader-driver.
    let mut ctx = PcscContext::new().unwrap();
    let card = ctx.connect(&lease.reader, ProtocolChoice::T1).unwrap();
    let mut session = CardSession::new(card);
    let select = Command::new(0x00, 0xa4, 0x04, 0x00)
        .with_data(&SELECT[5..20])
        .expect_data();

    // Warm up both paths.
    for _ in 0..200 {
        raw.transmit(&SELECT, &mut buf).unwrap();
        session.send(&select).unwrap();
    }

    let mut a = Stats {
        name: "(a) raw pcsc transmit, SELECT",
        apdus: 1.0,
        samples: Vec::new(),
    };
    let mut b = Stats {
        name: "(b) card-core send, SELECT",
        apdus: 1.0,
        samples: Vec::new(),
    };
    // Alternate one by one, so scheduling noise (the round trip crosses four threads in three
    // processes on two cores) affects both the same way.
    for _ in 0..iterations {
        let t = Instant::now();
        let r = raw.transmit(&SELECT, &mut buf).unwrap();
        a.samples.push(t.elapsed());
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        let t = Instant::now();
        let r = session.send(&select).unwrap();
        b.samples.push(t.elapsed());
        assert!(r.is_success());
    }

    let mut c = Stats {
        name: "(c) SSSE identity read, all records",
        apdus: 0.0,
        samples: Vec::new(),
    };
    let mut d = Stats {
        name: "(c') SSSE identity read, by tag",
        apdus: 0.0,
        samples: Vec::new(),
    };
    let reads = (iterations / 4).max(50);
    for (stats, strategy) in [
        (&mut c, ReadStrategy::AllRecords),
        (&mut d, ReadStrategy::ByTag),
    ] {
        let before = session.exchanges();
        for _ in 0..reads {
            let t = Instant::now();
            let id = ssse::read_identity(&mut session, strategy).unwrap();
            stats.samples.push(t.elapsed());
            assert_eq!(id.holder.birth_date.year, 1987);
        }
        stats.apdus = (session.exchanges() - before) as f64 / reads as f64;
    }
    // Where the time of (c) goes: each of its commands, raw.
    let mut parts = Vec::new();
    for (label, apdu) in [
        ("SELECT", SELECT.to_vec()),
        ("READ RECORD EF05 (all)", vec![0x00, 0xb2, 0x01, 0x2d, 0x00]),
        ("READ RECORD EF06 (all)", vec![0x00, 0xb2, 0x01, 0x35, 0x00]),
    ] {
        let mut v = Vec::new();
        for _ in 0..reads {
            let t = Instant::now();
            raw.transmit(&apdu, &mut buf).unwrap();
            v.push(t.elapsed());
        }
        v.sort();
        parts.push((label, v[v.len() / 2]));
    }
    drop(raw);

    println!(
        "APDU round trips through pcscd + vpcd + software card ({} iterations, reader {:?}, T=1)",
        iterations, lease.reader
    );
    println!();
    println!("| case | APDUs/op | median µs | p99 µs | median µs/APDU |");
    println!("|---|---:|---:|---:|---:|");
    for s in [&a, &b, &c, &d] {
        let med = s.quantile(0.5);
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            s.name,
            s.apdus,
            us(med),
            us(s.quantile(0.99)),
            us(med) / s.apdus
        );
    }
    println!();
    for (label, med) in &parts {
        println!("raw {label}: median {:.1} µs", us(*med));
    }
    let ratio = us(b.quantile(0.5)) / us(a.quantile(0.5));
    emit::record(
        "pcsc_roundtrip",
        "SELECT through card-core `CardSession::send` (median µs)",
        "µs",
        us(b.quantile(0.5)),
    )
    .peer("raw `pcsc` transmit (the floor)", Some(us(a.quantile(0.5))))
    .lower_is_better()
    .goal_ratio(1.05)
    .emit();
    emit::record(
        "pcsc_roundtrip",
        "SSSE identity read, all records per file, 3 APDUs (median µs)",
        "µs",
        us(c.quantile(0.5)),
    )
    .peer(
        "raw `pcsc`: its 3 commands, each median",
        Some(parts.iter().map(|(_, d)| us(*d)).sum()),
    )
    .lower_is_better()
    .emit();
    println!();
    println!("(b)/(a) median ratio: {ratio:.3} (goal: at most 1.05)");
    println!(
        "(c) per APDU vs raw floor: {:.3}",
        us(c.quantile(0.5)) / c.apdus / us(a.quantile(0.5))
    );
}
