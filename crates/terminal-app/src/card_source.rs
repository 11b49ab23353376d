//! Where the kiosk's card comes from: a PC/SC reader through pcscd, or the demo's in-process
//! slot into which the demo panel inserts software cards. Both give the session the same two
//! things: reader/card events, and a [`CardChannel`] to the card that is in.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use card_core::{CardChannel, TransportError};
use firmware_tests::SharedCard;
use reader_driver::{EventWatcher, PcscContext, ProtocolChoice, ReaderEvent};

/// What happened at the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// The reader is there and has no card.
    ReaderReady(String),
    /// The reader (or pcscd) is gone.
    ReaderGone,
    /// A card was inserted.
    CardInserted,
    /// The card was removed.
    CardRemoved,
}

/// A source of cards.
pub trait CardSource: Send {
    /// Wait up to `timeout` for events.
    fn poll(&mut self, timeout: Duration) -> Vec<SourceEvent>;
    /// A channel to the card now in the reader.
    fn open(&mut self) -> Result<Box<dyn CardChannel + Send>, String>;
    /// The readers this source sees, each with its state, for the service view.
    fn describe(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A card slot the demo panel fills, shared between the UI (insert/remove) and the session.
#[derive(Clone, Default)]
pub struct DemoSlot {
    inner: Arc<Mutex<SlotState>>,
}

#[derive(Default)]
struct SlotState {
    card: Option<(String, SharedCard)>,
    generation: u64,
    pull: Option<PullTrap>,
}

/// When the demo slot pulls its card by itself (see [`DemoSlot::pull_on`]).
#[derive(Clone, Copy)]
struct PullTrap {
    when: fn(&[u8]) -> bool,
    after_card: bool,
}

impl std::fmt::Debug for DemoSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSlot")
            .field("inserted", &self.inserted())
            .finish()
    }
}

impl DemoSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Put a card in (replacing any card that was in).
    pub fn insert(&self, name: &str, card: SharedCard) {
        let mut s = self.lock();
        firmware_tests::vpcd::lock(&card).power_on();
        s.card = Some((name.to_string(), card));
        s.generation += 1;
    }

    /// Take the card out.
    pub fn remove(&self) {
        let mut s = self.lock();
        if let Some((_, card)) = s.card.take() {
            firmware_tests::vpcd::lock(&card).power_off();
        }
        s.generation += 1;
    }

    /// Pull the card out at the next command for which `when` is true, as a citizen pulling it
    /// mid-transaction: with `after_card` the card processes the command first (its writes
    /// happen, its answer is lost), otherwise the command never reaches it. For tests and for
    /// demonstrating recovery.
    pub fn pull_on(&self, when: fn(&[u8]) -> bool, after_card: bool) {
        self.lock().pull = Some(PullTrap { when, after_card });
    }

    /// The name of the card in the slot.
    pub fn inserted(&self) -> Option<String> {
        self.lock().card.as_ref().map(|(n, _)| n.clone())
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }
}

/// A channel to the demo slot's card; fails with `CardRemoved` once the card was taken out or
/// replaced.
struct DemoChannel {
    slot: DemoSlot,
    generation: u64,
}

impl CardChannel for DemoChannel {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut s = self.slot.lock();
        let trap = s.pull.filter(|t| (t.when)(command));
        let answer = match &s.card {
            Some((_, card)) if s.generation == self.generation => {
                if trap.is_some_and(|t| !t.after_card) {
                    None
                } else {
                    Some(firmware_tests::vpcd::lock(card).process(command))
                }
            }
            _ => return Err(TransportError::CardRemoved),
        };
        if trap.is_some() {
            s.pull = None;
            if let Some((_, card)) = s.card.take() {
                firmware_tests::vpcd::lock(&card).power_off();
            }
            s.generation += 1;
            return Err(TransportError::CardRemoved);
        }
        answer.ok_or(TransportError::CardRemoved)
    }
}

/// The demo's in-process reader.
#[derive(Debug)]
pub struct DemoSource {
    slot: DemoSlot,
    seen: u64,
    had_card: bool,
    announced: bool,
}

impl DemoSource {
    /// A source reading `slot`.
    pub fn new(slot: DemoSlot) -> Self {
        Self {
            slot,
            seen: 0,
            had_card: false,
            announced: false,
        }
    }
}

