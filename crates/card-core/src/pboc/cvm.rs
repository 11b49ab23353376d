//! Cardholder verification (JR/T 0025.6 §7.7): the CVM list (JR/T 0025.5 表A.1 `8E`), its
//! processing (§7.7.5.1), offline plaintext PIN with the PIN try counter and VERIFY
//! (§7.7.5.2, JR/T 0025.5 附录 B.15), online PIN (§7.7.5.3), signature, no CVM, CVM failure
//! and the identity document check (§7.7.5.4-§7.7.5.8).
//!
//! The PIN comes from a [`PinPad`] the caller implements (the kiosk's on-screen keypad); the
//! kernel holds it only as a [`Pin`], which zeroizes itself, for the one VERIFY command (marked
//! sensitive, so traces show only its length) or, for an online PIN, until the online request.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::secret::Pin;
use crate::status::StatusWord;
use crate::tlv::TlvIter;

use super::PbocError;
use super::bits::{CapabilityBit, CvmResults, TerminalCapabilities, Tvr, TvrBit};
use super::data::Amount;

/// A CVM list (tag `8E`): amounts X and Y and the rules, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CvmList {
    /// Amount X (binary, in the application currency).
    pub x: u32,
    /// Amount Y.
    pub y: u32,
    /// The rules.
    pub rules: Vec<CvmRule>,
}

impl CvmList {
    /// Read a list: 8 bytes of amounts, then pairs (JR/T 0025.5 表A.1 `8E`). `None` if shorter
    /// than 8 bytes or with half a rule.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let (amounts, rules) = bytes.split_first_chunk::<8>()?;
        let (pairs, rest) = rules.as_chunks::<2>();
        if !rest.is_empty() {
            return None;
        }
        let [x0, x1, x2, x3, y0, y1, y2, y3] = *amounts;
        Some(Self {
            x: u32::from_be_bytes([x0, x1, x2, x3]),
            y: u32::from_be_bytes([y0, y1, y2, y3]),
            rules: pairs
                .iter()
                .map(|&[code, condition]| CvmRule { code, condition })
                .collect(),
        })
    }
}

/// One rule of a CVM list: CVM code and condition code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CvmRule {
    /// Bit 7: apply the next rule if this one fails; bits 6-1: the method.
    pub code: u8,
    /// When the rule applies.
    pub condition: u8,
}

/// The verification methods of JR/T 0025.5 表A.1 `8E` byte 9 bits 6-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CvmMethod {
    /// `000000`: fail CVM processing.
    Fail,
    /// `000001`: plaintext PIN verified by the card.
    OfflinePlaintextPin,
    /// `000010`: enciphered PIN verified online.
    OnlinePin,
    /// `000011`: plaintext PIN by the card and signature.
    OfflinePinAndSignature,
    /// `011110`: signature on paper.
    Signature,
    /// `011111`: no CVM required.
    NoCvm,
    /// `100000`: cardholder identity document (JR/T 0025).
    IdDocument,
    /// Anything else: not recognised by this terminal.
    Other(u8),
}

impl CvmRule {
    /// The method (bits 6-1).
    pub fn method(self) -> CvmMethod {
        match self.code & 0x3f {
            0x00 => CvmMethod::Fail,
            0x01 => CvmMethod::OfflinePlaintextPin,
            0x02 => CvmMethod::OnlinePin,
            0x03 => CvmMethod::OfflinePinAndSignature,
            0x1e => CvmMethod::Signature,
            0x1f => CvmMethod::NoCvm,
            0x20 => CvmMethod::IdDocument,
            other => CvmMethod::Other(other),
        }
    }

    /// Whether the next rule applies when this one fails (bit 7).
    pub fn apply_next_if_fails(self) -> bool {
        self.code & 0x40 != 0
    }
}

/// What the terminal asks the PIN pad for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinPrompt {
    /// Tries the card still allows, when known (GET DATA `9F17` or the last `63Cx`).
    pub tries_left: Option<u8>,
    /// The previous PIN was wrong ("密码不对", then "输入密码").
    pub previous_wrong: bool,
    /// This is the last try ("最后一次机会", JR/T 0025.6 §7.7.1).
    pub last_try: bool,
    /// The PIN is for online verification (enciphered by the host), not for the card.
    pub online: bool,
}

