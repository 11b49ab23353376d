//! Processing restrictions (JR/T 0025.6 §7.6) and terminal risk management (§7.8), with the
//! electronic cash rules of JR/T 0025.13 §7.4.2-§7.4.3.
//!
//! Both only set TVR bits. The exception file ("hot list") is the caller's: a [`HotList`] the
//! kiosk backs with its ledger's copy.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::bits::{AucBit, Tvr, TvrBit};
use super::config::{TerminalConfig, TransactionParams, transaction_type};
use super::data::{Amount, Date, Pan};
use super::records::CardData;

/// The terminal exception file (JR/T 0025.6 §7.8.4): is this card listed?
pub trait HotList {
    /// Whether the PAN (with its sequence number, when the card has one) is listed.
    fn is_listed(&self, pan: &Pan, psn: Option<u8>) -> bool;
}

/// An empty exception file.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHotList;

impl HotList for NoHotList {
    fn is_listed(&self, _pan: &Pan, _psn: Option<u8>) -> bool {
        false
    }
}

/// A hot list held in memory: PAN digits and optional sequence number (`None` lists every
/// sequence number).
#[derive(Debug, Clone, Default)]
pub struct HotListEntries(pub Vec<(String, Option<u8>)>);

impl HotList for HotListEntries {
    fn is_listed(&self, pan: &Pan, psn: Option<u8>) -> bool {
        self.0
            .iter()
            .any(|(p, s)| p == pan.reveal() && (s.is_none() || *s == psn))
    }
}

/// Processing restrictions, JR/T 0025.6 §7.6.3-§7.6.6: application version, application usage
/// control (with 表17), effective and expiration dates.
pub fn processing_restrictions(
    card: &CardData,
    terminal: &TerminalConfig,
    params: &TransactionParams,
    tvr: &mut Tvr,
) {
    // §7.6.3.
    if let Some(v) = card.app_version
        && v != terminal.app_version
    {
        tvr.set(TvrBit::VersionsDiffer);
    }
    // §7.6.4.
    if let Some(auc) = card.auc
        && !auc_allows(auc, card, terminal, params)
    {
        tvr.set(TvrBit::ServiceNotAllowed);
    }
    // §7.6.5.
    if card.effective.is_some_and(|d| d > params.date) {
        tvr.set(TvrBit::NotYetEffective);
    }
    // §7.6.6.
    if card.expiry < params.date {
        tvr.set(TvrBit::Expired);
    }
}

fn auc_allows(
    auc: super::bits::Auc,
    card: &CardData,
    terminal: &TerminalConfig,
    params: &TransactionParams,
) -> bool {
    if terminal.atm() {
        if !auc.contains(AucBit::Atm) {
            return false;
        }
    } else if !auc.contains(AucBit::NonAtm) {
        return false;
    }
    let Some(country) = card.issuer_country else {
        return true;
    };
    let domestic = country == terminal.country;
    let t = params.transaction_type;
    let cash = t == transaction_type::CASH;
    let purchase = matches!(t, transaction_type::PURCHASE | transaction_type::CASHBACK);
    let cashback = t == transaction_type::CASHBACK || params.amount_other != Amount::ZERO;
    let (cash_bit, goods, services, back) = if domestic {
        (
            AucBit::DomesticCash,
            AucBit::DomesticGoods,
            AucBit::DomesticServices,
            AucBit::DomesticCashback,
        )
    } else {
        (
            AucBit::InternationalCash,
            AucBit::InternationalGoods,
            AucBit::InternationalServices,
            AucBit::InternationalCashback,
        )
    };
    !(cash && !auc.contains(cash_bit)
        || purchase && !(auc.contains(goods) || auc.contains(services))
        || cashback && !auc.contains(back))
}

/// The electronic cash terminal support indicator `9F7A` for the GPO (JR/T 0025.13 §7.4.2):
/// `01` when the terminal supports EC, the transaction is a purchase, and the amount is below
/// the EC terminal transaction limit (or, without one, below the floor limit).
pub fn ec_indicator(terminal: &TerminalConfig, params: &TransactionParams) -> u8 {
    let limit = terminal.ec_terminal_limit.unwrap_or(terminal.floor_limit);
    u8::from(
        terminal.ec_supported
            && params.allow_ec
            && params.transaction_type == transaction_type::PURCHASE
            && params.amount < limit,
    )
}

