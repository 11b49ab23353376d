//! Hostile cards: a genuine software card behind a wrapper that misbehaves in one chosen way,
//! to show that every terminal flow ends with a clear, typed error in a bounded number of
//! APDUs and bounded time whatever a card answers (issue 9, part 6).
//!
//! A [`HostileCard`] is a [`CardChannel`] for in-process tests and a [`SlotCard`] for a vpcd
//! slot ([`crate::VirtualSlot::insert_any`]); the `virtual-card` binary inserts one with
//! `--hostile MODE`. Each [`HostileMode`] names one misbehaviour; the junk bytes come from a
//! fixed-seed generator, so a run is reproducible. docs/reliability.md lists what each mode
//! does to each flow.

use std::fmt;
use std::str::FromStr;

use card_core::channel::{CardChannel, TransportError};
use card_core::pboc::dol::Dol;
use card_core::tlv::{Tag, TlvIter};

use crate::os::SoftCard;
use crate::vpcd::SlotCard;

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostileMode {
    /// Never answers a command (the ATR is fine): vpcd waits for an answer that never comes;
    /// in-process the channel reports [`TransportError::CardUnresponsive`].
    Mute,
    /// Answers every command with one byte: no status word.
    NoStatus,
    /// Answers every command with zero bytes.
    Empty,
    /// Answers every command (and every correction) with `6Cxx`, a different `xx` each time.
    WrongLeLoop,
    /// Answers every command with `61 10`, and every GET RESPONSE with 16 bytes and `61 10`
    /// again, forever.
    Endless61,
    /// The genuine card, but every READ RECORD and READ BINARY answers 255 junk bytes and
    /// `9000`.
    JunkRecords,
    /// Every answer with data is replaced by 4096 junk bytes and `9000`: longer than any short
    /// command can ask for.
    ExtendedJunk,
    /// The genuine card, with the last data byte of every answer cut off (lengths inside the
    /// TLV no longer fit).
    Truncated,
    /// The genuine card, but every SELECT that succeeds answers an FCI whose length runs past
    /// its end.
    MalformedFci,
    /// The genuine card, but every `9000` becomes another status word (`9001`, `6283`, `6F00`,
    /// `0000`, `9100`, `6999` in turn) with the data kept.
    WrongSuccessSw,
    /// The genuine card, but the signatures are junk: the last 64 bytes of `9F4B` in the
    /// answers to INTERNAL AUTHENTICATE and GET PROCESSING OPTIONS (qPBOC's fDDA), and
    /// GENERATE AC answers well-formed TLV around a junk cryptogram and signature.
    AuthGarbage,
    /// The genuine card, but GET PROCESSING OPTIONS answers an AFL naming records 1 to 255 of
    /// 62 files, and every READ RECORD of them answers an empty record template `70 00`.
    AbsurdAfl,
    /// The genuine card, but the application's log entry `9F4D` claims 255 records and every
    /// log record past the real ones answers `9000` with a copy of the newest.
    Log255,
}

impl HostileMode {
    /// Every mode, in the order of the documentation.
    pub const ALL: [Self; 13] = [
        Self::Mute,
        Self::NoStatus,
        Self::Empty,
        Self::WrongLeLoop,
        Self::Endless61,
        Self::JunkRecords,
        Self::ExtendedJunk,
        Self::Truncated,
        Self::MalformedFci,
        Self::WrongSuccessSw,
        Self::AuthGarbage,
        Self::AbsurdAfl,
        Self::Log255,
    ];

    /// The mode's name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mute => "mute",
            Self::NoStatus => "no-status",
            Self::Empty => "empty",
            Self::WrongLeLoop => "wrong-le-loop",
            Self::Endless61 => "endless-61xx",
            Self::JunkRecords => "junk-records",
            Self::ExtendedJunk => "extended-junk",
            Self::Truncated => "truncated",
            Self::MalformedFci => "malformed-fci",
            Self::WrongSuccessSw => "wrong-success-sw",
            Self::AuthGarbage => "auth-garbage",
            Self::AbsurdAfl => "absurd-afl",
            Self::Log255 => "log-255",
        }
    }
}

