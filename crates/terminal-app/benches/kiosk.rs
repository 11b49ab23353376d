//! The kiosk's three figures (issue 6), each with its floor measured in the same run:
//!
//! 1. **Cold start to the attract screen**: the release `kiosk` binary started in a real X
//!    window (Xvfb), from `exec` until its first frame of the attract screen is drawn (the
//!    screen log, `--screen-log`, is written inside that frame). The demo's start-up work is
//!    in it: personalising the demo cards with SM2 keys and seeding the ledger. Peer: the
//!    in-process share of that work alone (`DemoWorld::build`), so what is left is process start,
//!    window and GL set-up and the first frame. Goal: under 1 s.
//! 2. **CPU time per frame** on each main screen, in process through egui_kittest (no GPU):
//!    thread CPU time of one frame (`KioskApp::update` and egui's layout, AccessKit tree
//!    included, so an upper bound) plus the tessellation of its shapes, which the real window
//!    does too. Peer: the same for a frame with one label (egui's own fixed cost). Goal: under
//!    2 ms on the busiest screen.
//! 3. **Card insert to the PIN screen through pcscd + vpcd**: the session worker on
//!    `PcscSource` (reader-driver, the kiosk's real-reader path), a demo card inserted into a
//!    vpcd slot; time from the insert until the worker asks for the PIN (the identity check:
//!    SSSE reads and SM2 card authentication, hot-list and expiry against the ledger). Peer: the
//!    same number of raw `pcsc` round trips (GET CHALLENGE) on the same reader right after, and
//!    the PC/SC insert event alone. Goal: under 100 ms.
//!
//! Run: `scripts/pcsc-env.sh start && scripts/gui-env.sh install &&
//! cargo bench -p terminal-app --bench kiosk` (`BENCH_RUNS`, default 20 starts and insertions;
//! `BENCH_FRAMES`, default 300 frames per screen). Prints markdown tables.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::ffi::CString;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use firmware_tests::VirtualSlot;
use firmware_tests::testenv::PcscEnv;
use reader_driver::EventWatcher;
use terminal_app::card_source::PcscSource;
use terminal_app::clock::LocalTime;
use terminal_app::demo::DemoWorld;
use terminal_app::kiosk::{KioskApp, KioskOptions, Lang};
use terminal_app::session::{Request, Update, Worker};

