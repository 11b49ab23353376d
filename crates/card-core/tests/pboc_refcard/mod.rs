//! A tiny reference PBOC card for the kernel's tests: enough of a debit/credit application with
//! electronic cash, laid out as docs/pboc-profile.md says, to answer every command the kernel
//! sends with real cryptograms (card keys from `crypto::kdf`), certificates and signatures
//! (`crypto::sm2_cert`, `crypto::rsa`). It is test scaffolding, not the card applet (that is
//! firmware-tests); its choices where the profile is silent are the ones the report lists:
//!
//! - cryptograms are of version 01 (JR/T 0025.5 附录 E 表E.1), as the software card's and
//!   the server's: amount, other amount, country, TVR, currency, date, type and unpredictable
//!   number (the first 29 bytes of the CDOL1 data, or PDOL bytes 4-32 for qPBOC, JR/T 0025.12
//!   §7.3.3; the second GENERATE AC takes TVR and unpredictable number from CDOL2), then
//!   `AIP ‖ ATC ‖ CVR` — the bytes `TransactionRecord::cryptogram_input` gives;
//! - CVR byte 2 bits 6-5 carry the first cryptogram's type, bits 8-7 the second's (qPBOC reads
//!   it, JR/T 0025.12 §7.8.1);
//! - `9F74` is in a record of its own (SFI 3 record 3) that only the EC AFL names, so the ODA
//!   records are the same with and without EC;
//! - contact and qPBOC use the same AIP (so one ICC certificate covers both);
//! - the qPBOC AFL leaves out SFI 1 (track 2 comes in the GPO answer, JR/T 0025.12 表12).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use card_core::channel::{CardChannel, TransportError};
use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::os_rng;
use card_core::crypto::rsa::{
    self as rsa, CaPublicKey, ExpiryDate, IccCertificate as RsaIccCert,
    IssuerCertificate as RsaIssuerCert, RsaExponent, RsaPrivateKey, YearMonth,
};
use card_core::crypto::sm2::Sm2PrivateKey;
use card_core::crypto::sm2_cert::{self, CaKey, SignedDynamicData, StaticData};
use card_core::crypto::sm3;
use card_core::crypto::sm4::Sm4MacRule;
use card_core::pboc::data::Amount;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::{CaStore, PinEntry, PinPad, PinPrompt};
use card_core::secret::Pin;
use card_core::tlv::{Tag, Tlv};

pub const AID: [u8; 8] = [0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01];
pub const RID: [u8; 5] = [0xa0, 0x00, 0x00, 0x03, 0x33];
pub const CA_INDEX_SM2: u8 = 0x80;
pub const CA_INDEX_RSA: u8 = 0x08;
pub const PDOL: &str = "9F66049F02069F03069F1A0295055F2A029A039C019F37049F7A01DF6901";
pub const CDOL1: &str = "9F02069F03069F1A0295055F2A029A039C019F37049F21039F4E14";
pub const CDOL2: &str = "8A0291 0A95059F3704";
pub const LOG_FORMAT: &str = "9A039F21039F02069F03069F1A025F2A029F4E149C019F3602";
pub const LOAD_LOG_FORMAT: &str = "9A039F21039F1A029F4E149F3602";

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

pub fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    Tlv::primitive(Tag::new(tag), value).to_bytes().unwrap()
}

pub fn tpl(tag: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    let value = parts.concat();
    let mut out = Tag::new(tag).bytes().as_slice().to_vec();
    card_core::tlv::write_length(&mut out, value.len()).unwrap();
    out.extend_from_slice(&value);
    out
}

/// The card's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// SM2/SM3/SM4.
    Sm,
    /// RSA/SHA-1/3DES.
    Rsa,
}

/// What to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    IssuerCertificate,
    IccCertificate,
    StaticSignature,
    DynamicSignature,
}

/// The fixed keys of the SM profile (deterministic, so the SM transcripts are reproducible).
pub fn sm_ca() -> Sm2PrivateKey {
    Sm2PrivateKey::from_bytes(&[0x11; 32]).unwrap()
}
fn sm_issuer() -> Sm2PrivateKey {
    Sm2PrivateKey::from_bytes(&[0x22; 32]).unwrap()
}
fn sm_icc() -> Sm2PrivateKey {
    Sm2PrivateKey::from_bytes(&[0x33; 32]).unwrap()
}

pub struct RsaKeys {
    pub ca: RsaPrivateKey,
    pub issuer: RsaPrivateKey,
    pub icc: RsaPrivateKey,
}

/// RSA keys, made once per test binary.
pub fn rsa_keys() -> &'static RsaKeys {
    static KEYS: OnceLock<RsaKeys> = OnceLock::new();
    KEYS.get_or_init(|| RsaKeys {
        ca: RsaPrivateKey::generate(&mut os_rng(), 1152, RsaExponent::Three).unwrap(),
        issuer: RsaPrivateKey::generate(&mut os_rng(), 1024, RsaExponent::Three).unwrap(),
        icc: RsaPrivateKey::generate(&mut os_rng(), 1024, RsaExponent::F4).unwrap(),
    })
}

/// The issuer master keys of an algorithm.
pub fn imk(algo: Algo) -> (CardKey, CardKey) {
    let alg = match algo {
        Algo::Sm => CardAlgorithm::Sm4,
        Algo::Rsa => CardAlgorithm::Tdes,
    };
    (
        CardKey::new(alg, *b"0123456789ABCDEF"),
        CardKey::new(alg, *b"FEDCBA9876543210"),
    )
}

