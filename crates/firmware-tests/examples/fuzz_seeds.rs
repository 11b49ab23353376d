//! Seed inputs for the fuzz targets of fuzz/, from the recorded transcripts
//! (crates/card-core/tests/transcripts, crates/firmware-tests/tests/transcripts) and the
//! fixture cards:
//!
//! - `tlv/`: every response's data;
//! - `pboc_records/`: the answers to SELECT, GET PROCESSING OPTIONS, READ RECORD and GENERATE AC;
//! - `pboc_log/`: each transcript's log format with the log records it read, in the target's
//!   input layout;
//! - `rsa_recovery/`: the recovered fields (MSG1) of the RSA card's issuer and ICC certificates,
//!   in the target's input layout;
//! - `ssse_records/`: EF05 and EF06 of every fixture card, as the card answers them.
//!
//! Files are named `t-<source>-<n>`; existing hand-made seeds are left alone, and running again
//! rewrites the same files.
//!
//! ```sh
//! cargo run -p firmware-tests --example fuzz_seeds            # writes fuzz/seeds/
//! ```

#![allow(clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use card_core::CardSession;
use card_core::crypto::rsa::RsaPublicKey;
use card_core::ssse::{self, ReadStrategy};
use card_core::tlv::{Tag, TlvIter};
use card_core::transcript::{self, Answer, Exchange, Pattern, RecordingChannel};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::{Profile, SoftCard};

/// Seeds of one target, deduplicated.
#[derive(Default)]
struct Seeds(BTreeSet<Vec<u8>>);

impl Seeds {
    fn add(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() && bytes.len() <= 4096 {
            self.0.insert(bytes.to_vec());
        }
    }

    fn write(&self, dir: &Path, prefix: &str) -> Result<usize> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (i, s) in self.0.iter().enumerate() {
            let path = dir.join(format!("t-{prefix}-{i:03}"));
            std::fs::write(&path, s).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(self.0.len())
    }
}

/// A transcript's exchanges as (command, response) byte pairs; commands with wildcards are
/// left out.
fn pairs(exchanges: &[Exchange]) -> Vec<(Vec<u8>, Vec<u8>)> {
    exchanges
        .iter()
        .filter_map(|e| {
            let command: Option<Vec<u8>> = e
                .command
                .iter()
                .map(|p| match p {
                    Pattern::Byte(b) => Some(*b),
                    Pattern::Any => None,
                })
                .collect();
            match (&e.answer, command) {
                (Answer::Bytes(r), Some(c)) if r.len() >= 2 => Some((c, r.clone())),
                _ => None,
            }
        })
        .collect()
}

fn value(data: &[u8], tag: u32) -> Option<Vec<u8>> {
    TlvIter::new(data)
        .find_deep(Tag::new(tag))
        .ok()
        .flatten()
        .map(|t| t.value.to_vec())
}