#[path = "../../bench-report/src/emit.rs"]
mod emit;
#[path = "../tests/common/ui.rs"]
mod ui;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn median(v: &[Duration]) -> Duration {
    percentile(v, 0.5)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

fn now() -> LocalTime {
    LocalTime {
        year: 2026,
        month: 11,
        day: 28,
        hour: 10,
        minute: 30,
        second: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Cold start

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_xvfb() -> (Child, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1366x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (scripts/gui-env.sh install)");
    let mut out = child.stdout.take().unwrap();
    let mut number = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        number.push(byte[0] as char);
    }
    (child, format!(":{}", number.trim()))
}

fn runtime_dir() -> String {
    std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| {
        let d = std::env::temp_dir().join("sscard-bench-xdg");
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    })
}

/// One start of the kiosk binary: time until the attract screen's first frame.
fn cold_start(display: &str, dir: &Path) -> Duration {
    let log = dir.join("screens.log");
    let state = dir.join("state");
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_kiosk"))
        .args(["--windowed", "--demo-reader", "in-process", "--screen-log"])
        .arg(&log)
        .arg("--state-dir")
        .arg(&state)
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the kiosk");
    let _guard = Killed(vec![child]);
    let deadline = t0 + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l == "screen Attract") {
            return t0.elapsed();
        }
        assert!(Instant::now() < deadline, "the kiosk never showed attract");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn bench_cold_start(runs: usize) {
    let (xvfb, display) = start_xvfb();
    let _x = Killed(vec![xvfb]);
    // One start to warm the page cache (binary, font, GL drivers), not counted.
    let warm = tempfile::tempdir().unwrap();
    cold_start(&display, warm.path());
    let mut starts = Vec::new();
    let mut builds = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        starts.push(cold_start(&display, dir.path()));
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let world = DemoWorld::build(dir.path()).unwrap();
        builds.push(t.elapsed());
        drop(world);
    }
    let rest: Vec<Duration> = starts
        .iter()
        .zip(&builds)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    println!("\n### Kiosk cold start to the attract screen ({runs} starts, Xvfb, software GL)\n");
    println!("| | median ms | p95 ms | min ms |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("exec → first attract frame (release binary)", &starts),
        ("peer: demo world alone (cards, keys, ledger)", &builds),
        ("the rest: process, window, GL, first frame", &rest),
    ] {
        if name.starts_with("exec") {
            emit::record(
                "kiosk",
                "cold start: exec → first attract frame (median ms)",
                "ms",
                ms(median(v)),
            )
            .peer(
                "the demo world alone, in process",
                Some(ms(median(&builds))),
            )
            .lower_is_better()
            .goal_ours(1000.0)
            .emit();
        }
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            ms(median(v)),
            ms(percentile(v, 0.95)),
            ms(percentile(v, 0.0))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. CPU per frame

/// The kiosk under kittest, as the UI tests drive it (tests/common/ui.rs).
type Ui = ui::Rig<KioskApp>;

fn kiosk_ui() -> Ui {
    ui::Rig::start(
        now,
        |app: &KioskApp| format!("screen {:?}", app.state.screen),
        |ctx, req_tx, up_rx, panel| {
            KioskApp::new(
                ctx,
                req_tx,
                up_rx,
                Some(panel),
                KioskOptions {
                    lang: Lang::Zh,
                    idle_timeout: Duration::from_secs(3600),
                },
            )
        },
    )
}

/// What the bench does with the kiosk beyond the rig.
trait Steps {
    fn type_pin(&mut self);
    fn pay(&mut self);
}

impl Steps for Ui {
    fn type_pin(&mut self) {
        self.keys("123456");
        self.click("确认");
    }

    fn pay(&mut self) {
        self.click("缴费");
        self.click_containing("社会保障卡补换卡工本费");
        self.wait_for("请确认缴费");
        self.click("确认支付");
        self.wait_for("请输入卡片密码以完成支付");
        self.type_pin();
        self.wait_for("缴费成功");
        self.click("返回首页");
    }
}

/// CPU of one frame and of tessellating its shapes, `frames` times.
fn frames<S>(h: &mut Harness<'static, S>, frames: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut update = Vec::with_capacity(frames);
    let mut tess = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = thread_cpu();
        h.step();
        update.push(thread_cpu() - t);
        let shapes = h.output().shapes.clone();
        let ppp = h.ctx.pixels_per_point();
        let t = thread_cpu();
        let meshes = h.ctx.tessellate(shapes, ppp);
        tess.push(thread_cpu() - t);
        assert!(!meshes.is_empty(), "the frame drew something");
    }
    (update, tess)
}

fn bench_frames(n: usize) {
    let mut rows: Vec<(String, Vec<Duration>, Vec<Duration>)> = Vec::new();
    // The label waits for the kiosk's CJK font (the harness draws a frame when it is built).
    let mut peer = Harness::new_ui_state(
        |ui, fonts: &mut bool| {
            if *fonts {
                ui.label("请插入社保卡");
            }
        },
        false,
    );
    terminal_app::kiosk::fonts::install(&peer.ctx);
    *peer.state_mut() = true;
    peer.step();
    let (u, t) = frames(&mut peer, n);
    rows.push(("peer: a frame with one label".into(), u, t));

    let mut ui = kiosk_ui();
    ui.wait_for("读卡器就绪");
    let mut measure = |ui: &mut Ui, name: &str| {
        let (u, t) = frames(&mut ui.harness, n);
        rows.push((name.to_string(), u, t));
    };
    measure(&mut ui, "attract (with the demo panel)");
    ui.insert("zhangsan");
    ui.wait_for("请输入社保卡密码");
    measure(&mut ui, "PIN keypad");
    ui.type_pin();
    ui.wait_for("张*，您好");
    measure(&mut ui, "home menu");
    // Fill the card's log so the account screen lists ten transactions.
    for _ in 0..10 {
        ui.pay();
    }
    ui.click("电子现金");
    ui.wait_for("余额（元）");
    measure(&mut ui, "electronic cash: balance and a 10-line log");
    if let Ok(p) = std::env::var("DEBUG_PNG") {
        ui.harness.render().unwrap().save(p).unwrap();
    }
    ui.click("返回");
    ui.click("缴费");
    ui.wait_for("社会保障卡补换卡工本费");
    measure(&mut ui, "fee items");
    ui.click_containing("社会保障卡补换卡工本费");
    ui.wait_for("请确认缴费");
    ui.click("确认支付");
    ui.wait_for("请输入卡片密码以完成支付");
    ui.type_pin();
    ui.wait_for("缴费成功");
    measure(&mut ui, "receipt");

    println!("\n### CPU time per frame ({n} frames per screen, thread CPU time, no GPU)\n");
    println!(
        "| screen | frame median ms | frame p95 ms | tessellation median ms | frame + tessellation median ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    let peer = rows
        .iter()
        .find(|(name, _, _)| name.starts_with("peer"))
        .map(|(_, u, t)| ms(median(u)) + ms(median(t)));
    for (name, u, t) in &rows {
        let both: Vec<Duration> = u.iter().zip(t).map(|(a, b)| *a + *b).collect();
        if !name.starts_with("peer") {
            emit::record(
                "kiosk",
                &format!("CPU per frame + tessellation, {name} (median ms)"),
                "ms",
                ms(median(&both)),
            )
            .peer("a frame with one label", peer)
            .lower_is_better()
            .goal_ours(2.0)
            .emit();
        }
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            ms(median(u)),
            ms(percentile(u, 0.95)),
            ms(median(t)),
            ms(median(&both))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Insert → PIN through pcscd + vpcd

/// Until pcscd reports the reader empty (it polls vpcd for the card's presence).
fn wait_absent(watcher: &mut EventWatcher, reader: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        watcher.next_events(Duration::from_millis(50));
        if !watcher.card_present(reader) {
            return;
        }
        assert!(Instant::now() < deadline, "pcscd never saw the card go");
    }
}

const GET_CHALLENGE: [u8; 5] = [0x00, 0x84, 0x00, 0x00, 0x08];

fn bench_insert_to_pin(runs: usize) {
    let env = match PcscEnv::load() {
        Ok(e) => e,
        Err(e) => {
            println!("\n(insert → PIN skipped: {e})");
            return;
        }
    };
    let lease = env.lease().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let world = DemoWorld::build(dir.path()).unwrap();
    let card = world
        .cards
        .iter()
        .find(|c| c.name == "zhangsan")
        .unwrap()
        .card
        .clone();
    let mut slot = VirtualSlot::new(lease.port);
    let (req_tx, req_rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    Worker::new(
        Box::new(PcscSource::new(Some(lease.reader.clone()))),
        req_rx,
        up_tx,
        Box::new(|| {}),
        world.worker_config(Box::new(now), None),
    )
    .spawn()
    .unwrap();
    // Each update with the time it arrived.
    let wait = |pred: &dyn Fn(&Update) -> bool| -> Vec<(Instant, Update)> {
        let mut seen = Vec::new();
        loop {
            let u = up_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("session update");
            let done = pred(&u);
            seen.push((Instant::now(), u));
            if done {
                return seen;
            }
        }
    };
    wait(&|u| matches!(u, Update::Reader(_)));
    std::thread::sleep(Duration::from_millis(300));

    let raw_ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = CString::new(lease.reader.clone()).unwrap();
    let mut watcher = EventWatcher::new();
    let mut to_pin = Vec::new();
    let mut raw = Vec::new();
    let mut events = Vec::new();
    let mut apdus = Vec::new();
    let mut detect = Vec::new();
    // A citizen inserts at any moment of pcscd's 400 ms presence poll, not right after the
    // tick that saw the last card go: wait a spread of delays first (a fixed sequence, so runs
    // compare).
    let phase = |i: usize| Duration::from_millis(((i * 137) % 400) as u64);
    for i in 0..=runs {
        std::thread::sleep(phase(i));
        let before = slot.apdus();
        let t0 = Instant::now();
        slot.insert(card.clone()).unwrap();
        let seen = wait(&|u| matches!(u, Update::PinNeeded { .. }));
        let took = t0.elapsed();
        let reading = seen
            .iter()
            .find(|(_, u)| matches!(u, Update::Reading))
            .map_or(took, |(t, _)| t.duration_since(t0));
        let n = slot.apdus() - before;
        // The floor: as many raw round trips on the same reader, card still in.
        let h = raw_ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .unwrap();
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
        let t = Instant::now();
        for _ in 0..n {
            let r = h.transmit(&GET_CHALLENGE, &mut buf).unwrap();
            assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        }
        let raw_t = t.elapsed();
        drop(h);
        req_tx.send(Request::End).unwrap();
        slot.remove();
        wait(&|u| matches!(u, Update::CardRemoved | Update::Ended));
        std::thread::sleep(Duration::from_millis(100));
        while up_rx.try_recv().is_ok() {}
        // pcscd must have seen the removal before the next insert.
        wait_absent(&mut watcher, &lease.reader);
        if i > 0 {
            detect.push(reading);
            to_pin.push(took);
            raw.push(raw_t);
            apdus.push(n);
        }
    }
    req_tx.send(Request::Shutdown).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The PC/SC insert event alone, with nobody reading the card.
    wait_absent(&mut watcher, &lease.reader);
    for i in 0..runs {
        std::thread::sleep(phase(i + 1));
        let t0 = Instant::now();
        slot.insert(card.clone()).unwrap();
        while !watcher.card_present(&lease.reader) {
            watcher.next_events(Duration::from_millis(50));
        }
        events.push(t0.elapsed());
        slot.remove();
        wait_absent(&mut watcher, &lease.reader);
    }
    let after_detect: Vec<Duration> = to_pin
        .iter()
        .zip(&detect)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let software: Vec<Duration> = after_detect
        .iter()
        .zip(&raw)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    println!(
        "\n### Card insert to the PIN screen through pcscd + vpcd ({runs} insertions, {}, \
         {} APDUs each)\n",
        lease.reader,
        apdus.first().copied().unwrap_or(0)
    );
    println!("| | median ms | p95 ms | min ms |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        (
            "insert → PIN requested (session worker on PcscSource)",
            &to_pin,
        ),
        ("of which: insert → the worker sees the card", &detect),
        ("of which: card seen → PIN requested", &after_detect),
        (
            "peer: the PC/SC insert event alone (a bare watcher)",
            &events,
        ),
        ("peer: as many raw pcsc round trips", &raw),
        ("software = card seen → PIN − raw round trips", &software),
    ] {
        if name.starts_with("insert") {
            emit::record(
                "kiosk",
                "card insert → PIN screen through pcscd + vpcd (median ms)",
                "ms",
                ms(median(v)),
            )
            .peer("the PC/SC insert event alone", Some(ms(median(&events))))
            .lower_is_better()
            .goal_ours(100.0)
            .emit();
        }
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            ms(median(v)),
            ms(percentile(v, 0.95)),
            ms(percentile(v, 0.0))
        );
    }
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 20);
    let n = env_usize("BENCH_FRAMES", 300);
    println!("## Kiosk (cargo bench -p terminal-app --bench kiosk)");
    bench_cold_start(runs);
    bench_frames(n);
    bench_insert_to_pin(runs);
}
