//! `hsm-sim`: run the HSM simulator, hold a key ceremony, inspect the key store and audit log.
//!
//! The LMK comes from `--lmk-file FILE` (32 hex digits) or the `HSM_LMK` environment variable;
//! it is never written to the key store.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hsm_sim::hsm::{DEFAULT_HEADER_LEN, Hsm};
use hsm_sim::keys::{KeyType, Lmk, LmkError, Scheme};
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "payShield-style HSM simulator for the social-security stack"
)]
struct Cli {
    /// The key store (SQLite file).
    #[arg(long, global = true, default_value = "hsm-keys.db")]
    store: PathBuf,
    /// File with the LMK (32 hex digits); otherwise $HSM_LMK.
    #[arg(long, global = true)]
    lmk_file: Option<PathBuf>,
    /// Message header length.
    #[arg(long, global = true, default_value_t = DEFAULT_HEADER_LEN)]
    header_len: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve host commands on TCP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:1500")]
        listen: String,
        /// Runtime worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Key ceremony: form a key from clear components read from standard input, one per line
    /// (hex), XORed together.
    FormKey {
        /// Key type code (000 ZMK, 008 ZAK, 109 MK-AC, 209 MK-SMI, 309 MK-SMC).
        #[arg(long = "type")]
        key_type: String,
        /// Scheme: U (3DES) or S (SM4).
        #[arg(long)]
        scheme: char,
        /// Label, 8 characters A-Z 0-9 - _.
        #[arg(long)]
        label: String,
    },
    /// Check the key store and the audit log, and print the log.
    Audit,
}

fn lmk(cli: &Cli) -> Result<Lmk> {
    if let Some(path) = &cli.lmk_file {
        return Ok(Lmk::from_file(path)?);
    }
    match std::env::var("HSM_LMK") {
        Ok(v) => {
            let v = Zeroizing::new(v);
            Ok(Lmk::from_hex(&v)?)
        }
        Err(_) => Err(LmkError::Missing.into()),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let lmk = lmk(&cli)?;
    let hsm = Hsm::open(&cli.store, lmk, cli.header_len)
        .with_context(|| format!("opening key store {}", cli.store.display()))?;
    match cli.command {
        Cmd::Serve { listen, workers } => {
            let hsm = Arc::new(hsm);
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(w) = workers {
                rt.worker_threads(w.max(1));
            }
            let rt = rt.enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                eprintln!("hsm-sim listening on {}", listener.local_addr()?);
                hsm_sim::server::serve(listener, hsm, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
                Ok::<(), anyhow::Error>(())
            })?;
        }
        Cmd::FormKey {
            key_type,
            scheme,
            label,
        } => {
            let key_type =
                KeyType::parse(&key_type).map_err(|e| anyhow::anyhow!("key type: {e}"))?;
            let scheme = Scheme::parse(u8::try_from(scheme).unwrap_or(0))
                .map_err(|e| anyhow::anyhow!("scheme: {e}"))?;
            let mut components = Vec::new();
            for line in std::io::stdin().lock().lines() {
                let line = Zeroizing::new(line?);
                let t = line.trim();
                if t.is_empty() {
                    continue;
                }
                components.push(Zeroizing::new(
                    hex::decode(t).context("a component is not hex")?,
                ));
            }
            if components.is_empty() {
                bail!("no components on standard input");
            }
            let refs: Vec<&[u8]> = components.iter().map(|c| c.as_slice()).collect();
            let kcv = hsm.form_key_from_components(&label, key_type, scheme, &refs)?;
            println!(
                "{label} {} {} KCV {}",
                key_type.code(),
                char::from(scheme.letter()),
                hex::encode_upper(kcv)
            );
        }
        Cmd::Audit => {
            let records = hsm.audit_records()?;
            for r in &records {
                println!(
                    "{:>6} {} {:<24} {:<8} {}",
                    r.seq, r.time_ms, r.event, r.label, r.outcome
                );
            }
            println!("audit log intact: {} records", records.len());
        }
    }
    Ok(())
}
