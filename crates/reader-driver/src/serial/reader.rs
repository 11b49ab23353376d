//! A GemPC Twin serial reader: the slot, the card session, and the events.
//!
//! [`SerialReader`] is a handle (cheap to clone) on one serial port. It opens the port and
//! greets the reader as libccid does (Escape `02`, "get firmware", then Escape `01 01 01`,
//! card movements notified synchronously), and reopens it by itself after the reader was
//! unplugged: a port that reports end of file or an I/O error, or a reader that stops
//! answering, is dropped and opened again on the next use or event poll.
//!
//! [`SerialReader::connect`] powers the card and sets up the protocol as libccid does for a
//! TPDU-level reader: PPS when the protocol asked for is not the card's first one,
//! SetParameters, and for T=1 an S(IFS) request for IFSD 254. The [`SerialCard`] it returns is a
//! [`CardChannel`]: T=0 commands travel as TPDUs (case 4 as case 3, the card's `61xx` goes up
//! to [`card_core::CardSession`]), T=1 commands as blocks ([`super::t1`]).
//!
//! [`SerialWatcher`] polls the slots (GetSlotStatus) and the slot-change notifications the
//! reader sends, and reports the same [`ReaderEvent`]s as the PC/SC [`crate::EventWatcher`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use card_core::TransportError;
use card_core::atr::Atr;
use card_core::channel::CardChannel;

use super::ccid::{self, Command, CommandStatus, IccStatus, Response};
use super::error::{SerialError, to_transport};
use super::link::{Link, LinkConfig, LinkStats, PortLine};
use super::t1::T1;
use super::tpdu::t0_tpdu;
use crate::events::ReaderEvent;
use crate::pcsc_backend::{ActiveProtocol, ProtocolChoice};

/// The largest T=1 block we accept from the card (IFSD), as libccid asks for.
pub const IFSD: u8 = 254;

/// One configured serial reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialReaderConfig {
    /// The name events and errors use.
    pub name: String,
    /// The line.
    pub link: LinkConfig,
    /// How long the watcher waits between two slot polls.
    pub poll_interval: Duration,
    /// Response timeout for slot polls and the greeting (a reader that takes longer counts
    /// as gone).
    pub poll_timeout: Duration,
}

impl SerialReaderConfig {
    /// A GemPC Twin named `name` on `path` with the defaults of [`LinkConfig::new`], polled
    /// every 200 ms.
    pub fn new(name: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            link: LinkConfig::new(path),
            poll_interval: Duration::from_millis(200),
            poll_timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// A card was seen in the slot.
    present: bool,
    /// We powered it and it has not been powered off since.
    powered: bool,
    atr: Vec<u8>,
    /// Changes each time the card is powered, removed or the reader lost.
    generation: u64,
    protocol: Option<ActiveProtocol>,
    t1: Option<T1>,
}

impl Slot {
    fn forget(&mut self) {
        self.present = false;
        self.powered = false;
        self.atr.clear();
        self.protocol = None;
        self.t1 = None;
        self.generation += 1;
    }
}

#[derive(Debug)]
struct Inner {
    config: SerialReaderConfig,
    link: Option<Link>,
    firmware: String,
    slot: Slot,
    /// Reported as added by the watcher.
    added: bool,
    next_open: Option<Instant>,
    /// Counters of links closed before, so stats survive a reopen.
    past: LinkStats,
    reopens: u64,
}

/// A GemPC Twin on a serial port (a shared handle; clones talk to the same reader).
#[derive(Debug, Clone)]
pub struct SerialReader {
    inner: Arc<Mutex<Inner>>,
}

fn add_stats(a: LinkStats, b: LinkStats) -> LinkStats {
    LinkStats {
        commands: a.commands + b.commands,
        retransmissions: a.retransmissions + b.retransmissions,
        naks_sent: a.naks_sent + b.naks_sent,
        naks_received: a.naks_received + b.naks_received,
        garbled: a.garbled + b.garbled,
        stale: a.stale + b.stale,
        time_extensions: a.time_extensions + b.time_extensions,
    }
}

impl Inner {
    fn open(&mut self) -> Result<(), SerialError> {
        if self.link.is_some() {
            return Ok(());
        }
        let cfg = self.config.link.clone();
        let line = PortLine::open(&cfg.path, cfg.baud)?;
        let mut link = Link::new(Box::new(line), cfg.clone());
        let no_reader = |_| SerialError::NoReader {
            path: cfg.path.clone(),
        };
        // libccid's greeting: get the firmware (2 s at most), then ask for card movements to
        // be notified synchronously (after the command, before the answer).
        let firmware = link
            .exchange_with_timeout(&Command::escape(&[0x02]), self.config.poll_timeout)
            .map_err(no_reader)?;
        if firmware.command() != CommandStatus::Ok {
            return Err(SerialError::NoReader { path: cfg.path });
        }
        let _ = link.exchange_with_timeout(
            &Command::escape(&[0x01, 0x01, 0x01]),
            self.config.poll_timeout,
        )?;
        self.firmware = String::from_utf8_lossy(&firmware.data)
            .trim_end_matches('\0')
            .to_string();
        self.link = Some(link);
        self.reopens += 1;
        self.slot.forget();
        Ok(())
    }

