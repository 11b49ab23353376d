//! What the debit/credit application keeps in non-volatile memory ([`PbocState`]): counters,
//! indicators, the electronic-cash balance and limits, the offline PIN, the card's keys and the
//! tear-protection record of a qPBOC debit. The files (records, logs) live in the card's file
//! system under the ADF; everything here is committed together with them, as one image.
//!
//! A personaliser fills this with [`PbocState::new`] and the public fields (or
//! [`crate::pboc::files::install`], which also lays out the files).

use core::fmt;

use card_core::crypto::kdf::{CardAlgorithm, CardKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// The card profile: which algorithms the application uses (docs/pboc-profile.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SM2/SM3/SM4 only (JR/T 0025.17): SM4 cryptograms and MACs, SM2 offline data
    /// authentication. An SM-only card in the sense of JR/T 0025.17 §10.2.
    Sm,
    /// 3DES cryptograms and MACs, RSA/SHA-1 offline data authentication (JR/T 0025.7), as
    /// older cards have.
    International,
}

impl Algorithm {
    /// The symmetric algorithm of cryptograms and MACs.
    pub const fn card_algorithm(self) -> CardAlgorithm {
        match self {
            Self::Sm => CardAlgorithm::Sm4,
            Self::International => CardAlgorithm::Tdes,
        }
    }

    /// The algorithm identifier of the issuer application data (JR/T 0025.17 附录 A.3):
    /// `04` SM4, `01` 3DES.
    pub const fn iad_id(self) -> u8 {
        match self {
            Self::Sm => 0x04,
            Self::International => 0x01,
        }
    }
}

/// The ICC private key used for DDA, fDDA and CDA. Zeroized on drop; never in `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IccPrivateKey {
    /// An SM2 private key `d` (32 bytes), JR/T 0025.17 §8.2.
    Sm2 {
        /// The scalar, big-endian.
        d: Vec<u8>,
    },
    /// An RSA private key given by its two primes and public exponent (`03` or `01 00 01`),
    /// JR/T 0025.7 §12.2.1.
    Rsa {
        /// First prime, big-endian.
        p: Vec<u8>,
        /// Second prime, big-endian.
        q: Vec<u8>,
        /// Public exponent bytes.
        e: Vec<u8>,
    },
}

impl Drop for IccPrivateKey {
    fn drop(&mut self) {
        match self {
            Self::Sm2 { d } => d.zeroize(),
            Self::Rsa { p, q, e } => {
                p.zeroize();
                q.zeroize();
                e.zeroize();
            }
        }
    }
}

impl fmt::Debug for IccPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sm2 { .. } => f.write_str("IccPrivateKey::Sm2(<redacted>)"),
            Self::Rsa { p, q, .. } => write!(
                f,
                "IccPrivateKey::Rsa({} bits, <redacted>)",
                (p.len() + q.len()) * 8
            ),
        }
    }
}

/// The card's secret keys: the three card keys derived from the issuer master keys by PAN and
/// PSN (JR/T 0025.7 §11.1.4, JR/T 0025.17 §8.1.4) and the ICC private key. Zeroized on drop;
/// `Debug` shows none of them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbocKeys {
    /// MK-AC: application cryptograms and the ARPC.
    pub mk_ac: [u8; 16],
    /// MK-SMI: secure-messaging integrity (issuer script MACs, the balance MAC of the IDD, the
    /// MAC over the load log).
    pub mk_smi: [u8; 16],
    /// MK-SMC: secure-messaging confidentiality (enciphered script data; unused so far).
    pub mk_smc: [u8; 16],
    /// The ICC private key for offline dynamic data authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icc: Option<IccPrivateKey>,
}

impl PbocKeys {
    /// Install the three card keys (as `card_core::crypto::kdf::derive_card_key` or hsm-sim
    /// give them).
    pub fn set_card_keys(&mut self, mk_ac: &CardKey, mk_smi: &CardKey, mk_smc: &CardKey) {
        self.mk_ac = *mk_ac.expose_bytes();
        self.mk_smi = *mk_smi.expose_bytes();
        self.mk_smc = *mk_smc.expose_bytes();
    }

    /// MK-AC as a key of `algorithm`.
    pub fn ac_key(&self, algorithm: Algorithm) -> CardKey {
        CardKey::new(algorithm.card_algorithm(), self.mk_ac)
    }

    /// MK-SMI as a key of `algorithm`.
    pub fn smi_key(&self, algorithm: Algorithm) -> CardKey {
        CardKey::new(algorithm.card_algorithm(), self.mk_smi)
    }
}

