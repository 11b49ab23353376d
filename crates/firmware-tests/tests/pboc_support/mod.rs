//! Terminal-side helpers for the PBOC tests: a card on shared memory storage (so a test can
//! tear any commit and power-cycle), raw APDUs, and a small independent terminal: PDOL/CDOL
//! data, record reading by AFL, offline data authentication checks (SM2 and RSA), the issuer's
//! view of cryptograms and MACs.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use card_core::crypto::kdf::{self, CardKey};
use card_core::crypto::rsa::{self as crsa, CertificateChecks, RsaPublicKey};
use card_core::crypto::sm2::Sm2PublicKey;
use card_core::crypto::sm2_cert::{self, StaticData, TrustStore, YearMonth};
use card_core::crypto::sm4::Sm4MacRule;
use card_core::tlv::{Tag, Tlv};
use firmware_tests::image::CardImage;
use firmware_tests::pboc::profile::{PbocSection, TerminalCaKey};
use firmware_tests::pboc::{Algorithm, PbocState, RID};
use firmware_tests::storage::{MemoryStorage, Storage, StorageError};
use firmware_tests::{Profile, SoftCard};

/// Memory storage the test keeps a handle on.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<MemoryStorage>>);

impl Storage for Shared {
    fn load(&mut self) -> Result<Option<CardImage>, StorageError> {
        self.0.lock().unwrap().load()
    }
    fn commit(&mut self, image: &CardImage) -> Result<(), StorageError> {
        self.0.lock().unwrap().commit(image)
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// A card under test and the profile it was made from.
pub struct TestCard {
    pub card: SoftCard,
    pub storage: Shared,
    pub profile: Profile,
}

pub fn profile(name: &str) -> Profile {
    Profile::embedded(name).unwrap()
}

impl TestCard {
    pub fn new(name: &str) -> Self {
        Self::from_profile(profile(name))
    }

    pub fn from_profile(profile: Profile) -> Self {
        let image = profile.build().unwrap();
        let storage = Shared::default();
        let card = SoftCard::open(image, Box::new(storage.clone())).unwrap();
        Self {
            card,
            storage,
            profile,
        }
    }

    pub fn section(&self) -> &PbocSection {
        self.profile.pboc.as_ref().unwrap()
    }

    /// Send a command, return (data, SW).
    pub fn send(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let mut r = self.card.process(apdu);
        let sw2 = r.pop().unwrap();
        let sw1 = r.pop().unwrap();
        (r, u16::from_be_bytes([sw1, sw2]))
    }

    pub fn sendh(&mut self, apdu: &str) -> (Vec<u8>, u16) {
        self.send(&hex(apdu))
    }

    /// Send and require 9000.
    pub fn ok(&mut self, apdu: &[u8]) -> Vec<u8> {
        let (data, sw) = self.send(apdu);
        assert_eq!(sw, 0x9000, "{} -> {sw:04X}", hex::encode_upper(apdu));
        data
    }

    pub fn power_cycle(&mut self) {
        self.card.power_off();
        self.card.power_on();
    }

    pub fn tear_at(&mut self, n: u64) {
        self.storage.0.lock().unwrap().tear_at(n);
    }

    pub fn commits(&self) -> u64 {
        self.card.commits()
    }

    /// The committed payment application state.
    pub fn committed(&self) -> PbocState {
        self.storage
            .0
            .lock()
            .unwrap()
            .load()
            .unwrap()
            .unwrap()
            .pboc
            .unwrap()
    }

    pub fn state(&self) -> &PbocState {
        self.card.image().pboc.as_ref().unwrap()
    }

    pub fn select_adf(&mut self) -> Vec<u8> {
        self.ok(&hex("00A4040008A000000333010101 00"))
    }

    /// GET DATA, the value only.
    pub fn get_data(&mut self, tag: u16) -> Vec<u8> {
        let [p1, p2] = tag.to_be_bytes();
        let data = self.ok(&[0x80, 0xca, p1, p2, 0x00]);
        let t = Tlv::parse(&data).unwrap();
        assert_eq!(t.tag(), Tag::new(u32::from(tag)));
        t.bytes().unwrap().to_vec()
    }

    pub fn balance(&mut self) -> u64 {
        bcd(&self.get_data(0x9f79))
    }

    pub fn atc(&mut self) -> u16 {
        u16::from_be_bytes(self.get_data(0x9f36).try_into().unwrap())
    }

    /// The records of a log file read by the terminal (`6A83` ends it), newest first.
    pub fn read_log(&mut self, sfi: u8) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in 1..=10u8 {
            let (data, sw) = self.send(&[0x00, 0xb2, n, (sfi << 3) | 4, 0x00]);
            if sw == 0x6a83 {
                break;
            }
            assert_eq!(sw, 0x9000);
            out.push(data);
        }
        out
    }

    /// The issuer's copy of the card keys: MK-AC, MK-SMI.
    pub fn issuer_keys(&self) -> (CardKey, CardKey) {
        let [ac, smi, _] = self.section().card_keys().unwrap();
        (ac, smi)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.section().algorithm
    }
}

/// BCD digits as a number.
pub fn bcd(b: &[u8]) -> u64 {
    b.iter().fold(0, |acc, x| {
        acc * 100 + u64::from(x >> 4) * 10 + u64::from(x & 0x0f)
    })
}

pub fn n12(v: u64) -> Vec<u8> {
    hex(&format!("{v:012}"))
}

/// Find a tag anywhere in TLV data.
pub fn find(data: &[u8], tag: u32) -> Option<Vec<u8>> {
    let all = Tlv::parse_all(data).ok()?;
    all.iter()
        .find_map(|t| t.find(Tag::new(tag)))
        .and_then(|t| t.bytes().map(<[u8]>::to_vec))
}

/// What the terminal sends in GPO (docs/pboc-profile.md PDOL).
#[derive(Debug, Clone)]
pub struct Terms {
    pub ttq: [u8; 4],
    pub amount: u64,
    pub other: u64,
    pub country: [u8; 2],
    pub tvr: [u8; 5],
    pub currency: [u8; 2],
    pub date: [u8; 3],
    pub txn_type: u8,
    pub un: [u8; 4],
    pub ec_indicator: u8,
    pub sm_indicator: u8,
    pub time: [u8; 3],
    pub merchant: [u8; 20],
}

impl Terms {
    /// A contact EC purchase at the kiosk.
    pub fn contact(amount: u64) -> Self {
        Self {
            ttq: [0, 0, 0, 0],
            amount,
            other: 0,
            country: [0x01, 0x56],
            tvr: [0; 5],
            currency: [0x01, 0x56],
            date: [0x26, 0x03, 0x15],
            txn_type: 0x00,
            un: [0x11, 0x22, 0x33, 0x44],
            ec_indicator: 1,
            sm_indicator: 1,
            time: [0x10, 0x20, 0x30],
            merchant: *b"SSB KIOSK 0001      ",
        }
    }

