//! The demo world the kiosk starts with when given nothing else: fictional cards personalised
//! by a throw-away in-memory hsm-sim, the trust store for their CA, and a ledger seeded with
//! their insurance records and one reported lost.
//!
//! With a local backend ([`backend`], `kiosk --with-backend`) the same cards are personalised
//! through a hsm-sim process instead, payment application included
//! ([`DemoWorld::build_with_hsm`]): their card keys derive from issuer master keys generated
//! inside that HSM, which the central server then uses to verify their cryptograms. The ledger
//! is then not seeded here: the records and the hot list come from the server.

pub mod backend;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use backend_sync::entry::TerminalId;
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::Ledger;
use backend_sync::wire::{
    CardholderPage, CardholderRecord, HotListAction, HotListChange, HotListDelta,
};
use card_core::CardSession;
use card_core::crypto::rsa::YearMonth;
use card_core::crypto::sm2_cert::TrustStore;
use card_core::pboc::oda::CaStore;
use card_core::ssse::{self, ReadStrategy};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::pboc::{Algorithm, CA_INDEX_SM2};
use firmware_tests::personalize::{self, CardInput, Issuer, PbocCardInput, PbocMasterKeys};
use firmware_tests::storage::FileStorage;
use firmware_tests::{Profile, SharedCard, SoftCard};
use hsm_sim::client::{Call, HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

/// A demo card.
#[derive(Clone)]
pub struct DemoCard {
    /// Fixture name.
    pub name: &'static str,
    /// Label on the demo panel (Chinese).
    pub label_zh: &'static str,
    /// Label on the demo panel (English).
    pub label_en: &'static str,
    /// The card.
    pub card: SharedCard,
    /// Its PAN (fictional).
    pub pan: String,
}

impl std::fmt::Debug for DemoCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCard")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Everything the demo needs.
#[derive(Debug)]
pub struct DemoWorld {
    /// The cards, in the order the demo panel shows them.
    pub cards: Vec<DemoCard>,
    /// CA keys of the social-security application's card authentication.
    pub trust: TrustStore,
    /// CA keys of the payment application's offline data authentication.
    pub pboc_ca: CaStore,
    /// The ledger file.
    pub ledger_path: PathBuf,
    /// The ledger's field key (hex); in a real kiosk it lives outside the database.
    field_key_hex: String,
}

/// The demo terminal's id.
pub const TERMINAL: &str = "KIOSK-DEMO-0001";
const FIELD_KEY: [u8; 16] = *b"sscard-demo-key!";
const ZMK: [u8; 16] = [0x5a; 16];
/// The HSM label of the personalisation device's transport key (ZMK) in the demo's HSM.
pub const ZMK_LABEL: &str = "ZMKPERSO";
/// HSM labels of the demo issuer's PBOC master keys MK-AC, MK-SMI, MK-SMC (SM4), when the
/// payment applications are personalised through the HSM ([`DemoWorld::build_with_hsm`]).
pub const PBOC_MASTER_LABELS: [&str; 3] = ["PBOCMKAC", "PBOCMKSI", "PBOCMKSC"];
/// Leftmost PAN digits of the demo's PBOC issuer (the fixtures' payment PANs start so).
const PBOC_BIN: &str = "623058";

/// Cards of the demo: fixture, labels, whether its PAN is on the hot list.
const CARDS: [(&str, &str, &str, bool); 5] = [
    (
        "zhangsan",
        "张三（正常卡，PIN 123456）",
        "Zhang San (valid, PIN 123456)",
        false,
    ),
    (
        "lisi",
        "李思（正常卡，PIN 654321）",
        "Li Si (valid, PIN 654321)",
        false,
    ),
    (
        "wangfang-t0",
        "王芳（已挂失）",
        "Wang Fang (reported lost)",
        true,
    ),
    ("expired", "赵敏（已过期）", "Zhao Min (expired)", false),
    (
        "blocked",
        "欧阳明月（密码已锁）",
        "Ouyang Mingyue (PIN blocked)",
        false,
    ),
];

fn digits(n: usize) -> String {
    format!("621700001000{:07}", n + 1)
}

impl DemoWorld {
    /// Build the demo in `dir` (the ledger file goes there).
    pub fn build(dir: &Path) -> Result<Self> {
        Self::build_keeping_cards(dir, None)
    }

    /// [`DemoWorld::build`], and with `cards` the demo cards keep their memory in that
    /// directory across runs, as real cards do (`kiosk --demo-cards DIR`): each card in
    /// `NAME.json` (written atomically at each of the card's commits, see
    /// `firmware_tests::storage::FileStorage`), the demo issuer's HSM key store in
    /// `issuer-hsm.db` so that the trust store is the same at the next start. A debit a
    /// killed kiosk left on a card is still there when it starts again.
    ///
    /// The card files hold what a card holds (PIN, keys): the directory is the cards', not
    /// the terminal's, and belongs outside the terminal's state directory.
    pub fn build_keeping_cards(dir: &Path, cards: Option<&Path>) -> Result<Self> {
        let lmk = Lmk::new(&[0x42; 16]);
        let hsm = match cards {
            Some(c) => {
                std::fs::create_dir_all(c)
                    .with_context(|| format!("card directory {}", c.display()))?;
                Hsm::open(&c.join("issuer-hsm.db"), lmk, 4)?
            }
            None => Hsm::in_memory(lmk, 4)?,
        };
        match hsm.form_key_from_components(ZMK_LABEL, KeyType::Zmk, Scheme::Sm4, &[&ZMK]) {
            Ok(_) | Err(hsm_sim::hsm::HsmError::Refused(hsm_sim::ErrorCode::KeyExists)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut client = HsmClient::new(InProcess::new(Arc::new(hsm)));
        let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(ZMK.to_vec()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut world = Self::personalise(dir, &mut client, &zmk, false)?;
        if let Some(c) = cards {
            world.keep_cards_in(c)?;
        }
        world.seed_ledger()?;
        Ok(world)
    }

    /// Keep each card's memory in `dir/NAME.json` from now on: a card already stored there is
    /// taken as it is (the one just personalised is dropped), otherwise the new one is stored.
    /// The stored cards must come from the same issuer keys (the same HSM key store).
    pub fn keep_cards_in(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("card directory {}", dir.display()))?;
        for card in &mut self.cards {
            let image = firmware_tests::vpcd::lock(&card.card).image().clone();
            let storage = FileStorage::new(dir.join(format!("{}.json", card.name)));
            let kept = SoftCard::open(image, Box::new(storage))
                .with_context(|| format!("card {}", card.name))?;
            card.card = Arc::new(Mutex::new(kept));
        }
        Ok(())
    }

    /// Build the demo in `dir` against `hsm` (a hsm-sim process, say), whose ZMK
    /// [`ZMK_LABEL`] is the clear `zmk`: the social-security application's keys and
    /// certificates as [`DemoWorld::build`] makes them, and the payment applications
    /// personalised through the HSM too (`personalize::personalize_pboc`): the issuer master
    /// keys [`PBOC_MASTER_LABELS`] generated in it on first use, the card keys derived there by
    /// PAN and PSN, the PBOC CA and issuer keys and certificates from it. Keys already in the
    /// HSM under these labels are used again, so a persistent HSM gives the same cards each
    /// time. The ledger is not seeded: a backend fills it.
    pub fn build_with_hsm<C: Call>(
        dir: &Path,
        hsm: &mut HsmClient<C>,
        zmk: &BlockKey,
    ) -> Result<Self> {
        Self::personalise(dir, hsm, zmk, true)
    }

    fn personalise<C: Call>(
        dir: &Path,
        client: &mut HsmClient<C>,
        zmk: &BlockKey,
        pboc_through_hsm: bool,
    ) -> Result<Self> {
        let issuer = personalize::setup_issuer(
            client,
            "CAROOT01",
            0x01,
            "ISSUER01",
            "62170000",
            YearMonth {
                year: 2035,
                month: 12,
            },
        )?;
        let pboc_issuer: Option<(Issuer, PbocMasterKeys)> = if pboc_through_hsm {
            let issuer = personalize::setup_pboc_issuer(
                client,
                "PBOCCA01",
                CA_INDEX_SM2,
                "PBOCIS01",
                PBOC_BIN,
                YearMonth {
                    year: 2040,
                    month: 12,
                },
            )?;
            let master =
                personalize::setup_pboc_master_keys(client, Scheme::Sm4, PBOC_MASTER_LABELS)?;
            Some((issuer, master))
        } else {
            None
        };
        personalize::setup_maintenance_master(client, personalize::MAINTENANCE_LABEL)?;
        let mut trust = TrustStore::new();
        trust.insert(issuer.ca.clone());
        let mut cards = Vec::new();
        let mut pboc_ca = CaStore::new();
        if let Some((pboc, _)) = &pboc_issuer {
            pboc_ca.add_sm2(pboc.ca.clone());
        }
        for (i, (name, zh, en, _)) in CARDS.iter().enumerate() {
            let mut profile = Profile::embedded(name).context("fixture")?;
            // Through the HSM: the SM payment application is made below, not from the
            // profile's clear test keys.
            let section = match &profile.pboc {
                Some(p) if pboc_issuer.is_some() && p.algorithm == Algorithm::Sm => {
                    profile.pboc.take()
                }
                _ => None,
            };
            if let Some(section) = &profile.pboc {
                match section.ca_key()? {
                    TerminalCaKey::Sm2(k) => pboc_ca.add_sm2(k),
                    TerminalCaKey::Rsa(k) => pboc_ca.add_rsa(k),
                }
            }
            let mut image = profile.build()?;
            let identity = {
                let mut s = CardSession::new(SoftCard::in_memory(image.clone()));
                ssse::read_identity(&mut s, ReadStrategy::AllRecords)?
            };
            let statics = ssse::auth::static_data(&identity);
            let pan = digits(i);
            let label = format!("ICC{:05}", i + 1);
            let serial = [0, 0, u8::try_from(i + 1).unwrap_or(0)];
            personalize::personalize_pki(
                client,
                &mut image,
                &issuer,
                ZMK_LABEL,
                zmk,
                &CardInput {
                    label: &label,
                    pan: &pan,
                    static_data: &statics,
                    expiry: YearMonth {
                        year: 2034,
                        month: 12,
                    },
                    serial,
                },
            )?;
            // The maintenance key for writing cardholder records, from the HSM's master.
            personalize::personalize_maintenance(
                client,
                &mut image,
                personalize::MAINTENANCE_LABEL,
                ZMK_LABEL,
                zmk,
            )?;
            if let (Some(section), Some((pboc, master))) = (&section, &pboc_issuer) {
                personalize::personalize_pboc(
                    client,
                    &mut image,
                    pboc,
                    master,
                    ZMK_LABEL,
                    zmk,
                    &PbocCardInput {
                        section,
                        icc_label: &format!("PBC{:05}", i + 1),
                        card_pin: &profile.pin.value,
                        serial,
                    },
                )?;
            }
            cards.push(DemoCard {
                name,
                label_zh: zh,
                label_en: en,
                card: Arc::new(Mutex::new(SoftCard::in_memory(image))),
                pan,
            });
        }
        Ok(Self {
            cards,
            trust,
            pboc_ca,
            ledger_path: dir.join("kiosk-ledger.db"),
            field_key_hex: hex::encode_upper(FIELD_KEY),
        })
    }

    /// The ledger's field key as 32 hex digits (a secret: for the sync agent's key file, never
    /// for a log).
    pub fn field_key_hex(&self) -> &str {
        &self.field_key_hex
    }

    /// The social-security application PANs (those the hot list names) of the demo cards
    /// reported lost.
    pub fn lost_pans() -> Vec<String> {
        CARDS
            .iter()
            .enumerate()
            .filter(|(_, c)| c.3)
            .map(|(i, _)| digits(i))
            .collect()
    }

    /// The session settings of the demo: its trust stores and ledger, the kiosk's terminal
    /// parameters, `clock`, receipts into `receipts`.
    pub fn worker_config(
        &self,
        clock: crate::clock::Clock,
        receipts: Option<PathBuf>,
    ) -> crate::session::WorkerConfig {
        crate::session::WorkerConfig {
            trust: self.trust.clone(),
            ledger: Some(self.ledger_path.clone()),
            open_ledger: Some(self.ledger_opener()),
            clock,
            terminal: card_core::pboc::TerminalConfig::kiosk(),
            pboc_ca: self.pboc_ca.clone(),
            receipts,
        }
    }

    /// Open the demo ledger.
    pub fn open_ledger(
        path: &Path,
        key_hex: &str,
    ) -> Result<Ledger, backend_sync::ledger::LedgerError> {
        let terminal: TerminalId = TERMINAL.parse()?;
        let key = FieldKey::from_hex(key_hex)?;
        Ledger::open(path, &terminal, key)
    }

    /// A function the session worker can call to open the ledger.
    pub fn ledger_opener(
        &self,
    ) -> Box<dyn Fn() -> Result<Ledger, backend_sync::ledger::LedgerError> + Send> {
        let path = self.ledger_path.clone();
        let key = self.field_key_hex.clone();
        Box::new(move || Self::open_ledger(&path, &key))
    }

    /// The demo's cardholder records (insurance status, contribution months, medical
    /// account), fictional, with versions 1, 2, ... in order.
    pub fn cardholder_records() -> Result<Vec<CardholderRecord>> {
        let records = [
            (
                "110105198703153011",
                "张三",
                "A00000011",
                "110105",
                "active",
                156,
                325_680,
            ),
            (
                "310115199207082642",
                "李思",
                "B23456780",
                "310115",
                "active",
                98,
                1_204_500,
            ),
            (
                "440305196501221846",
                "王芳",
                "C11223346",
                "440305",
                "active",
                372,
                88_000,
            ),
            (
                "510107198002290627",
                "赵敏",
                "D98765435",
                "510107",
                "suspended",
                60,
                0,
            ),
        ];
        records
            .iter()
            .enumerate()
            .map(
                |(i, (ssn, name, card, region, status, months, balance))| -> Result<CardholderRecord> {
                    Ok(CardholderRecord {
                        ssn: (*ssn).to_string(),
                        name: (*name).to_string(),
                        card_no: (*card).to_string(),
                        region: region.parse().map_err(|_| anyhow::anyhow!("region"))?,
                        insurance_status: (*status).to_string(),
                        contribution_months: *months,
                        medical_balance_fen: *balance,
                        as_of: "20261127180000".parse().map_err(|_| anyhow::anyhow!("time"))?,
                        version: i as u64 + 1,
                    })
                },
            )
            .collect()
    }

    fn seed_ledger(&self) -> Result<()> {
        let mut ledger = Self::open_ledger(&self.ledger_path, &self.field_key_hex)?;
        let records = Self::cardholder_records()?;
        let page = CardholderPage {
            from_version: ledger.meta_u64("cardholders_version").unwrap_or(0),
            to_version: records.len() as u64,
            records,
            more: false,
        };
        if page.from_version == 0 {
            let _ = ledger.apply_cardholders(&page);
        }
        if ledger.hotlist_version()? == 0 {
            let changes = CARDS
                .iter()
                .enumerate()
                .filter(|(_, c)| c.3)
                .enumerate()
                .map(|(v, (i, _))| -> Result<HotListChange> {
                    Ok(HotListChange {
                        version: v as u64 + 1,
                        pan: digits(i).parse().map_err(|_| anyhow::anyhow!("pan"))?,
                        action: HotListAction::Add,
                        reason: "lost".into(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let delta = HotListDelta {
                from_version: 0,
                to_version: changes.len() as u64,
                changes,
            };
            ledger.apply_hotlist(&delta)?;
        }
        Ok(())
    }
}