/// The terminal's CA store for a profile.
pub fn ca_store(algo: Algo) -> CaStore {
    let mut ca = CaStore::new();
    match algo {
        Algo::Sm => ca.add_sm2(CaKey {
            rid: RID,
            index: CA_INDEX_SM2,
            public_key: *sm_ca().public_key(),
            expiry: ExpiryDate::new(YearMonth {
                year: 2040,
                month: 12,
            })
            .unwrap(),
        }),
        Algo::Rsa => ca.add_rsa(CaPublicKey {
            rid: RID,
            index: CA_INDEX_RSA,
            key: rsa_keys().ca.public_key().clone(),
        }),
    }
    ca
}

/// Personalisation: what the card holds before its first transaction.
#[derive(Debug, Clone)]
pub struct Profile {
    pub algo: Algo,
    pub pan: &'static str,
    pub psn: u8,
    pub expiry: [u8; 3],
    pub effective: [u8; 3],
    pub aip: [u8; 2],
    pub cvm_list: Vec<u8>,
    pub iac_default: [u8; 5],
    pub iac_denial: [u8; 5],
    pub iac_online: [u8; 5],
    pub pin: &'static str,
    pub pin_tries: u8,
    pub pin_counter_readable: bool,
    pub ec_balance: u64,
    pub ec_balance_limit: u64,
    pub ec_single_limit: u64,
    pub ec_reset_threshold: u64,
    pub atc: u16,
    pub with_pse: bool,
    pub tamper: Tamper,
    /// Tags removed from the records (missing mandatory data).
    pub omit: Vec<u32>,
    /// SFI 2 record 1 is not TLV.
    pub garbage_record: bool,
    /// A qPBOC GPO with `DF69 = 00` is refused with 6985 (SM-only card).
    pub sm_only: bool,
    /// Contact GPO is refused with 6985.
    pub gpo_refuses: bool,
    pub ctq: [u8; 2],
    /// Transaction log records preloaded (newest first): amount, date, time, ATC.
    pub log: Vec<(u64, [u8; 3], [u8; 3], u16)>,
}

impl Profile {
    pub fn sm() -> Self {
        Self {
            algo: Algo::Sm,
            pan: "6228480402564890018",
            psn: 0x01,
            expiry: [0x30, 0x12, 0x31],
            effective: [0x24, 0x01, 0x01],
            aip: [0x7c, 0x00],
            cvm_list: h("00000000 00000000 1F00"),
            iac_default: [0xdc, 0x40, 0xa0, 0xa8, 0x00],
            iac_denial: [0x00, 0x10, 0x00, 0x00, 0x00],
            iac_online: [0xdc, 0x40, 0x04, 0xf8, 0x00],
            pin: "123456",
            pin_tries: 3,
            pin_counter_readable: true,
            ec_balance: 50_000,
            ec_balance_limit: 100_000,
            ec_single_limit: 100_000,
            ec_reset_threshold: 1_000,
            atc: 0x0010,
            with_pse: true,
            tamper: Tamper::None,
            omit: Vec::new(),
            garbage_record: false,
            sm_only: true,
            gpo_refuses: false,
            ctq: [0x00, 0x00],
            log: vec![(200, [0x26, 0x11, 0x20], [0x10, 0x00, 0x00], 0x0010)],
        }
    }

    pub fn rsa() -> Self {
        Self {
            algo: Algo::Rsa,
            sm_only: false,
            ..Self::sm()
        }
    }
}

/// Transaction-scoped state.
#[derive(Debug, Clone, Default)]
struct Txn {
    selected: Option<&'static str>,
    pse_selected: bool,
    gpo: Option<Vec<u8>>,
    qpboc: bool,
    ec: bool,
    cdol1: Vec<u8>,
    gac_count: u8,
    first_type: u8,
    arqc: Option<[u8; 8]>,
    pin_verified: bool,
    card_un: [u8; 4],
}

/// The reference card.
pub struct RefCard {
    pub profile: Profile,
    pub atc: u16,
    pub balance: u64,
    pub pin_tries_left: u8,
    pub log: Vec<Vec<u8>>,
    pub load_log: Vec<Vec<u8>>,
    pub last_online_atc: u16,
    records: Records,
    txn: Txn,
    /// Commands answered, for "the card saw this" checks.
    pub seen: Vec<Vec<u8>>,
    /// Remove the card at the n-th command (1-based), before the card processes it.
    pub pull_before: Option<usize>,
    /// Remove the card at the n-th command after the card processed and committed it: the
    /// answer is lost.
    pub pull_after: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct Records {
    sfi1: Vec<u8>,
    sfi2: [Vec<u8>; 2],
    sfi3: [Vec<u8>; 2],
    ec: Vec<u8>,
    static_data: Vec<u8>,
}

fn card_keys(p: &Profile) -> (CardKey, CardKey) {
    let (ac, smi) = imk(p.algo);
    (
        kdf::derive_card_key(&ac, p.pan, Some(&format!("{:02X}", p.psn))).unwrap(),
        kdf::derive_card_key(&smi, p.pan, Some(&format!("{:02X}", p.psn))).unwrap(),
    )
}

fn pan_bcd(pan: &str) -> Vec<u8> {
    let mut s = pan.to_string();
    if s.len() % 2 == 1 {
        s.push('F');
    }
    h(&s)
}

fn flip(mut v: Vec<u8>, at: usize) -> Vec<u8> {
    let i = at.min(v.len() - 1);
    v[i] ^= 0x01;
    v
}

impl RefCard {
    pub fn new(profile: Profile) -> Self {
        let mut card = Self {
            atc: profile.atc,
            balance: profile.ec_balance,
            pin_tries_left: profile.pin_tries,
            log: Vec::new(),
            load_log: Vec::new(),
            last_online_atc: 0x0005,
            records: Records::default(),
            txn: Txn::default(),
            seen: Vec::new(),
            pull_before: None,
            pull_after: None,
            profile,
        };
        for &(amount, date, time, atc) in &card.profile.log.clone() {
            let mut cdol1 = vec![0u8; 52];
            cdol1[0..6].copy_from_slice(&Amount::new(amount).unwrap().to_bcd());
            cdol1[12..14].copy_from_slice(&[0x01, 0x56]);
            cdol1[19..21].copy_from_slice(&[0x01, 0x56]);
            cdol1[21..24].copy_from_slice(&date);
            cdol1[29..32].copy_from_slice(&time);
            cdol1[32..52].copy_from_slice(&merchant(b"KIOSK 01"));
            card.log.push(log_record(&cdol1, atc));
        }
        card.personalise();
        card
    }

