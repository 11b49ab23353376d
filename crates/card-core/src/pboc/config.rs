//! The terminal's parameters (JR/T 0025.6 §8.2 表40, §8.3) and one transaction's inputs.
//!
//! Nothing here reads a clock or a random source: the caller passes the date, time,
//! unpredictable number and the random number for random transaction selection, so a flow is a
//! function of its inputs and the card's answers, and a transcript can replay it.

use super::bits::{TerminalCapabilities, Ttq};
use super::data::{Amount, Date, Time};
use super::dol::Dol;
use super::select::SupportedAid;
use super::store::DataStore;

/// Terminal action codes (JR/T 0025.6 §7.9.2 表25): TVR bits that decline, go online, or
/// decline when online is not possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionCodes {
    /// TAC-denial.
    pub denial: [u8; 5],
    /// TAC-online.
    pub online: [u8; 5],
    /// TAC-default.
    pub default: [u8; 5],
}

/// Random transaction selection (JR/T 0025.6 §7.8.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomSelection {
    /// Threshold value for biased random selection.
    pub threshold: Amount,
    /// Target percentage (0-99).
    pub target_percent: u8,
    /// Maximum target percentage for biased random selection (0-99).
    pub max_target_percent: u8,
}

/// The terminal's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalConfig {
    /// The applications the terminal supports, with their selection indicators.
    pub supported_aids: Vec<SupportedAid>,
    /// Whether the cardholder can confirm an application that asks for it (JR/T 0025.6
    /// §7.2.5.2); if not, such applications are not selected automatically.
    pub confirmation_supported: bool,
    /// Terminal type `9F35` (JR/T 0025.6 附录 A.1).
    pub terminal_type: u8,
    /// Terminal capabilities `9F33`.
    pub capabilities: TerminalCapabilities,
    /// Additional terminal capabilities `9F40`.
    pub additional_capabilities: [u8; 5],
    /// Terminal country code `9F1A` (n3).
    pub country: [u8; 2],
    /// Transaction currency code `5F2A` (n3).
    pub currency: [u8; 2],
    /// Transaction currency exponent `5F36`.
    pub currency_exponent: u8,
    /// Application version number of the terminal `9F09`.
    pub app_version: [u8; 2],
    /// Terminal floor limit `9F1B`.
    pub floor_limit: Amount,
    /// Electronic cash terminal transaction limit `9F7B` (JR/T 0025.13 §7.4.2).
    pub ec_terminal_limit: Option<Amount>,
    /// Whether the terminal supports electronic cash.
    pub ec_supported: bool,
    /// Terminal action codes.
    pub tac: ActionCodes,
    /// The default DDOL (JR/T 0025.6 §7.5.5.2 表14: `9F37 04`).
    pub default_ddol: Dol,
    /// Terminal transaction qualifiers `9F66` (qPBOC).
    pub ttq: Ttq,
    /// Whether the terminal supports the SM algorithms (`DF69 = 01`, JR/T 0025.17 §10.3.3).
    pub sm_supported: bool,
    /// Random transaction selection, if the terminal does it.
    pub random_selection: Option<RandomSelection>,
    /// Merchant name and location `9F4E`.
    pub merchant_name: Vec<u8>,
    /// Further terminal data any DOL may ask for (merchant identifier `9F16`, terminal
    /// identification `9F1C`, IFD serial number `9F1E`, ...). Values set by the flow win.
    pub extra: DataStore,
}

impl TerminalConfig {
    /// The kiosk defaults of docs/pboc-profile.md ("Terminal parameters"): UnionPay debit AID
    /// with partial matching, type `26` (unattended, offline only), capabilities `20 88 C8`,
    /// country and currency `0156`, TTQ `28 00 00 80` (qPBOC, offline only, no online PIN, no
    /// signature, fDDA version 01: JR/T 0025.12 表3, as type `26` says), `9F7B` 1,000.00, floor
    /// limit 0, TACs `DC4000A800` / `0010000000` / `DC4004F800`, SM supported.
    ///
    /// An online-capable variant changes both: a type `x5` (or `x4`) and a TTQ without byte 1
    /// bit 4, e.g. `26 00 00 80` with online PIN and signature where the terminal has them.
    pub fn kiosk() -> Self {
        Self {
            supported_aids: vec![SupportedAid::partial(&[
                0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01,
            ])],
            confirmation_supported: false,
            terminal_type: 0x26,
            capabilities: TerminalCapabilities::from_bytes([0x20, 0x88, 0xc8]),
            additional_capabilities: [0x60, 0x00, 0xf0, 0xa0, 0x01],
            country: [0x01, 0x56],
            currency: [0x01, 0x56],
            currency_exponent: 2,
            app_version: [0x00, 0x30],
            floor_limit: Amount::ZERO,
            ec_terminal_limit: Amount::new(100_000),
            ec_supported: true,
            tac: ActionCodes {
                default: [0xdc, 0x40, 0x00, 0xa8, 0x00],
                denial: [0x00, 0x10, 0x00, 0x00, 0x00],
                online: [0xdc, 0x40, 0x04, 0xf8, 0x00],
            },
            default_ddol: Dol::from_pairs(&[(0x9f37, 4)]),
            ttq: Ttq::from_bytes([0x28, 0x00, 0x00, 0x80]),
            sm_supported: true,
            random_selection: None,
            merchant_name: b"SOCIAL SECURITY BUREAU".to_vec(),
            extra: DataStore::new(),
        }
    }