    /// Drop the link after a failure that means the reader is gone.
    fn lose(&mut self) {
        if let Some(link) = self.link.take() {
            self.past = add_stats(self.past, link.stats());
        }
        self.slot.forget();
    }

    /// Run `op` on the open link; a reader found gone is dropped (reopened on the next use).
    fn with_link<T>(
        &mut self,
        op: impl FnOnce(&mut Link, &mut Slot) -> Result<T, SerialError>,
    ) -> Result<T, SerialError> {
        self.open()?;
        let Some(link) = self.link.as_mut() else {
            return Err(SerialError::NoReader {
                path: self.config.link.path.clone(),
            });
        };
        let r = op(link, &mut self.slot);
        if let Err(e) = &r
            && e.reader_gone()
        {
            self.lose();
        }
        r
    }

    fn slot_status(&mut self) -> Result<IccStatus, SerialError> {
        let timeout = self.config.poll_timeout;
        self.with_link(|link, _| {
            let r = link.exchange_with_timeout(&Command::slot_status(), timeout)?;
            Ok(r.icc())
        })
    }

    fn power_on(&mut self) -> Result<Vec<u8>, SerialError> {
        self.with_link(|link, slot| {
            slot.forget();
            let r = link.exchange(&Command::power_on())?;
            match (r.command(), r.icc()) {
                (CommandStatus::Ok, _) if !r.data.is_empty() => {
                    slot.present = true;
                    slot.powered = true;
                    slot.atr = r.data;
                    Ok(slot.atr.clone())
                }
                (_, IccStatus::Absent) => Err(SerialError::NoCard),
                _ => {
                    slot.present = true;
                    Err(SerialError::CardMute)
                }
            }
        })
    }
}

/// Exchange one TPDU or T=1 block with the card.
fn xfr(link: &mut Link, data: &[u8], bwi: u8) -> Result<Vec<u8>, SerialError> {
    let r: Response = link.exchange(&Command::xfr_block(data, bwi))?;
    match (r.command(), r.icc()) {
        (CommandStatus::Ok, IccStatus::PresentActive) => Ok(r.data),
        (_, IccStatus::Absent) => Err(SerialError::CardRemoved),
        // Present but not powered: the card was pulled and put back, or reset.
        (_, IccStatus::PresentInactive) => Err(SerialError::CardRemoved),
        (_, _) if r.error == ccid::ERROR_ICC_MUTE => Err(SerialError::CardMute),
        _ => Err(SerialError::CommandFailed {
            status: r.status,
            error: r.error,
        }),
    }
}

/// Choose and set up the protocol for the card just powered (ATR in `slot`).
fn negotiate(link: &mut Link, slot: &mut Slot, choice: ProtocolChoice) -> Result<(), SerialError> {
    let atr = Atr::parse(&slot.atr).map_err(|e| SerialError::Atr(e.to_string()))?;
    let offered = atr.protocols();
    let first = offered.first().copied().unwrap_or(0);
    let t = match (choice, atr.specific_mode()) {
        (ProtocolChoice::T0, _) if offered.contains(&0) => 0,
        (ProtocolChoice::T1, _) if offered.contains(&1) => 1,
        (ProtocolChoice::Any, Some(t)) if t <= 1 => t,
        (ProtocolChoice::Any, None) if first <= 1 => first,
        _ => {
            return Err(SerialError::Protocol(format!(
                "the card offers T={offered:?}, not what was asked ({choice:?})"
            )));
        }
    };
    if let Some(specific) = atr.specific_mode()
        && specific != t
    {
        return Err(SerialError::Protocol(format!(
            "the card is fixed to T={specific} (TA2)"
        )));
    }
    // ISO/IEC 7816-3 §9: PPS when the protocol is not the card's first one (negotiable mode).
    if t != first && atr.specific_mode().is_none() {
        let pps0 = t;
        let request = [0xff, pps0, 0xff ^ pps0];
        let answer = xfr(link, &request, 0)?;
        if answer != request {
            return Err(SerialError::Protocol(format!(
                "PPS for T={t} refused (answer {answer:02X?})"
            )));
        }
    }
    let groups = atr.groups();
    let ta1 = groups.first().and_then(|g| g.ta).unwrap_or(0x11);
    let tc1 = atr.extra_guard_time();
    let inverse = slot.atr.first() == Some(&0x3f);
    let params: Vec<u8> = if t == 0 {
        let wi = atr.wi();
        vec![ta1, if inverse { 0x02 } else { 0 }, tc1, wi, 0]
    } else {
        // TC3 (first TC after a TD announcing T=1): 1 = CRC, which we do not speak.
        let tc3 = groups
            .windows(2)
            .skip(1)
            .find(|w| {
                w.first()
                    .and_then(|g| g.td)
                    .is_some_and(|td| td & 0x0f == 1)
            })
            .and_then(|w| w.get(1).and_then(|g| g.tc))
            .unwrap_or(0);
        if tc3 & 1 == 1 {
            return Err(SerialError::Protocol(
                "the card asks for a CRC in T=1, only LRC is supported".into(),
            ));
        }
        let (bwi, cwi) = atr.bwi_cwi();
        vec![
            ta1,
            0x10 | if inverse { 0x02 } else { 0 },
            tc1,
            (bwi << 4) | (cwi & 0x0f),
            0,
            atr.ifsc(),
            0,
        ]
    };
    let r = link.exchange(&Command::set_parameters(t, &params))?;
    // bError 1..127: "this parameter cannot be changed"; 0: not supported. Both are fine.
    if r.command() == CommandStatus::Failed && r.error >= 0x80 {
        return Err(SerialError::CommandFailed {
            status: r.status,
            error: r.error,
        });
    }
    if t == 1 {
        let mut t1 = T1::new(atr.ifsc());
        t1.negotiate_ifsd(IFSD, &mut |b, bwi| xfr(link, b, bwi))?;
        slot.t1 = Some(t1);
        slot.protocol = Some(ActiveProtocol::T1);
    } else {
        slot.protocol = Some(ActiveProtocol::T0);
    }
    Ok(())
}

fn satisfies(p: ActiveProtocol, choice: ProtocolChoice) -> bool {
    matches!(
        (p, choice),
        (_, ProtocolChoice::Any)
            | (ActiveProtocol::T0, ProtocolChoice::T0)
            | (ActiveProtocol::T1, ProtocolChoice::T1)
    )
}

impl SerialReader {
    /// A reader handle; the port is opened on first use.
    pub fn new(config: SerialReaderConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                config,
                link: None,
                firmware: String::new(),
                slot: Slot::default(),
                added: false,
                next_open: None,
                past: LinkStats::default(),
                reopens: 0,
            })),
        }
    }

    /// Open the port now and greet the reader.
    pub fn open(config: SerialReaderConfig) -> Result<Self, SerialError> {
        let r = Self::new(config);
        r.lock().open()?;
        Ok(r)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reader's name.
    pub fn name(&self) -> String {
        self.lock().config.name.clone()
    }

    /// The firmware string the reader gave at the greeting.
    pub fn firmware(&self) -> String {
        self.lock().firmware.clone()
    }

    /// Whether the port is open and the reader answered.
    pub fn is_open(&self) -> bool {
        self.lock().link.is_some()
    }

    /// Link counters (of this and earlier, closed links) and how often the port was opened.
    pub fn stats(&self) -> (LinkStats, u64) {
        let g = self.lock();
        let now = g.link.as_ref().map(Link::stats).unwrap_or_default();
        (add_stats(g.past, now), g.reopens)
    }

    /// The slot's state (GetSlotStatus).
    pub fn slot_status(&self) -> Result<IccStatus, SerialError> {
        self.lock().slot_status()
    }

    /// Power the card off (IccPowerOff). Open sessions end with [`TransportError::CardRemoved`].
    pub fn power_off(&self) -> Result<(), SerialError> {
        self.lock().with_link(|link, slot| {
            link.exchange(&Command::power_off())?;
            let present = slot.present;
            slot.forget();
            slot.present = present;
            Ok(())
        })
    }

    /// Connect to the card with `protocol`. A card already powered with a protocol that fits
    /// is shared (as pcsc-lite does); otherwise it is powered up and the protocol set up. A
    /// powered card with another protocol gives [`SerialError::Protocol`]: reconnect with a
    /// reset to change it.
    pub fn connect(&self, protocol: ProtocolChoice) -> Result<SerialCard, SerialError> {
        let mut g = self.lock();
        if g.link.is_some()
            && g.slot.powered
            && let Some(p) = g.slot.protocol
        {
            if !satisfies(p, protocol) {
                return Err(SerialError::Protocol(format!(
                    "the card is in use with {p}; reconnect with a reset to change it"
                )));
            }
            // Make sure it is still the same card.
            if g.slot_status()? == IccStatus::PresentActive && g.slot.powered {
                return Ok(self.card_from(&g));
            }
        }
        self.power_up(&mut g, protocol)?;
        Ok(self.card_from(&g))
    }

    fn power_up(&self, g: &mut Inner, protocol: ProtocolChoice) -> Result<(), SerialError> {
        g.power_on()?;
        g.with_link(|link, slot| negotiate(link, slot, protocol))
    }

    fn card_from(&self, g: &Inner) -> SerialCard {
        SerialCard {
            reader: self.clone(),
            name: g.config.name.clone(),
            generation: g.slot.generation,
            protocol: g.slot.protocol.unwrap_or(ActiveProtocol::Other),
            atr: g.slot.atr.clone(),
            resets: 0,
        }
    }

    /// One poll of the reader for the watcher: open it if it is closed, read the slot, and
    /// report what changed.
    fn poll(&self, out: &mut Vec<ReaderEvent>) {
        let mut g = self.lock();
        let name = g.config.name.clone();
        if g.link.is_none() {
            if g.next_open.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if g.open().is_err() {
                g.next_open = Some(Instant::now() + Duration::from_millis(300));
                return;
            }
            g.next_open = None;
        }
        if !g.added {
            g.added = true;
            out.push(ReaderEvent::ReaderAdded {
                reader: name.clone(),
            });
        }
        // Slot-change notifications only say "look now": the status below is the truth.
        let _hints = g.link.as_mut().map(Link::take_slot_changes);
        let was_present = g.slot.present;
        let status = match g.slot_status() {
            Ok(s) => s,
            Err(e) => {
                if e.reader_gone() || g.link.is_none() {
                    g.lose();
                    g.added = false;
                    g.next_open = Some(Instant::now() + Duration::from_millis(100));
                    if was_present {
                        out.push(ReaderEvent::CardRemoved {
                            reader: name.clone(),
                        });
                    }
                    out.push(ReaderEvent::ReaderRemoved { reader: name });
                }
                return;
            }
        };
        match status {
            IccStatus::Absent => {
                if was_present {
                    g.slot.forget();
                    out.push(ReaderEvent::CardRemoved { reader: name });
                }
            }
            IccStatus::PresentActive if was_present && g.slot.powered => {}
            IccStatus::PresentInactive if was_present && !g.slot.powered => {}
            _ => {
                // A new card, or the card was swapped (the reader powered it down).
                if was_present {
                    g.slot.forget();
                    out.push(ReaderEvent::CardRemoved {
                        reader: name.clone(),
                    });
                }
                match g.power_on() {
                    Ok(atr) => out.push(ReaderEvent::CardInserted { reader: name, atr }),
                    Err(SerialError::CardMute) => out.push(ReaderEvent::CardInserted {
                        reader: name,
                        atr: Vec::new(),
                    }),
                    Err(_) => {}
                }
            }
        }
    }

    /// Whether a card is in the slot, as last seen.
    pub fn card_present(&self) -> bool {
        self.lock().slot.present
    }
}

