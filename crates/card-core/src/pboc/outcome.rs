//! What a transaction leaves behind: the [`TransactionRecord`] a ledger stores, and the
//! write-ahead [`DebitIntent`] the kernel hands to a [`DebitJournal`] just before the command
//! that can debit the card (GENERATE AC asking for a TC, or the qPBOC GET PROCESSING OPTIONS;
//! docs/pboc-profile.md "Recovery of a torn debit").

use super::PbocError;
use super::bits::{Aip, Cid, CvmResults, Tsi, Tvr};
use super::cryptogram::{self, CryptogramInput, CryptogramSource, DolData};
use super::data::{Amount, Date, Pan, Time};
use super::dol::Dol;
use super::oda::{OdaError, OdaMethod};
use super::select::Interface;

/// How the transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The card approved offline (TC, no online authorisation).
    ApprovedOffline,
    /// Declined offline, by the terminal or the card.
    DeclinedOffline,
    /// The issuer approved and the card accepted.
    ApprovedOnline,
    /// Declined after going online (by the issuer, or by the card after the issuer).
    DeclinedOnline,
    /// The transaction stopped before an outcome, with the reason.
    Aborted(PbocError),
}

impl Outcome {
    /// The outcome of a record: the error if the flow stopped, else the outcome reached.
    pub fn resolve(abort: Option<PbocError>, reached: Option<&Outcome>) -> Self {
        match (abort, reached) {
            (Some(e), _) => Self::Aborted(e),
            (None, Some(o)) => o.clone(),
            (None, None) => Self::Aborted(PbocError::OutOfOrder { step: "record" }),
        }
    }

    /// Approved, offline or online.
    pub fn is_approved(&self) -> bool {
        matches!(self, Self::ApprovedOffline | Self::ApprovedOnline)
    }
}

/// A completed (or aborted) transaction, as a ledger stores it. The PAN is a [`Pan`]
/// (zeroizing, masked in `Display` and `Debug`); no PIN or key is ever part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Contact or contactless.
    pub interface: Interface,
    /// The application's AID (empty if selection failed).
    pub aid: Vec<u8>,
    /// Application label.
    pub label: Option<String>,
    /// The PAN, once read.
    pub pan: Option<Pan>,
    /// PAN sequence number.
    pub psn: Option<u8>,
    /// Amount, authorised.
    pub amount: Amount,
    /// Amount, other.
    pub amount_other: Amount,
    /// Transaction currency code (n3).
    pub currency: [u8; 2],
    /// Transaction type `9C`.
    pub transaction_type: u8,
    /// Transaction date.
    pub date: Date,
    /// Transaction time.
    pub time: Time,
    /// Unpredictable number.
    pub unpredictable_number: [u8; 4],
    /// Application transaction counter of this transaction.
    pub atc: Option<u16>,
    /// Application interchange profile.
    pub aip: Option<Aip>,
    /// Cryptogram information data of the final cryptogram.
    pub cid: Option<Cid>,
    /// The final cryptogram (TC, AAC, or the ARQC when no second one came).
    pub cryptogram: Option<[u8; 8]>,
    /// The ARQC sent online, when there was one.
    pub arqc: Option<[u8; 8]>,
    /// Issuer application data `9F10`.
    pub iad: Vec<u8>,
    /// The data object list data sent with the command that produced the first cryptogram,
    /// as sent: for contact the CDOL1 data of the first GENERATE AC, for qPBOC the PDOL data.
    /// This is what the card received, not what it MACed: [`Self::cryptogram_input`] gives
    /// those bytes.
    pub cryptogram_data: Vec<u8>,
    /// The CDOL2 data of the second GENERATE AC, if sent.
    pub cdol2_data: Vec<u8>,
    /// The PDOL data sent in GET PROCESSING OPTIONS.
    pub pdol_data: Vec<u8>,
    /// The card's PDOL `9F38`, if it gave one.
    pub pdol: Option<Dol>,
    /// The card's CDOL1 `8C` (contact).
    pub cdol1: Option<Dol>,
    /// The card's CDOL2 `8D` (contact).
    pub cdol2: Option<Dol>,
    /// The command whose answer carried [`Self::cryptogram`].
    pub cryptogram_source: Option<CryptogramSource>,
    /// Terminal verification results at the end.
    pub tvr: Tvr,
    /// Transaction status information at the end.
    pub tsi: Tsi,
    /// CVM results.
    pub cvm_results: CvmResults,
    /// The authorisation response code sent to the card or received from the issuer.
    pub arc: Option<[u8; 2]>,
    /// The offline data authentication method used, if any.
    pub oda: Option<OdaMethod>,
    /// Why offline data authentication failed, if it did.
    pub oda_failure: Option<OdaError>,
    /// Issuer script results.
    pub script_results: Vec<[u8; 5]>,
    /// Whether the card treated the transaction as electronic cash.
    pub ec: bool,
    /// Electronic cash balance before, when read.
    pub ec_balance_before: Option<Amount>,
    /// Electronic cash balance after: from the issuer discretionary data of `9F10`
    /// (JR/T 0025.13 §7.4.6 表3) or read afterwards.
    pub ec_balance_after: Option<Amount>,
    /// A signature line is to be printed (CVM).
    pub signature_required: bool,
    /// Whether the command that can debit the card was sent (the journal holds an intent).
    pub debit_attempted: bool,
    /// The outcome.
    pub outcome: Outcome,
}

