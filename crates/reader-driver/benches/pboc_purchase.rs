//! PBOC purchases through pcscd + vpcd + the software card, end to end: card-core's kernel
//! (`run_contact`, `qpboc::run_qpboc`) over reader-driver's `PcscCard`, 张三's SM card in a
//! `VirtualSlot`.
//!
//! For each flow, N transactions, and after each one its peer in the same run:
//!
//! - the APDU count of the transaction and its total time (median, p95);
//! - the raw round trips: the same number of raw `pcsc` transmits of GET DATA `9F79` (5 bytes
//!   out, 11 back) on a second handle, right after the transaction;
//! - the software's own time = total − raw round trips (paired per transaction);
//! - the time inside `CardChannel::transmit` as the session counts it (`wire_time`, the trace
//!   hook's view): total − that is the kernel's own time, the rest is transport and the card;
//! - in process (no pcscd): the same flows against a `SoftCard`, total and the card's
//!   processing alone, so the card's share (signatures, commits) is known.
//!
//! Then a few transactions with the card's `TCP_QUICKACK` fix turned off, to show what vpcd's
//! 40 ms delayed-ACK stall (docs/testing.md) does to a purchase.
//!
//! Run: `scripts/pcsc-env.sh start && cargo bench -p reader-driver --bench pboc_purchase`
//! (`BENCH_RUNS`, default 200; `BENCH_STALL_RUNS`, default 3). Prints markdown tables.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::ffi::CString;
use std::time::{Duration, Instant};

use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::MemoryJournal;
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, Outcome, TerminalConfig, Time, TransactionParams, TransactionRecord,
    run_contact,
};
use card_core::secret::Pin;
use card_core::{CardChannel, CardSession, TransportError};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::testenv::PcscEnv;
use firmware_tests::{Profile, SoftCard, VirtualSlot, shared_fixture};
use reader_driver::{EventWatcher, PcscCard, PcscContext, ProtocolChoice};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

const CARD: &str = "zhangsan";
const GET_DATA_BALANCE: [u8; 5] = [0x80, 0xca, 0x9f, 0x79, 0x00];

struct Pad(Option<String>);

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        match self.0.take() {
            Some(p) => PinEntry::Pin(Pin::new(&p).unwrap()),
            None => PinEntry::Bypassed,
        }
    }
}

struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline-only kiosk".into()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Contact,
    Qpboc,
}

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Self::Contact => "contact EC purchase (PIN, SM2 CDA)",
            Self::Qpboc => "qPBOC purchase (SM2 fDDA)",
        }
    }
}

struct Kiosk {
    terminal: TerminalConfig,
    ca: CaStore,
    pin: String,
}

impl Kiosk {
    fn new() -> Self {
        let profile = Profile::embedded(CARD).unwrap();
        let mut ca = CaStore::new();
        match profile.pboc.as_ref().unwrap().ca_key().unwrap() {
            TerminalCaKey::Sm2(k) => ca.add_sm2(k),
            TerminalCaKey::Rsa(k) => ca.add_rsa(k),
        }
        Self {
            terminal: TerminalConfig::kiosk(),
            ca,
            pin: profile.pin.value,
        }
    }

    /// One purchase of 0.01; panics unless approved offline.
    fn buy<C: CardChannel>(&self, s: &mut CardSession<C>, flow: Flow) -> TransactionRecord {
        let params = TransactionParams::purchase(
            Amount::new(1).unwrap(),
            Date::new(2026, 3, 15).unwrap(),
            Time::new(10, 20, 30).unwrap(),
            [0x0a, 0x0b, 0x0c, 0x0d],
        );
        let mut journal = MemoryJournal::default();
        let rec = match flow {
            Flow::Contact => run_contact(
                s,
                &self.terminal,
                &self.ca,
                params,
                &mut Hooks {
                    pin_pad: &mut Pad(Some(self.pin.clone())),
                    hot_list: &NoHotList,
                    online: &mut Offline,
                    journal: &mut journal,
                },
            ),
            Flow::Qpboc => run_qpboc(
                s,
                &self.terminal,
                &self.ca,
                params,
                &mut QpbocHooks {
                    hot_list: &NoHotList,
                    online: &mut Offline,
                    journal: &mut journal,
                },
            ),
        };
        assert_eq!(rec.outcome, Outcome::ApprovedOffline, "{rec:?}");
        rec
    }
}

/// reader-driver's card with every transmit timed by command (CLA INS P1 P2, and the
/// lengths), to show where the time goes.
struct TimedPcsc {
    card: PcscCard,
    log: Vec<(String, Duration)>,
}