/// What the PIN pad returns.
pub enum PinEntry {
    /// The cardholder entered a PIN.
    Pin(Pin),
    /// The cardholder or the attendant chose not to enter a PIN (bypass).
    Bypassed,
    /// The PIN pad is missing or not working.
    Unavailable,
}

/// The cardholder's PIN pad. The GUI implements it; tests implement it with fixed answers.
pub trait PinPad {
    /// Ask for a PIN.
    fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry;

    /// Ask the attendant whether the cardholder's identity document matches (JR/T 0025.6
    /// §7.7.5.8): document type `9F62` and number `9F61` as the card gives them. An unattended
    /// terminal answers `false` (the default).
    fn confirm_id_document(&mut self, _id_type: Option<u8>, _id_number: Option<&[u8]>) -> bool {
        false
    }
}

/// A PIN pad for terminals without one: every request is `Unavailable`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPinPad;

impl PinPad for NoPinPad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        PinEntry::Unavailable
    }
}

/// What the transaction is, for the CVM conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CvmContext {
    /// Transaction type `9C` is cash (`01`).
    pub cash: bool,
    /// Transaction has a cashback amount (`9F03` not zero or type `09`).
    pub cashback: bool,
    /// The terminal is an ATM (JR/T 0025.6 附录 A.1: types 14-16 with cash capability).
    pub atm: bool,
    /// The terminal is attended (types x1-x3).
    pub attended: bool,
    /// Amount, authorised.
    pub amount: Amount,
    /// Transaction currency `5F2A` equals the application currency `9F42` (`None` when the
    /// card has no application currency, so amount conditions cannot be evaluated).
    pub same_currency: Option<bool>,
    /// Terminal capabilities (`9F33`).
    pub capabilities: TerminalCapabilities,
}

/// Whether the condition is understood, its data present and it is satisfied (§7.7.5.1 step 1).
/// `None`: not understood or data missing (the rule is skipped).
fn condition_met(rule: CvmRule, list: &CvmList, ctx: &CvmContext) -> Option<bool> {
    let amount_vs = |limit: u32, below: bool| {
        ctx.same_currency.map(|same| {
            let a = ctx.amount.minor_units();
            same && if below {
                a < u64::from(limit)
            } else {
                a > u64::from(limit)
            }
        })
    };
    match rule.condition {
        0x00 => Some(true),
        0x01 => Some(ctx.cash && ctx.atm),
        0x02 => Some(!(ctx.cash || ctx.cashback)),
        0x03 => Some(supported(rule.method(), ctx.capabilities)),
        0x04 => Some(ctx.cash && ctx.attended),
        0x05 => Some(ctx.cashback),
        0x06 => amount_vs(list.x, true),
        0x07 => amount_vs(list.x, false),
        0x08 => amount_vs(list.y, true),
        0x09 => amount_vs(list.y, false),
        _ => None,
    }
}

/// Whether the terminal supports a method (terminal capabilities byte 2).
fn supported(method: CvmMethod, caps: TerminalCapabilities) -> bool {
    match method {
        CvmMethod::Fail => true,
        CvmMethod::OfflinePlaintextPin => caps.contains(CapabilityBit::PlaintextPin),
        CvmMethod::OnlinePin => caps.contains(CapabilityBit::OnlinePin),
        CvmMethod::OfflinePinAndSignature => {
            caps.contains(CapabilityBit::PlaintextPin) && caps.contains(CapabilityBit::Signature)
        }
        CvmMethod::Signature => caps.contains(CapabilityBit::Signature),
        CvmMethod::NoCvm => caps.contains(CapabilityBit::NoCvm),
        CvmMethod::IdDocument => caps.contains(CapabilityBit::IdDocument),
        CvmMethod::Other(_) => false,
    }
}

/// The result of cardholder verification.
#[derive(Debug, Default)]
pub struct CvmOutcome {
    /// CVM results (`9F34`).
    pub results: CvmResults,
    /// Whether CVM list processing ran to an end (TSI "cardholder verification performed").
    pub performed: bool,
    /// The online PIN, when an online PIN CVM succeeded; for the online request only.
    pub online_pin: Option<Pin>,
    /// A signature line is to be printed.
    pub signature_required: bool,
}