impl fmt::Display for HostileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`HostileMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hostile mode {0:?} (one of: {list})", list = mode_list())]
pub struct UnknownMode(pub String);

fn mode_list() -> String {
    HostileMode::ALL
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for HostileMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

/// A genuine card behind a misbehaving wrapper.
pub struct HostileCard {
    inner: SoftCard,
    mode: HostileMode,
    apdus: u64,
    junk: u64,
    /// Log SFI and format, for [`HostileMode::Log255`].
    log: Option<(u8, Dol)>,
}

impl fmt::Debug for HostileCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostileCard")
            .field("mode", &self.mode)
            .field("apdus", &self.apdus)
            .finish_non_exhaustive()
    }
}

const SW_OK: [u8; 2] = [0x90, 0x00];
const ODD_SUCCESS: [[u8; 2]; 6] = [
    [0x90, 0x01],
    [0x62, 0x83],
    [0x6f, 0x00],
    [0x00, 0x00],
    [0x91, 0x00],
    [0x69, 0x99],
];
/// Files the absurd AFL names: SFI 1 to 30, then again, 62 entries (an answer of 253 bytes).
const ABSURD_AFL_ENTRIES: usize = 62;

impl HostileCard {
    /// `mode` around the genuine card `inner`.
    pub fn new(mut inner: SoftCard, mode: HostileMode) -> Self {
        let log = if mode == HostileMode::Log255 {
            log_of(&mut inner)
        } else {
            None
        };
        Self {
            inner,
            mode,
            apdus: 0,
            junk: 0x5eed_0bad_ca4d_0001,
            log,
        }
    }

    /// `mode` around an embedded fixture card (`zhangsan`, ...), kept in memory.
    pub fn fixture(name: &str, mode: HostileMode) -> Option<Self> {
        let image = crate::Profile::embedded(name)?.build().ok()?;
        Some(Self::new(SoftCard::in_memory(image), mode))
    }

    /// The mode.
    pub const fn mode(&self) -> HostileMode {
        self.mode
    }

    /// Command APDUs received so far.
    pub const fn apdus(&self) -> u64 {
        self.apdus
    }

    /// The genuine card behind.
    pub const fn inner(&self) -> &SoftCard {
        &self.inner
    }

    fn junk(&mut self, n: usize) -> Vec<u8> {
        // xorshift64*: reproducible, no random source needed.
        (0..n)
            .map(|_| {
                let mut x = self.junk;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.junk = x;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// The answer to `apdu`, or `None` for no answer at all.
    pub fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        self.apdus += 1;
        let (cla, ins, p2) = match apdu {
            [cla, ins, _, p2, ..] => (*cla, *ins, *p2),
            _ => (0, 0, 0),
        };
        let get_response = cla & 0x80 == 0 && ins == 0xc0;
        match self.mode {
            HostileMode::Mute => None,
            HostileMode::NoStatus => Some(vec![0x90]),
            HostileMode::Empty => Some(Vec::new()),
            HostileMode::WrongLeLoop => {
                // 6C01, 6C08, 6C0F, ...: never the same twice in a row, sometimes 6C00.
                let xx = (self.apdus.wrapping_mul(7).wrapping_add(1) % 256) as u8;
                Some(vec![0x6c, xx])
            }
            HostileMode::Endless61 => {
                let mut out = if get_response {
                    self.junk(16)
                } else {
                    Vec::new()
                };
                out.extend_from_slice(&[0x61, 0x10]);
                Some(out)
            }
            HostileMode::JunkRecords if matches!(ins, 0xb2 | 0xb0) => {
                let mut out = self.junk(255);
                out.extend_from_slice(&SW_OK);
                Some(out)
            }
            HostileMode::ExtendedJunk => {
                let genuine = self.inner.process(apdu);
                if genuine.len() > 2 {
                    let mut out = self.junk(4096);
                    out.extend_from_slice(&SW_OK);
                    Some(out)
                } else {
                    Some(genuine)
                }
            }
            HostileMode::Truncated => {
                let mut genuine = self.inner.process(apdu);
                if genuine.len() > 2 {
                    genuine.remove(genuine.len() - 3);
                }
                Some(genuine)
            }
            HostileMode::MalformedFci if ins == 0xa4 => {
                let genuine = self.inner.process(apdu);
                if genuine.ends_with(&SW_OK) && genuine.len() > 2 {
                    // 6F with a two-byte length of 0x0180, then a short AID: the object
                    // claims 384 bytes and the answer holds a dozen.
                    let mut out = vec![0x6f, 0x82, 0x01, 0x80, 0x84, 0x08];
                    out.extend_from_slice(&[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01]);
                    out.extend_from_slice(&SW_OK);
                    Some(out)
                } else {
                    Some(genuine)
                }
            }
            HostileMode::WrongSuccessSw => {
                let mut genuine = self.inner.process(apdu);
                if genuine.ends_with(&SW_OK) {
                    let sw = ODD_SUCCESS
                        .get((self.apdus % ODD_SUCCESS.len() as u64) as usize)
                        .copied()
                        .unwrap_or([0x6f, 0x00]);
                    let n = genuine.len();
                    genuine.truncate(n - 2);
                    genuine.extend_from_slice(&sw);
                }
                Some(genuine)
            }
            HostileMode::AuthGarbage if ins == 0x88 || (cla & 0x80 != 0 && ins == 0xa8) => {
                // INTERNAL AUTHENTICATE, and qPBOC's GPO answer that carries the signed
                // dynamic data: the signature (the last 64 bytes of 9F4B) replaced by junk.
                let mut genuine = self.inner.process(apdu);
                let found = TlvIter::new(genuine.get(..genuine.len().saturating_sub(2))?)
                    .find_deep(Tag::new(0x9f4b))
                    .ok()
                    .flatten()
                    .map(|t| {
                        (
                            t.value_offset + t.value.len().saturating_sub(64),
                            t.value.len().min(64),
                        )
                    });
                if let Some((at, n)) = found {
                    let junk = self.junk(n);
                    if let Some(v) = genuine.get_mut(at..at + n) {
                        v.copy_from_slice(&junk);
                    }
                }
                Some(genuine)
            }
            HostileMode::AuthGarbage if ins == 0xae => {
                let genuine = self.inner.process(apdu);
                if !genuine.ends_with(&SW_OK) {
                    return Some(genuine);
                }
                // Format 2: CID "TC", ATC, a junk cryptogram, junk issuer application data and
                // a junk signature.
                let mut body = vec![0x9f, 0x27, 0x01, 0x40, 0x9f, 0x36, 0x02, 0x00, 0x07];
                body.extend_from_slice(&[0x9f, 0x26, 0x08]);
                body.extend(self.junk(8));
                body.extend_from_slice(&[0x9f, 0x10, 0x20]);
                body.extend(self.junk(32));
                body.extend_from_slice(&[0x9f, 0x4b, 0x40]);
                body.extend(self.junk(64));
                let mut out = vec![0x77, 0x81, body.len() as u8];
                out.extend(body);
                out.extend_from_slice(&SW_OK);
                Some(out)
            }
            HostileMode::AbsurdAfl if cla & 0x80 != 0 && ins == 0xa8 => {
                let genuine = self.inner.process(apdu);
                if !genuine.ends_with(&SW_OK) {
                    return Some(genuine);
                }
                // Format 1: AIP (SDA, DDA, cardholder verification, terminal risk management,
                // issuer authentication, CDA), then the AFL.
                let mut value = vec![0x7d, 0x00];
                for i in 0..ABSURD_AFL_ENTRIES {
                    let sfi = (i % 30) as u8 + 1;
                    value.extend_from_slice(&[sfi << 3, 1, 255, 0]);
                }
                let mut out = vec![0x80, 0x81, value.len() as u8];
                out.extend(value);
                out.extend_from_slice(&SW_OK);
                Some(out)
            }
            HostileMode::AbsurdAfl if ins == 0xb2 && p2 & 0x07 == 0x04 && p2 >> 3 <= 30 => {
                Some(vec![0x70, 0x00, 0x90, 0x00])
            }
            HostileMode::Log255 => Some(self.log_255(apdu, ins, p2)),
            HostileMode::JunkRecords
            | HostileMode::MalformedFci
            | HostileMode::AuthGarbage
            | HostileMode::AbsurdAfl => Some(self.inner.process(apdu)),
        }
    }

    fn log_255(&mut self, apdu: &[u8], ins: u8, p2: u8) -> Vec<u8> {
        let mut genuine = self.inner.process(apdu);
        if ins == 0xa4 && genuine.ends_with(&SW_OK) {
            // 9F4D 02 <SFI> <records>: claim 255 records.
            if let Some(at) = genuine.windows(3).position(|w| w == [0x9f, 0x4d, 0x02])
                && let Some(records) = genuine.get_mut(at + 4)
            {
                *records = 0xff;
            }
            return genuine;
        }
        if ins == 0xb2 && genuine == [0x6a, 0x83] {
            // Past the real records: a record of the format's length, amount 1.00, date
            // 2026-03-15, the ATC going down from 300.
            if let Some((_, format)) = self.log.as_ref().filter(|(sfi, _)| p2 >> 3 == *sfi) {
                let record = apdu.get(2).copied().unwrap_or(1);
                let mut out = Vec::with_capacity(format.data_len() + 2);
                for e in format.entries() {
                    let mut v = match e.tag.value() {
                        0x9f02 => vec![0, 0, 0, 0, 0x01, 0x00],
                        0x9a => vec![0x26, 0x03, 0x15],
                        0x9f36 => (300 - u16::from(record)).to_be_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    v.resize(e.len, 0);
                    out.extend(v);
                }
                out.extend_from_slice(&SW_OK);
                genuine = out;
            }
        }
        genuine
    }
}

/// The SFI of the genuine card's transaction log (`9F4D` in the debit application's FCI) and
/// its format (`9F4F`); the card is reset afterwards.
fn log_of(card: &mut SoftCard) -> Option<(u8, Dol)> {
    let select = [
        0x00, 0xa4, 0x04, 0x00, 0x08, 0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01, 0x00,
    ];
    let fci = card.process(&select);
    let sfi = fci
        .windows(4)
        .find(|w| w.starts_with(&[0x9f, 0x4d, 0x02]))
        .and_then(|w| w.get(3).copied());
    let answer = card.process(&[0x80, 0xca, 0x9f, 0x4f, 0x00]);
    card.reset();
    let data = answer.get(..answer.len().checked_sub(2)?)?;
    let t = TlvIter::new(data).find(Tag::new(0x9f4f)).ok()??;
    Some((sfi?, Dol::parse(t.value).ok()?))
}

impl CardChannel for HostileCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.answer(command).ok_or(TransportError::CardUnresponsive)
    }
}

impl SlotCard for HostileCard {
    fn power_on(&mut self) {
        self.inner.power_on();
    }
    fn power_off(&mut self) {
        self.inner.power_off();
    }
    fn reset(&mut self) {
        self.inner.reset();
    }
    fn atr(&self) -> Vec<u8> {
        self.inner.atr().to_vec()
    }
    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        HostileCard::answer(self, apdu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_a_name_that_parses_back() {
        for m in HostileMode::ALL {
            assert_eq!(m.name().parse::<HostileMode>(), Ok(m));
        }
        let err = "polite".parse::<HostileMode>().unwrap_err();
        assert!(err.to_string().contains("endless-61xx"), "{err}");
    }
}
