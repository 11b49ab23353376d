//! `kiosk`: the citizen self-service terminal.
//!
//! With no options it starts the demo: fictional cards personalised by an in-memory hsm-sim, an
//! in-process reader with a demo panel to insert and remove them, a ledger seeded with their
//! records. `--reader NAME --trust FILE --ledger FILE --field-key-file FILE` runs it on a real
//! PC/SC reader instead. Without a display it says so; `--headless` then runs the demo journey
//! in text. `--with-backend` also starts a local hsm-sim, central-server and sync-agent as
//! child processes (terminal_app::demo::backend), which the demo's payments sync to.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use card_core::pboc::TerminalConfig;
use card_core::pboc::oda::CaStore;
use card_core::secret::Pin;
use clap::Parser;
use terminal_app::card_source::{CardSource, DemoSlot, DemoSource, PcscSource};
use terminal_app::clock::system_clock;
use terminal_app::counter_mode::CounterApp;
use terminal_app::service_view::TechnicianPin;

/// The demo's technician PIN (docs/kiosk.md).
const DEMO_TECHNICIAN_PIN: &str = "2468";
use terminal_app::demo::DemoWorld;
use terminal_app::demo::backend::{Backend, BackendConfig};
use terminal_app::kiosk::{DemoPanel, KioskApp, KioskOptions, Lang};
use terminal_app::payment::PaymentOrder;
use terminal_app::session::{Request, Update, Worker, WorkerConfig};

#[derive(Parser, Debug)]
#[command(version, about = "Social-security card self-service kiosk")]
struct Args {
    /// Use this PC/SC reader instead of the demo's in-process reader.
    #[arg(long)]
    reader: Option<String>,
    /// Trust store (CA keys) for a real reader.
    #[arg(long, requires = "reader")]
    trust: Option<PathBuf>,
    /// Ledger file for a real reader.
    #[arg(long, requires = "reader")]
    ledger: Option<PathBuf>,
    /// File with the ledger's field key (32 hex digits).
    #[arg(long, requires = "ledger")]
    field_key_file: Option<PathBuf>,
    /// Start in English.
    #[arg(long)]
    english: bool,
    /// A window instead of full screen.
    #[arg(long)]
    windowed: bool,
    /// Seconds without input after which a session ends.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// No window: run the demo journey and print each step.
    #[arg(long)]
    headless: bool,
    /// Where the demo keeps its ledger (default: a temporary directory).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Where receipt files (PDF) go for the printer (default: STATE_DIR/receipts).
    #[arg(long, value_name = "DIR")]
    receipts: Option<PathBuf>,
    /// Counter mode: the clerk's layout for a pharmacy or hospital counter (card verdict, PIN,
    /// debit, today's transactions and shift totals) instead of the citizen kiosk.
    #[arg(long)]
    counter: bool,
    /// The technician PIN of the service mode, as the SM3 digest of the PIN in hex (64 digits;
    /// `printf %s PIN | sm3sum`-style, or `kiosk --hash-technician-pin`). The demo's is 2468;
    /// with `--reader` and no file there is no service mode.
    #[arg(long, value_name = "FILE")]
    technician_pin_file: Option<PathBuf>,
    /// Print the SM3 digest of the technician PIN read from stdin (for --technician-pin-file)
    /// and exit.
    #[arg(long)]
    hash_technician_pin: bool,
    /// Append the name of each screen shown to FILE (for tests driving the window).
    #[arg(long, value_name = "FILE")]
    screen_log: Option<PathBuf>,
    /// Which reader the demo uses: its in-process reader with the demo panel, the readers of
    /// pcscd (the first card inserted in any of them), or `auto`: pcscd's when it has a
    /// hardware reader (not a vpcd "Virtual PCD" slot nor one of the project's simulated
    /// "SSCard" readers), the in-process one otherwise.
    #[arg(long, value_enum, default_value_t = DemoReader::Auto, conflicts_with = "reader")]
    demo_reader: DemoReader,
    /// With pcscd readers in the demo: also trust the CA keys in FILE (the demo's own CA is
    /// always trusted), e.g. to accept the cards of a test issuer.
    #[arg(long, value_name = "FILE", conflicts_with = "reader")]
    demo_trust: Option<PathBuf>,
    /// Also run a local backend: hsm-sim, central-server and sync-agent as child processes on
    /// 127.0.0.1, their files and logs in STATE_DIR/backend; the demo cards are personalised
    /// through that hsm-sim and the agent syncs the ledger every 2 s (docs/kiosk.md).
    #[arg(long, conflicts_with = "reader")]
    with_backend: bool,
    /// Keep the demo cards' memory in DIR across runs, as real cards keep theirs (a debit is
    /// still on the card after the kiosk is restarted); without it the demo cards are new at
    /// each start. DIR holds what the cards hold (PINs, keys): keep it apart from the state
    /// directory.
    #[arg(long, value_name = "DIR", conflicts_with = "reader")]
    demo_cards: Option<PathBuf>,
    /// Where hsm-sim, central-server and sync-agent are (default: beside this executable).
    #[arg(long, value_name = "DIR", requires = "with_backend")]
    backend_bin_dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DemoReader {
    Auto,
    InProcess,
    Pcsc,
}

/// The hardware readers pcscd knows (vpcd's virtual slots and the project's simulated readers
/// left out); empty when pcscd is not running.
fn hardware_readers() -> Vec<String> {
    reader_driver::PcscContext::new()
        .and_then(|mut c| c.readers())
        .map(|list| {
            list.into_iter()
                // vpcd's own names, and the project's simulated readers (scripts/pcsc-env.sh).
                .filter(|r| !r.starts_with("Virtual PCD") && !r.starts_with("SSCard "))
                .collect()
        })
        .unwrap_or_default()
}

fn read_trust(path: &std::path::Path) -> Result<card_core::crypto::sm2_cert::TrustStore> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("trust store {}", path.display()))?;
    card_core::ssse::auth::parse_trust_store(&text)
        .map_err(|(line, why)| anyhow::anyhow!("{}: line {line}: {why}", path.display()))
}

