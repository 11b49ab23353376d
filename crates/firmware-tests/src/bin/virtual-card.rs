//! `virtual-card`: software social-security cards in a pcscd vpcd reader slot.
//!
//! Holds several cards (the embedded fixtures, and any profile files given) and inserts or
//! removes them on command, read line by line from standard input:
//!
//! ```text
//! list                 the cards and which one is inserted
//! insert NAME          put card NAME into the reader (removing any other)
//! remove               take the card out
//! pull-after N         pull the card out in the middle of the N-th APDU from now
//! status               inserted card, APDUs served, PIN tries left
//! quit                 remove the card and exit (also on end of input)
//! ```
//!
//! Each command is answered by one line starting with `ok` or `error`. With `--state-dir`
//! each card's memory persists in `<dir>/<name>.json` across runs.
//!
//! With `--hostile MODE` every card inserted misbehaves as `MODE` says (`mute`,
//! `endless-61xx`, `junk-records`, ...: `firmware_tests::hostile::HostileMode`), on a fresh
//! in-memory copy of its profile; docs/reliability.md shows what the terminal tools make of it.
//!
//! With `--issued` every card inserted is a fresh in-memory card issued as
//! `firmware_tests::testcards::issue` does (PKI certificates from an in-memory hsm-sim, three
//! purchases in the log); `--broken DEFECT` (`bad-cert`, `pin-blocked`, `bad-log`, `bad-icc-key`) issues it
//! with that defect. `--trust-out FILE` writes the inserted card's trust store for
//! `cardctl check --trust FILE` (docs/conformance.md).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::Parser;
use firmware_tests::hostile::{HostileCard, HostileMode};
use firmware_tests::storage::{FileStorage, MemoryStorage, Storage};
use firmware_tests::testcards::{self, Defect};
use firmware_tests::vpcd::lock;
use firmware_tests::{Profile, SharedCard, SoftCard, VirtualSlot};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Software social-security cards in a pcscd vpcd reader slot"
)]
struct Args {
    /// vpcd TCP port of the reader slot (pcscd listens; 35963 is vpcd's first slot).
    #[arg(long, default_value_t = 35963)]
    port: u16,
    /// Extra card: NAME=PROFILE.toml (repeatable). The embedded fixtures are always present.
    #[arg(long = "card", value_name = "NAME=FILE")]
    cards: Vec<String>,
    /// Keep each card's memory in DIR/NAME.json across runs.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Insert this card at start.
    #[arg(long, value_name = "NAME")]
    insert: Option<String>,
    /// Every card inserted misbehaves in this way (a fresh in-memory copy of its profile):
    /// mute, no-status, empty, wrong-le-loop, endless-61xx, junk-records, extended-junk,
    /// truncated, malformed-fci, wrong-success-sw, auth-garbage, absurd-afl, log-255.
    #[arg(long, value_name = "MODE")]
    hostile: Option<HostileMode>,
    /// Every card inserted is issued: certificates from an in-memory hsm-sim and three
    /// purchases in its log (a fresh in-memory card at each insert; embedded fixtures only).
    #[arg(long, conflicts_with = "hostile")]
    issued: bool,
    /// Like --issued, with a defect: bad-cert, pin-blocked, bad-log, bad-icc-key.
    #[arg(long, value_name = "DEFECT", conflicts_with = "hostile")]
    broken: Option<Defect>,
    /// With --issued or --broken: write the inserted card's trust store to FILE.
    #[arg(long, value_name = "FILE")]
    trust_out: Option<PathBuf>,
}