    fn personalise(&mut self) {
        let p = self.profile.clone();
        let pan = pan_bcd(p.pan);
        let mut t2 = format!("{}D{:02X}{:02X}2010000000", p.pan, p.expiry[0], p.expiry[1]);
        if t2.len() % 2 == 1 {
            t2.push('F');
        }
        let track2 = h(&t2);
        let omit = |tag: u32, v: Vec<u8>| if p.omit.contains(&tag) { Vec::new() } else { v };
        self.records.sfi1 = tpl(
            0x70,
            &[
                omit(0x57, tlv(0x57, &track2)),
                tlv(0x5f20, b"ZHANG/SAN"),
                tlv(0x9f1f, b"000000"),
            ],
        );
        let rec21 = [
            omit(0x5a, tlv(0x5a, &pan)),
            omit(0x5f24, tlv(0x5f24, &p.expiry)),
            tlv(0x5f25, &p.effective),
            tlv(0x5f34, &[p.psn]),
            tlv(0x9f07, &[0xff, 0x00]),
            tlv(0x5f28, &[0x01, 0x56]),
            tlv(0x8e, &p.cvm_list),
            tlv(0x9f0d, &p.iac_default),
            tlv(0x9f0e, &p.iac_denial),
            tlv(0x9f0f, &p.iac_online),
        ];
        let rec22 = [
            omit(0x8c, tlv(0x8c, &h(CDOL1))),
            tlv(0x8d, &h(CDOL2)),
            tlv(0x9f08, &[0x00, 0x30]),
            tlv(0x9f4a, &[0x82]),
        ];
        let rec21 = rec21.concat();
        let rec22 = rec22.concat();
        self.records.static_data = [rec21.clone(), rec22.clone()].concat();
        self.records.sfi2 = [tpl(0x70, &[rec21]), tpl(0x70, &[rec22])];
        if p.garbage_record {
            self.records.sfi2[0] = h("7005 5A08 622848");
        }
        let static_data = StaticData {
            records: &self.records.static_data,
            sda_tag_list: Some(&[0x82]),
            aip: Some(p.aip),
        }
        .to_bytes()
        .unwrap();
        let expiry = ExpiryDate::new(YearMonth {
            year: 2030,
            month: 12,
        })
        .unwrap();
        let (issuer_part, icc_part) = match p.algo {
            Algo::Sm => {
                let issuer_cert = sm2_cert::IssuerCertificate::new(
                    [0x62, 0x28, 0x48, 0xff],
                    expiry,
                    [0x00, 0x00, 0x01],
                    sm_issuer().public_key(),
                )
                .issue(&sm_ca())
                .unwrap();
                let icc_cert = sm2_cert::IccCertificate::new(
                    &pan,
                    expiry,
                    [0x00, 0x00, 0x02],
                    sm_icc().public_key(),
                )
                .issue(&sm_issuer(), &static_data)
                .unwrap();
                let ssad = sm2_cert::SignedStaticData {
                    data_authentication_code: [0xda, 0xc1],
                }
                .issue(&sm_issuer(), &static_data)
                .unwrap();
                (
                    vec![
                        tlv(0x8f, &[CA_INDEX_SM2]),
                        tlv(0x90, &self.tamper(issuer_cert, Tamper::IssuerCertificate)),
                        tlv(0x93, &self.tamper(ssad, Tamper::StaticSignature)),
                    ],
                    vec![tlv(0x9f46, &self.tamper(icc_cert, Tamper::IccCertificate))],
                )
            }
            Algo::Rsa => {
                let keys = rsa_keys();
                let issuer = RsaIssuerCert {
                    issuer_id: [0x62, 0x28, 0x48, 0xff],
                    expiry,
                    serial: [0, 0, 1],
                    hash_algorithm: rsa::HASH_SHA1,
                    key_algorithm: rsa::ALGORITHM_RSA,
                    public_key: keys.issuer.public_key().clone(),
                }
                .issue(&keys.ca)
                .unwrap();
                let icc = RsaIccCert {
                    pan: RsaIccCert::pan_field(&pan),
                    expiry,
                    serial: [0, 0, 2],
                    hash_algorithm: rsa::HASH_SHA1,
                    key_algorithm: rsa::ALGORITHM_RSA,
                    public_key: keys.icc.public_key().clone(),
                }
                .issue(&keys.issuer, &static_data)
                .unwrap();
                // SDA signed data, JR/T 0025.7 表4.
                let n = keys.issuer.public_key().len();
                let mut sad = vec![0x03, 0x01, 0xda, 0xc1];
                sad.resize(n - 22, 0xbb);
                sad.extend_from_slice(&static_data);
                let ssad = rsa::sign_with_recovery(&keys.issuer, &sad).unwrap();
                let mut issuer_part = vec![
                    tlv(0x8f, &[CA_INDEX_RSA]),
                    tlv(
                        0x90,
                        &self.tamper(issuer.certificate, Tamper::IssuerCertificate),
                    ),
                    tlv(0x9f32, keys.issuer.public_key().exponent()),
                    tlv(0x93, &self.tamper(ssad, Tamper::StaticSignature)),
                ];
                if !issuer.remainder.is_empty() {
                    issuer_part.push(tlv(0x92, &issuer.remainder));
                }
                let mut icc_part = vec![
                    tlv(
                        0x9f46,
                        &self.tamper(icc.certificate, Tamper::IccCertificate),
                    ),
                    tlv(0x9f47, keys.icc.public_key().exponent()),
                ];
                if !icc.remainder.is_empty() {
                    icc_part.push(tlv(0x9f48, &icc.remainder));
                }
                (issuer_part, icc_part)
            }
        };
        self.records.sfi3 = [tpl(0x70, &issuer_part), icc_part.concat()];
        self.records.ec = tpl(0x70, &[tlv(0x9f74, b"ECC001")]);
    }

