//! APDU round trips through a serial reader, two ways, on the same simulated GemPC Twin
//! (firmware-tests' `serial-reader`, the same binary, on a socat pty pair, with the line
//! delay of the baud rate simulated by the reader):
//!
//! - ours: reader-driver's serial backend ([`reader_driver::SerialReader`]) on the pty;
//! - libccidtwin: pcscd with its serial CCID driver on the pty, reached through reader-driver's
//!   PC/SC backend (`scripts/pcsc-env.sh start --serial 2`, the bench starts it if needed).
//!
//! At 115200 and 9600 baud, T=1 and T=0, the SSSE SELECT (case 4; with T=0 it is answered
//! `61xx` and fetched with GET RESPONSE) through `CardSession::send`, the two paths
//! alternating sample by sample. Prints a markdown table.
//!
//! Run: `cargo bench -p reader-driver --bench serial_roundtrip` (`BENCH_ITERATIONS` scales
//! the sample count, default 200 at 115200 baud and a tenth of it at 9600).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use card_core::CardSession;
use card_core::apdu::Command;
use card_core::channel::CardChannel;
use card_core::ssse;
use firmware_tests::serial_reader::SerialLine;
use firmware_tests::serial_reader::pcscd;
use reader_driver::{EventWatcher, PcscContext, ProtocolChoice, SerialReader, SerialReaderConfig};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn wait_present(reader: &str, want: bool) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
        if w.card_present(reader) == want {
            return;
        }
    }
    panic!("{reader}: card never became present={want}");
}

fn time_select<C: CardChannel>(s: &mut CardSession<C>, select: &Command) -> Duration {
    let t = Instant::now();
    let r = s.send(select).unwrap();
    let d = t.elapsed();
    assert!(r.is_success());
    d
}

fn main() {
    let base: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    pcscd::ensure().unwrap_or_else(|e| panic!("{e}"));
    let bin = pcscd::script_reader_binary().expect("the script names its serial-reader");
    let lease = pcscd::lease().unwrap();
    let mut control = lease.control().unwrap();
    let select = Command::new(0x00, 0xa4, 0x04, 0x00)
        .with_data(ssse::AID.to_vec())
        .expect_data();

    println!(
        "APDU round trip (SSSE SELECT via CardSession::send) through a simulated GemPC Twin on a pty"
    );
    println!();
    println!(
        "| baud | protocol | path | exchanges/op | median ms | p99 ms | ops/s | ours / libccidtwin (median) |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    for baud in [115_200u32, 9600] {
        let n = if baud == 9600 {
            (base / 10).max(10)
        } else {
            base
        };
        control.cmd("remove").unwrap();
        control.cmd(&format!("baud {baud}")).unwrap();
        wait_present(&lease.reader, false);
        control.cmd("insert zhangsan").unwrap();
        wait_present(&lease.reader, true);
        let line = SerialLine::start(&bin, baud, Some("zhangsan")).unwrap();
        let reader = SerialReader::open(SerialReaderConfig::new(
            "bench",
            line.host_path().to_string_lossy(),
        ))
        .unwrap();
        let mut ctx = PcscContext::new().unwrap();
        for protocol in [ProtocolChoice::T1, ProtocolChoice::T0] {
            let mut ours = CardSession::new(reader.connect(ProtocolChoice::T1).unwrap());
            if protocol == ProtocolChoice::T0 {
                ours.channel_mut()
                    .reconnect_with(ProtocolChoice::T0)
                    .unwrap();
            }
            let mut pc = ctx.connect(&lease.reader, ProtocolChoice::T1).unwrap();
            if protocol == ProtocolChoice::T0 {
                pc.reconnect_with(ProtocolChoice::T0, true).unwrap();
            }
            let mut theirs = CardSession::new(pc);
            for _ in 0..3 {
                time_select(&mut ours, &select);
                time_select(&mut theirs, &select);
            }
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (e0, f0) = (ours.exchanges(), theirs.exchanges());
            for _ in 0..n {
                a.push(time_select(&mut ours, &select));
                b.push(time_select(&mut theirs, &select));
            }
            let per = |e: u64| e as f64 / n as f64;
            let (ea, eb) = (per(ours.exchanges() - e0), per(theirs.exchanges() - f0));
            let ratio = ms(quantile(&a, 0.5)) / ms(quantile(&b, 0.5));
            let name = if protocol == ProtocolChoice::T1 {
                "T=1"
            } else {
                "T=0"
            };
            emit::record(
                "serial_roundtrip",
                &format!("SSSE SELECT, {baud} baud, {name}, reader-driver serial (median ms)"),
                "ms",
                ms(quantile(&a, 0.5)),
            )
            .peer("pcscd + libccidtwin", Some(ms(quantile(&b, 0.5))))
            .lower_is_better()
            .goal_ratio(1.0)
            .emit();
            for (path, v, e, r) in [
                ("reader-driver serial", &a, ea, format!("{ratio:.3}")),
                ("pcscd + libccidtwin", &b, eb, String::new()),
            ] {
                let med = quantile(v, 0.5);
                println!(
                    "| {baud} | {name} | {path} | {e:.0} | {:.2} | {:.2} | {:.1} | {r} |",
                    ms(med),
                    ms(quantile(v, 0.99)),
                    1.0 / med.as_secs_f64()
                );
            }
            let pc = theirs.into_channel();
            pc.disconnect().unwrap();
        }
        let (stats, _) = reader.stats();
        assert_eq!(stats.retransmissions + stats.naks_sent, 0, "{stats:?}");
    }
    control.cmd("remove").unwrap();
    control.cmd("baud 0").unwrap();
}