/// CVM list processing, JR/T 0025.6 §7.7.5.1 steps 1-6, with the methods of §7.7.5.2-§7.7.5.8.
/// `list` is `None` when the card has no CVM list (the caller checks the AIP first): TVR "ICC
/// data missing", no CVM performed.
pub fn verify_cardholder<C: CardChannel>(
    s: &mut CardSession<C>,
    list: Option<&CvmList>,
    ctx: &CvmContext,
    id_document: (Option<u8>, Option<&[u8]>),
    pin_pad: &mut dyn PinPad,
    tvr: &mut Tvr,
) -> Result<CvmOutcome, PbocError> {
    let mut out = CvmOutcome::default();
    let Some(list) = list.filter(|l| !l.rules.is_empty()) else {
        tvr.set(TvrBit::IccDataMissing);
        return Ok(out);
    };
    out.performed = true;
    let mut last: Option<(CvmRule, u8)> = None;
    for &rule in &list.rules {
        if condition_met(rule, list, ctx) != Some(true) {
            continue;
        }
        let method = rule.method();
        let result = if let CvmMethod::Other(_) = method {
            tvr.set(TvrBit::UnrecognisedCvm);
            Attempt::Failed
        } else if !supported(method, ctx.capabilities) {
            if matches!(
                method,
                CvmMethod::OfflinePlaintextPin
                    | CvmMethod::OfflinePinAndSignature
                    | CvmMethod::OnlinePin
            ) {
                tvr.set(TvrBit::PinPadMissing);
            }
            Attempt::Failed
        } else {
            perform(s, method, id_document, pin_pad, tvr, &mut out)?
        };
        match result {
            Attempt::Succeeded(code) => {
                out.results = CvmResults([rule.code, rule.condition, code]);
                return Ok(out);
            }
            Attempt::Failed => {
                last = Some((rule, CvmResults::FAILED));
                if !rule.apply_next_if_fails() {
                    tvr.set(TvrBit::CardholderVerificationFailed);
                    out.results = CvmResults([rule.code, rule.condition, CvmResults::FAILED]);
                    return Ok(out);
                }
            }
        }
    }
    // Step 5: the end of the list.
    tvr.set(TvrBit::CardholderVerificationFailed);
    out.results = match last {
        Some((rule, r)) => CvmResults([rule.code, rule.condition, r]),
        None => CvmResults([0x3f, 0x00, CvmResults::FAILED]),
    };
    Ok(out)
}

enum Attempt {
    Succeeded(u8),
    Failed,
}

fn perform<C: CardChannel>(
    s: &mut CardSession<C>,
    method: CvmMethod,
    id_document: (Option<u8>, Option<&[u8]>),
    pin_pad: &mut dyn PinPad,
    tvr: &mut Tvr,
    out: &mut CvmOutcome,
) -> Result<Attempt, PbocError> {
    Ok(match method {
        CvmMethod::Fail | CvmMethod::Other(_) => Attempt::Failed,
        CvmMethod::NoCvm => Attempt::Succeeded(CvmResults::SUCCESSFUL),
        CvmMethod::Signature => {
            out.signature_required = true;
            Attempt::Succeeded(CvmResults::UNKNOWN)
        }
        CvmMethod::OfflinePlaintextPin => match offline_plaintext_pin(s, pin_pad, tvr)? {
            true => Attempt::Succeeded(CvmResults::SUCCESSFUL),
            false => Attempt::Failed,
        },
        CvmMethod::OfflinePinAndSignature => match offline_plaintext_pin(s, pin_pad, tvr)? {
            true => {
                out.signature_required = true;
                Attempt::Succeeded(CvmResults::UNKNOWN)
            }
            false => Attempt::Failed,
        },
        CvmMethod::OnlinePin => {
            let prompt = PinPrompt {
                tries_left: None,
                previous_wrong: false,
                last_try: false,
                online: true,
            };
            match pin_pad.request_pin(prompt) {
                PinEntry::Pin(pin) => {
                    tvr.set(TvrBit::OnlinePinEntered);
                    out.online_pin = Some(pin);
                    Attempt::Succeeded(CvmResults::UNKNOWN)
                }
                PinEntry::Bypassed => {
                    tvr.set(TvrBit::PinNotEntered);
                    Attempt::Failed
                }
                PinEntry::Unavailable => {
                    tvr.set(TvrBit::PinPadMissing);
                    Attempt::Failed
                }
            }
        }
        CvmMethod::IdDocument => match pin_pad.confirm_id_document(id_document.0, id_document.1) {
            true => Attempt::Succeeded(CvmResults::SUCCESSFUL),
            false => Attempt::Failed,
        },
    })
}