/// GET DATA of a primitive object `80 CA P1 P2 00`: its value if the card answers `9000` with
/// that tag (JR/T 0025.5 附录 B.7), `None` otherwise.
pub fn get_data<C: CardChannel>(
    s: &mut CardSession<C>,
    tag: u16,
) -> Result<Option<Vec<u8>>, PbocError> {
    let [p1, p2] = tag.to_be_bytes();
    let r = s.send(&Command::new(0x80, 0xca, p1, p2).expect_data())?;
    if !r.is_success() {
        return Ok(None);
    }
    Ok(TlvIter::new(r.data())
        .find(Tag::new(u32::from(tag)))
        .ok()
        .flatten()
        .map(|t| t.value.to_vec()))
}

/// GET DATA of a two-byte counter (`9F36`, `9F13`).
pub fn get_counter<C: CardChannel>(
    s: &mut CardSession<C>,
    tag: u16,
) -> Result<Option<u16>, PbocError> {
    Ok(get_data(s, tag)?.and_then(|v| <[u8; 2]>::try_from(v).ok().map(u16::from_be_bytes)))
}

/// GET DATA of an n12 amount (`9F79`, `9F6D`, `9F77`, `9F78`).
pub fn get_amount<C: CardChannel>(
    s: &mut CardSession<C>,
    tag: u16,
) -> Result<Option<Amount>, PbocError> {
    Ok(get_data(s, tag)?.and_then(|v| Amount::from_bcd(&v)))
}

/// Terminal risk management, JR/T 0025.6 §7.8.4-§7.8.9. With `ec` set (an electronic cash
/// transaction, JR/T 0025.13 §7.4.3) floor limit, random selection and velocity checking are
/// skipped.
pub fn terminal_risk_management<C: CardChannel>(
    s: &mut CardSession<C>,
    card: &CardData,
    terminal: &TerminalConfig,
    params: &TransactionParams,
    hot_list: &dyn HotList,
    ec: bool,
    tvr: &mut Tvr,
) -> Result<(), PbocError> {
    // §7.8.4.
    if hot_list.is_listed(&card.pan, card.psn) {
        tvr.set(TvrBit::CardOnExceptionFile);
    }
    // §7.8.5.
    if params.force_online {
        tvr.set(TvrBit::MerchantForcedOnline);
    }
    if ec {
        return Ok(());
    }
    // §7.8.6 (the terminal keeps no transaction log for split sales).
    if params.amount >= terminal.floor_limit {
        tvr.set(TvrBit::FloorLimitExceeded);
    }
    // §7.8.7.
    if let Some(rs) = terminal.random_selection
        && randomly_selected(
            rs,
            terminal.floor_limit,
            params.amount,
            params.random_percent,
        )
    {
        tvr.set(TvrBit::RandomlySelectedOnline);
    }
    // §7.8.8 and §7.8.9, when the card has both limits.
    if let (Some(lcol), Some(ucol)) = (card.lcol, card.ucol) {
        let atc = get_counter(s, 0x9f36)?;
        let last_online = get_counter(s, 0x9f13)?;
        match (atc, last_online) {
            (Some(atc), Some(last)) => {
                let n = atc.saturating_sub(last);
                if n > u16::from(lcol) {
                    tvr.set(TvrBit::LowerOfflineLimitExceeded);
                }
                if n > u16::from(ucol) {
                    tvr.set(TvrBit::UpperOfflineLimitExceeded);
                }
                if last == 0 {
                    tvr.set(TvrBit::NewCard);
                }
            }
            _ => {
                tvr.set(TvrBit::IccDataMissing);
                tvr.set(TvrBit::LowerOfflineLimitExceeded);
                tvr.set(TvrBit::UpperOfflineLimitExceeded);
            }
        }
    }
    Ok(())
}