    fn tamper(&self, v: Vec<u8>, what: Tamper) -> Vec<u8> {
        if self.profile.tamper == what {
            flip(v, 20)
        } else {
            v
        }
    }

    /// The record SFI 3 record 2: the ICC certificate part, DDOL, and for fDDA 01 the card
    /// authentication related data of this transaction (JR/T 0025.12 附录 C `9F69`).
    fn sfi3_record2(&self) -> Vec<u8> {
        let mut parts = vec![self.records.sfi3[1].clone(), tlv(0x9f49, &h("9F3704"))];
        if self.txn.qpboc && self.fdda_v01() {
            parts.push(tlv(0x9f69, &self.card_auth_data()));
        }
        tpl(0x70, &parts)
    }

    fn fdda_v01(&self) -> bool {
        self.txn.gpo.as_ref().is_some_and(|g| g[3] & 0x80 != 0)
    }

    fn card_auth_data(&self) -> Vec<u8> {
        let mut v = vec![0x01];
        v.extend_from_slice(&self.txn.card_un);
        v.extend_from_slice(&self.profile.ctq);
        v.push(0x00);
        v
    }

    fn afl(&self) -> Vec<u8> {
        // qPBOC returns track 2 in the GPO answer (JR/T 0025.12 表12), so its AFL leaves out
        // SFI 1, whose record holds track 2 (a data element is returned once, §7.5).
        let mut afl = if self.txn.qpboc {
            h("10010202 18010200")
        } else {
            h("08010100 10010202 18010200")
        };
        if self.txn.ec {
            afl.extend_from_slice(&h("18030300"));
        }
        afl
    }

    fn session_keys(&self) -> (CardKey, CardKey) {
        let (ac, smi) = card_keys(&self.profile);
        (
            kdf::derive_session_key(&ac, self.atc),
            kdf::derive_session_key(&smi, self.atc),
        )
    }

    fn alg_id(&self) -> u8 {
        match self.profile.algo {
            Algo::Sm => 0x04,
            Algo::Rsa => 0x01,
        }
    }

    fn iad(&self, cvr2: u8, with_balance: bool) -> Vec<u8> {
        let mut iad = vec![0x07, 0x01, 0x01, 0x03, cvr2, 0x00, 0x00, self.alg_id()];
        if with_balance {
            let bal = Amount::new(self.balance).unwrap().to_bcd();
            let mut mac_in = self.atc.to_be_bytes().to_vec();
            mac_in.extend_from_slice(&bal[1..]);
            mac_in.push(0x00);
            let mac =
                kdf::secure_messaging_mac(&self.session_keys().1, &mac_in, Sm4MacRule::default());
            iad.extend_from_slice(&[0x0a, 0x01]);
            iad.extend_from_slice(&bal[1..]);
            iad.extend_from_slice(&mac);
        }
        iad
    }

    /// The cryptogram over the 29 bytes of 表E.1 terminal data, AIP, ATC and CVR.
    fn cryptogram(&self, terminal: &[u8], cvr2: u8) -> [u8; 8] {
        assert_eq!(terminal.len(), 29, "表E.1 terminal data");
        let mut input = terminal.to_vec();
        input.extend_from_slice(&self.profile.aip);
        input.extend_from_slice(&self.atc.to_be_bytes());
        input.extend_from_slice(&[0x03, cvr2, 0x00, 0x00]);
        kdf::application_cryptogram(&self.session_keys().0, &input, Sm4MacRule::default())
    }

    /// Sign dynamic data (DDA, fDDA, CDA) with the ICC key: `icc_dynamic_data` and the terminal
    /// data after it.
    fn sign_dynamic(&self, icc_dynamic_data: Vec<u8>, terminal: &[u8]) -> Vec<u8> {
        let sdad = match self.profile.algo {
            Algo::Sm => SignedDynamicData { icc_dynamic_data }
                .issue(&sm_icc(), terminal)
                .unwrap(),
            Algo::Rsa => {
                let key = &rsa_keys().icc;
                let n = key.public_key().len();
                let mut m = vec![0x05, 0x01, icc_dynamic_data.len() as u8];
                m.extend_from_slice(&icc_dynamic_data);
                m.resize(n - 22, 0xbb);
                m.extend_from_slice(terminal);
                rsa::sign_with_recovery(key, &m).unwrap()
            }
        };
        self.tamper(sdad, Tamper::DynamicSignature)
    }

    fn hash(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self.profile.algo {
            Algo::Sm => sm3::digest_parts(parts).to_vec(),
            Algo::Rsa => {
                use sha1::Digest as _;
                let mut h = sha1::Sha1::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().to_vec()
            }
        }
    }