impl CardSource for DemoSource {
    fn poll(&mut self, timeout: Duration) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        if !self.announced {
            self.announced = true;
            out.push(SourceEvent::ReaderReady("demo reader".into()));
        }
        let generation = self.slot.generation();
        if generation == self.seen {
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            return out;
        }
        self.seen = generation;
        let has_card = self.slot.inserted().is_some();
        if self.had_card {
            out.push(SourceEvent::CardRemoved);
        }
        if has_card {
            out.push(SourceEvent::CardInserted);
        }
        self.had_card = has_card;
        out
    }

    fn describe(&mut self) -> Vec<String> {
        vec![match self.slot.inserted() {
            Some(_) => "demo in-process reader: card present".to_string(),
            None => "demo in-process reader: empty".to_string(),
        }]
    }

    fn open(&mut self) -> Result<Box<dyn CardChannel + Send>, String> {
        Ok(Box::new(DemoChannel {
            slot: self.slot.clone(),
            generation: self.slot.generation(),
        }))
    }
}

/// A PC/SC reader through pcscd: the named one, or the first that appears.
pub struct PcscSource {
    watcher: EventWatcher,
    ctx: Option<PcscContext>,
    reader: Option<String>,
    wanted: Option<String>,
}

impl std::fmt::Debug for PcscSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscSource")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl PcscSource {
    /// Watch `reader`, or the first reader pcscd reports.
    pub fn new(reader: Option<String>) -> Self {
        Self {
            watcher: EventWatcher::new(),
            ctx: None,
            reader: reader.clone(),
            wanted: reader,
        }
    }
}

impl CardSource for PcscSource {
    fn poll(&mut self, timeout: Duration) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        for e in self.watcher.next_events(timeout) {
            match e {
                ReaderEvent::ReaderAdded { reader } => {
                    if self.reader.is_none() && self.wanted.as_ref().is_none_or(|w| *w == reader) {
                        self.reader = Some(reader.clone());
                    }
                    if self.reader.as_ref() == Some(&reader) {
                        out.push(SourceEvent::ReaderReady(reader));
                    }
                }
                ReaderEvent::ReaderRemoved { reader } if self.reader.as_ref() == Some(&reader) => {
                    out.push(SourceEvent::ReaderGone);
                    if self.wanted.is_none() {
                        self.reader = None;
                    }
                }
                ReaderEvent::CardInserted { reader, .. }
                    if self.reader.as_ref() == Some(&reader) =>
                {
                    out.push(SourceEvent::CardInserted);
                }
                ReaderEvent::CardRemoved { reader } if self.reader.as_ref() == Some(&reader) => {
                    out.push(SourceEvent::CardRemoved);
                }
                ReaderEvent::ServiceLost => {
                    self.ctx = None;
                    out.push(SourceEvent::ReaderGone);
                }
                _ => {}
            }
        }
        out
    }

    fn describe(&mut self) -> Vec<String> {
        let states = PcscContext::new().and_then(|mut c| c.reader_states());
        match states {
            Ok(list) if list.is_empty() => vec!["pcscd: no reader".to_string()],
            Ok(list) => list
                .into_iter()
                .map(|r| {
                    let used = if self.reader.as_deref() == Some(r.name.as_str()) {
                        " (used by this terminal)"
                    } else {
                        ""
                    };
                    let state = if r.mute {
                        "card mute".to_string()
                    } else if r.present {
                        format!("card present, ATR {}", hex::encode_upper(&r.atr))
                    } else {
                        "empty".to_string()
                    };
                    format!("{}{used}: {state}", r.name)
                })
                .collect(),
            Err(e) => vec![format!("pcscd: {e}")],
        }
    }

    fn open(&mut self) -> Result<Box<dyn CardChannel + Send>, String> {
        let reader = self.reader.clone().ok_or("no reader")?;
        if self.ctx.is_none() {
            self.ctx = Some(PcscContext::new().map_err(|e| e.to_string())?);
        }
        let ctx = self.ctx.as_mut().ok_or("no PC/SC context")?;
        let card = ctx
            .connect(&reader, ProtocolChoice::Any)
            .map_err(|e| e.to_string())?;
        // A mute card in a reader that waits for ever (vpcd) ends as "does not respond"
        // instead of holding the session until it is pulled.
        let card = reader_driver::TimedCard::new(card, reader_driver::DEFAULT_COMMAND_TIMEOUT)
            .map_err(|e| e.to_string())?;
        Ok(Box::new(card))
    }
}