/// Random and biased random selection, §7.8.7 (示例 表23).
pub fn randomly_selected(
    rs: super::config::RandomSelection,
    floor_limit: Amount,
    amount: Amount,
    random: u8,
) -> bool {
    if amount >= floor_limit {
        return false;
    }
    let random = u64::from(random);
    if amount < rs.threshold {
        return random <= u64::from(rs.target_percent);
    }
    let span = floor_limit
        .minor_units()
        .saturating_sub(rs.threshold.minor_units());
    if span == 0 {
        return false;
    }
    let over = amount.minor_units() - rs.threshold.minor_units();
    let extra = u64::from(rs.max_target_percent.saturating_sub(rs.target_percent));
    // target = target% + (max% - target%) * over / span, compared without rounding:
    // random <= target  <=>  random * span <= target% * span + extra * over.
    random * span <= u64::from(rs.target_percent) * span + extra * over
}

/// Whether the application has expired on `date` (used by qPBOC, JR/T 0025.12 §7.7.20).
pub fn expired(card: &CardData, date: Date) -> bool {
    card.expiry < date
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pboc::config::RandomSelection;

    #[test]
    fn random_selection_examples_of_table_23() {
        let rs = RandomSelection {
            threshold: Amount::new(40).unwrap(),
            target_percent: 20,
            max_target_percent: 50,
        };
        let floor = Amount::new(100).unwrap();
        // Case 1: 20 below the threshold, random 25 > 20: not selected.
        assert!(!randomly_selected(rs, floor, Amount::new(20).unwrap(), 25));
        // Case 2: 60, target 30 %, random 25: selected.
        assert!(randomly_selected(rs, floor, Amount::new(60).unwrap(), 25));
        assert!(randomly_selected(rs, floor, Amount::new(60).unwrap(), 30));
        assert!(!randomly_selected(rs, floor, Amount::new(60).unwrap(), 31));
        // Case 3: above the floor limit: no random selection.
        assert!(!randomly_selected(rs, floor, Amount::new(150).unwrap(), 1));
    }

    /// A card with application version `9F08`, usage control `9F07` and issuer country
    /// `5F28` as given, against the kiosk (a non-ATM terminal in China, version 0030) on a
    /// domestic purchase dated 2026-11-28.
    fn restrictions(version: [u8; 2], auc: Option<[u8; 2]>, country: [u8; 2]) -> Tvr {
        use crate::pboc::records::Mandatory;
        let mut s = crate::pboc::store::DataStore::new();
        s.set(0x5a, [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90]);
        s.set(0x5f24, [0x30, 0x12, 0x31]);
        s.set(0x9f08, version);
        s.set(0x5f28, country);
        if let Some(auc) = auc {
            s.set(0x9f07, auc);
        }
        let card = CardData::from_store(&s, Mandatory::Qpboc).unwrap();
        let params = TransactionParams::purchase(
            Amount::new(100).unwrap(),
            Date::new(2026, 11, 28).unwrap(),
            super::super::data::Time::new(12, 0, 0).unwrap(),
            [0; 4],
        );
        let mut tvr = Tvr::default();
        processing_restrictions(&card, &TerminalConfig::kiosk(), &params, &mut tvr);
        tvr
    }

    #[test]
    fn application_versions_that_differ_are_noted() {
        // JR/T 0025.6 §7.6.3: the card's 9F08 against the terminal's 9F09.
        let china = [0x01, 0x56];
        assert!(!restrictions([0x00, 0x30], None, china).contains(TvrBit::VersionsDiffer));
        let tvr = restrictions([0x00, 0x20], None, china);
        assert!(tvr.contains(TvrBit::VersionsDiffer));
        assert!(!tvr.contains(TvrBit::ServiceNotAllowed));
    }

    #[test]
    fn usage_control_allows_or_refuses_the_service() {
        // JR/T 0025.6 §7.6.4, 9F07 byte 1: 80 domestic cash, 40 international cash, 20
        // domestic goods, 10 international goods, 08 domestic services, 04 international
        // services, 02 ATMs, 01 other terminals.
        let (v, china, abroad) = ([0x00, 0x30], [0x01, 0x56], [0x08, 0x40]);
        let refused = |auc: u8, country| {
            restrictions(v, Some([auc, 0x00]), country).contains(TvrBit::ServiceNotAllowed)
        };
        // Goods at a non-ATM terminal, domestic card: allowed.
        assert!(!refused(0x21, china));
        // Valid at ATMs only: refused at the kiosk.
        assert!(refused(0x22, china));
        // Domestic goods only, on a card issued abroad: refused; international goods: allowed.
        assert!(refused(0x21, abroad));
        assert!(!refused(0x11, abroad));
        // Services count for a purchase too; cash alone does not.
        assert!(!refused(0x09, china));
        assert!(refused(0x81, china));
        // No 9F07 at all: nothing to refuse.
        assert!(!restrictions(v, None, china).contains(TvrBit::ServiceNotAllowed));
    }

    fn card_with_limits() -> CardData {
        use crate::pboc::records::Mandatory;
        let mut s = crate::pboc::store::DataStore::new();
        s.set(0x5a, [0x62, 0x28, 0x48, 0x04, 0x02, 0x56, 0x48, 0x90]);
        s.set(0x5f24, [0x30, 0x12, 0x31]);
        s.set(0x9f14, [2]);
        s.set(0x9f23, [5]);
        CardData::from_store(&s, Mandatory::Qpboc).unwrap()
    }

    fn trm(script: &str, amount: u64) -> Tvr {
        let mut s = CardSession::new(crate::transcript::ReplayChannel::parse(script).unwrap());
        let mut tvr = Tvr::default();
        let params = TransactionParams::purchase(
            Amount::new(amount).unwrap(),
            Date::new(2026, 11, 28).unwrap(),
            super::super::data::Time::new(12, 0, 0).unwrap(),
            [0; 4],
        );
        let mut terminal = TerminalConfig::kiosk();
        terminal.floor_limit = Amount::new(1000).unwrap();
        terminal_risk_management(
            &mut s,
            &card_with_limits(),
            &terminal,
            &params,
            &NoHotList,
            false,
            &mut tvr,
        )
        .unwrap();
        s.channel().assert_finished().unwrap();
        tvr
    }

    #[test]
    fn velocity_checking_and_new_card() {
        // ATC 9, last online 6: 3 offline transactions, above the lower limit 2 only.
        let tvr = trm(
            "> 80CA9F3600\n< 9F36020009 9000\n> 80CA9F1300\n< 9F13020006 9000\n",
            500,
        );
        assert!(tvr.contains(TvrBit::LowerOfflineLimitExceeded));
        assert!(!tvr.contains(TvrBit::UpperOfflineLimitExceeded));
        assert!(!tvr.contains(TvrBit::FloorLimitExceeded));
        // Last online ATC 0: a new card, and 9 > 5.
        let tvr = trm(
            "> 80CA9F3600\n< 9F36020009 9000\n> 80CA9F1300\n< 9F13020000 9000\n",
            1000,
        );
        assert!(tvr.contains(TvrBit::NewCard));
        assert!(tvr.contains(TvrBit::UpperOfflineLimitExceeded));
        assert!(tvr.contains(TvrBit::FloorLimitExceeded));
        // The counters cannot be read: both limits and ICC data missing (§7.8.8).
        let tvr = trm("> 80CA9F3600\n< 6A88\n> 80CA9F1300\n< 6A88\n", 500);
        assert!(tvr.contains(TvrBit::LowerOfflineLimitExceeded));
        assert!(tvr.contains(TvrBit::UpperOfflineLimitExceeded));
        assert!(tvr.contains(TvrBit::IccDataMissing));
        assert!(!tvr.contains(TvrBit::NewCard));
    }

    #[test]
    fn ec_indicator_rules() {
        let t = TerminalConfig::kiosk();
        let mut p = TransactionParams::purchase(
            Amount::new(99_999).unwrap(),
            Date::new(2026, 11, 28).unwrap(),
            super::super::data::Time::new(12, 0, 0).unwrap(),
            [0; 4],
        );
        assert_eq!(ec_indicator(&t, &p), 1);
        p.amount = Amount::new(100_000).unwrap();
        assert_eq!(ec_indicator(&t, &p), 0);
        p.amount = Amount::new(10).unwrap();
        p.transaction_type = transaction_type::EC_LOAD;
        assert_eq!(ec_indicator(&t, &p), 0);
    }
}