fn headless(world: &DemoWorld, receipts: PathBuf, backend: Option<&Backend>) -> Result<()> {
    let slot = DemoSlot::default();
    let (req_tx, req_rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    let worker = Worker::new(
        Box::new(DemoSource::new(slot.clone())),
        req_rx,
        up_tx,
        Box::new(|| {}),
        world.worker_config(system_clock(), Some(receipts)),
    );
    // Each payment and recovery step is printed (terminal_app::failpoint).
    terminal_app::failpoint::narrate(true);
    let handle = worker.spawn()?;
    let wait = |what: &str| -> Result<Update> {
        loop {
            let u = match up_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(u) => u,
                // Halted at a step (SSCARD_HALT_AT): the test kills the process.
                Err(_) if terminal_app::failpoint::halted() => {
                    terminal_app::failpoint::wait_for_the_kill()
                }
                Err(e) => return Err(e).with_context(|| format!("waiting for {what}")),
            };
            if matches!(u, Update::Sync { .. }) {
                continue;
            }
            if let Update::Verdict(_) | Update::Settled(_) = u {
                println!("  <- {}", describe(&u));
                continue;
            }
            println!("  <- {}", describe(&u));
            if !matches!(u, Update::Reader(_) | Update::Reading) {
                return Ok(u);
            }
        }
    };
    let card = |name: &str| {
        world
            .cards
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.card.clone())
    };
    println!("headless demo journey (the same session the kiosk window drives)");
    println!("-> insert 张三's card");
    slot.insert("zhangsan", card("zhangsan").context("card")?);
    wait("the PIN prompt")?;
    println!("-> enter a wrong PIN");
    req_tx.send(Request::VerifyPin(Pin::new("000000")?))?;
    wait("the wrong-PIN answer")?;
    println!("-> enter the right PIN");
    req_tx.send(Request::VerifyPin(Pin::new("123456")?))?;
    if let Update::SignedIn(c) = wait("sign-in")? {
        println!(
            "     name {}  social security no. {}  card {}",
            c.identity.holder.name, c.identity.holder.ssn, c.identity.card.card_number
        );
        match &c.insurance {
            Some(i) => println!(
                "     insurance {}  {} months  medical account {} fen  as of {}",
                i.status, i.contribution_months, i.medical_balance_fen, i.as_of
            ),
            None => println!("     no local insurance record"),
        }
    }
    println!("-> electronic cash balance and log");
    req_tx.send(Request::ShowAccount)?;
    wait("the electronic cash")?;
    println!("-> pay the card replacement fee (20.00) from electronic cash");
    req_tx.send(Request::Pay(PaymentOrder {
        item: 1,
        amount_fen: 2_000,
        english: false,
    }))?;
    loop {
        match wait("the payment")? {
            Update::Paying => {}
            Update::PaymentPinNeeded { .. } => {
                println!("-> enter the PIN for the card");
                req_tx.send(Request::PaymentPin(Pin::new("123456")?))?;
            }
            _ => break,
        }
    }
    req_tx.send(Request::ShowAccount)?;
    wait("the electronic cash after paying")?;
    println!("-> finish");
    req_tx.send(Request::End)?;
    wait("the end of the session")?;
    println!("-> take the card out");
    slot.remove();
    wait("card removed")?;
    println!("-> insert 王芳's card (reported lost)");
    slot.insert("wangfang-t0", card("wangfang-t0").context("card")?);
    wait("rejection")?;
    slot.remove();
    wait("card removed")?;
    if let Some(backend) = backend {
        backend_journey(backend, world, &slot, &wait)?;
    }
    req_tx.send(Request::Shutdown)?;
    let _ = handle.join();
    println!("journey complete");
    if let Some(backend) = backend {
        backend_report(backend)?;
    }
    Ok(())
}