/// A card in a serial reader, as a [`CardChannel`].
#[derive(Debug)]
pub struct SerialCard {
    reader: SerialReader,
    name: String,
    generation: u64,
    protocol: ActiveProtocol,
    atr: Vec<u8>,
    resets: u64,
}

impl SerialCard {
    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.name
    }

    /// The reader handle.
    pub const fn reader_handle(&self) -> &SerialReader {
        &self.reader
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// The protocol in use.
    pub const fn active_protocol(&self) -> ActiveProtocol {
        self.protocol
    }

    /// How often the session was reset with [`SerialCard::reconnect_with`].
    pub const fn resets(&self) -> u64 {
        self.resets
    }

    /// Power the card down and up again and set up `protocol` (a cold reset: volatile card
    /// state such as verified PINs is gone).
    pub fn reconnect_with(&mut self, protocol: ProtocolChoice) -> Result<(), SerialError> {
        let mut g = self.reader.lock();
        self.reader.power_up(&mut g, protocol)?;
        self.generation = g.slot.generation;
        self.protocol = g.slot.protocol.unwrap_or(ActiveProtocol::Other);
        self.atr = g.slot.atr.clone();
        self.resets += 1;
        Ok(())
    }

    /// Leave the card as it is (powered, for the next session), as PC/SC's `LeaveCard`.
    pub fn disconnect(self) {}

    fn transmit_inner(&mut self, command: &[u8]) -> Result<Vec<u8>, SerialError> {
        let mut g = self.reader.lock();
        if g.link.is_none() || g.slot.generation != self.generation || !g.slot.powered {
            return Err(if g.link.is_none() {
                SerialError::Disconnected {
                    path: g.config.link.path.clone(),
                    reason: "the reader was lost".into(),
                }
            } else {
                SerialError::CardRemoved
            });
        }
        let protocol = self.protocol;
        let r = g.with_link(|link, slot| match protocol {
            ActiveProtocol::T1 => {
                let t1 = slot.t1.as_mut().ok_or(SerialError::CardRemoved)?;
                t1.transceive(command, &mut |b, bwi| xfr(link, b, bwi))
            }
            _ => xfr(link, &t0_tpdu(command)?, 0),
        });
        match r {
            Ok(resp) if resp.len() < 2 => Err(SerialError::NoStatusWord { len: resp.len() }),
            Ok(resp) => Ok(resp),
            Err(e) => {
                if matches!(e, SerialError::CardRemoved | SerialError::NoCard) {
                    g.slot.forget();
                }
                Err(e)
            }
        }
    }
}