    /// A qPBOC purchase: TTQ `26 00 00 80` (qPBOC, offline only, fDDA 01).
    pub fn qpboc(amount: u64) -> Self {
        Self {
            ttq: [0x26, 0x00, 0x00, 0x80],
            ..Self::contact(amount)
        }
    }

    pub fn pdol_data(&self) -> Vec<u8> {
        let mut d = self.ttq.to_vec();
        d.extend(n12(self.amount));
        d.extend(n12(self.other));
        d.extend(self.country);
        d.extend(self.tvr);
        d.extend(self.currency);
        d.extend(self.date);
        d.push(self.txn_type);
        d.extend(self.un);
        d.push(self.ec_indicator);
        d.push(self.sm_indicator);
        d
    }

    pub fn gpo_apdu(&self) -> Vec<u8> {
        let data = self.pdol_data();
        let mut a = vec![
            0x80,
            0xa8,
            0x00,
            0x00,
            data.len() as u8 + 2,
            0x83,
            data.len() as u8,
        ];
        a.extend(data);
        a.push(0x00);
        a
    }

    pub fn cdol1_data(&self) -> Vec<u8> {
        let mut d = n12(self.amount);
        d.extend(n12(self.other));
        d.extend(self.country);
        d.extend(self.tvr);
        d.extend(self.currency);
        d.extend(self.date);
        d.push(self.txn_type);
        d.extend(self.un);
        d.extend(self.time);
        d.extend(self.merchant);
        d
    }

