//! `personalize`: issue cards with keys and certificates from hsm-sim.
//!
//! Builds each card from its profile, has hsm-sim make its SM2 key pair and the issuer sign its
//! certificate (and, on first use, the CA key, the issuer key and the issuer certificate), and
//! writes the card's memory to `<state-dir>/<name>.json`, where `virtual-card --state-dir`
//! finds it. The CA public key goes to a trust-store file for terminals.
//!
//! The personalisation device's transport key (the clear twin of the HSM's ZMK) comes from
//! `--zmk-file` (32 hex digits). With `--in-memory-hsm` a throw-away HSM is used, whose ZMK is
//! that key: for demos and tests.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use card_core::CardSession;
use card_core::crypto::rsa::YearMonth;
use card_core::ssse::{self, ReadStrategy};
use clap::Parser;
use firmware_tests::personalize::{self, CardInput};
use firmware_tests::storage::{FileStorage, Storage};
use firmware_tests::{Profile, SoftCard};
use hsm_sim::client::{BlockingClient, Call, HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(version, about = "Personalise social-security cards with hsm-sim")]
struct Args {
    /// Card to issue: a fixture name, or NAME=PROFILE.toml (repeatable).
    #[arg(long = "card", required = true)]
    cards: Vec<String>,
    /// Where the cards' memory is written (NAME.json).
    #[arg(long)]
    state_dir: PathBuf,
    /// Trust-store file to write the CA key to.
    #[arg(long)]
    trust_out: PathBuf,
    /// hsm-sim address.
    #[arg(long, conflicts_with = "in_memory_hsm")]
    hsm: Option<String>,
    /// Use a throw-away in-memory HSM.
    #[arg(long)]
    in_memory_hsm: bool,
    /// Label of the ZMK in the HSM.
    #[arg(long, default_value = "ZMKPERSO")]
    zmk_label: String,
    /// File with the transport key (32 hex digits, SM4).
    #[arg(long)]
    zmk_file: PathBuf,
}

fn run<C: Call>(hsm: &mut HsmClient<C>, args: &Args, zmk: &BlockKey) -> Result<()> {
    let issuer = personalize::setup_issuer(
        hsm,
        "CAROOT01",
        0x01,
        "ISSUER01",
        "62170000",
        YearMonth {
            year: 2035,
            month: 12,
        },
    )?;
    std::fs::create_dir_all(&args.state_dir)?;
    for (i, spec) in args.cards.iter().enumerate() {
        let (name, profile) = match spec.split_once('=') {
            Some((n, path)) => (n.to_string(), Profile::load(&PathBuf::from(path))?),
            None => (
                spec.clone(),
                Profile::embedded(spec).with_context(|| format!("no fixture named {spec}"))?,
            ),
        };
        let mut image = profile.build()?;
        let mut s = CardSession::new(SoftCard::in_memory(image.clone()));
        let identity = ssse::read_identity(&mut s, ReadStrategy::AllRecords)?;
        let statics = ssse::auth::static_data(&identity);
        let label = format!("ICC{:05}", i + 1);
        let pan = format!("621700001000{:07}", i + 1);
        personalize::personalize_pki(
            hsm,
            &mut image,
            &issuer,
            &args.zmk_label,
            zmk,
            &CardInput {
                label: &label,
                pan: &pan,
                static_data: &statics,
                expiry: YearMonth {
                    year: 2034,
                    month: 12,
                },
                serial: [0, 0, u8::try_from(i + 1).unwrap_or(0)],
            },
        )?;
        let path = args.state_dir.join(format!("{name}.json"));
        FileStorage::new(&path).commit(&image)?;
        println!("issued {name} -> {}", path.display());
    }
    std::fs::write(
        &args.trust_out,
        format!("{}\n", personalize::trust_line(&issuer.ca)),
    )?;
    println!("trust store -> {}", args.trust_out.display());
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text =
        Zeroizing::new(std::fs::read_to_string(&args.zmk_file).context("reading the ZMK file")?);
    let bytes =
        Zeroizing::new(hex::decode(text.trim()).context("the ZMK file holds 32 hex digits")?);
    let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(bytes.to_vec()))
        .map_err(|e| anyhow::anyhow!("ZMK: {e}"))?;
    match (&args.hsm, args.in_memory_hsm) {
        (Some(addr), false) => run(
            &mut HsmClient::new(BlockingClient::connect(addr.as_str(), 4)?),
            &args,
            &zmk,
        ),
        (None, true) => {
            let mut lmk = [0u8; 16];
            getrandom::fill(&mut lmk).map_err(|e| anyhow::anyhow!("random LMK: {e}"))?;
            let hsm = Arc::new(Hsm::in_memory(Lmk::new(&lmk), 4)?);
            hsm.form_key_from_components(&args.zmk_label, KeyType::Zmk, Scheme::Sm4, &[&bytes])?;
            run(&mut HsmClient::new(InProcess::new(hsm)), &args, &zmk)
        }
        _ => bail!("give --hsm ADDR or --in-memory-hsm"),
    }
}