impl CardChannel for SerialCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transmit_inner(command)
            .map_err(|e| to_transport(&self.name, e))
    }
}

/// Watches serial readers and reports the same events as the PC/SC [`crate::EventWatcher`]:
/// a reader that answers is added, one that stops answering or whose port closes is removed
/// (and added again when it is back), cards inserted (with their ATR, the card is powered as
/// pcscd does) and removed.
#[derive(Debug)]
pub struct SerialWatcher {
    readers: Vec<SerialReader>,
    poll_interval: Duration,
}

impl SerialWatcher {
    /// Watch `readers`.
    pub fn new(readers: Vec<SerialReader>) -> Self {
        let poll_interval = readers
            .iter()
            .map(|r| r.lock().config.poll_interval)
            .min()
            .unwrap_or(Duration::from_millis(200));
        Self {
            readers,
            poll_interval,
        }
    }

    /// Names of the readers that answer now.
    pub fn readers(&self) -> Vec<String> {
        self.readers
            .iter()
            .filter(|r| r.lock().added)
            .map(SerialReader::name)
            .collect()
    }

    /// Whether a card is in `reader`, as last seen.
    pub fn card_present(&self, reader: &str) -> bool {
        self.readers
            .iter()
            .any(|r| r.name() == reader && r.card_present())
    }

    /// Wait up to `timeout` for something to happen; returns the events (possibly none). The
    /// first call reports the readers and cards already there.
    pub fn next_events(&mut self, timeout: Duration) -> Vec<ReaderEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut out = Vec::new();
            for r in &self.readers {
                r.poll(&mut out);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !out.is_empty() || left.is_zero() {
                return out;
            }
            std::thread::sleep(self.poll_interval.min(left));
        }
    }
}