impl Drop for PbocKeys {
    fn drop(&mut self) {
        self.mk_ac.zeroize();
        self.mk_smi.zeroize();
        self.mk_smc.zeroize();
    }
}

impl fmt::Debug for PbocKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PbocKeys")
            .field("mk_ac", &"<redacted>")
            .field("mk_smi", &"<redacted>")
            .field("mk_smc", &"<redacted>")
            .field("icc", &self.icc)
            .finish()
    }
}

/// The offline PIN of the debit/credit application, apart from the social-security PIN
/// (JR/T 0025.5 §11.1 表22). Zeroized on drop; `Debug` shows the counters only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflinePin {
    /// The digits, one per byte (0-9).
    pub(crate) digits: Vec<u8>,
    /// PIN try limit.
    pub max_tries: u8,
    /// PIN try counter (`9F17`).
    pub tries_left: u8,
}

impl OfflinePin {
    /// A PIN of 4 to 12 digits; `None` if `text` is not that.
    pub fn new(text: &str, max_tries: u8) -> Option<Self> {
        let digits: Vec<u8> = text
            .bytes()
            .map(|b| b.checked_sub(b'0').filter(|d| *d <= 9))
            .collect::<Option<_>>()?;
        (4..=12).contains(&digits.len()).then_some(Self {
            digits,
            max_tries,
            tries_left: max_tries,
        })
    }

    /// Whether `candidate` (digits) is the PIN, in time independent of where they differ.
    pub(crate) fn matches(&self, candidate: &[u8]) -> bool {
        candidate.len() == self.digits.len()
            && candidate
                .iter()
                .zip(&self.digits)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Drop for OfflinePin {
    fn drop(&mut self) {
        self.digits.zeroize();
    }
}

impl fmt::Debug for OfflinePin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflinePin")
            .field("max_tries", &self.max_tries)
            .field("tries_left", &self.tries_left)
            .finish_non_exhaustive()
    }
}

/// Electronic cash (JR/T 0025.13 §5.1 表1). Amounts in fen (the minor unit of the application
/// currency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec {
    /// EC balance `9F79`. Contactless (qPBOC) offline spending uses this same balance: JR/T
    /// 0025.12 §7.7.5 runs its small-amount checks on the EC data, and JR/T 0025.14 §5.2.2
    /// works on `9F79` too; only the second-currency balance `DF79` of JR/T 0025.15 would be
    /// separate (not implemented).
    pub balance: u64,
    /// EC balance limit `9F77`.
    pub balance_limit: u64,
    /// EC single transaction limit `9F78`.
    pub single_limit: u64,
    /// EC reset threshold `9F6D`.
    pub reset_threshold: u64,
    /// EC issuer authorisation code `9F74` (a6, "ECCxxx").
    pub issuer_auth_code: [u8; 6],
}

/// The card's internal indicators and counters of JR/T 0025.5 §14.1 表30 and §17.1 表42.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicators {
    /// Online authorisation indicator: set when the card asked to go online (ARQC), cleared
    /// when the online transaction completes (§14.5.2, §16.6).
    pub online_auth_pending: bool,
    /// Issuer authentication failure indicator (§15.4.3).
    pub issuer_auth_failed: bool,
    /// SDA failure indicator (§14.5.1 step 2).
    pub sda_failed: bool,
    /// DDA failure indicator (§14.5.1 step 2).
    pub dda_failed: bool,
    /// Issuer script failure indicator (§17.6.4).
    pub script_failed: bool,
    /// Issuer script command counter (0-15, §17.6.4).
    pub script_count: u8,
}

/// Issuer risk parameters of the application (JR/T 0025.5 附录 A, JR/T 0025.12 §7.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskParams {
    /// Application default action `9F52` (JR/T 0025.5 附录 A).
    pub ada: [u8; 2],
    /// Issuer authentication indicator `9F56` bit 8: issuer authentication is mandatory.
    pub issuer_auth_mandatory: bool,
    /// Lower consecutive offline limit `9F58` (§14.4.3.6), if personalised.
    pub lower_consecutive_offline_limit: Option<u8>,
    /// Upper consecutive offline limit `9F59` (§16.7.1.1), if personalised.
    pub upper_consecutive_offline_limit: Option<u8>,
    /// Card additional processes `9F68` (JR/T 0025.12 §7.7 表13).
    pub card_additional_processes: [u8; 4],
    /// Card transaction qualifiers `9F6C` as personalised (JR/T 0025.12 附录 C).
    pub ctq: [u8; 2],
    /// Card CVM limit `9F6B` in fen (JR/T 0025.12 §7.7.3), if personalised.
    pub cvm_limit: Option<u64>,
    /// Whether the available offline spending amount `9F5D` is returned (personalised as 1,
    /// JR/T 0025.12 §7.4.4 表11).
    pub available_offline_amount: bool,
}