    /// The 表D.1 terminal elements the cryptogram covers.
    pub fn ac_terminal_data(&self) -> Vec<u8> {
        self.cdol1_data()[..29].to_vec()
    }
}

pub fn gen_ac(p1: u8, data: &[u8]) -> Vec<u8> {
    let mut a = vec![0x80, 0xae, p1, 0x00, data.len() as u8];
    a.extend(data);
    a.push(0x00);
    a
}

/// CDOL2 data: ARC, issuer authentication data, TVR, UN.
pub fn cdol2_data(arc: &[u8; 2], auth: &[u8; 10], tvr: [u8; 5], un: [u8; 4]) -> Vec<u8> {
    let mut d = arc.to_vec();
    d.extend(auth);
    d.extend(tvr);
    d.extend(un);
    d
}

/// A GENERATE AC answer, either format.
#[derive(Debug, Clone)]
pub struct AcResponse {
    pub cid: u8,
    pub atc: u16,
    pub ac: Option<[u8; 8]>,
    pub iad: Vec<u8>,
    pub sdad: Option<Vec<u8>>,
    /// The TLVs of a format 2 answer other than 9F4B, encoded, in order (for the CDA hash).
    pub hashed_tlvs: Vec<Vec<u8>>,
}

impl AcResponse {
    pub fn parse(data: &[u8]) -> Self {
        let t = Tlv::parse(data).unwrap();
        if t.tag() == Tag::new(0x80) {
            let v = t.bytes().unwrap();
            return Self {
                cid: v[0],
                atc: u16::from_be_bytes([v[1], v[2]]),
                ac: Some(v[3..11].try_into().unwrap()),
                iad: v[11..].to_vec(),
                sdad: None,
                hashed_tlvs: Vec::new(),
            };
        }
        assert_eq!(t.tag(), Tag::new(0x77));
        let get = |tag| {
            t.child(Tag::new(tag))
                .and_then(Tlv::bytes)
                .map(<[u8]>::to_vec)
        };
        Self {
            cid: get(0x9f27).unwrap()[0],
            atc: u16::from_be_bytes(get(0x9f36).unwrap().try_into().unwrap()),
            ac: get(0x9f26).map(|a| a.try_into().unwrap()),
            iad: get(0x9f10).unwrap(),
            sdad: get(0x9f4b),
            hashed_tlvs: t
                .children()
                .iter()
                .filter(|c| c.tag() != Tag::new(0x9f4b))
                .map(|c| c.to_bytes().unwrap())
                .collect(),
        }
    }

    /// The CVR in the IAD (4 bytes).
    pub fn cvr(&self) -> [u8; 4] {
        self.iad[3..7].try_into().unwrap()
    }
}

/// The data a cryptogram covers, from the issuer's side.
pub fn ac_data(terminal: &[u8], aip: [u8; 2], atc: u16, cvr: [u8; 4]) -> Vec<u8> {
    let mut d = terminal.to_vec();
    d.extend(aip);
    d.extend(atc.to_be_bytes());
    d.extend(cvr);
    d
}

/// The issuer's cryptogram check.
pub fn expected_ac(mk_ac: &CardKey, atc: u16, data: &[u8]) -> [u8; 8] {
    kdf::application_cryptogram(
        &kdf::derive_session_key(mk_ac, atc),
        data,
        Sm4MacRule::Part17LeftBytes,
    )
}

/// The issuer's 4-byte secure-messaging MAC.
pub fn expected_mac(mk_smi: &CardKey, atc: u16, data: &[u8]) -> [u8; 4] {
    kdf::secure_messaging_mac(
        &kdf::derive_session_key(mk_smi, atc),
        data,
        Sm4MacRule::Part17LeftBytes,
    )
}

/// The issuer's ARPC.
pub fn arpc(mk_ac: &CardKey, atc: u16, arqc: &[u8; 8], arc: &[u8; 2]) -> [u8; 8] {
    kdf::arpc(&kdf::derive_session_key(mk_ac, atc), arqc, arc)
}

/// Check the IDD `0A 01 balance(5) MAC(4)` of an IAD and return the balance.
pub fn idd_balance(iad: &[u8], mk_smi: &CardKey, atc: u16) -> u64 {
    assert_eq!(iad[0], 0x07, "JR/T 0025 part of the IAD");
    let idd = &iad[8..];
    assert_eq!(&idd[..2], &[0x0a, 0x01], "IDD option 01: EC balance");
    let balance = &idd[2..7];
    let mut macced = atc.to_be_bytes().to_vec();
    macced.extend(balance);
    macced.push(0);
    assert_eq!(
        &idd[7..11],
        &expected_mac(mk_smi, atc, &macced),
        "IDD balance MAC"
    );
    bcd(balance)
}

/// The records read by AFL, and the static data of the ones marked for ODA.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub tlvs: Vec<Tlv>,
    pub oda: Vec<u8>,
    pub read: Vec<(u8, u8)>,
}