/// `pboc_log`'s layout: format length, records claimed, ATC, format, records.
fn log_seed(format: &[u8], records: &[Vec<u8>], atc: [u8; 2]) -> Option<Vec<u8>> {
    let mut out = vec![u8::try_from(format.len()).ok()?, 10, atc[0], atc[1]];
    out.extend_from_slice(format);
    records.iter().for_each(|r| out.extend_from_slice(r));
    Some(out)
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("fuzz/seeds"), PathBuf::from);
    let mut tlv = Seeds::default();
    let mut records = Seeds::default();
    let mut logs = Seeds::default();
    let mut rsa = Seeds::default();
    let mut ssse_seeds = Seeds::default();

    let mut files = Vec::new();
    for dir in [
        "crates/card-core/tests/transcripts",
        "crates/firmware-tests/tests/transcripts",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).with_context(|| dir.to_string())? {
            files.push(entry?.path());
        }
    }
    files.sort();
    let mut rsa_fields: Vec<Vec<u8>> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let exchanges =
            transcript::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
        let pairs = pairs(&exchanges);
        let mut format = None;
        let mut load_format = None;
        let mut log = Vec::new();
        let mut load_log = Vec::new();
        let mut atc = [0, 0];
        for (c, r) in &pairs {
            let (data, sw) = r.split_at(r.len() - 2);
            if sw != [0x90, 0x00] {
                continue;
            }
            tlv.add(data);
            match c.as_slice() {
                [_, 0xa4, ..] | [0x80, 0xa8, ..] | [0x80, 0xae, ..] => records.add(data),
                [0x00, 0xb2, n, p2, ..] if p2 & 7 == 4 => match p2 >> 3 {
                    11 if *n > 0 => log.push(data.to_vec()),
                    12 if *n > 0 => load_log.push(data.to_vec()),
                    12 => {}
                    _ => {
                        records.add(data);
                        if file.to_string_lossy().contains("rsa") {
                            rsa_fields.push(data.to_vec());
                        }
                    }
                },
                [0x80, 0xca, 0x9f, 0x4f, ..] => format = value(data, 0x9f4f),
                [0x80, 0xca, 0xdf, 0x4f, ..] => load_format = value(data, 0xdf4f),
                [0x80, 0xca, 0x9f, 0x36, ..] => {
                    if let Some([a, b]) = value(data, 0x9f36).as_deref() {
                        atc = [*a, *b];
                    }
                }
                _ => {}
            }
        }
        if let Some(f) = format
            && let Some(seed) = log_seed(&f, &log, atc)
        {
            logs.add(&seed);
        }
        if let Some(f) = load_format
            && let Some(seed) = log_seed(&f, &load_log, atc)
        {
            logs.add(&seed);
        }
    }

    // The RSA card's certificates, recovered with its CA key: MSG1 of each.
    let rsa_profile = Profile::embedded("wangwu-rsa").context("fixture wangwu-rsa")?;
    if let Some(TerminalCaKey::Rsa(ca)) = rsa_profile.pboc.as_ref().and_then(|p| p.ca_key().ok()) {
        let all: Vec<u8> = rsa_fields.concat();
        let issuer_cert = value(&all, 0x90);
        let remainder = value(&all, 0x92).unwrap_or_default();
        let exponent = value(&all, 0x9f32).unwrap_or_default();
        if let Some(cert) = issuer_cert
            && let Ok(x) = ca.key.recover(&cert)
            && x.len() > 36
        {
            // The harness signs with a 1024-bit key: MSG1 of a certificate that size only.
            if x.len() == 128 {
                let mut seed = vec![0x00, u8::try_from(remainder.len()).unwrap_or(0)];
                seed.extend_from_slice(&x[1..x.len() - 21]);
                seed.extend_from_slice(&remainder);
                rsa.add(&seed);
            }
            // The issuer key from the certificate (header of 15 bytes, hash and trailer of
            // 21), to recover the ICC certificate's fields.
            let mut modulus = x[15..x.len() - 21].to_vec();
            modulus.truncate(usize::from(x[13]));
            modulus.extend_from_slice(&remainder);
            if let (Ok(issuer), Some(icc)) =
                (RsaPublicKey::new(&modulus, &exponent), value(&all, 0x9f46))
                && let Ok(y) = issuer.recover(&icc)
                && y.len() == 128
            {
                let icc_rem = value(&all, 0x9f48).unwrap_or_default();
                let mut seed = vec![0x00, u8::try_from(icc_rem.len()).unwrap_or(0)];
                seed.extend_from_slice(&y[1..y.len() - 21]);
                seed.extend_from_slice(&icc_rem);
                rsa.add(&seed);
            }
        }
    }

    // EF05 and EF06 of every fixture, as read by card-core.
    for name in Profile::embedded_names() {
        let image = Profile::embedded(name)
            .context("fixture")?
            .build()
            .with_context(|| format!("fixture {name}"))?;
        let mut s = CardSession::new(RecordingChannel::new(SoftCard::in_memory(image)));
        if ssse::read_identity(&mut s, ReadStrategy::AllRecords).is_err() {
            continue;
        }
        let exchanges = transcript::parse(s.channel().transcript())?;
        let mut ef05 = Vec::new();
        let mut ef06 = Vec::new();
        for (c, r) in pairs(&exchanges) {
            let data = &r[..r.len() - 2];
            match c.as_slice() {
                [0x00, 0xb2, _, p2, ..] if p2 >> 3 == ssse::SFI_EF05 => ef05 = data.to_vec(),
                [0x00, 0xb2, _, p2, ..] if p2 >> 3 == ssse::SFI_EF06 => ef06 = data.to_vec(),
                _ => {}
            }
        }
        if let Ok(cut) = u8::try_from(ef05.len()) {
            let mut seed = vec![cut];
            seed.extend(ef05);
            seed.extend(ef06);
            ssse_seeds.add(&seed);
        }
    }

    for (seeds, target) in [
        (&tlv, "tlv"),
        (&records, "pboc_records"),
        (&logs, "pboc_log"),
        (&rsa, "rsa_recovery"),
        (&ssse_seeds, "ssse_records"),
    ] {
        let n = seeds.write(&out.join(target), "transcript")?;
        println!("{target}: {n} seeds");
    }
    Ok(())
}
