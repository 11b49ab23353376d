//! `sync-agent`: uploads a terminal's ledger to the central server and downloads the hot list,
//! parameters and cardholder records. See docs/sync-protocol.md.
//!
//! ```sh
//! sync-agent --ledger kiosk.db --terminal KIOSK-1 --field-key field.key keygen --out terminal.key
//! sync-agent ... register --server https://host:8443 --key terminal.key --ca ca.pem --token T
//! sync-agent ... once --server https://host:8443 --key terminal.key --ca ca.pem
//! sync-agent ... run  --server https://host:8443 --key terminal.key --ca ca.pem --interval 30
//! sync-agent ... status
//! sync-agent ... unresolved
//! sync-agent ... resolve --seq 17 --debited-atc 42 --note "card log read at counter 3"
//! sync-agent ... resolve --seq 18 --not-debited --note "card log shows no debit"
//! ```
//!
//! Exit codes: 0 done, 1 error (configuration, ledger), 2 the server refused for good or a
//! transient failure outlasted the retries (see `status`).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use backend_sync::agent::backoff::RetryPolicy;
use backend_sync::agent::{
    Agent, AgentConfig, AgentError, Progress, read_key_file, status_lines, unresolved_lines,
};
use backend_sync::entry::TerminalId;
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::{Ledger, OperatorFinding};
use backend_sync::recovery::LogRecordData;
use card_core::crypto::sm2::Sm2PrivateKey;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sync-agent", about = "Terminal sync agent")]
struct Cli {
    /// The terminal's ledger (SQLite).
    #[arg(long)]
    ledger: PathBuf,
    /// Terminal id.
    #[arg(long)]
    terminal: String,
    /// File with the field key (32 hex digits); else SSCARD_FIELD_KEY.
    #[arg(long)]
    field_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// Server base URL.
    #[arg(long)]
    server: String,
    /// The terminal's SM2 key file (64 hex digits).
    #[arg(long)]
    key: PathBuf,
    /// CA certificate (PEM) to trust for https.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Entries per upload.
    #[arg(long, default_value_t = 200)]
    batch_size: usize,
    /// Entries older than this many seconds are dead-lettered instead of sent.
    #[arg(long, default_value_t = 30 * 86_400)]
    max_age: u64,
    /// Attempts per request before giving up.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// First backoff ceiling, milliseconds.
    #[arg(long, default_value_t = 200)]
    retry_base_ms: u64,
    /// Largest backoff ceiling, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    retry_max_ms: u64,
    /// Per-request timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new SM2 terminal key (64 hex digits) to a file.
    Keygen {
        /// Output file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Register the terminal's key with its enrolment token.
    Register {
        #[command(flatten)]
        conn: Conn,
        /// The one-time enrolment token.
        #[arg(long)]
        token: String,
    },
    /// Sync once: upload, close batches, download.
    Once {
        #[command(flatten)]
        conn: Conn,
        /// Close the open batch first (it is reconciled once uploaded).
        #[arg(long)]
        close_batch: bool,
    },
    /// Sync every --interval seconds until interrupted or refused.
    Run {
        #[command(flatten)]
        conn: Conn,
        /// Seconds between runs.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
    /// Close the open batch (it is reconciled at the next sync).
    CloseBatch,
    /// Print pending, failed, last success, hot-list version.
    Status,
    /// List the entries still `intent` or `unknown` (waiting for their card, or for an
    /// operator when recovery could not settle them), with the last note.
    Unresolved,
    /// Settle an unresolved entry by hand, from the card's log read elsewhere or the issuer's
    /// records: --not-debited voids it; --debited-atc records it as a recovered debit (booked
    /// unverified by the server).
    Resolve {
        /// The entry.
        #[arg(long)]
        seq: u64,
        /// The card was not debited.
        #[arg(long, conflicts_with = "debited_atc")]
        not_debited: bool,
        /// The card was debited; its ATC for that debit.
        #[arg(long, required_unless_present = "not_debited")]
        debited_atc: Option<u16>,
        /// The card's log record of the debit, as hex TLV, if read.
        #[arg(long, requires = "debited_atc")]
        log_record: Option<String>,
        /// What the finding rests on (never a card number).
        #[arg(long)]
        note: String,
    },
}

fn field_key(cli: &Cli) -> Result<FieldKey> {
    FieldKey::load(cli.field_key.as_deref()).context("field key")
}

fn agent(cli: &Cli, conn: &Conn) -> Result<Agent> {
    let ca_pem = match &conn.ca {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let config = AgentConfig {
        server: conn.server.clone(),
        ledger: cli.ledger.clone(),
        terminal: cli.terminal.parse().context("terminal id")?,
        ca_pem,
        batch_size: conn.batch_size,
        max_age: Duration::from_secs(conn.max_age),
        retry: RetryPolicy {
            base: Duration::from_millis(conn.retry_base_ms),
            max: Duration::from_millis(conn.retry_max_ms),
            max_attempts: conn.max_attempts,
        },
        timeout: Duration::from_millis(conn.timeout_ms),
    };
    Ok(Agent::open(
        config,
        read_key_file(&conn.key)?,
        field_key(cli)?,
    )?)
}

fn progress_printer() -> impl FnMut(&Progress) + Send {
    |p: &Progress| {
        if p.total > 0 {
            let mut e = std::io::stderr();
            let _ = writeln!(
                e,
                "upload: {}/{} entries (booked {}, duplicate {}, rejected {})",
                p.done, p.total, p.booked, p.duplicate, p.rejected
            );
        }
    }
}

fn exit_for(e: &AgentError) -> i32 {
    match e {
        AgentError::Call(_) | AgentError::GaveUp { .. } | AgentError::AnswerMismatch => 2,
        _ => 1,
    }
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match real_main(&cli) {
        Ok(()) => 0,
        Err(e) => {
            let code = e.downcast_ref::<AgentError>().map_or(1, exit_for);
            eprintln!("sync-agent: {e:#}");
            code
        }
    };
    std::process::exit(code);
}

fn real_main(cli: &Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match &cli.command {
        Command::Keygen { out } => {
            let k = Sm2PrivateKey::generate_os().context("key generation")?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .with_context(|| format!("creating {}", out.display()))?;
            f.write_all(hex::encode_upper(k.expose_bytes().as_ref()).as_bytes())?;
            f.sync_all()?;
            println!("{}", hex::encode_upper(k.public_key().to_xy()));
        }
        Command::Register { conn, token } => {
            let mut a = agent(cli, conn)?;
            let r = rt.block_on(a.register(token))?;
            println!(
                "registered {} in region {}",
                r.terminal_id,
                r.region.as_str()
            );
        }
        Command::Once { conn, close_batch } => {
            let mut a = agent(cli, conn)?;
            if *close_batch {
                let b = a.ledger().close_batch()?;
                eprintln!("closed batch {b}");
            }
            let mut p = progress_printer();
            let r = rt.block_on(a.sync_once(&mut p))?;
            println!(
                "sync ok: uploaded {} (booked {}, duplicate {}, rejected {}){}, dead-lettered {}, \
                 hot list v{}, parameters v{}, cardholders v{}",
                r.upload.done,
                r.upload.booked,
                r.upload.duplicate,
                r.upload.rejected,
                if r.upload.unverified > 0 {
                    format!(" of which {} recovered, unverified", r.upload.unverified)
                } else {
                    String::new()
                },
                r.dead_lettered,
                r.hotlist_version,
                r.params_version,
                r.cardholders_version
            );
            for b in &r.batches {
                println!(
                    "batch {}: {}{}{}",
                    b.batch_no,
                    if b.balanced {
                        "balanced"
                    } else {
                        "NOT balanced"
                    },
                    if b.recovered.server.count > 0 || b.recovered.terminal.count > 0 {
                        format!(
                            " (recovered debits apart: terminal {} / {} fen, server {} / {} fen)",
                            b.recovered.terminal.count,
                            b.recovered.terminal.amount,
                            b.recovered.server.count,
                            b.recovered.server.amount
                        )
                    } else {
                        String::new()
                    },
                    if b.medical.server.count > 0 || b.medical.terminal.count > 0 {
                        format!(
                            " (medical debits apart: terminal {} / {} fen, server {} / {} fen)",
                            b.medical.terminal.count,
                            b.medical.terminal.amount,
                            b.medical.server.count,
                            b.medical.server.amount
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
        Command::Run { conn, interval } => {
            let mut a = agent(cli, conn)?;
            let mut p = progress_printer();
            rt.block_on(a.run(
                Duration::from_secs(*interval),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
                &mut p,
            ))?;
        }
        Command::CloseBatch => {
            let terminal: TerminalId = cli.terminal.parse().context("terminal id")?;
            let mut l = Ledger::open(&cli.ledger, &terminal, field_key(cli)?)?;
            println!("closed batch {}", l.close_batch()?);
        }
        Command::Status => {
            let terminal: TerminalId = cli.terminal.parse().context("terminal id")?;
            let l = Ledger::open(&cli.ledger, &terminal, field_key(cli)?)?;
            for line in status_lines(&l)? {
                println!("{line}");
            }
        }
        Command::Unresolved => {
            let terminal: TerminalId = cli.terminal.parse().context("terminal id")?;
            let l = Ledger::open(&cli.ledger, &terminal, field_key(cli)?)?;
            for line in unresolved_lines(&l)? {
                println!("{line}");
            }
        }
        Command::Resolve {
            seq,
            not_debited,
            debited_atc,
            log_record,
            note,
        } => {
            let terminal: TerminalId = cli.terminal.parse().context("terminal id")?;
            let mut l = Ledger::open(&cli.ledger, &terminal, field_key(cli)?)?;
            let finding = match (not_debited, debited_atc) {
                (true, None) => OperatorFinding::NotDebited,
                (false, Some(atc)) => OperatorFinding::Debited {
                    atc: *atc,
                    log_record: match log_record {
                        Some(h) => Some(
                            LogRecordData::from_tlv(&hex::decode(h).context("log record hex")?)
                                .context("log record")?,
                        ),
                        None => None,
                    },
                },
                _ => anyhow::bail!("give --not-debited or --debited-atc"),
            };
            let state = l.resolve_by_operator(*seq, &finding, note)?;
            println!("seq {seq}: {}", state.as_str());
        }
    }
    Ok(())
}