impl CardChannel for TimedPcsc {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let t = Instant::now();
        let r = self.card.transmit(command);
        let d = t.elapsed();
        let key = format!(
            "{} ({} bytes out, {} back)",
            command
                .iter()
                .take(4)
                .map(|b| format!("{b:02X}"))
                .collect::<String>(),
            command.len(),
            r.as_ref().map_or(0, Vec::len)
        );
        self.log.push((key, d));
        r
    }
}

/// An in-process card, timed: how long the card itself works.
struct TimedCard {
    card: SoftCard,
    busy: Duration,
}

impl CardChannel for TimedCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let t = Instant::now();
        let r = self.card.process(command);
        self.busy += t.elapsed();
        Ok(r)
    }
}

#[derive(Default)]
struct Samples {
    apdus: Vec<u64>,
    total: Vec<Duration>,
    raw: Vec<Duration>,
    wire: Vec<Duration>,
    inproc_total: Vec<Duration>,
    inproc_card: Vec<Duration>,
    stalled: Vec<Duration>,
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn median(v: &[Duration]) -> Duration {
    quantile(v, 0.5)
}

fn paired(a: &[Duration], b: &[Duration]) -> Vec<Duration> {
    a.iter().zip(b).map(|(x, y)| x.saturating_sub(*y)).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn wait_present(reader: &str) {
    let mut w = EventWatcher::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.card_present(reader) && Instant::now() < deadline {
        w.next_events(Duration::from_millis(200));
    }
    assert!(w.card_present(reader), "card never present in {reader}");
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let stall_runs: usize = std::env::var("BENCH_STALL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let kiosk = Kiosk::new();
    let env = PcscEnv::load().unwrap_or_else(|e| panic!("{e}"));
    let lease = env.lease().unwrap();
    let mut slot = VirtualSlot::new(lease.port);
    slot.insert(shared_fixture(CARD).unwrap()).unwrap();
    wait_present(&lease.reader);

    // The kernel's session over reader-driver, and a raw pcsc handle for the peer.
    let mut ctx = PcscContext::new().unwrap();
    let mut s = CardSession::new(TimedPcsc {
        card: ctx.connect(&lease.reader, ProtocolChoice::T1).unwrap(),
        log: Vec::new(),
    });
    let raw_ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let raw = raw_ctx
        .connect(
            &CString::new(lease.reader.clone()).unwrap(),
            pcsc::ShareMode::Shared,
            pcsc::Protocols::T1,
        )
        .unwrap();
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    let mut raw_round_trips = |n: u64| {
        let t = Instant::now();
        for _ in 0..n {
            let r = raw.transmit(&GET_DATA_BALANCE, &mut buf).unwrap();
            assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        }
        t.elapsed()
    };

    // In process: the same card profile, no transport.
    let image = Profile::embedded(CARD).unwrap().build().unwrap();
    let mut local = CardSession::new(TimedCard {
        card: SoftCard::in_memory(image),
        busy: Duration::ZERO,
    });

    let flows = [Flow::Contact, Flow::Qpboc];
    for flow in flows {
        for _ in 0..10 {
            kiosk.buy(&mut s, flow);
            kiosk.buy(&mut local, flow);
        }
        raw_round_trips(50);
    }

    s.channel_mut().log.clear();
    let mut samples: Vec<Samples> = flows.iter().map(|_| Samples::default()).collect();
    for _ in 0..runs {
        for (i, flow) in flows.iter().enumerate() {
            let st = &mut samples[i];
            let (apdus, wire) = (s.exchanges(), s.wire_time());
            let t = Instant::now();
            kiosk.buy(&mut s, *flow);
            st.total.push(t.elapsed());
            let n = s.exchanges() - apdus;
            st.apdus.push(n);
            st.wire.push(s.wire_time() - wire);
            st.raw.push(raw_round_trips(n));

            let busy = local.channel().busy;
            let t = Instant::now();
            kiosk.buy(&mut local, *flow);
            st.inproc_total.push(t.elapsed());
            st.inproc_card.push(local.channel().busy - busy);
        }
    }

    let per_command = std::mem::take(&mut s.channel_mut().log);

    // vpcd's stall: the card stops setting TCP_QUICKACK.
    slot.set_quickack(false);
    for _ in 0..stall_runs {
        for (i, flow) in flows.iter().enumerate() {
            let t = Instant::now();
            kiosk.buy(&mut s, *flow);
            samples[i].stalled.push(t.elapsed());
        }
    }
    slot.set_quickack(true);
    let stall_raw = {
        slot.set_quickack(false);
        let d = raw_round_trips(stall_runs.max(1) as u64 * 5);
        slot.set_quickack(true);
        d / (stall_runs.max(1) as u32 * 5)
    };
    drop(raw);

    println!(
        "PBOC purchases through pcscd + vpcd + the software card ({runs} runs per flow, reader \
         {:?}, T=1, card {CARD}, amount 0.01, alternating)",
        lease.reader
    );
    println!();
    println!(
        "| flow | APDUs | total median ms | total p95 ms | raw round trips (n × GET DATA) \
         median ms | software = total − raw, median ms | p95 ms | in transmit (session) \
         median ms | kernel = total − transmit, median ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (flow, st) in flows.iter().zip(&samples) {
        let software = paired(&st.total, &st.raw);
        let kernel = paired(&st.total, &st.wire);
        let mut apdus = st.apdus.clone();
        apdus.sort_unstable();
        apdus.dedup();
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            flow.name(),
            apdus
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            ms(median(&st.total)),
            ms(quantile(&st.total, 0.95)),
            ms(median(&st.raw)),
            ms(median(&software)),
            ms(quantile(&software, 0.95)),
            ms(median(&st.wire)),
            ms(median(&kernel)),
        );
    }
    println!();
    println!("Each command through pcscd (both flows, all runs):");
    println!();
    println!("| command | count | median ms | p95 ms |");
    println!("|---|---:|---:|---:|");
    let mut keys: Vec<&String> = per_command.iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let v: Vec<Duration> = per_command
            .iter()
            .filter(|(x, _)| x == k)
            .map(|(_, d)| *d)
            .collect();
        println!(
            "| {k} | {} | {:.3} | {:.3} |",
            v.len(),
            ms(median(&v)),
            ms(quantile(&v, 0.95))
        );
    }
    println!();
    println!("In process, same flows, no pcscd (kernel + card on one thread):");
    println!();
    println!("| flow | total median ms | card processing median ms | kernel median ms |");
    println!("|---|---:|---:|---:|");
    for (flow, st) in flows.iter().zip(&samples) {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            flow.name(),
            ms(median(&st.inproc_total)),
            ms(median(&st.inproc_card)),
            ms(median(&paired(&st.inproc_total, &st.inproc_card))),
        );
    }
    println!();
    println!(
        "Without the card's TCP_QUICKACK ({stall_runs} runs per flow; raw GET DATA round trip \
         then {:.1} ms):",
        ms(stall_raw)
    );
    println!();
    println!("| flow | APDUs | total median ms | ms per APDU |");
    println!("|---|---:|---:|---:|");
    for (flow, st) in flows.iter().zip(&samples) {
        if st.stalled.is_empty() {
            continue;
        }
        let n = st.apdus[0];
        let med = median(&st.stalled);
        println!(
            "| {} | {n} | {:.1} | {:.1} |",
            flow.name(),
            ms(med),
            ms(med) / n as f64
        );
    }
    for (flow, st) in flows.iter().zip(&samples) {
        let software = median(&paired(&st.total, &st.raw));
        let total = emit::record(
            "pboc_purchase",
            &format!("{}: end to end (median ms)", flow.name()),
            "ms",
            ms(median(&st.total)),
        )
        .peer("as many raw `pcsc` round trips", Some(ms(median(&st.raw))))
        .lower_is_better();
        if *flow == Flow::Qpboc {
            total.goal_ours(50.0)
        } else {
            total
        }
        .emit();
        emit::record(
            "pboc_purchase",
            &format!("{}: software = total − raw (median ms)", flow.name()),
            "ms",
            ms(software),
        )
        .lower_is_better()
        .goal_ours(2.0)
        .emit();
    }
    println!();
    for (flow, st) in flows.iter().zip(&samples) {
        let software = median(&paired(&st.total, &st.raw));
        println!(
            "{}: software {:.2} ms (goal < 2 ms: {}), end to end {:.2} ms{}",
            flow.name(),
            ms(software),
            if software < Duration::from_millis(2) {
                "met"
            } else {
                "NOT met"
            },
            ms(median(&st.total)),
            if *flow == Flow::Qpboc {
                format!(
                    " (goal < 50 ms: {})",
                    if median(&st.total) < Duration::from_millis(50) {
                        "met"
                    } else {
                        "NOT met"
                    }
                )
            } else {
                String::new()
            }
        );
    }
}
