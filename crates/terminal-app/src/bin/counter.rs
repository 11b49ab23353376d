//! `counter`: the counter API for a pharmacy's or hospital's point-of-sale software: HTTP on
//! 127.0.0.1 with a bearer token from a local file (docs/counter-api.md).
//!
//! With no `--reader` it runs on the demo world (fictional cards personalised by an in-memory
//! hsm-sim, an in-process reader): `--demo-card NAME` puts a card in at start, and lines
//! `insert NAME` / `remove` on standard input insert and remove cards. `--reader NAME --trust
//! FILE --ledger FILE --field-key-file FILE` runs it on a PC/SC reader. The cardholder types the
//! PIN at the prompt on this terminal (`/dev/tty`, no echo); it never travels over the API.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use card_core::pboc::TerminalConfig;
use card_core::pboc::oda::CaStore;
use clap::Parser;
use terminal_app::card_source::{CardSource, DemoSlot, DemoSource, PcscSource};
use terminal_app::clock::system_clock;
use terminal_app::counter::pinpad::ConsolePinPad;
use terminal_app::counter::{ApiToken, CounterConfig, CounterService};
use terminal_app::demo::DemoWorld;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Counter API for point-of-sale software: card status, PIN verification on the \
             terminal, idempotent debits, the day's transactions; HTTP on loopback only"
)]
struct Args {
    /// Address to listen on: a loopback address only (`127.0.0.1:PORT`, `[::1]:PORT`,
    /// `localhost:PORT`).
    #[arg(long, default_value = "127.0.0.1:7311")]
    listen: String,
    /// The bearer token's file; created with a random token (mode 0600) if missing. Default:
    /// STATE_DIR/counter-api.token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Where the token file and the demo's ledger live (default: $XDG_STATE_HOME/sscard, else
    /// ~/.local/state/sscard).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
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
    /// Demo: the card in the reader at start (zhangsan, lisi, wangfang-t0, expired, blocked).
    #[arg(long, value_name = "NAME", conflicts_with = "reader")]
    demo_card: Option<String>,
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("sscard");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/sscard"),
        None => std::env::temp_dir().join("sscard"),
    }
}

fn read_trust(path: &Path) -> Result<card_core::crypto::sm2_cert::TrustStore> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("trust store {}", path.display()))?;
    card_core::ssse::auth::parse_trust_store(&text)
        .map_err(|(line, why)| anyhow::anyhow!("{}: line {line}: {why}", path.display()))
}

/// Lines `insert NAME` and `remove` on standard input drive the demo's reader.
fn demo_commands(slot: DemoSlot, world: &DemoWorld) {
    let cards = world.cards.clone();
    let spawned = std::thread::Builder::new()
        .name("demo-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("insert"), Some(name)) => match cards.iter().find(|c| c.name == name) {
                        Some(c) => {
                            slot.insert(c.name, c.card.clone());
                            eprintln!("[counter] demo: {name}'s card inserted");
                        }
                        None => eprintln!("[counter] demo: no card {name}"),
                    },
                    (Some("remove"), None) => {
                        slot.remove();
                        eprintln!("[counter] demo: card removed");
                    }
                    (None, _) => {}
                    _ => eprintln!("[counter] demo: `insert NAME` or `remove`"),
                }
            }
        });
    if spawned.is_err() {
        eprintln!("[counter] demo: no stdin commands (thread not started)");
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Refuse a non-loopback address before anything else happens.
    let addr = terminal_app::counter::parse_listen(&args.listen)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("state directory {}", state_dir.display()))?;
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(|| state_dir.join("counter-api.token"));
    let token = ApiToken::load_or_create(&token_file)?;

    let (source, config): (Box<dyn CardSource>, CounterConfig) = match &args.reader {
        Some(reader) => {
            let trust = read_trust(
                args.trust
                    .as_ref()
                    .context("--trust is needed with --reader")?,
            )?;
            let (Some(path), Some(key_file)) = (&args.ledger, &args.field_key_file) else {
                bail!("the counter needs its ledger: --ledger FILE --field-key-file FILE");
            };
            let key = std::fs::read_to_string(key_file)
                .with_context(|| format!("field key {}", key_file.display()))?
                .trim()
                .to_string();
            let path = path.clone();
            // The trust file may carry the payment application's SM2 CA keys too.
            let mut pboc_ca = CaStore::new();
            for k in trust.keys() {
                pboc_ca.add_sm2(k.clone());
            }
            (
                Box::new(PcscSource::new(Some(reader.clone()))),
                CounterConfig {
                    trust,
                    terminal: TerminalConfig::kiosk(),
                    pboc_ca,
                    clock: system_clock(),
                    open_ledger: Box::new(move || DemoWorld::open_ledger(&path, &key)),
                },
            )
        }
        None => {
            let world = DemoWorld::build(&state_dir)?;
            let slot = DemoSlot::default();
            if let Some(name) = &args.demo_card {
                let card = world
                    .cards
                    .iter()
                    .find(|c| c.name == name)
                    .with_context(|| format!("no demo card {name}"))?;
                slot.insert(card.name, card.card.clone());
            }
            demo_commands(slot.clone(), &world);
            let config = CounterConfig::from_worker(world.worker_config(system_clock(), None))
                .context("the demo has no ledger")?;
            (Box::new(DemoSource::new(slot)), config)
        }
    };

    let service = Arc::new(CounterService::start(
        source,
        Box::new(ConsolePinPad),
        config,
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = terminal_app::counter::bind(addr).await?;
        let local = listener.local_addr()?;
        println!(
            "counter API listening on http://{local} (token file {})",
            token_file.display()
        );
        std::io::stdout().flush()?;
        terminal_app::counter::serve(listener, service.clone(), token, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    service.stop();
    Ok(())
}