/// The plaintext PIN block of VERIFY (JR/T 0025.5 附录 B.15.2): control `2`, length, digits,
/// `F` filler, 8 bytes.
pub fn plaintext_pin_block(pin: &Pin) -> zeroize::Zeroizing<Vec<u8>> {
    let bcd = pin.to_bcd();
    let mut block = zeroize::Zeroizing::new(vec![0xffu8; 8]);
    if let Some(first) = block.first_mut() {
        *first = 0x20 | (pin.len() as u8 & 0x0f);
    }
    for (slot, b) in block.iter_mut().skip(1).zip(bcd.iter()) {
        *slot = *b;
    }
    block
}

/// GET DATA `9F17`, the PIN try counter: `Some(n)` if the card tells it.
pub fn pin_try_counter<C: CardChannel>(s: &mut CardSession<C>) -> Result<Option<u8>, PbocError> {
    let r = s.send(&Command::new(0x80, 0xca, 0x9f, 0x17).expect_data())?;
    if !r.is_success() {
        return Ok(None);
    }
    Ok(TlvIter::new(r.data())
        .find(crate::tlv::Tag::new(0x9f17))
        .ok()
        .flatten()
        .and_then(|t| t.value.first().copied()))
}

/// Most PIN entries in one transaction (a guard; the card's counter ends it sooner).
const MAX_PIN_ENTRIES: usize = 15;