    fn answer(&mut self, apdu: &[u8]) -> Vec<u8> {
        let ok = |mut v: Vec<u8>| {
            v.extend_from_slice(&[0x90, 0x00]);
            v
        };
        let sw = |sw: u16| sw.to_be_bytes().to_vec();
        let (cla, ins, p1, p2) = (apdu[0], apdu[1], apdu[2], apdu[3]);
        let data: &[u8] = if apdu.len() > 5 {
            &apdu[5..5 + apdu[4] as usize]
        } else {
            &[]
        };
        match (cla, ins) {
            (0x00, 0xa4) => self.select(data, p2),
            (0x00, 0xb2) => self.read_record(p1, p2 >> 3),
            (0x80, 0xca) => self.get_data(u16::from_be_bytes([p1, p2])),
            (0x80, 0xa8) => self.gpo(data),
            (0x00, 0x20) => {
                if self.pin_tries_left == 0 {
                    return sw(0x6983);
                }
                let expected =
                    card_core::pboc::cvm::plaintext_pin_block(&Pin::new(self.profile.pin).unwrap());
                if data == expected.as_slice() {
                    self.pin_tries_left = self.profile.pin_tries;
                    self.txn.pin_verified = true;
                    sw(0x9000)
                } else {
                    self.pin_tries_left -= 1;
                    sw(0x63c0 | u16::from(self.pin_tries_left))
                }
            }
            (0x00, 0x88) => {
                let sdad = self.sign_dynamic([&[0x02][..], &self.atc.to_be_bytes()].concat(), data);
                ok(tlv(0x80, &sdad))
            }
            (0x80, 0xae) => self.generate_ac(p1, data),
            (0x00, 0x82) => {
                let Some(arqc) = self.txn.arqc else {
                    return sw(0x6985);
                };
                let arc: [u8; 2] = data[8..10].try_into().unwrap();
                let expected = kdf::arpc(&self.session_keys().0, &arqc, &arc);
                if data[..8] == expected {
                    sw(0x9000)
                } else {
                    sw(0x6300)
                }
            }
            (0x04, 0xda) if p1 == 0x9f && p2 == 0x79 => {
                let Some(arqc) = self.txn.arqc else {
                    return sw(0x6985);
                };
                let (value, mac) = data.split_at(6);
                let mut mac_in = apdu[..5].to_vec();
                mac_in.extend_from_slice(&self.atc.to_be_bytes());
                mac_in.extend_from_slice(&arqc);
                mac_in.extend_from_slice(value);
                let expected = kdf::secure_messaging_mac(
                    &self.session_keys().1,
                    &mac_in,
                    Sm4MacRule::default(),
                );
                if mac != expected {
                    return sw(0x6988);
                }
                let new = Amount::from_bcd(value).unwrap().minor_units();
                if new > self.profile.ec_balance_limit {
                    return sw(0x6a80);
                }
                let mut rec = vec![0x9f, 0x79];
                rec.extend_from_slice(&Amount::new(self.balance).unwrap().to_bcd());
                rec.extend_from_slice(value);
                let c = &self.txn.cdol1;
                rec.extend_from_slice(&c[21..24]);
                rec.extend_from_slice(&c[29..32]);
                rec.extend_from_slice(&c[12..14]);
                rec.extend_from_slice(&c[32..52]);
                rec.extend_from_slice(&self.atc.to_be_bytes());
                self.load_log.insert(0, rec);
                self.balance = new;
                sw(0x9000)
            }
            _ => sw(0x6d00),
        }
    }

    fn select(&mut self, name: &[u8], p2: u8) -> Vec<u8> {
        self.txn = Txn::default();
        let fail = 0x6a82u16.to_be_bytes().to_vec();
        if p2 == 0x02 {
            return fail;
        }
        if name == b"1PAY.SYS.DDF01" {
            if !self.profile.with_pse {
                return fail;
            }
            self.txn.pse_selected = true;
            let fci = tpl(
                0x6f,
                &[
                    tlv(0x84, name),
                    tpl(0xa5, &[tlv(0x88, &[0x01]), tlv(0x5f2d, b"zhen")]),
                ],
            );
            return [fci, vec![0x90, 0x00]].concat();
        }
        if name == b"2PAY.SYS.DDF01" {
            let fci = tpl(
                0x6f,
                &[
                    tlv(0x84, name),
                    tpl(
                        0xa5,
                        &[tpl(
                            0xbf0c,
                            &[tpl(
                                0x61,
                                &[
                                    tlv(0x4f, &AID),
                                    tlv(0x50, b"PBOC DEBIT"),
                                    tlv(0x87, &[0x01]),
                                ],
                            )],
                        )],
                    ),
                ],
            );
            return [fci, vec![0x90, 0x00]].concat();
        }
        if name.len() >= 5 && AID.starts_with(name) {
            self.txn.selected = Some("debit");
            let fci = tpl(
                0x6f,
                &[
                    tlv(0x84, &AID),
                    tpl(
                        0xa5,
                        &[
                            tlv(0x50, b"PBOC DEBIT"),
                            tlv(0x87, &[0x01]),
                            tlv(0x9f38, &h(PDOL)),
                            tlv(0x5f2d, b"zhen"),
                            tlv(0x9f11, &[0x01]),
                            tpl(
                                0xbf0c,
                                &[tlv(0x9f4d, &[0x0b, 0x0a]), tlv(0xdf4d, &[0x0c, 0x0a])],
                            ),
                        ],
                    ),
                ],
            );
            return [fci, vec![0x90, 0x00]].concat();
        }
        fail
    }