impl Records {
    pub fn get(&self, tag: u32) -> Option<Vec<u8>> {
        self.tlvs
            .iter()
            .find_map(|t| t.find(Tag::new(tag)))
            .and_then(|t| t.bytes().map(<[u8]>::to_vec))
    }
}

/// Read every record the AFL names (JR/T 0025.5 §8.4).
pub fn read_afl(card: &mut TestCard, afl: &[u8]) -> Records {
    let mut r = Records::default();
    for entry in afl.chunks(4) {
        let (sfi, first, last, oda) = (entry[0] >> 3, entry[1], entry[2], entry[3]);
        for n in first..=last {
            let data = card.ok(&[0x00, 0xb2, n, (sfi << 3) | 4, 0x00]);
            let t = Tlv::parse(&data).unwrap();
            assert_eq!(t.tag(), Tag::new(0x70), "record template");
            if n - first < oda {
                for c in t.children() {
                    r.oda.extend(c.to_bytes().unwrap());
                }
            }
            r.tlvs.push(t);
            r.read.push((sfi, n));
        }
    }
    r
}

/// The ICC public key after the certificate path checks.
#[derive(Debug, Clone)]
pub enum IccKey {
    Sm2(Sm2PublicKey),
    Rsa(RsaPublicKey),
}

pub const TODAY: YearMonth = YearMonth {
    year: 2026,
    month: 3,
};

/// Recover and check the ICC public key from the records (JR/T 0025.17 §5.2.2-5.2.3, JR/T
/// 0025.7 §5.3.3-5.3.4).
pub fn icc_key(card: &TestCard, records: &Records, aip: [u8; 2]) -> IccKey {
    let pan = records.get(0x5a).unwrap();
    let index = records.get(0x8f).unwrap()[0];
    match card.section().ca_key().unwrap() {
        TerminalCaKey::Sm2(ca) => {
            assert_eq!(index, 0x80);
            let mut trust = TrustStore::new();
            trust.insert(ca);
            let tag_list = records.get(0x9f4a);
            let statics = StaticData {
                records: &records.oda,
                sda_tag_list: tag_list.as_deref(),
                aip: Some(aip),
            };
            let key = sm2_cert::verify_chain(
                &trust,
                RID,
                index,
                &records.get(0x90).unwrap(),
                &records.get(0x9f46).unwrap(),
                &pan,
                &statics,
                TODAY,
            )
            .unwrap();
            IccKey::Sm2(key)
        }
        TerminalCaKey::Rsa(ca) => {
            assert_eq!(index, 0x08);
            let checks = CertificateChecks {
                pan: &pan,
                today: TODAY,
                revoked: &[],
            };
            let issuer = crsa::recover_issuer_key(
                &ca,
                &records.get(0x90).unwrap(),
                &records.get(0x92).unwrap_or_default(),
                &records.get(0x9f32).unwrap(),
                &checks,
            )
            .unwrap();
            assert_eq!(records.get(0x9f4a).unwrap(), vec![0x82]);
            let mut statics = records.oda.clone();
            statics.extend(aip);
            let icc = crsa::recover_icc_key(
                &issuer.public_key,
                &records.get(0x9f46).unwrap(),
                &records.get(0x9f48).unwrap_or_default(),
                &records.get(0x9f47).unwrap(),
                &statics,
                &checks,
            )
            .unwrap();
            IccKey::Rsa(icc.public_key)
        }
    }
}