/// Put card `name` into the slot: as it is kept, as a hostile card, or freshly issued (with a
/// defect), as `args` say.
fn insert_card(
    slot: &mut VirtualSlot,
    name: &str,
    cards: &BTreeMap<String, SharedCard>,
    profiles: &BTreeMap<String, Profile>,
    args: &Args,
) -> Result<()> {
    if args.issued || args.broken.is_some() {
        let card = match args.broken {
            Some(defect) => testcards::broken(name, defect),
            None => testcards::issue(name),
        }
        .with_context(|| format!("issuing card {name}"))?;
        if let Some(path) = &args.trust_out {
            std::fs::write(path, &card.trust_text)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        slot.insert(card.shared())?;
        return Ok(());
    }
    match args.hostile {
        None => {
            let card = cards
                .get(name)
                .with_context(|| format!("no card named {name}"))?;
            slot.insert(Arc::clone(card))?;
        }
        Some(mode) => {
            let profile = profiles
                .get(name)
                .with_context(|| format!("no card named {name}"))?;
            let image = profile
                .build()
                .with_context(|| format!("profile of card {name}"))?;
            let card = HostileCard::new(SoftCard::in_memory(image), mode);
            slot.insert_any(Arc::new(Mutex::new(card)))?;
        }
    }
    Ok(())
}

fn open_card(name: &str, profile: &Profile, state_dir: Option<&PathBuf>) -> Result<SharedCard> {
    let image = profile
        .build()
        .with_context(|| format!("profile of card {name}"))?;
    let storage: Box<dyn Storage> = match state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Box::new(FileStorage::new(dir.join(format!("{name}.json"))))
        }
        None => Box::new(MemoryStorage::new()),
    };
    let card = SoftCard::open(image, storage).with_context(|| format!("opening card {name}"))?;
    Ok(Arc::new(Mutex::new(card)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut profiles: BTreeMap<String, Profile> = Profile::embedded_names()
        .filter_map(|n| Some((n.to_string(), Profile::embedded(n)?)))
        .collect();
    for spec in &args.cards {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--card takes NAME=FILE, got {spec:?}");
        };
        let profile = Profile::load(&PathBuf::from(path))?;
        profiles.insert(name.to_string(), profile);
    }
    let mut cards: BTreeMap<String, SharedCard> = BTreeMap::new();
    for (name, profile) in &profiles {
        cards.insert(
            name.clone(),
            open_card(name, profile, args.state_dir.as_ref())?,
        );
    }
    let mut slot = VirtualSlot::new(args.port);
    let mut inserted: Option<String> = None;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if let Some(name) = &args.insert {
        insert_card(&mut slot, name, &cards, &profiles, &args)?;
        inserted = Some(name.clone());
    }
    writeln!(
        out,
        "ready port={} cards={}",
        args.port,
        cards.keys().cloned().collect::<Vec<_>>().join(",")
    )?;
    out.flush()?;

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (None, _) => continue,
            (Some("list"), None) => {
                let list: Vec<String> = cards
                    .iter()
                    .map(|(n, c)| {
                        let mark = if inserted.as_deref() == Some(n.as_str()) {
                            "*"
                        } else {
                            ""
                        };
                        format!("{mark}{n}: {}", lock(c).image().label)
                    })
                    .collect();
                format!("ok {}", list.join("; "))
            }
            (Some("insert"), Some(name)) => {
                match insert_card(&mut slot, name, &cards, &profiles, &args) {
                    Ok(()) => {
                        inserted = Some(name.to_string());
                        format!("ok inserted {name}")
                    }
                    Err(e) => format!("error {e:#}"),
                }
            }
            (Some("remove"), None) => {
                slot.remove();
                match inserted.take() {
                    Some(name) => format!("ok removed {name}"),
                    None => "ok no card was inserted".to_string(),
                }
            }
            (Some("pull-after"), Some(n)) => match n.parse::<u64>() {
                Ok(n) if n > 0 => {
                    slot.pull_after(n);
                    format!("ok card will be pulled during APDU {n}")
                }
                _ => format!("error pull-after takes a positive number, got {n}"),
            },
            (Some("status"), None) => match (&inserted, slot.card()) {
                (Some(name), Some(card)) if slot.is_inserted() => {
                    let c = lock(&card);
                    format!(
                        "ok inserted={name} apdus={} pin_tries_left={}",
                        slot.apdus(),
                        c.image().pin.tries_left
                    )
                }
                (Some(name), None) if slot.is_inserted() => format!(
                    "ok inserted={name} hostile={} apdus={}",
                    args.hostile.map_or("none", HostileMode::name),
                    slot.apdus()
                ),
                _ => format!("ok inserted=none apdus={}", slot.apdus()),
            },
            (Some("quit"), None) => break,
            _ => format!(
                "error unknown command {line:?} (list, insert NAME, remove, pull-after N, status, quit)"
            ),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    slot.remove();
    Ok(())
}
