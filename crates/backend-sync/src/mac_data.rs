//! The data a PBOC card MACs into its application cryptogram, as [`parse`] reads it and
//! [`build`] writes it, so the server can check that the MACed amount, currency, date, type and
//! ATC are the ones the entry claims.
//!
//! The layout is that of cryptogram version 01: the elements and their order of JR/T 0025.5
//! 附录 E 表E.1 (the order of 附录 D.1 表D.1), eight terminal elements and then the card's
//! own. The first ten are the recommended minimum set of JR/T 0025.7 §6.1.1 表22 (EMV Book 2
//! §8.1.1, Table 26); the card verification results are the optional source of 表23. The
//! terminal elements are the values the card received for those tags, looked up by tag: in
//! GENERATE AC, whose data is what CDOL1 (CDOL2 for the second) asks for (JR/T 0025.5 §14.3,
//! 附录 D.2 step 1), and in the PDOL data of GET PROCESSING OPTIONS (qPBOC). It is not the CDOL1
//! data as sent: a CDOL1 may ask for more (the project's card also asks for the time `9F21` and
//! the merchant name `9F4E`), which is not MACed. card-core rebuilds the same bytes on the
//! terminal (`TransactionRecord::cryptogram_input`, docs/pboc-kernel.md "The cryptogram input").
//!
//! | offset | length | element | [`check`] compares it with |
//! |---:|---:|---|---|
//! | 0 | 6 | Amount, Authorised (9F02), n12 BCD | the entry's amount in fen |
//! | 6 | 6 | Amount, Other (9F03) | – |
//! | 12 | 2 | Terminal Country Code (9F1A) | – |
//! | 14 | 5 | Terminal Verification Results (95) | – |
//! | 19 | 2 | Transaction Currency Code (5F2A), n3 BCD | the entry's currency |
//! | 21 | 3 | Transaction Date (9A), YYMMDD BCD | the date of the entry's time |
//! | 24 | 1 | Transaction Type (9C) | the entry kind's type (`00` purchase, `20` refund) |
//! | 25 | 4 | Unpredictable Number (9F37) | – |
//! | 29 | 2 | Application Interchange Profile (82) | – |
//! | 31 | 2 | Application Transaction Counter (9F36) | the ATC the entry's card result gives |
//! | 33 | 4 | Card Verification Results (bytes 4-7 of 9F10) | – |
//!
//! 37 bytes in all. [`parse`] needs the 33 up to and including the ATC ([`MIN_LEN`]) and ignores
//! whatever follows; the wire carries at most 256 ([`crate::entry::MAX_MAC_DATA`]).

use crate::entry::{Algorithm, EntryKind, TxnTime};

/// Bytes up to and including the ATC.
pub const MIN_LEN: usize = 33;

/// Why MACed data does not match its entry, one variant per element.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacDataError {
    /// Shorter than the 33 bytes up to the ATC.
    #[error("the MACed data has {0} bytes, at least 33 are needed")]
    TooShort(usize),
    /// An amount field is not BCD.
    #[error("the MACed amount is not BCD")]
    AmountNotBcd,
    /// The authorised amount differs from the entry's.
    #[error("the MACed amount differs from the entry's")]
    Amount,
    /// The currency differs from the entry's.
    #[error("the MACed currency differs from the entry's")]
    Currency,
    /// The transaction date differs from the entry's.
    #[error("the MACed transaction date differs from the entry's")]
    Date,
    /// The transaction type does not fit the entry's kind.
    #[error("the MACed transaction type does not fit the entry's kind")]
    TransactionType,
    /// The ATC differs from the entry's.
    #[error("the MACed ATC differs from the entry's")]
    Atc,
}

/// The elements of the layout the server checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacFields {
    /// Amount, Authorised, in fen.
    pub amount_fen: u64,
    /// Transaction currency code as a number (156).
    pub currency: u16,
    /// Transaction date, YYMMDD BCD.
    pub date: [u8; 3],
    /// Transaction type.
    pub transaction_type: u8,
    /// Application transaction counter.
    pub atc: u16,
}

fn bcd_number(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, b| {
        let (hi, lo) = (b >> 4, b & 0x0f);
        if hi > 9 || lo > 9 {
            return None;
        }
        Some(acc * 100 + u64::from(hi) * 10 + u64::from(lo))
    })
}

/// `value` as `len` bytes of BCD (leading zeros).
pub fn to_bcd(mut value: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for b in out.iter_mut().rev() {
        let lo = (value % 10) as u8;
        value /= 10;
        let hi = (value % 10) as u8;
        value /= 10;
        *b = (hi << 4) | lo;
    }
    out
}

