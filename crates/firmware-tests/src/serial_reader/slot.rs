//! The card slot of the simulated reader: the software card, its power, and the transmission
//! protocol between reader and card as a TPDU-level reader sees it.
//!
//! - T=0 (ISO/IEC 7816-3 §10): the host sends TPDUs. A case 3 TPDU whose command yields data
//!   is answered `61xx` and the data kept for GET RESPONSE, as a T=0 card does; a case 2 TPDU
//!   asking for more bytes than there are is answered `6Cxx`. A 4-byte TPDU gets `P3 = 00`, and
//!   a case 4 APDU sent whole (as pcscd passes it) loses its `Le`, as a T=0 reader sends it.
//! - T=1: blocks, through [`super::t1card::T1Card`].
//! - PPS (§9): the first XfrBlock after power-on may be a PPS request `FF PPS0 [..] PCK`; it is
//!   accepted (echoed) when it names a protocol the ATR offers.

use card_core::atr::Atr;

use super::t1card::T1Card;
use crate::os::SoftCard;

/// A card in the slot.
#[derive(Debug)]
pub struct Inserted {
    /// Fixture name.
    pub name: String,
    /// The card.
    pub card: SoftCard,
}

/// The slot.
#[derive(Debug, Default)]
pub struct Slot {
    /// The card, if one is inserted.
    pub inserted: Option<Inserted>,
    /// Powered (after IccPowerOn, until IccPowerOff, removal or a new power-on).
    pub powered: bool,
    /// Protocol in use (T=0 until a PPS or SetParameters says T=1).
    pub protocol: u8,
    pps_allowed: bool,
    stash: Vec<u8>,
    t1: T1Card,
    /// APDUs the card processed.
    pub apdus: u64,
}

/// Why an XfrBlock failed (becomes bError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XfrError {
    /// No card or not powered: ICC mute (bError FE).
    Mute,
    /// A TPDU the reader cannot send (bError 01, bad dwLength).
    BadLength,
}

impl Slot {
    /// bmICCStatus: 0 active, 1 present and not powered, 2 absent.
    pub fn icc_status(&self) -> u8 {
        match (&self.inserted, self.powered) {
            (None, _) => 2,
            (Some(_), false) => 1,
            (Some(_), true) => 0,
        }
    }

    /// Insert a card (unpowered).
    pub fn insert(&mut self, name: &str, card: SoftCard) {
        self.inserted = Some(Inserted {
            name: name.to_string(),
            card,
        });
        self.powered = false;
    }

    /// Remove the card.
    pub fn remove(&mut self) -> Option<Inserted> {
        self.power_off();
        self.inserted.take()
    }

    /// Cold reset; the ATR, or `None` without a card.
    pub fn power_on(&mut self) -> Option<Vec<u8>> {
        let card = &mut self.inserted.as_mut()?.card;
        let atr = card.power_on();
        self.powered = true;
        self.pps_allowed = true;
        self.stash.clear();
        self.t1 = T1Card::default();
        // The first protocol offered until PPS or SetParameters.
        self.protocol = Atr::parse(&atr)
            .ok()
            .and_then(|a| a.protocols().first().copied())
            .unwrap_or(0);
        Some(atr)
    }

    /// Deactivate the card.
    pub fn power_off(&mut self) {
        if let Some(i) = self.inserted.as_mut() {
            i.card.power_off();
        }
        self.powered = false;
        self.stash.clear();
    }

    /// SetParameters for protocol `t`.
    pub fn set_protocol(&mut self, t: u8) {
        self.protocol = t;
        self.pps_allowed = false;
        self.t1 = T1Card::default();
    }

    fn offers(&self, t: u8) -> bool {
        self.inserted.as_ref().is_some_and(|i| {
            Atr::parse(i.card.atr())
                .map(|a| a.offers(t))
                .unwrap_or(false)
        })
    }

