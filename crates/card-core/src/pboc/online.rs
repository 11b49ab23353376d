//! Online processing (JR/T 0025.6 §7.11) and issuer script processing (§7.12).
//!
//! The authorisation itself is the caller's: an [`OnlineAuthoriser`] gets the ARQC and the data
//! the card used, and answers with the authorisation response code, the issuer authentication
//! data (ARPC ‖ ARC, tag `91`) and the issuer scripts (templates `71`/`72`). In the stack,
//! terminal-app implements it with hsm-sim and the backend; tests implement it with
//! [`crate::crypto::kdf`].

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::secret::Pin;
use crate::status::StatusWord;
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::bits::{Aip, Cid, CvmResults, Tsi, TsiBit, Tvr, TvrBit};
use super::cryptogram::CryptogramInput;
use super::data::{Amount, Date, Pan, Time};

/// What the issuer needs to authorise: the ARQC and the data it covers (JR/T 0025.6 §7.11.4.1,
/// JR/T 0025.7 §6.1.1 表22).
#[derive(Debug, Clone, Copy)]
pub struct OnlineRequest<'a> {
    /// The AID.
    pub aid: &'a [u8],
    /// The PAN.
    pub pan: Option<&'a Pan>,
    /// PAN sequence number.
    pub psn: Option<u8>,
    /// Amount, authorised.
    pub amount: Amount,
    /// Amount, other.
    pub amount_other: Amount,
    /// Transaction currency code.
    pub currency: [u8; 2],
    /// Terminal country code.
    pub country: [u8; 2],
    /// Transaction date.
    pub date: Date,
    /// Transaction time.
    pub time: Time,
    /// Transaction type.
    pub transaction_type: u8,
    /// Unpredictable number.
    pub unpredictable_number: [u8; 4],
    /// Application transaction counter.
    pub atc: u16,
    /// Application interchange profile.
    pub aip: Aip,
    /// Terminal verification results.
    pub tvr: Tvr,
    /// Cryptogram information data.
    pub cid: Cid,
    /// The ARQC.
    pub arqc: [u8; 8],
    /// Issuer application data (`9F10`).
    pub iad: &'a [u8],
    /// The data the card received with the cryptogram request: CDOL1 data for contact, PDOL
    /// data for qPBOC.
    pub cryptogram_data: &'a [u8],
    /// The bytes the card MACed into the ARQC (cryptogram version 01, JR/T 0025.5 附录 E
    /// 表E.1; [`crate::pboc::cryptogram`]), for the issuer's or the HSM's check; `None` if the
    /// card is not of version 01 or its lists lack an element.
    pub cryptogram_input: Option<&'a CryptogramInput>,
    /// CVM results.
    pub cvm_results: CvmResults,
    /// The online PIN, when the cardholder entered one (to encipher for the issuer).
    pub online_pin: Option<&'a Pin>,
    /// Whether the terminal asks for an electronic cash load (圈存, JR/T 0025.13 附录 B.3.3).
    pub ec_load: bool,
}

/// The issuer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineResponse {
    /// Authorisation response code (`8A`, two characters, e.g. `b"00"`).
    pub arc: [u8; 2],
    /// Issuer authentication data (`91`): ARPC ‖ ARC.
    pub issuer_authentication_data: Option<Vec<u8>>,
    /// Issuer scripts: concatenated `71`/`72` templates as received.
    pub issuer_scripts: Vec<u8>,
}

/// Why the issuer could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("online authorisation not possible: {0}")]
pub struct OnlineUnavailable(pub String);

/// The online authorisation the caller provides.
pub trait OnlineAuthoriser {
    /// Send the authorisation request and return the issuer's answer, or why it failed.
    fn authorise(
        &mut self,
        request: &OnlineRequest<'_>,
    ) -> Result<OnlineResponse, OnlineUnavailable>;
}

/// No online capability: every request fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(
        &mut self,
        _request: &OnlineRequest<'_>,
    ) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("the terminal is offline".into()))
    }
}

/// EXTERNAL AUTHENTICATE with the issuer authentication data (JR/T 0025.6 §7.11.4.3, JR/T
/// 0025.5 附录 B.5), setting TSI "issuer authentication performed" and, when the card does not
/// answer `9000`, TVR "issuer authentication failed".
pub fn external_authenticate<C: CardChannel>(
    s: &mut CardSession<C>,
    issuer_authentication_data: &[u8],
    tvr: &mut Tvr,
    tsi: &mut Tsi,
) -> Result<StatusWord, PbocError> {
    tsi.set(TsiBit::IssuerAuthenticationPerformed);
    let r = s.send(&Command::new(0x00, 0x82, 0x00, 0x00).with_data(issuer_authentication_data))?;
    if !r.is_success() {
        tvr.set(TvrBit::IssuerAuthenticationFailed);
    }
    Ok(r.sw())
}

/// One issuer script (JR/T 0025.6 §7.12.2 表33, 表34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerScript {
    /// `71` (before the final GENERATE AC) or `72` (after it).
    pub template: u8,
    /// Issuer script identifier `9F18`.
    pub id: Option<[u8; 4]>,
    /// The commands (`86`), as APDU bytes.
    pub commands: Vec<Vec<u8>>,
}