/// Read the checked elements from MACed data.
pub fn parse(data: &[u8]) -> Result<MacFields, MacDataError> {
    let head: &[u8; MIN_LEN] = data
        .first_chunk()
        .ok_or(MacDataError::TooShort(data.len()))?;
    let amount =
        bcd_number(head.get(0..6).unwrap_or_default()).ok_or(MacDataError::AmountNotBcd)?;
    let currency =
        bcd_number(head.get(19..21).unwrap_or_default()).ok_or(MacDataError::Currency)?;
    let [d0, d1, d2] = [head[21], head[22], head[23]];
    let [a0, a1] = [head[31], head[32]];
    Ok(MacFields {
        amount_fen: amount,
        currency: u16::try_from(currency).map_err(|_| MacDataError::Currency)?,
        date: [d0, d1, d2],
        transaction_type: head[24],
        atc: u16::from_be_bytes([a0, a1]),
    })
}

/// Check MACed data against the entry's amount, currency, date, kind and ATC.
pub fn check(
    data: &[u8],
    amount_fen: u64,
    currency: u16,
    txn_time: &TxnTime,
    kind: EntryKind,
    atc: u16,
) -> Result<(), MacDataError> {
    let f = parse(data)?;
    if f.amount_fen != amount_fen {
        return Err(MacDataError::Amount);
    }
    if f.currency != currency {
        return Err(MacDataError::Currency);
    }
    if f.date != txn_time.date_bcd() {
        return Err(MacDataError::Date);
    }
    if f.transaction_type != kind.transaction_type() {
        return Err(MacDataError::TransactionType);
    }
    if f.atc != atc {
        return Err(MacDataError::Atc);
    }
    Ok(())
}

/// The inputs of [`build`].
#[derive(Debug, Clone)]
pub struct MacInputs {
    /// Amount in fen.
    pub amount_fen: u64,
    /// Currency (156).
    pub currency: u16,
    /// Transaction time (its date goes in).
    pub txn_time: TxnTime,
    /// Kind (its transaction type goes in).
    pub kind: EntryKind,
    /// Unpredictable number.
    pub unpredictable: [u8; 4],
    /// ATC.
    pub atc: u16,
    /// The algorithm: its identifier (JR/T 0025.5 附录 F 表F.1, `01` 3DES, `04` SM4) goes into
    /// the third byte of the CVR [`build`] writes. A real card keeps it in `9F10` after the
    /// CVR, not in it; here it only makes the data of the two algorithms differ.
    pub algorithm: Algorithm,
}

/// Build 37 bytes of MACed data in this layout, as the tests' simulated card
/// (`testkit`) MACs it: the amount, `9F03` zero, terminal country `0156`, TVR all zero, the
/// currency, the date of the transaction time, the kind's transaction type, the unpredictable
/// number, AIP `7C00`, the ATC, and the CVR `03 A0 <algorithm> 00` ([`MacInputs::algorithm`]).
pub fn build(i: &MacInputs) -> Vec<u8> {
    let mut d = Vec::with_capacity(37);
    d.extend(to_bcd(i.amount_fen, 6));
    d.extend([0u8; 6]);
    d.extend([0x01, 0x56]);
    d.extend([0u8; 5]);
    d.extend(to_bcd(u64::from(i.currency), 2));
    d.extend(i.txn_time.date_bcd());
    d.push(i.kind.transaction_type());
    d.extend(i.unpredictable);
    d.extend([0x7C, 0x00]);
    d.extend(i.atc.to_be_bytes());
    let alg = match i.algorithm {
        Algorithm::Tdes => 0x01,
        Algorithm::Sm4 => 0x04,
    };
    d.extend([0x03, 0xA0, alg, 0x00]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> MacInputs {
        MacInputs {
            amount_fen: 12_345,
            currency: 156,
            txn_time: "20250102030405".parse().unwrap(),
            kind: EntryKind::EcPurchase,
            unpredictable: [1, 2, 3, 4],
            atc: 0x0102,
            algorithm: Algorithm::Sm4,
        }
    }

    #[test]
    fn built_data_checks_and_each_changed_field_is_caught() {
        let i = inputs();
        let d = build(&i);
        assert_eq!(d.len(), 37);
        assert_eq!(&d[0..6], &[0, 0, 0, 0x01, 0x23, 0x45]);
        assert_eq!(check(&d, 12_345, 156, &i.txn_time, i.kind, 0x0102), Ok(()));
        assert_eq!(
            check(&d, 12_346, 156, &i.txn_time, i.kind, 0x0102),
            Err(MacDataError::Amount)
        );
        assert_eq!(
            check(&d, 12_345, 840, &i.txn_time, i.kind, 0x0102),
            Err(MacDataError::Currency)
        );
        let other_day: TxnTime = "20250103030405".parse().unwrap();
        assert_eq!(
            check(&d, 12_345, 156, &other_day, i.kind, 0x0102),
            Err(MacDataError::Date)
        );
        assert_eq!(
            check(&d, 12_345, 156, &i.txn_time, EntryKind::Refund, 0x0102),
            Err(MacDataError::TransactionType)
        );
        assert_eq!(
            check(&d, 12_345, 156, &i.txn_time, i.kind, 0x0103),
            Err(MacDataError::Atc)
        );
        assert_eq!(parse(&d[..32]), Err(MacDataError::TooShort(32)));
        let mut bad = d.clone();
        bad[0] = 0xA0;
        assert_eq!(parse(&bad), Err(MacDataError::AmountNotBcd));
    }
}