    /// One XfrBlock: a TPDU (T=0), a T=1 block, or a PPS request. `wtx`: for T=1, put an
    /// S(WTX) request in front of the answer.
    pub fn xfr(&mut self, data: &[u8], wtx: Option<u8>) -> Result<Vec<u8>, XfrError> {
        if !self.powered {
            return Err(XfrError::Mute);
        }
        if self.pps_allowed && data.first() == Some(&0xff) {
            self.pps_allowed = false;
            let pck_ok = data.iter().fold(0u8, |a, b| a ^ b) == 0;
            let t = data.get(1).map_or(0xff, |p| p & 0x0f);
            if pck_ok && data.len() >= 3 && self.offers(t) {
                self.protocol = t;
                self.t1 = T1Card::default();
                return Ok(data.to_vec());
            }
            return Err(XfrError::Mute);
        }
        self.pps_allowed = false;
        let Some(inserted) = self.inserted.as_mut() else {
            return Err(XfrError::Mute);
        };
        let apdus = &mut self.apdus;
        if self.protocol == 1 {
            let mut run = |apdu: &[u8]| {
                *apdus += 1;
                inserted.card.process(apdu)
            };
            return Ok(self.t1.handle(data, wtx, &mut run));
        }
        t0(&mut inserted.card, &mut self.stash, apdus, data)
    }
}

/// Instructions whose data goes to the card (case 1 or 3), never back.
const fn sends_data_to_card(ins: u8) -> bool {
    matches!(
        ins,
        0x04 | 0x0e | 0x20 | 0x24 | 0x2c | 0x44 | 0x82 | 0xd6 | 0xda | 0xdc | 0xe2 | 0xe4
    )
}

/// Split a response into data and status word.
fn split(mut r: Vec<u8>) -> (Vec<u8>, [u8; 2]) {
    let sw2 = r.pop().unwrap_or(0x6f);
    let sw1 = r.pop().unwrap_or(0x00);
    (r, [sw1, sw2])
}

fn more_data(n: usize) -> [u8; 2] {
    [0x61, u8::try_from(n).unwrap_or(0)]
}

fn t0(
    card: &mut SoftCard,
    stash: &mut Vec<u8>,
    apdus: &mut u64,
    tpdu: &[u8],
) -> Result<Vec<u8>, XfrError> {
    let mut tpdu = tpdu.to_vec();
    if tpdu.len() == 4 {
        tpdu.push(0);
    }
    let [cla, ins, _, _, p3, body @ ..] = tpdu.as_slice() else {
        return Err(XfrError::BadLength);
    };
    let (cla, ins, p3) = (*cla, *ins, *p3);
    let lc = usize::from(p3);
    let tpdu = match body.len() {
        // P3 = 00 on a command that takes no response data is case 1: a T=0 card knows the
        // direction of its data from INS (ISO/IEC 7816-3 §12.2.2).
        0 if p3 == 0 && sends_data_to_card(ins) => tpdu.get(..4).unwrap_or_default().to_vec(),
        0 => tpdu.clone(),
        n if n == lc && lc > 0 => tpdu.clone(),
        // A whole case 4 APDU: the reader sends it as case 3.
        n if n == lc + 1 && lc > 0 => tpdu.get(..5 + lc).unwrap_or_default().to_vec(),
        _ => return Err(XfrError::BadLength),
    };
    let case2 = tpdu.len() == 5;
    if tpdu.len() == 4 {
        stash.clear();
        *apdus += 1;
        return Ok(card.process(&tpdu));
    }
    let ne = if p3 == 0 { 256 } else { lc };
    if case2 && cla & 0x80 == 0 && ins == 0xc0 && !stash.is_empty() {
        // GET RESPONSE from our own buffer.
        if ne > stash.len() && p3 != 0 || (p3 == 0 && stash.len() < 256) {
            return Ok(vec![0x6c, u8::try_from(stash.len()).unwrap_or(0)]);
        }
        let mut out: Vec<u8> = stash.drain(..ne.min(stash.len())).collect();
        if stash.is_empty() {
            out.extend_from_slice(&[0x90, 0x00]);
        } else {
            out.extend_from_slice(&more_data(stash.len()));
        }
        return Ok(out);
    }
    stash.clear();
    *apdus += 1;
    let (data, sw) = split(card.process(&tpdu));
    let success = sw == [0x90, 0x00];
    if !case2 && success && !data.is_empty() {
        // Case 4 seen as case 3: the data waits for GET RESPONSE.
        *stash = data;
        return Ok(more_data(stash.len()).to_vec());
    }
    if case2 && success && !data.is_empty() && data.len() < ne {
        // T=0 returns exactly P3 bytes: ask for the right length.
        return Ok(vec![0x6c, u8::try_from(data.len()).unwrap_or(0)]);
    }
    let mut out = data;
    out.extend_from_slice(&sw);
    Ok(out)
}