/// Check DDA / fDDA signed dynamic data over `terminal` dynamic data; returns the ICC dynamic
/// data.
pub fn check_dynamic(key: &IccKey, sdad: &[u8], terminal: &[u8]) -> Vec<u8> {
    match key {
        IccKey::Sm2(k) => {
            sm2_cert::verify_dynamic_signature(k, sdad, terminal)
                .unwrap()
                .icc_dynamic_data
        }
        IccKey::Rsa(k) => {
            let rec = crsa::verify_with_recovery(k, sdad, terminal).unwrap();
            assert_eq!(rec.msg1[0], 0x05, "format 05");
            assert_eq!(rec.msg1[1], 0x01, "SHA-1");
            let ldd = usize::from(rec.msg1[2]);
            assert!(rec.msg1[3 + ldd..].iter().all(|b| *b == 0xbb), "BB padding");
            rec.msg1[3..3 + ldd].to_vec()
        }
    }
}

/// Check a CDA signature (JR/T 0025.17 §5.2.5.2, JR/T 0025.7 §5.3.6.2); returns the cryptogram
/// inside it.
pub fn check_cda(key: &IccKey, sdad: &[u8], un: [u8; 4], cid: u8, hashed: &[&[u8]]) -> [u8; 8] {
    match key {
        IccKey::Sm2(k) => {
            sm2_cert::verify_cda(k, sdad, un, cid, hashed)
                .unwrap()
                .cryptogram
        }
        IccKey::Rsa(k) => {
            let dynamic = check_dynamic(key, sdad, &un);
            let n = usize::from(dynamic[0]);
            assert_eq!(dynamic[1 + n], cid, "CID in the signature");
            let ac: [u8; 8] = dynamic[2 + n..10 + n].try_into().unwrap();
            let mut h = sha1_parts(hashed);
            assert_eq!(&dynamic[10 + n..30 + n], &h[..], "transaction data hash");
            h.fill(0);
            let _ = k;
            ac
        }
    }
}

fn sha1_parts(parts: &[&[u8]]) -> [u8; 20] {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SELECT the ADF, GPO; returns (AIP, AFL) of a contact answer (format 1).
pub fn contact_gpo(card: &mut TestCard, terms: &Terms) -> ([u8; 2], Vec<u8>) {
    card.select_adf();
    let data = card.ok(&terms.gpo_apdu());
    let t = Tlv::parse(&data).unwrap();
    assert_eq!(t.tag(), Tag::new(0x80), "format 1");
    let v = t.bytes().unwrap();
    ([v[0], v[1]], v[2..].to_vec())
}

/// An offline plaintext PIN block for VERIFY `00 20 00 80 08`.
pub fn verify_apdu(pin: &str) -> Vec<u8> {
    let mut text = format!("2{:X}{pin}", pin.len());
    while text.len() < 16 {
        text.push('F');
    }
    let mut a = hex("0020008008");
    a.extend(hex(&text));
    a
}

/// Script command with MAC over `CLA INS P1 P2 Lc ‖ ATC ‖ ARQC ‖ data` (JR/T 0025.5 附录 C.2.4).
pub fn script(mk_smi: &CardKey, atc: u16, arqc: &[u8; 8], header: [u8; 4], data: &[u8]) -> Vec<u8> {
    let lc = data.len() as u8 + 4;
    let mut macced = header.to_vec();
    macced.push(lc);
    macced.extend(atc.to_be_bytes());
    macced.extend(arqc);
    macced.extend(data);
    let mac = expected_mac(mk_smi, atc, &macced);
    let mut apdu = header.to_vec();
    apdu.push(lc);
    apdu.extend(data);
    apdu.extend(mac);
    apdu
}
