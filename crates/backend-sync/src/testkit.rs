//! A simulated card's side of a payment, for tests, benches and demos: it derives its key from
//! an issuer master key as a real card was personalised (JR/T 0025.7 §11.1.4, JR/T 0025.17
//! §8.1.4) and answers GENERATE AC with a TC or AAC over [`crate::mac_data`]'s layout. The
//! PANs used with it are fictional.

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey, KdfError};
use card_core::crypto::sm4::Sm4MacRule;

use crate::entry::{CardResult, EntryKind, HexArray, MacData, Pan, Psn, TxnTime};
use crate::mac_data::{self, MacInputs};
use crate::recovery::{LogRecordData, Recovered, RecoveryEvidence, RecoverySource};

/// A transaction log record as a card writes it in the recommended log format of
/// JR/T 0025.13 表9: date, time, amount, other amount, country, currency, merchant name, type,
/// ATC.
pub fn log_record(
    amount_fen: u64,
    currency: u16,
    txn_time: &TxnTime,
    kind: EntryKind,
    atc: u16,
) -> LogRecordData {
    let t = txn_time.as_str().as_bytes();
    let digit = |i: usize| t.get(i).map_or(0, |c| c.wrapping_sub(b'0') & 0x0f);
    let time = [8, 10, 12].map(|i| (digit(i) << 4) | digit(i + 1));
    let mut merchant = b"SSCARD KIOSK".to_vec();
    merchant.resize(20, 0);
    LogRecordData::from_fields([
        (0x9A, txn_time.date_bcd().to_vec()),
        (0x9F21, time.to_vec()),
        (0x9F02, mac_data::to_bcd(amount_fen, 6)),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x01, 0x56]),
        (0x5F2A, mac_data::to_bcd(u64::from(currency), 2)),
        (0x9F4E, merchant),
        (0x9C, vec![kind.transaction_type()]),
        (0x9F36, atc.to_be_bytes().to_vec()),
    ])
}

/// The demo 3DES issuer master key (the published EMV test IMK, KCV 08D7).
pub const DEMO_IMK_TDES: &str = "0123456789ABCDEFFEDCBA9876543210";
/// The demo SM4 issuer master key.
pub const DEMO_IMK_SM4: &str = "00112233445566778899AABBCCDDEEFF";
/// The HSM label of the demo 3DES MK-AC.
pub const DEMO_MK_TDES_LABEL: &str = "IMKAC001";
/// The HSM label of the demo SM4 MK-AC.
pub const DEMO_MK_SM4_LABEL: &str = "IMKSM401";

/// A card that can make cryptograms.
#[derive(Debug)]
pub struct TestCard {
    /// PAN.
    pub pan: Pan,
    /// PAN sequence number.
    pub psn: Psn,
    key: CardKey,
    /// The next ATC the card will use.
    pub atc: u16,
}

impl TestCard {
    /// A card personalised under `imk_hex` (32 hex digits) with `algorithm`.
    pub fn new(
        algorithm: CardAlgorithm,
        imk_hex: &str,
        pan: &str,
        psn: &str,
    ) -> Result<Self, KdfError> {
        let mut imk = [0u8; 16];
        hex::decode_to_slice(imk_hex, &mut imk).map_err(|_| KdfError::PanNotDigits)?;
        let imk = CardKey::new(algorithm, imk);
        let key = kdf::derive_card_key(&imk, pan, Some(psn))?;
        Ok(Self {
            pan: pan.parse().map_err(|_| KdfError::PanNotDigits)?,
            psn: psn.parse().map_err(|_| KdfError::PsnFormat)?,
            key,
            atc: 1,
        })
    }

    /// A demo SM4 card with a PAN made from `n` (fictional, 19 digits).
    pub fn demo_sm4(n: u64) -> Result<Self, KdfError> {
        Self::new(
            CardAlgorithm::Sm4,
            DEMO_IMK_SM4,
            &format!("621700{:013}", n % 10_000_000_000_000),
            "01",
        )
    }

    /// A demo 3DES card with a PAN made from `n` (fictional, 16 digits).
    pub fn demo_tdes(n: u64) -> Result<Self, KdfError> {
        Self::new(
            CardAlgorithm::Tdes,
            DEMO_IMK_TDES,
            &format!("622588{:010}", n % 10_000_000_000),
            "00",
        )
    }

    /// GENERATE AC: a cryptogram of type `cid` (`0x40` TC, `0x00` AAC) over the transaction,
    /// with the card's next ATC.
    pub fn generate_ac(
        &mut self,
        cid: u8,
        amount_fen: u64,
        currency: u16,
        txn_time: &TxnTime,
        kind: EntryKind,
    ) -> CardResult {
        let atc = self.atc;
        self.atc = self.atc.wrapping_add(1);
        let algorithm = self.key.algorithm().into();
        let data = mac_data::build(&MacInputs {
            amount_fen,
            currency,
            txn_time: txn_time.clone(),
            kind,
            unpredictable: atc.to_be_bytes().repeat(2).try_into().unwrap_or([0; 4]),
            atc,
            algorithm,
        });
        let session = kdf::derive_session_key(&self.key, atc);
        let ac = kdf::application_cryptogram(&session, &data, Sm4MacRule::default());
        CardResult {
            atc,
            cid: HexArray([cid]),
            cryptogram: HexArray(ac),
            algorithm,
            mac_data: MacData(data),
        }
    }

    /// A debit torn after GENERATE AC: the card debits with its next ATC and logs it, the answer
    /// is lost. Returns what the kernel's recovery finds at the next insert (the log record,
    /// the ATC before and after; the balance is not tracked here).
    pub fn torn_debit(
        &mut self,
        amount_fen: u64,
        currency: u16,
        txn_time: &TxnTime,
        kind: EntryKind,
    ) -> Recovered {
        let atc = self.atc;
        self.atc = self.atc.wrapping_add(1);
        Recovered {
            atc,
            evidence: RecoveryEvidence {
                source: RecoverySource::TornDebit,
                log_record: Some(log_record(amount_fen, currency, txn_time, kind, atc)),
                atc_before: atc.checked_sub(1),
                atc_after: Some(atc),
                balance_before_fen: None,
                balance_after_fen: None,
                note: None,
            },
        }
    }
}