    fn read_record(&mut self, record: u8, sfi: u8) -> Vec<u8> {
        let ok = |v: Vec<u8>| [v, vec![0x90, 0x00]].concat();
        let none = 0x6a83u16.to_be_bytes().to_vec();
        if self.txn.pse_selected {
            return match (sfi, record) {
                (1, 1) => ok(tpl(
                    0x70,
                    &[tpl(
                        0x61,
                        &[
                            tlv(0x4f, &AID),
                            tlv(0x50, b"PBOC DEBIT"),
                            tlv(0x87, &[0x01]),
                        ],
                    )],
                )),
                _ => none,
            };
        }
        match (sfi, record) {
            (11, 0) => 0x6a86u16.to_be_bytes().to_vec(),
            (11, n) => match self.log.get(usize::from(n) - 1) {
                Some(r) => ok(r.clone()),
                None => none,
            },
            (12, 0) => {
                let mut d = self.atc.to_be_bytes().to_vec();
                let entries: Vec<&Vec<u8>> = self.load_log.iter().take(10).collect();
                d.push(entries.len() as u8);
                for r in entries {
                    d.extend_from_slice(&r[..14]);
                    d.extend_from_slice(&r[14..20]);
                    d.extend_from_slice(&r[42..44]);
                }
                let mac =
                    kdf::secure_messaging_mac(&self.session_keys().1, &d, Sm4MacRule::default());
                d.extend_from_slice(&mac);
                ok(d)
            }
            (12, n) => match self.load_log.get(usize::from(n) - 1) {
                Some(r) => ok(r.clone()),
                None => none,
            },
            _ if self.txn.gpo.is_none() => 0x6985u16.to_be_bytes().to_vec(),
            (1, 1) => ok(self.records.sfi1.clone()),
            (2, 1) => ok(self.records.sfi2[0].clone()),
            (2, 2) => ok(self.records.sfi2[1].clone()),
            (3, 1) => ok(self.records.sfi3[0].clone()),
            (3, 2) => ok(self.sfi3_record2()),
            (3, 3) if self.txn.ec => ok(self.records.ec.clone()),
            _ => none,
        }
    }

    fn get_data(&mut self, tag: u16) -> Vec<u8> {
        let amount = |v: u64| Amount::new(v).unwrap().to_bcd().to_vec();
        let value = match tag {
            0x9f79 => amount(self.balance),
            0x9f77 => amount(self.profile.ec_balance_limit),
            0x9f78 => amount(self.profile.ec_single_limit),
            0x9f6d => amount(self.profile.ec_reset_threshold),
            0x9f36 => self.atc.to_be_bytes().to_vec(),
            0x9f13 => self.last_online_atc.to_be_bytes().to_vec(),
            0x9f17 if self.profile.pin_counter_readable => vec![self.pin_tries_left],
            0x9f4f => h(LOG_FORMAT),
            0xdf4f => h(LOAD_LOG_FORMAT),
            _ => return 0x6a88u16.to_be_bytes().to_vec(),
        };
        [tlv(u32::from(tag), &value), vec![0x90, 0x00]].concat()
    }

    fn gpo(&mut self, data: &[u8]) -> Vec<u8> {
        let sw = |sw: u16| sw.to_be_bytes().to_vec();
        if self.txn.selected.is_none()
            || self.txn.gpo.is_some()
            || data.len() != 37
            || data[0] != 0x83
        {
            return sw(0x6985);
        }
        let pdol = data[2..].to_vec();
        let qpboc = pdol[0] & 0x20 != 0;
        if qpboc && self.profile.sm_only && pdol[34] == 0x00 {
            return sw(0x6985);
        }
        if !qpboc && self.profile.gpo_refuses {
            return sw(0x6985);
        }
        let amount = Amount::from_bcd(&pdol[4..10]).unwrap().minor_units();
        self.txn.ec = pdol[33] == 0x01
            && pdol[23..25] == [0x01, 0x56]
            && amount <= self.balance
            && amount <= self.profile.ec_single_limit
            && self.pin_tries_left != 0;
        self.atc += 1;
        self.txn.qpboc = qpboc;
        self.txn.card_un = sm3::digest(&self.atc.to_be_bytes())[..4]
            .try_into()
            .unwrap();
        self.txn.gpo = Some(pdol.clone());
        if !qpboc {
            let mut v = self.profile.aip.to_vec();
            v.extend_from_slice(&self.afl());
            return [tlv(0x80, &v), vec![0x90, 0x00]].concat();
        }
        // qPBOC: offline approval for an EC transaction, else online (JR/T 0025.12 §7.7).
        let t2 = Tlv::parse(&self.records.sfi1)
            .unwrap()
            .find(Tag::new(0x57))
            .and_then(|t| t.bytes().map(<[u8]>::to_vec));
        if self.txn.ec {
            self.balance -= amount;
            let cvr2 = 0x10;
            let ac = self.cryptogram(&pdol[4..33], cvr2);
            let mut cdol1 = vec![0u8; 52];
            cdol1[0..6].copy_from_slice(&pdol[4..10]);
            cdol1[6..12].copy_from_slice(&pdol[10..16]);
            cdol1[12..14].copy_from_slice(&pdol[16..18]);
            cdol1[19..21].copy_from_slice(&pdol[23..25]);
            cdol1[21..24].copy_from_slice(&pdol[25..28]);
            cdol1[24] = pdol[28];
            self.log.insert(0, log_record(&cdol1, self.atc));
            let terminal: Vec<u8> = if self.fdda_v01() {
                [
                    &pdol[29..33],
                    &pdol[4..10],
                    &pdol[23..25],
                    &self.card_auth_data()[..],
                ]
                .concat()
            } else {
                pdol[29..33].to_vec()
            };
            let sdad =
                self.sign_dynamic([&[0x02][..], &self.atc.to_be_bytes()].concat(), &terminal);
            let mut parts = vec![
                tlv(0x82, &self.profile.aip),
                tlv(0x94, &self.afl()),
                tlv(0x9f36, &self.atc.to_be_bytes()),
                tlv(0x9f26, &ac),
                tlv(0x9f10, &self.iad(cvr2, true)),
            ];
            if let Some(t2) = t2 {
                parts.push(tlv(0x57, &t2));
            }
            // 5F34 is in the signed records (SFI 2), so not repeated here (§7.5).
            parts.push(tlv(0x9f4b, &sdad));
            parts.push(tlv(0x9f6c, &self.profile.ctq));
            return [tpl(0x77, &parts), vec![0x90, 0x00]].concat();
        }
        let cvr2 = 0x20;
        let ac = self.cryptogram(&pdol[4..33], cvr2);
        self.txn.arqc = Some(ac);
        let mut parts = vec![
            tlv(0x82, &self.profile.aip),
            tlv(0x9f36, &self.atc.to_be_bytes()),
            tlv(0x9f26, &ac),
            tlv(0x9f10, &self.iad(cvr2, false)),
        ];
        if let Some(t2) = t2 {
            parts.push(tlv(0x57, &t2));
        }
        parts.push(tlv(0x5f34, &[self.profile.psn]));
        [tpl(0x77, &parts), vec![0x90, 0x00]].concat()
    }