impl TransactionRecord {
    /// The exact bytes a card of cryptogram version 01 MACed into [`Self::cryptogram`]
    /// (JR/T 0025.5 附录 E 表E.1; [`super::cryptogram`] for the contract): the
    /// amounts, country, TVR, currency, date, type and unpredictable number the card received
    /// in the DOLs of the command that produced it (first GENERATE AC: CDOL1, then PDOL;
    /// second: CDOL2, CDOL1, PDOL; qPBOC: PDOL), then the AIP, the ATC and the CVR of
    /// [`Self::iad`].
    ///
    /// `None` when there is no cryptogram, a list or its data is missing, or the card is not of
    /// cryptogram version 01. A host verifying the cryptogram (hsm-sim `KQ`) MACs these bytes
    /// with the session key of [`Self::atc`].
    pub fn cryptogram_input(&self) -> Option<CryptogramInput> {
        self.cryptogram?;
        let aip = self.aip?;
        let atc = self.atc?;
        let pdol = self.pdol.as_ref().map(|d| DolData::new(d, &self.pdol_data));
        let mut sources = Vec::with_capacity(3);
        match self.cryptogram_source? {
            CryptogramSource::GetProcessingOptions => sources.extend(pdol),
            CryptogramSource::FirstGenerateAc => {
                sources.push(DolData::new(self.cdol1.as_ref()?, &self.cryptogram_data));
                sources.extend(pdol);
            }
            CryptogramSource::SecondGenerateAc => {
                sources.push(DolData::new(self.cdol2.as_ref()?, &self.cdol2_data));
                sources.push(DolData::new(self.cdol1.as_ref()?, &self.cryptogram_data));
                sources.extend(pdol);
            }
        }
        cryptogram::cryptogram_input(&sources, aip, atc, &self.iad)
    }

    /// Whether the card debited its electronic cash balance offline: it answered a TC to the
    /// first GENERATE AC of an electronic cash transaction (JR/T 0025.13 §7.4.5) or to the
    /// qPBOC GET PROCESSING OPTIONS (JR/T 0025.12 §7.7.10, §7.7.19).
    ///
    /// The debit stands even when the terminal then declines ([`Outcome::DeclinedOffline`]
    /// after a hot-listed or expired card, a failed fDDA or CDA): the card cannot take it back
    /// and [`check_debit`](super::recovery::check_debit) would call it completed. The ledger
    /// books such a transaction as an approved debit of the amount, with this TC
    /// (docs/pboc-kernel.md "What the ledger books").
    pub fn card_debited_offline(&self) -> bool {
        let tc = self
            .cid
            .is_some_and(|c| c.ac_type() == Some(super::bits::AcType::Tc));
        tc && match self.cryptogram_source {
            Some(CryptogramSource::GetProcessingOptions) => true,
            Some(CryptogramSource::FirstGenerateAc) => self.ec,
            _ => false,
        }
    }
}

/// The write-ahead record of a debit about to be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitIntent {
    /// The AID.
    pub aid: Vec<u8>,
    /// The PAN, if known (qPBOC learns it only after the debit).
    pub pan: Option<Pan>,
    /// PAN sequence number.
    pub psn: Option<u8>,
    /// The card's ATC before this transaction (GET DATA `9F36` before GET PROCESSING OPTIONS).
    pub atc_before: Option<u16>,
    /// Amount.
    pub amount: Amount,
    /// Currency.
    pub currency: [u8; 2],
    /// Transaction date.
    pub date: Date,
    /// Transaction time.
    pub time: Time,
    /// The electronic cash balance before, if read.
    pub ec_balance_before: Option<Amount>,
}

/// Why the journal could not record an intent: the debit is not attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the journal could not record the intent: {0}")]
pub struct JournalError(pub String);

/// The caller's write-ahead journal (the kiosk's ledger).
pub trait DebitJournal {
    /// Persist the intent before the debit command is sent. An error aborts the transaction
    /// without sending it.
    fn record_intent(&mut self, intent: &DebitIntent) -> Result<(), JournalError>;
}

/// A journal that keeps nothing (balance inquiries, tests that do not look).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

impl DebitJournal for NoJournal {
    fn record_intent(&mut self, _intent: &DebitIntent) -> Result<(), JournalError> {
        Ok(())
    }
}

/// A journal that keeps the intents in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryJournal(pub Vec<DebitIntent>);

impl DebitJournal for MemoryJournal {
    fn record_intent(&mut self, intent: &DebitIntent) -> Result<(), JournalError> {
        self.0.push(intent.clone());
        Ok(())
    }
}

/// The electronic cash balance in the issuer discretionary data of `9F10` (JR/T 0025.13 §7.4.6
/// 表3; JR/T 0025.12 附录 D 表D.1, options `01` and `03`): the IAD's first byte is the length of
/// the issuer application data proper; then the IDD length, its ID and the amount.
pub fn ec_balance_from_iad(iad: &[u8]) -> Option<Amount> {
    let (&len, rest) = iad.split_first()?;
    let idd = rest.get(usize::from(len)..)?;
    let (&idd_len, idd) = idd.split_first()?;
    let idd = idd.get(..usize::from(idd_len))?;
    match idd {
        [0x01 | 0x03, amount @ ..] => Amount::from_bcd(amount.get(..5)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn balance_in_the_idd() {
        let iad = h("0701010300000004 0A01 0000001234 AABBCCDD");
        assert_eq!(ec_balance_from_iad(&iad), Amount::new(1234));
        assert_eq!(ec_balance_from_iad(&h("0701010300000004")), None);
        assert_eq!(ec_balance_from_iad(&h("07010103")), None);
        assert_eq!(
            ec_balance_from_iad(&h("07010103000000040A02000000123400000000")),
            None
        );
    }
}