/// Offline plaintext PIN, JR/T 0025.6 §7.7.5.2 steps 1-3: `true` if the card accepted a PIN.
pub fn offline_plaintext_pin<C: CardChannel>(
    s: &mut CardSession<C>,
    pin_pad: &mut dyn PinPad,
    tvr: &mut Tvr,
) -> Result<bool, PbocError> {
    // Step 1: the PIN try counter, if the card tells it.
    let mut tries_left = pin_try_counter(s)?;
    if tries_left == Some(0) {
        tvr.set(TvrBit::PinTryLimitExceeded);
        return Ok(false);
    }
    let mut previous_wrong = false;
    for _ in 0..MAX_PIN_ENTRIES {
        let prompt = PinPrompt {
            tries_left,
            previous_wrong,
            last_try: tries_left == Some(1),
            online: false,
        };
        let pin = match pin_pad.request_pin(prompt) {
            PinEntry::Pin(pin) => pin,
            PinEntry::Bypassed => {
                tvr.set(TvrBit::PinNotEntered);
                return Ok(false);
            }
            PinEntry::Unavailable => {
                tvr.set(TvrBit::PinPadMissing);
                return Ok(false);
            }
        };
        // Step 3: VERIFY with P2 = 80 (plaintext PIN).
        let block = plaintext_pin_block(&pin);
        drop(pin);
        let cmd = Command::new(0x00, 0x20, 0x00, 0x80)
            .with_data(block.as_slice())
            .sensitive();
        let r = s.send(&cmd)?;
        match r.sw() {
            StatusWord::Success => return Ok(true),
            StatusWord::WrongPin { tries_left: 0 }
            | StatusWord::AuthenticationBlocked
            | StatusWord::ReferenceDataInvalidated => {
                tvr.set(TvrBit::PinTryLimitExceeded);
                return Ok(false);
            }
            StatusWord::WrongPin { tries_left: n } => {
                tries_left = Some(n);
                previous_wrong = true;
            }
            sw => {
                return Err(PbocError::Status {
                    command: "VERIFY",
                    sw,
                });
            }
        }
    }
    tvr.set(TvrBit::PinTryLimitExceeded);
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    struct Pins(Vec<&'static str>, Vec<PinPrompt>);

    impl PinPad for Pins {
        fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry {
            self.1.push(prompt);
            if self.0.is_empty() {
                PinEntry::Bypassed
            } else {
                PinEntry::Pin(Pin::new(self.0.remove(0)).unwrap())
            }
        }
    }

    fn ctx() -> CvmContext {
        CvmContext {
            cash: false,
            cashback: false,
            atm: false,
            attended: false,
            amount: Amount::new(1000).unwrap(),
            same_currency: None,
            capabilities: TerminalCapabilities::from_bytes([0x20, 0x88, 0xc8]),
        }
    }

    #[test]
    fn pin_block() {
        let b = plaintext_pin_block(&Pin::new("12345").unwrap());
        assert_eq!(&*b, &[0x25, 0x12, 0x34, 0x5f, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn list_parsing() {
        let l = CvmList::parse(&hex::decode("000000000000000041031F00").unwrap()).unwrap();
        assert_eq!(l.rules.len(), 2);
        assert_eq!(l.rules[0].method(), CvmMethod::OfflinePlaintextPin);
        assert!(l.rules[0].apply_next_if_fails());
        assert_eq!(l.rules[1].method(), CvmMethod::NoCvm);
        assert!(CvmList::parse(&[0; 7]).is_none());
        assert!(CvmList::parse(&[0; 9]).is_none());
    }

    #[test]
    fn wrong_pin_then_right() {
        let script = "> 80CA9F1700\n< 9F170103 9000\n\
                      > 0020008008 241111FFFFFFFFFF\n< 63C2\n\
                      > 0020008008 241234FFFFFFFFFF\n< 9000\n";
        let mut s = CardSession::new(ReplayChannel::parse(script).unwrap());
        let list = CvmList::parse(&hex::decode("00000000000000000103").unwrap()).unwrap();
        let mut pad = Pins(vec!["1111", "1234"], Vec::new());
        let mut tvr = Tvr::default();
        let out = verify_cardholder(
            &mut s,
            Some(&list),
            &ctx(),
            (None, None),
            &mut pad,
            &mut tvr,
        )
        .unwrap();
        assert_eq!(out.results, CvmResults([0x01, 0x03, 0x02]));
        assert_eq!(tvr, Tvr::default());
        assert_eq!(pad.1[1].tries_left, Some(2));
        assert!(pad.1[1].previous_wrong);
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn blocked_and_zero_counter() {
        let list = CvmList::parse(&hex::decode("00000000000000000103").unwrap()).unwrap();
        let script = "> 80CA9F1700\n< 6A88\n> 0020008008 241234FFFFFFFFFF\n< 6983\n";
        let mut s = CardSession::new(ReplayChannel::parse(script).unwrap());
        let mut tvr = Tvr::default();
        let out = verify_cardholder(
            &mut s,
            Some(&list),
            &ctx(),
            (None, None),
            &mut Pins(vec!["1234"], Vec::new()),
            &mut tvr,
        )
        .unwrap();
        assert_eq!(out.results, CvmResults([0x01, 0x03, 0x01]));
        assert!(tvr.contains(TvrBit::PinTryLimitExceeded));
        assert!(tvr.contains(TvrBit::CardholderVerificationFailed));

        let script = "> 80CA9F1700\n< 9F170100 9000\n";
        let mut s = CardSession::new(ReplayChannel::parse(script).unwrap());
        let mut tvr = Tvr::default();
        let mut pad = Pins(vec![], Vec::new());
        let list2 = CvmList::parse(&hex::decode("000000000000000041031F00").unwrap()).unwrap();
        let out = verify_cardholder(
            &mut s,
            Some(&list2),
            &ctx(),
            (None, None),
            &mut pad,
            &mut tvr,
        )
        .unwrap();
        assert!(pad.1.is_empty(), "no PIN prompt with a zero counter");
        assert_eq!(out.results, CvmResults([0x1f, 0x00, 0x02]));
        assert!(tvr.contains(TvrBit::PinTryLimitExceeded));
        assert!(!tvr.contains(TvrBit::CardholderVerificationFailed));
    }

    #[test]
    fn unrecognised_unsupported_and_end_of_list() {
        let mut s = CardSession::new(ReplayChannel::parse("").unwrap());
        // 0x05 (reserved) then online PIN (not supported by the kiosk), both "apply next".
        let list = CvmList::parse(&hex::decode("00000000000000004500420A4200").unwrap()).unwrap();
        let mut tvr = Tvr::default();
        let out = verify_cardholder(
            &mut s,
            Some(&list),
            &ctx(),
            (None, None),
            &mut NoPinPad,
            &mut tvr,
        )
        .unwrap();
        assert!(tvr.contains(TvrBit::UnrecognisedCvm));
        assert!(tvr.contains(TvrBit::PinPadMissing));
        assert!(tvr.contains(TvrBit::CardholderVerificationFailed));
        assert_eq!(out.results, CvmResults([0x42, 0x00, 0x01]));
        // No list at all.
        let mut tvr = Tvr::default();
        let out =
            verify_cardholder(&mut s, None, &ctx(), (None, None), &mut NoPinPad, &mut tvr).unwrap();
        assert!(!out.performed);
        assert!(tvr.contains(TvrBit::IccDataMissing));
    }
}