    fn generate_ac(&mut self, p1: u8, data: &[u8]) -> Vec<u8> {
        let sw = |sw: u16| sw.to_be_bytes().to_vec();
        let Some(pdol) = self.txn.gpo.clone() else {
            return sw(0x6985);
        };
        self.txn.gac_count += 1;
        let requested = p1 & 0xc0;
        let cda = p1 & 0x10 != 0;
        let (returned, cvr2) = if self.txn.gac_count == 1 {
            self.txn.cdol1 = data.to_vec();
            let mut t = requested;
            if t == 0x40
                && self.txn.ec
                && (data[0..6] != pdol[4..10] || data[19..21] != pdol[23..25])
            {
                t = 0x00;
            }
            self.txn.first_type = t;
            (t, t >> 2)
        } else if self.txn.gac_count == 2 {
            let approve = matches!(&data[0..2], b"00" | b"10" | b"11" | b"Y3");
            let t = if requested == 0x40 && approve {
                0x40
            } else {
                0x00
            };
            (t, (self.txn.first_type >> 2) | t)
        } else {
            return sw(0x6985);
        };
        // 表E.1 data: CDOL1's first 29 bytes; for the second GENERATE AC with the TVR
        // (CDOL1 bytes 14-18) and unpredictable number (25-28) of CDOL2 (bytes 12-16, 17-20).
        let mut terminal = self.txn.cdol1[..29].to_vec();
        if self.txn.gac_count == 2 {
            terminal[14..19].copy_from_slice(&data[12..17]);
            terminal[25..29].copy_from_slice(&data[17..21]);
        }
        let ac = self.cryptogram(&terminal, cvr2);
        let mut with_balance = false;
        if returned == 0x40 && self.txn.ec && self.txn.gac_count == 1 {
            let amount = Amount::from_bcd(&data[0..6]).unwrap().minor_units();
            self.balance -= amount;
            self.log.insert(0, log_record(data, self.atc));
            with_balance = true;
        } else if returned == 0x40 && self.txn.gac_count == 2 {
            self.last_online_atc = self.atc;
        }
        if returned == 0x80 {
            self.txn.arqc = Some(ac);
        }
        let iad = self.iad(cvr2, with_balance);
        if cda && returned != 0x00 {
            let cid = [returned];
            let objects = [
                tlv(0x9f27, &cid),
                tlv(0x9f36, &self.atc.to_be_bytes()),
                tlv(0x9f10, &iad),
            ];
            let mut parts: Vec<&[u8]> = vec![&pdol, &self.txn.cdol1];
            if self.txn.gac_count == 2 {
                parts.push(data);
            }
            let joined = objects.concat();
            parts.push(&joined);
            let hash = self.hash(&parts);
            let mut dyn_data = vec![0x02];
            dyn_data.extend_from_slice(&self.atc.to_be_bytes());
            dyn_data.push(returned);
            dyn_data.extend_from_slice(&ac);
            dyn_data.extend_from_slice(&hash);
            let un: &[u8] = if self.txn.gac_count == 1 {
                &data[25..29]
            } else {
                &data[17..21]
            };
            let sdad = self.sign_dynamic(dyn_data, un);
            let body = tpl(
                0x77,
                &[
                    objects[0].clone(),
                    objects[1].clone(),
                    tlv(0x9f4b, &sdad),
                    objects[2].clone(),
                ],
            );
            return [body, vec![0x90, 0x00]].concat();
        }
        let mut v = vec![returned];
        v.extend_from_slice(&self.atc.to_be_bytes());
        v.extend_from_slice(&ac);
        v.extend_from_slice(&iad);
        [tlv(0x80, &v), vec![0x90, 0x00]].concat()
    }
}

/// A transaction log record per the log format, from CDOL1-shaped data.
fn log_record(cdol1: &[u8], atc: u16) -> Vec<u8> {
    let mut r = Vec::with_capacity(45);
    r.extend_from_slice(&cdol1[21..24]); // 9A
    r.extend_from_slice(&cdol1[29..32]); // 9F21
    r.extend_from_slice(&cdol1[0..6]); // 9F02
    r.extend_from_slice(&cdol1[6..12]); // 9F03
    r.extend_from_slice(&cdol1[12..14]); // 9F1A
    r.extend_from_slice(&cdol1[19..21]); // 5F2A
    r.extend_from_slice(&cdol1[32..52]); // 9F4E
    r.push(cdol1[24]); // 9C
    r.extend_from_slice(&atc.to_be_bytes()); // 9F36
    r
}

pub fn merchant(name: &[u8]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..name.len()].copy_from_slice(name);
    m
}

