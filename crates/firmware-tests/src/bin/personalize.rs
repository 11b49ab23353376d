//! `personalize`: issue cards with keys and certificates from hsm-sim.
//!
//! Builds each card from its profile, has hsm-sim make its SM2 key pair and the issuer sign its
//! certificate (and, on first use, the CA key, the issuer key and the issuer certificate), and
//! writes the card's memory to `<state-dir>/<name>.json`, where `virtual-card --state-dir`
//! finds it. The CA public key goes to a trust-store file for terminals.
//!
//! Each card's SSSE maintenance key (for writing its cardholder records) is derived in the HSM
//! from the maintenance master `MNTMK001`, generated there on first use (`personalize::
//! personalize_maintenance`), instead of from the profile's test master.
//!
//! The personalisation device's transport key (the clear twin of the HSM's ZMK) comes from
//! `--zmk-file` (32 hex digits). With `--in-memory-hsm` a throw-away HSM is used, whose ZMK is
//! that key: for demos and tests.
//!
//! With `--pboc` the payment application of a card whose profile has an SM `[pboc]` section is
//! personalised through the HSM too (`personalize::personalize_pboc`): issuer master keys
//! generated in the HSM on first use, card keys derived there, the card's SM2 key and the PBOC
//! certificates from it; the PBOC CA key goes to `--pboc-trust-out`. Without `--pboc`, or for an
//! international (RSA) section, which hsm-sim cannot certify, the application is made from the
//! profile's clear test keys, as the fixtures are.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use card_core::CardSession;
use card_core::crypto::rsa::YearMonth;
use card_core::ssse::{self, ReadStrategy};
use clap::Parser;
use firmware_tests::pboc::{Algorithm, CA_INDEX_SM2};
use firmware_tests::personalize::{self, CardInput, PbocCardInput};
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
    /// Personalise the payment application (SM `[pboc]` sections) with keys and certificates
    /// from the HSM.
    #[arg(long, requires = "pboc_trust_out")]
    pboc: bool,
    /// Trust-store file to write the PBOC CA key to (RID A000000333, index 80).
    #[arg(long)]
    pboc_trust_out: Option<PathBuf>,
    /// Leftmost PAN digits of the PBOC issuer, for its certificate.
    #[arg(long, default_value = "623058")]
    pboc_bin: String,
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
    let pboc = if args.pboc {
        let issuer = personalize::setup_pboc_issuer(
            hsm,
            "PBOCCA01",
            CA_INDEX_SM2,
            "PBOCIS01",
            &args.pboc_bin,
            YearMonth {
                year: 2040,
                month: 12,
            },
        )?;
        let master = personalize::setup_pboc_master_keys(
            hsm,
            Scheme::Sm4,
            ["PBOCMKAC", "PBOCMKSI", "PBOCMKSC"],
        )?;
        Some((issuer, master))
    } else {
        None
    };
    personalize::setup_maintenance_master(hsm, personalize::MAINTENANCE_LABEL)?;
    std::fs::create_dir_all(&args.state_dir)?;
    for (i, spec) in args.cards.iter().enumerate() {
        let (name, mut profile) = match spec.split_once('=') {
            Some((n, path)) => (n.to_string(), Profile::load(&PathBuf::from(path))?),
            None => (
                spec.clone(),
                Profile::embedded(spec).with_context(|| format!("no fixture named {spec}"))?,
            ),
        };
        // With --pboc, an SM payment application is made below, through the HSM.
        let section = match &profile.pboc {
            Some(p) if pboc.is_some() && p.algorithm == Algorithm::Sm => profile.pboc.take(),
            _ => None,
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
        personalize::personalize_maintenance(
            hsm,
            &mut image,
            personalize::MAINTENANCE_LABEL,
            &args.zmk_label,
            zmk,
        )?;
        if let (Some(section), Some((issuer, master))) = (&section, &pboc) {
            let icc_label = format!("PBC{:05}", i + 1);
            personalize::personalize_pboc(
                hsm,
                &mut image,
                issuer,
                master,
                &args.zmk_label,
                zmk,
                &PbocCardInput {
                    section,
                    icc_label: &icc_label,
                    card_pin: &profile.pin.value,
                    serial: [0, 0, u8::try_from(i + 1).unwrap_or(0)],
                },
            )?;
            println!("{name}: payment application personalised through the HSM");
        } else if pboc.is_some() && profile.pboc.is_some() {
            println!("{name}: international payment application from the profile's test keys");
        }
        let path = args.state_dir.join(format!("{name}.json"));
        FileStorage::new(&path).commit(&image)?;
        println!("issued {name} -> {}", path.display());
    }
    std::fs::write(
        &args.trust_out,
        format!("{}\n", personalize::trust_line(&issuer.ca)),
    )?;
    println!("trust store -> {}", args.trust_out.display());
    if let (Some((issuer, _)), Some(out)) = (&pboc, &args.pboc_trust_out) {
        std::fs::write(out, format!("{}\n", personalize::trust_line(&issuer.ca)))?;
        println!("PBOC trust store -> {}", out.display());
    }
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
