//! `central-server`: the reference central backend of the sync protocol, and its
//! administration commands. See docs/sync-protocol.md.
//!
//! ```sh
//! central-server --db server.db keygen --out server.key
//! central-server --db server.db fieldkey --out field.key
//! central-server --db server.db add-terminal --terminal KIOSK-1 --region 110100
//! central-server --db server.db --field-key field.key serve --listen 127.0.0.1:8443 \
//!     --hsm 127.0.0.1:1500 --server-key server.key
//! central-server --db server.db --field-key field.key report-lost --pan 6217... --reason lost
//! central-server --db postgres://user@host/db ...   # PostgreSQL instead of SQLite
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use backend_sync::entry::{Pan, Region, TerminalId};
use backend_sync::field_crypto::FieldKey;
use backend_sync::server::db::{Db, DbUrl};
use backend_sync::server::hsm::HsmConfig;
use backend_sync::server::{AppState, ServerConfig, admin, schema};
use backend_sync::testkit::{DEMO_MK_SM4_LABEL, DEMO_MK_TDES_LABEL};
use backend_sync::wire::HotListAction;
use card_core::crypto::sm2::Sm2PrivateKey;
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "central-server",
    about = "Reference central backend for terminal sync"
)]
struct Cli {
    /// Database: a SQLite file path (default) or a postgres:// URL.
    #[arg(long, default_value = "central.db")]
    db: String,
    /// File with the field key (32 hex digits) for personal data at rest; else SSCARD_FIELD_KEY.
    #[arg(long)]
    field_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new SM2 server key (64 hex digits) to a file and print its public key.
    Keygen {
        /// Output file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a new field key (32 hex digits) to a file.
    Fieldkey {
        /// Output file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a terminal and print its one-time enrolment token.
    AddTerminal {
        /// Terminal id.
        #[arg(long)]
        terminal: String,
        /// Region code (6 digits).
        #[arg(long)]
        region: String,
    },
    /// Report a card lost (adds it to the hot list).
    ReportLost {
        /// The card's PAN.
        #[arg(long)]
        pan: String,
        /// Reason.
        #[arg(long, default_value = "lost")]
        reason: String,
    },
    /// Take a card off the hot list.
    Unblock {
        /// The card's PAN.
        #[arg(long)]
        pan: String,
    },
    /// Set a terminal parameter.
    SetParam {
        /// Name.
        #[arg(long)]
        name: String,
        /// Value.
        #[arg(long)]
        value: String,
    },
    /// Import cardholder records from CSV (ssn,name,card_no,region,insurance_status,
    /// contribution_months,medical_balance_fen,as_of).
    ImportCardholders {
        /// CSV file.
        #[arg(long)]
        csv: PathBuf,
    },
    /// Print per-terminal booking figures.
    Report,
    /// List recovered debits booked unverified (proven by the card's log, no cryptogram), for
    /// an operator to settle with the issuer.
    Recovered,
    /// Serve the sync protocol.
    Serve {
        /// Address to listen on (port 0 picks one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// hsm-sim address.
        #[arg(long, default_value = "127.0.0.1:1500")]
        hsm: String,
        /// hsm-sim header length.
        #[arg(long, default_value_t = 4)]
        hsm_header_len: usize,
        /// HSM label of the 3DES issuer master key (MK-AC).
        #[arg(long, default_value = DEMO_MK_TDES_LABEL)]
        mk_tdes: String,
        /// HSM label of the SM4 issuer master key (MK-AC).
        #[arg(long, default_value = DEMO_MK_SM4_LABEL)]
        mk_sm4: String,
        /// HSM connections.
        #[arg(long, default_value_t = 8)]
        hsm_connections: usize,
        /// File with the server's SM2 key (from `keygen`).
        #[arg(long)]
        server_key: PathBuf,
        /// Allowed clock difference of terminals, seconds.
        #[arg(long, default_value_t = backend_sync::signing::DEFAULT_WINDOW_SECS)]
        window: i64,
        /// PostgreSQL connections.
        #[arg(long, default_value_t = 8)]
        db_pool: usize,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// TLS certificate chain (PEM); with --tls-key, serve HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// SSSE CA keys that medical debits' card certificates must chain to, one per line:
        /// `RID INDEX MMYY X‖Y` in hex (the terminals' trust-store format). Without it, uploads
        /// holding a medical debit get 503.
        #[arg(long)]
        ssse_trust: Option<PathBuf>,
    },
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn read_server_key(path: &Path) -> Result<Sm2PrivateKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let mut d = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), d.as_mut())
        .context("the server key file holds 64 hex digits")?;
    Sm2PrivateKey::from_bytes(d.as_ref()).context("the server key is not a valid SM2 key")
}

fn field_key(cli: &Cli) -> Result<FieldKey> {
    FieldKey::load(cli.field_key.as_deref()).context("field key")
}