impl CardChannel for RefCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.seen.push(command.to_vec());
        if self.pull_before == Some(self.seen.len()) {
            return Err(TransportError::CardRemoved);
        }
        let answer = self.answer(command);
        if self.pull_after == Some(self.seen.len()) {
            return Err(TransportError::CardRemoved);
        }
        Ok(answer)
    }
}

/// A PIN pad with a queue of answers.
pub struct ScriptedPinPad {
    pub answers: Vec<&'static str>,
    pub prompts: Vec<PinPrompt>,
}

impl ScriptedPinPad {
    pub fn new(answers: &[&'static str]) -> Self {
        Self {
            answers: answers.to_vec(),
            prompts: Vec::new(),
        }
    }
}

impl PinPad for ScriptedPinPad {
    fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry {
        self.prompts.push(prompt);
        if self.answers.is_empty() {
            PinEntry::Bypassed
        } else {
            PinEntry::Pin(Pin::new(self.answers.remove(0)).unwrap())
        }
    }
}

/// The issuer for tests: checks the ARQC with the card's keys (derived from the IMKs like the
/// card's), answers with `arc`, the ARPC, and for a load the PUT DATA script.
pub struct TestIssuer {
    pub algo: Algo,
    pub arc: [u8; 2],
    /// New EC balance to load (script `04 DA 9F79`).
    pub load_to: Option<u64>,
    /// Break the ARPC.
    pub bad_arpc: bool,
    /// Break the script MAC.
    pub bad_script_mac: bool,
    pub requests: usize,
    pub arqc_valid: Vec<bool>,
    pub unreachable: bool,
}

impl TestIssuer {
    pub fn new(algo: Algo) -> Self {
        Self {
            algo,
            arc: *b"00",
            load_to: None,
            bad_arpc: false,
            bad_script_mac: false,
            requests: 0,
            arqc_valid: Vec::new(),
            unreachable: false,
        }
    }
}

impl OnlineAuthoriser for TestIssuer {
    fn authorise(&mut self, r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        self.requests += 1;
        if self.unreachable {
            return Err(OnlineUnavailable("no network".into()));
        }
        let pan = r.pan.map(|p| p.reveal().to_string()).unwrap_or_default();
        let psn = r.psn.map(|p| format!("{p:02X}"));
        let (imk_ac, imk_smi) = imk(self.algo);
        let mk_ac = kdf::derive_card_key(&imk_ac, &pan, psn.as_deref()).unwrap();
        let mk_smi = kdf::derive_card_key(&imk_smi, &pan, psn.as_deref()).unwrap();
        let sk = kdf::derive_session_key(&mk_ac, r.atc);
        let input = r.cryptogram_input.expect("a version 01 cryptogram input");
        self.arqc_valid.push(
            kdf::application_cryptogram(&sk, input.as_bytes(), Sm4MacRule::default()) == r.arqc,
        );
        let mut arpc = kdf::arpc(&sk, &r.arqc, &self.arc);
        if self.bad_arpc {
            arpc[0] ^= 1;
        }
        let mut scripts = Vec::new();
        if let Some(to) = self.load_to {
            let value = Amount::new(to).unwrap().to_bcd();
            let header = [0x04, 0xda, 0x9f, 0x79, 0x0a];
            let mut mac_in = header.to_vec();
            mac_in.extend_from_slice(&r.atc.to_be_bytes());
            mac_in.extend_from_slice(&r.arqc);
            mac_in.extend_from_slice(&value);
            let smi = kdf::derive_session_key(&mk_smi, r.atc);
            let mut mac = kdf::secure_messaging_mac(&smi, &mac_in, Sm4MacRule::default());
            if self.bad_script_mac {
                mac[0] ^= 1;
            }
            let cmd = card_core::pboc::ec::put_balance_command(Amount::new(to).unwrap(), mac);
            scripts = tpl(0x72, &[tlv(0x9f18, &[0, 0, 0, 1]), tlv(0x86, &cmd)]);
        }
        Ok(OnlineResponse {
            arc: self.arc,
            issuer_authentication_data: Some([&arpc[..], &self.arc[..]].concat()),
            issuer_scripts: scripts,
        })
    }
}

/// The load log MAC check with the card's MAC key (the issuer side's job).
pub struct TestMacVerifier(pub Algo, pub &'static str, pub u8);

impl card_core::pboc::ec::LoadLogMacVerifier for TestMacVerifier {
    fn verify(&self, data: &[u8], mac: &[u8; 4]) -> bool {
        let (_, imk_smi) = imk(self.0);
        let mk = kdf::derive_card_key(&imk_smi, self.1, Some(&format!("{:02X}", self.2))).unwrap();
        let atc = u16::from_be_bytes([data[0], data[1]]);
        let sk = kdf::derive_session_key(&mk, atc);
        kdf::secure_messaging_mac(&sk, data, Sm4MacRule::default()) == *mac
    }
}

/// The transaction date, time and unpredictable number of the tests.
pub fn params(amount: u64) -> card_core::pboc::TransactionParams {
    card_core::pboc::TransactionParams::purchase(
        Amount::new(amount).unwrap(),
        card_core::pboc::Date::new(2026, 11, 28).unwrap(),
        card_core::pboc::Time::new(12, 0, 0).unwrap(),
        [0x12, 0x34, 0x56, 0x78],
    )
}

/// The kiosk terminal with an online-capable variant.
pub fn terminal(online: bool) -> card_core::pboc::TerminalConfig {
    let mut t = card_core::pboc::TerminalConfig::kiosk();
    if online {
        // Unattended, online capable; the TTQ says so too (JR/T 0025.12 表3 byte 1 bit 4).
        t.terminal_type = 0x25;
        t.ttq.clear(card_core::pboc::bits::TtqBit::OfflineOnly);
    }
    t
}