    /// Whether the terminal can go online (JR/T 0025.6 附录 A.1: types x1, x2, x4, x5).
    pub fn online_capable(&self) -> bool {
        matches!(self.terminal_type & 0x0f, 1 | 2 | 4 | 5)
    }

    /// Whether the terminal is online only (types x1, x4).
    pub fn online_only(&self) -> bool {
        matches!(self.terminal_type & 0x0f, 1 | 4)
    }

    /// Whether the terminal is attended (types x1-x3).
    pub fn attended(&self) -> bool {
        matches!(self.terminal_type & 0x0f, 1..=3)
    }

    /// Whether the terminal is an ATM: types 14-16 with cash capability (附录 A.1).
    pub fn atm(&self) -> bool {
        matches!(self.terminal_type, 0x14..=0x16)
            && self
                .additional_capabilities
                .first()
                .is_some_and(|b| b & 0x80 != 0)
    }
}

/// Transaction types (`9C`, the first two digits of the GB/T 15150 processing code).
pub mod transaction_type {
    /// Goods and services.
    pub const PURCHASE: u8 = 0x00;
    /// Cash.
    pub const CASH: u8 = 0x01;
    /// Purchase with cashback.
    pub const CASHBACK: u8 = 0x09;
    /// Balance inquiry.
    pub const INQUIRY: u8 = 0x31;
    /// Electronic cash load to a designated account (圈存), the value UnionPay uses; the
    /// load transaction's type is the issuer's choice (JR/T 0025.13 附录 B.3.3).
    pub const EC_LOAD: u8 = 0x60;
}

/// One transaction's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionParams {
    /// Amount, authorised `9F02`.
    pub amount: Amount,
    /// Amount, other `9F03` (cashback).
    pub amount_other: Amount,
    /// Transaction type `9C` ([`transaction_type`]).
    pub transaction_type: u8,
    /// Transaction date `9A`, from the caller's clock.
    pub date: Date,
    /// Transaction time `9F21`.
    pub time: Time,
    /// Unpredictable number `9F37`, from the caller's random source.
    pub unpredictable_number: [u8; 4],
    /// A random number 1-99 for random transaction selection (JR/T 0025.6 §7.8.7).
    pub random_percent: u8,
    /// The merchant forces the transaction online (§7.8.5), e.g. an electronic cash load.
    pub force_online: bool,
    /// Whether the transaction may be electronic cash (`9F7A`, JR/T 0025.13 §7.4.2); a load
    /// sets it to `false`.
    pub allow_ec: bool,
}

impl TransactionParams {
    /// The terminal data every flow can give a DOL (JR/T 0025.6 §8.2 表40): amounts, country,
    /// currency, date, time, type, unpredictable number, terminal type and capabilities,
    /// merchant name, the EC indicator `9F7A` (JR/T 0025.13 §7.4.2) and limit `9F7B`, `DF69`
    /// (JR/T 0025.17 §10.3.3), the TTQ `9F66`, and a zero TVR; then the flow adds its own.
    pub fn terminal_data(&self, t: &TerminalConfig) -> DataStore {
        let mut d = t.extra.clone();
        d.set(0x9f02, self.amount.to_bcd());
        d.set(0x9f03, self.amount_other.to_bcd());
        d.set(0x9f1a, t.country);
        d.set(0x5f2a, t.currency);
        d.set(0x5f36, [t.currency_exponent]);
        d.set(0x95, [0; 5]);
        d.set(0x9a, self.date.to_bcd());
        d.set(0x9f21, self.time.to_bcd());
        d.set(0x9c, [self.transaction_type]);
        d.set(0x9f37, self.unpredictable_number);
        d.set(0x9f35, [t.terminal_type]);
        d.set(0x9f33, t.capabilities.to_bytes());
        d.set(0x9f40, t.additional_capabilities);
        d.set(0x9f09, t.app_version);
        d.set(
            0x9f1b,
            u32::try_from(t.floor_limit.minor_units())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        d.set(0x9f4e, t.merchant_name.clone());
        d.set(0x9f66, t.ttq.to_bytes());
        d.set(0x9f7a, [super::risk::ec_indicator(t, self)]);
        d.set(0xdf69, [u8::from(t.sm_supported)]);
        if let Some(limit) = t.ec_terminal_limit {
            d.set(0x9f7b, limit.to_bcd());
        }
        d
    }

    /// A purchase of `amount` on `date` at `time` with unpredictable number `un`.
    pub fn purchase(amount: Amount, date: Date, time: Time, un: [u8; 4]) -> Self {
        Self {
            amount,
            amount_other: Amount::ZERO,
            transaction_type: transaction_type::PURCHASE,
            date,
            time,
            unpredictable_number: un,
            random_percent: 99,
            force_online: false,
            allow_ec: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_types() {
        let mut t = TerminalConfig::kiosk();
        assert!(!t.online_capable());
        // The TTQ agrees with the type: offline only (JR/T 0025.12 表3 byte 1 bit 4).
        assert!(t.ttq.contains(super::super::bits::TtqBit::OfflineOnly));
        assert!(
            !t.ttq.contains(super::super::bits::TtqBit::Signature),
            "unattended"
        );
        assert!(!t.attended());
        t.terminal_type = 0x22;
        assert!(t.online_capable() && !t.online_only() && t.attended());
        t.terminal_type = 0x14;
        assert!(t.online_only());
        t.additional_capabilities[0] = 0x80;
        assert!(t.atm());
    }
}