impl Default for RiskParams {
    fn default() -> Self {
        Self {
            ada: [0, 0],
            issuer_auth_mandatory: false,
            lower_consecutive_offline_limit: None,
            upper_consecutive_offline_limit: None,
            // Small-amount check and PIN-exceeded check (byte 1 bits 8 and 4); qPBOC offline
            // approvals are logged (byte 2 bit 5) (JR/T 0025.12 §7.7 表13).
            card_additional_processes: [0x88, 0x10, 0x00, 0x00],
            ctq: [0x00, 0x00],
            cvm_limit: None,
            available_offline_amount: false,
        }
    }
}

/// What a qPBOC offline approval changed, kept until the terminal has read the last record of
/// the AFL (JR/T 0025.12 §7.4.1 防拔, §7.7.19). If the card is selected again while this is
/// set, the debit is undone: balance and transaction log go back to these values. The ATC
/// never goes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TearGuard {
    /// The ATC of the guarded transaction.
    pub atc: u16,
    /// EC balance before the debit.
    pub balance_before: u64,
    /// Transaction log records before the debit (newest first).
    pub log_before: Vec<Vec<u8>>,
}

/// The non-volatile state of the PBOC debit/credit application with electronic cash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbocState {
    /// Algorithms of this card.
    pub algorithm: Algorithm,
    /// The ADF name (AID).
    pub aid: Vec<u8>,
    /// Application label `50`.
    pub label: String,
    /// Application interchange profile `82`, the same for every path (it is signed static
    /// data through the SDA tag list `9F4A`).
    pub aip: [u8; 2],
    /// Application transaction counter `9F36`.
    pub atc: u16,
    /// Last online ATC register `9F13`.
    pub last_online_atc: u16,
    /// Permanently locked because the ATC reached 65535 (JR/T 0025.5 §7.4 step 3 a)).
    pub locked: bool,
    /// Blocked by APPLICATION BLOCK (JR/T 0025.5 附录 B.2).
    pub blocked: bool,
    /// Application currency code `9F51` (numeric, e.g. 156).
    pub currency: u16,
    /// Issuer country code `9F57` (numeric, e.g. 156).
    pub country: u16,
    /// Derivation key index of the IAD.
    pub dki: u8,
    /// Cryptogram version number of the IAD (JR/T 0025.5 附录 E: `01`).
    pub cvn: u8,
    /// Electronic cash, if the application has it.
    pub ec: Option<Ec>,
    /// The offline PIN.
    pub pin: OfflinePin,
    /// Indicators and counters.
    pub indicators: Indicators,
    /// Issuer risk parameters.
    pub risk: RiskParams,
    /// Track 2 equivalent data `57` (returned in the qPBOC GPO response).
    pub track2: Vec<u8>,
    /// PAN sequence number `5F34`, if the card has one.
    pub psn: Option<u8>,
    /// Keys.
    pub keys: PbocKeys,
    /// Tear protection of a qPBOC debit in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tear: Option<TearGuard>,
}

impl PbocState {
    /// A fresh application with the project's defaults (docs/pboc-profile.md): AIP `3D 00`
    /// (DDA, cardholder verification, terminal risk management, issuer authentication, CDA;
    /// JR/T 0025.5 附录 A `82`), currency and country 156, DKI 01, CVN 01.
    pub fn new(algorithm: Algorithm, pin: OfflinePin, keys: PbocKeys) -> Self {
        Self {
            algorithm,
            aid: super::AID_DEBIT.to_vec(),
            label: "PBOC DEBIT".into(),
            aip: [0x3d, 0x00],
            atc: 0,
            last_online_atc: 0,
            locked: false,
            blocked: false,
            currency: 156,
            country: 156,
            dki: 0x01,
            cvn: 0x01,
            ec: None,
            pin,
            indicators: Indicators::default(),
            risk: RiskParams::default(),
            track2: Vec::new(),
            psn: None,
            keys,
            tear: None,
        }
    }

    /// The application currency as the two BCD bytes of `9F51`/`5F2A` (n3).
    pub fn currency_bcd(&self) -> [u8; 2] {
        super::ec::n3(self.currency)
    }

    /// The issuer country as the two BCD bytes of `9F57`/`9F1A` (n3).
    pub fn country_bcd(&self) -> [u8; 2] {
        super::ec::n3(self.country)
    }
}