async fn open_db(cli: &Cli) -> Result<Db> {
    let db = Db::open(&DbUrl::parse(&cli.db), 2)
        .await
        .context("opening the database")?;
    schema::migrate(&db)
        .await
        .context("migrating the database")?;
    Ok(db)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let workers = match &cli.command {
        Command::Serve { workers, .. } => (*workers).max(1),
        _ => 1,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Keygen { out } => {
            let k = Sm2PrivateKey::generate_os().context("key generation")?;
            write_new(out, &hex::encode_upper(k.expose_bytes().as_ref()))?;
            println!("{}", hex::encode_upper(k.public_key().to_xy()));
        }
        Command::Fieldkey { out } => {
            let k = FieldKey::generate_hex().context("key generation")?;
            write_new(out, &k)?;
        }
        Command::AddTerminal { terminal, region } => {
            let id: TerminalId = terminal.parse().context("terminal id")?;
            let region: Region = region.parse().context("region")?;
            let db = open_db(&cli).await?;
            println!("{}", admin::add_terminal(&db, &id, &region).await?);
        }
        Command::ReportLost { pan, reason } => {
            let pan: Pan = pan.parse().context("PAN")?;
            let key = field_key(&cli)?;
            let db = open_db(&cli).await?;
            let v = admin::report_card(&db, &key, &pan, HotListAction::Add, reason).await?;
            println!("hot-list version {v}: {} {reason}", pan.masked());
        }
        Command::Unblock { pan } => {
            let pan: Pan = pan.parse().context("PAN")?;
            let key = field_key(&cli)?;
            let db = open_db(&cli).await?;
            let v = admin::report_card(&db, &key, &pan, HotListAction::Remove, "unblocked").await?;
            println!("hot-list version {v}: {} unblocked", pan.masked());
        }
        Command::SetParam { name, value } => {
            let db = open_db(&cli).await?;
            println!(
                "parameters version {}",
                admin::set_param(&db, name, value).await?
            );
        }
        Command::ImportCardholders { csv } => {
            let data = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
            let records = admin::parse_cardholder_csv(&data)?;
            let key = field_key(&cli)?;
            let db = open_db(&cli).await?;
            println!(
                "imported {} records",
                admin::import_cardholders(&db, &key, &records).await?
            );
        }
        Command::Report => {
            let db = open_db(&cli).await?;
            println!(
                "terminal\tbooked\trejected\tapproved\tnet_fen\tmax_seq\trecovered\trecovered_fen\tmedical\tmedical_fen"
            );
            for r in admin::report(&db).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.terminal_id,
                    r.booked,
                    r.rejected,
                    r.approved,
                    r.approved_net_fen,
                    r.max_seq,
                    r.recovered,
                    r.recovered_fen,
                    r.medical,
                    r.medical_fen
                );
            }
        }
        Command::Recovered => {
            let db = open_db(&cli).await?;
            println!(
                "terminal\tseq\tbatch\tcard\tamount_fen\ttime\tatc\tsource\tclash\tlog_record\tnote"
            );
            for r in admin::recovered_entries(&db).await? {
                let e = &r.recovered.evidence;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.terminal_id,
                    r.seq,
                    r.batch_no,
                    r.pan_masked,
                    r.amount_fen,
                    r.txn_time,
                    r.recovered.atc,
                    e.source.as_str(),
                    if r.clash { "CLASH" } else { "-" },
                    e.log_record
                        .as_ref()
                        .map(|l| hex::encode_upper(l.to_tlv()))
                        .unwrap_or_default(),
                    e.note.as_deref().unwrap_or("")
                );
            }
        }
        Command::Serve {
            listen,
            hsm,
            hsm_header_len,
            mk_tdes,
            mk_sm4,
            hsm_connections,
            server_key,
            window,
            db_pool,
            workers: _,
            tls_cert,
            tls_key,
            ssse_trust,
        } => {
            if *window <= 0 {
                bail!("--window must be positive");
            }
            let ssse_trust = match ssse_trust {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let store = card_core::ssse::auth::parse_trust_store(&text).map_err(
                        |(line, why)| anyhow::anyhow!("{} line {line}: {why}", path.display()),
                    )?;
                    Some(store)
                }
                None => None,
            };
            let config = ServerConfig {
                db: DbUrl::parse(&cli.db),
                db_pool: *db_pool,
                hsm: HsmConfig {
                    addr: hsm.clone(),
                    header_len: *hsm_header_len,
                    mk_tdes: mk_tdes.clone(),
                    mk_sm4: mk_sm4.clone(),
                    connections: *hsm_connections,
                    timeout: Duration::from_secs(5),
                },
                server_key: read_server_key(server_key)?,
                field_key: field_key(&cli)?,
                window_secs: *window,
                ssse_trust,
            };
            let state = AppState::new(config).await.context("starting the server")?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => {
                    let acceptor = backend_sync::tls::acceptor_from_pem_files(cert, key)
                        .context("TLS configuration")?;
                    println!("listening on https://{addr}");
                    backend_sync::tls::serve_tls(listener, acceptor, state, shutdown).await?;
                }
                _ => {
                    println!("listening on http://{addr}");
                    backend_sync::server::serve(listener, state, shutdown).await?;
                }
            }
        }
    }
    Ok(())
}