/// Issuer script results (JR/T 0025.6 附录 A.5): per script, the result nibble and sequence
/// number, then the script identifier.
pub type ScriptResult = [u8; 5];

/// Read the issuer scripts of an online response. `Err` when it cannot be parsed: then no
/// command is sent and the caller reports a failed script (§7.12.4.1).
pub fn parse_issuer_scripts(bytes: &[u8]) -> Result<Vec<IssuerScript>, PbocError> {
    const WHAT: &str = "issuer script";
    let mut out = Vec::new();
    for item in TlvIter::new(bytes) {
        let item = item.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
        let template = match item.tag.value() {
            0x71 => 0x71,
            0x72 => 0x72,
            _ => {
                return Err(PbocError::Malformed {
                    what: WHAT,
                    reason: "not a 71 or 72 template",
                });
            }
        };
        let mut script = IssuerScript {
            template,
            id: None,
            commands: Vec::new(),
        };
        for sub in item.children() {
            let sub = sub.map_err(|source| PbocError::Tlv { what: WHAT, source })?;
            match sub.tag.value() {
                0x9f18 => {
                    script.id = Some(sub.value.try_into().map_err(|_| PbocError::BadData {
                        tag: Tag::new(0x9f18),
                    })?)
                }
                0x86 => script.commands.push(sub.value.to_vec()),
                _ => {}
            }
        }
        out.push(script);
    }
    Ok(out)
}

/// Send the scripts of `template` (`71` or `72`) to the card in order (JR/T 0025.6
/// §7.12.4.2-§7.12.4.3): after each command SW1 must be `90`, `62` or `63`, else the script
/// stops, TVR gets the "script failed" bit of its template and the result byte `1x` with the
/// failing command's number. TSI "script processing performed" is set when a script ran.
pub fn run_issuer_scripts<C: CardChannel>(
    s: &mut CardSession<C>,
    scripts: &[IssuerScript],
    template: u8,
    tvr: &mut Tvr,
    tsi: &mut Tsi,
    results: &mut Vec<ScriptResult>,
) -> Result<(), PbocError> {
    let failed_bit = if template == 0x71 {
        TvrBit::ScriptFailedBeforeFinalAc
    } else {
        TvrBit::ScriptFailedAfterFinalAc
    };
    for script in scripts.iter().filter(|s| s.template == template) {
        tsi.set(TsiBit::ScriptProcessingPerformed);
        let id = script.id.unwrap_or_default();
        let mut result = 0x20u8;
        for (i, raw) in script.commands.iter().enumerate() {
            let seq = u8::try_from(i + 1).unwrap_or(0x0f).min(0x0f);
            let ok = match Command::parse(raw) {
                Ok(cmd) => {
                    let r = s.send(&cmd)?;
                    matches!(r.sw().to_bytes(), [0x90 | 0x62 | 0x63, _])
                }
                Err(_) => false,
            };
            if !ok {
                tvr.set(failed_bit);
                result = 0x10 | seq;
                break;
            }
        }
        let [a, b, c, d] = id;
        results.push([result, a, b, c, d]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn scripts_parse_and_run() {
        let raw = h("7218 9F1804 11223344 860F 04DA9F790A 000000010000 AABBCCDD");
        let scripts = parse_issuer_scripts(&raw).unwrap();
        assert_eq!(scripts.len(), 1);
        assert_eq!(scripts[0].id, Some([0x11, 0x22, 0x33, 0x44]));
        let mut s = CardSession::new(
            ReplayChannel::parse("> 04DA9F790A000000010000AABBCCDD\n< 9000\n").unwrap(),
        );
        let (mut tvr, mut tsi, mut results) = (Tvr::default(), Tsi::default(), Vec::new());
        run_issuer_scripts(&mut s, &scripts, 0x71, &mut tvr, &mut tsi, &mut results).unwrap();
        assert!(results.is_empty());
        run_issuer_scripts(&mut s, &scripts, 0x72, &mut tvr, &mut tsi, &mut results).unwrap();
        assert_eq!(results, [[0x20, 0x11, 0x22, 0x33, 0x44]]);
        assert!(tsi.contains(TsiBit::ScriptProcessingPerformed));
        assert_eq!(tvr, Tvr::default());
    }

    #[test]
    fn failing_script() {
        let raw = h("720E 8605 8418000000 8605 8418000000");
        let scripts = parse_issuer_scripts(&raw).unwrap();
        let mut s = CardSession::new(ReplayChannel::parse("> 8418000000\n< 6985\n").unwrap());
        let (mut tvr, mut tsi, mut results) = (Tvr::default(), Tsi::default(), Vec::new());
        run_issuer_scripts(&mut s, &scripts, 0x72, &mut tvr, &mut tsi, &mut results).unwrap();
        assert_eq!(results, [[0x11, 0, 0, 0, 0]]);
        assert!(tvr.contains(TvrBit::ScriptFailedAfterFinalAc));
        assert!(parse_issuer_scripts(&h("7302 8600")).is_err());
        assert!(parse_issuer_scripts(&h("7205 9F1802 0102")).is_err());
    }
}