fn describe(u: &Update) -> String {
    match u {
        Update::Reader(r) => format!("reader {r:?}"),
        Update::Sync { online, pending } => format!("sync: online {online}, {pending} waiting"),
        Update::Reading => "reading the card".into(),
        Update::Verdict(v) => format!(
            "checked: genuine {:?}, in date {:?} (expires {}), not hot-listed {:?}, PIN tries {:?}",
            v.genuine, v.in_date, v.expiry, v.not_hot_listed, v.tries_left
        ),
        Update::MedicalBalance { available_fen, .. } => {
            format!("medical account: {available_fen:?} fen left offline")
        }
        Update::MedicalRecorded(r) => format!(
            "medical debit of {} fen recorded, no. {}",
            r.amount_fen, r.seq
        ),
        Update::MedicalFailed(why) => format!("medical debit refused: {why}"),
        Update::Service(v) => format!(
            "service view: {} readers, {} exchanges",
            v.readers.len(),
            v.trace.len()
        ),
        Update::DayBook(b) => format!(
            "today: {} entries; shift {}: {} approved ({} fen)",
            b.lines.len(),
            b.shift,
            b.approved.0,
            b.approved.1
        ),
        Update::Rejected(r) => format!("card rejected: {r:?}"),
        Update::PinNeeded { tries_left } => format!("PIN needed ({tries_left} tries left)"),
        Update::PinWrong { tries_left } => format!("wrong PIN ({tries_left} tries left)"),
        Update::PinBlocked => "PIN blocked".into(),
        Update::SignedIn(_) => "signed in".into(),
        Update::PinChanged => "PIN changed".into(),
        Update::PinChangeFailed(e) => format!("PIN change failed: {e}"),
        Update::PinChangeInDoubt => "PIN change in doubt: the card may hold the new PIN".into(),
        Update::CardRemoved => "card removed".into(),
        Update::Ended => "session ended: please take your card".into(),
        Update::Error(e) => format!("error: {e}"),
        Update::Settled(list) => format!("earlier payments settled: {list:?}"),
        Update::Account(a) => format!(
            "electronic cash: balance {} fen, {} log records",
            a.balance_fen,
            a.log.len()
        ),
        Update::AccountFailed(f) => format!("electronic cash unavailable: {f:?}"),
        Update::Paying => "paying: keep the card in".into(),
        Update::PaymentPinNeeded { .. } => "the card asks for its PIN".into(),
        Update::Paid { receipt, file } => format!(
            "paid {} fen for {}, transaction no. {}, receipt {}",
            receipt.amount_fen,
            receipt.item.code,
            receipt.seq,
            file.as_ref()
                .map_or_else(|| "not written".into(), |f| f.display().to_string())
        ),
        Update::PaymentFailed(f) => format!(
            "payment failed: {} ({f:?})",
            terminal_app::kiosk::failure_text(Lang::En, f)
        ),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.hash_technician_pin {
        let mut pin = zeroize::Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut pin)?;
        let pin = pin.trim();
        if pin.len() < 4 || !pin.chars().all(|c| c.is_ascii_digit()) {
            bail!("a technician PIN has at least 4 digits");
        }
        println!("{}", TechnicianPin::from_pin(pin).to_hex());
        return Ok(());
    }
    let dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("sscard-kiosk-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let receipts = args
        .receipts
        .clone()
        .unwrap_or_else(|| dir.join("receipts"));
    std::fs::create_dir_all(&receipts)
        .with_context(|| format!("receipt directory {}", receipts.display()))?;
    if args.headless {
        if args.with_backend {
            let (backend, mut world) = start_backend(&args, &dir)?;
            if let Some(cards) = &args.demo_cards {
                world.keep_cards_in(cards)?;
            }
            return headless(&world, receipts, Some(&backend));
        }
        let world = DemoWorld::build_keeping_cards(&dir, args.demo_cards.as_deref())?;
        return headless(&world, receipts, None);
    }
    if !has_display {
        eprintln!(
            "kiosk: no display found (neither DISPLAY nor WAYLAND_DISPLAY is set).\n\
             Run `kiosk --headless` to see the same citizen journey in text, or start it under a \
             display (e.g. `xvfb-run kiosk --windowed`)."
        );
        std::process::exit(2);
    }

    // The local backend's children live as long as this (dropped: stopped).
    let mut _backend_guard: Option<Backend> = None;
    let (req_tx, req_rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    let (source, config, demo): (Box<dyn CardSource>, WorkerConfig, Option<DemoPanel>) =
        match &args.reader {
            Some(reader) => {
                let trust_path = args
                    .trust
                    .as_ref()
                    .context("--trust is needed with --reader")?;
                let trust = read_trust(trust_path)?;
                let open_ledger = match (&args.ledger, &args.field_key_file) {
                    (Some(path), Some(key)) => {
                        let key = std::fs::read_to_string(key)?.trim().to_string();
                        let path = path.clone();
                        Some(Box::new(move || DemoWorld::open_ledger(&path, &key))
                            as Box<dyn Fn() -> Result<_, _> + Send>)
                    }
                    (None, _) => None,
                    (Some(_), None) => bail!("--ledger needs --field-key-file"),
                };
                // The trust file may carry the payment application's SM2 CA keys too (RID
                // A000000333); RSA CA keys are not read from it yet.
                let mut pboc_ca = CaStore::new();
                for key in trust.keys() {
                    pboc_ca.add_sm2(key.clone());
                }
                (
                    Box::new(PcscSource::new(Some(reader.clone()))),
                    WorkerConfig {
                        trust,
                        ledger: args.ledger.clone(),
                        open_ledger,
                        clock: system_clock(),
                        terminal: TerminalConfig::kiosk(),
                        pboc_ca,
                        receipts: Some(receipts),
                    },
                    None,
                )
            }
            None => {
                let world = if args.with_backend {
                    let (backend, mut world) = start_backend(&args, &dir)?;
                    backend.watch();
                    _backend_guard = Some(backend);
                    if let Some(cards) = &args.demo_cards {
                        world.keep_cards_in(cards)?;
                    }
                    world
                } else {
                    DemoWorld::build_keeping_cards(&dir, args.demo_cards.as_deref())?
                };
                let mut config = world.worker_config(system_clock(), Some(receipts));
                let use_pcsc = match args.demo_reader {
                    DemoReader::InProcess => false,
                    DemoReader::Pcsc => true,
                    DemoReader::Auto => {
                        let found = hardware_readers();
                        if !found.is_empty() {
                            eprintln!(
                                "kiosk: using pcscd's readers ({}); --demo-reader in-process for \
                                 the demo panel",
                                found.join(", ")
                            );
                        }
                        !found.is_empty()
                    }
                };
                if let Some(path) = &args.demo_trust {
                    for ca in read_trust(path)?.keys() {
                        config.trust.insert(ca.clone());
                        config.pboc_ca.add_sm2(ca.clone());
                    }
                }
                if use_pcsc {
                    return run_window(
                        &args,
                        Box::new(PcscSource::new(None)),
                        config,
                        None,
                        req_tx,
                        req_rx,
                        up_tx,
                        up_rx,
                    );
                }
                let slot = DemoSlot::default();
                (
                    Box::new(DemoSource::new(slot.clone())),
                    config,
                    Some(DemoPanel {
                        slot,
                        cards: world.cards.clone(),
                    }),
                )
            }
        };
    run_window(&args, source, config, demo, req_tx, req_rx, up_tx, up_rx)
}

#[allow(clippy::too_many_arguments)]
fn run_window(
    args: &Args,
    source: Box<dyn CardSource>,
    config: WorkerConfig,
    demo: Option<DemoPanel>,
    req_tx: mpsc::Sender<Request>,
    req_rx: mpsc::Receiver<Request>,
    up_tx: mpsc::Sender<Update>,
    up_rx: mpsc::Receiver<Update>,
) -> Result<()> {
    let options = KioskOptions {
        lang: if args.english { Lang::En } else { Lang::Zh },
        idle_timeout: Duration::from_secs(args.idle),
    };
    let viewport = egui::ViewportBuilder::default()
        .with_title("社保卡自助服务")
        .with_inner_size([1366.0, 800.0])
        .with_fullscreen(!args.windowed);
    let counter = args.counter;
    // The service mode's PIN: from the file, or in the demo the documented 2468.
    let technician = match &args.technician_pin_file {
        Some(path) => Some(
            TechnicianPin::from_hex(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("technician PIN file {}", path.display()))?,
            )
            .with_context(|| format!("{}: not an SM3 digest in hex", path.display()))?,
        ),
        None if args.reader.is_none() => Some(TechnicianPin::from_pin(DEMO_TECHNICIAN_PIN)),
        None => None,
    };
    let screen_log = match &args.screen_log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => None,
    };
    let native = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "sscard-kiosk",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let worker = Worker::new(
                source,
                req_rx,
                up_tx,
                Box::new(move || ctx.request_repaint()),
                config,
            );
            worker.spawn()?;
            if counter {
                let app = CounterApp::new(&cc.egui_ctx, req_tx, up_rx, demo, options.lang);
                return Ok(Box::new(app) as Box<dyn eframe::App>);
            }
            let mut app = KioskApp::new(&cc.egui_ctx, req_tx, up_rx, demo, options);
            if let Some(pin) = technician {
                app = app.with_technician(pin);
            }
            if let Some(f) = screen_log {
                app = app.with_screen_log(f);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Start the local backend (`--with-backend`) and the demo world personalised through its HSM.
fn start_backend(args: &Args, dir: &std::path::Path) -> Result<(Backend, DemoWorld)> {
    let config = match &args.backend_bin_dir {
        Some(bins) => BackendConfig {
            state_dir: dir.to_path_buf(),
            bin_dir: bins.clone(),
        },
        None => BackendConfig::beside_current_exe(dir.to_path_buf())?,
    };
    eprintln!("kiosk: starting the local backend (hsm-sim, central-server, sync-agent)");
    let (backend, world) = Backend::start(&config).context("the local backend")?;
    print!("{}", backend.describe());
    Ok((backend, world))
}

/// The headless journey's backend part: the payment reaches the server, a card reported lost
/// there is refused at the kiosk after the next sync, and is taken off the list again.
fn backend_journey(
    backend: &Backend,
    world: &DemoWorld,
    slot: &DemoSlot,
    wait: &dyn Fn(&str) -> Result<Update>,
) -> Result<()> {
    let timeout = Duration::from_secs(60);
    println!("-> the sync agent uploads the ledger");
    let started = backend_sync::clock::unix_now() - 1;
    let s = backend.wait_uploaded(started, timeout)?;
    println!(
        "  <- sync: online, {} waiting, {} booked by the server",
        s.pending + s.unresolved,
        s.booked
    );
    let lisi = world
        .cards
        .iter()
        .find(|c| c.name == "lisi")
        .context("card")?;
    println!("-> the central server: report 李思's card lost");
    let (answer, version) = backend.report_lost(&lisi.pan)?;
    println!("  <- {answer}");
    println!("-> the next sync brings the hot list");
    backend.wait_hotlist(version, timeout)?;
    println!("  <- hot list version {version} in the ledger");
    println!("-> insert 李思's card");
    slot.insert("lisi", lisi.card.clone());
    wait("rejection")?;
    slot.remove();
    wait("card removed")?;
    println!("-> the central server: take 李思's card off the hot list");
    let (answer, version) = backend.unblock(&lisi.pan)?;
    println!("  <- {answer}");
    backend.wait_hotlist(version, timeout)?;
    println!("  <- hot list version {version} in the ledger");
    Ok(())
}

/// What the server booked and what the agent says, at the end of the headless journey.
fn backend_report(backend: &Backend) -> Result<()> {
    println!();
    println!("what the central server booked (central-server report):");
    print!("{}", backend.admin(&["report"])?);
    println!("the terminal's ledger (sync-agent status):");
    print!("{}", backend.agent_status()?);
    Ok(())
}
