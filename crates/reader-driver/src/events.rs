//! Reader and card events: readers plugged and unplugged, cards inserted and removed, and
//! pcscd itself going away and coming back.
//!
//! [`EventWatcher`] blocks in `SCardGetStatusChange` on every reader plus pcsc-lite's
//! plug-and-play pseudo reader, and turns state changes into [`ReaderEvent`]s. A card that was
//! removed and inserted again between two calls is still reported as a removal and an
//! insertion, from the reader's event counter. When pcscd stops, the watcher reports
//! [`ReaderEvent::ServiceLost`] (and the readers and cards as gone), then keeps trying to
//! build a new context; when pcscd is back it reports [`ReaderEvent::ServiceRestored`] and
//! the readers and cards it finds.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use pcsc::{Context, ReaderState, Scope, State};

use crate::error::DriverError;

/// Something that happened to a reader or its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// A reader appeared.
    ReaderAdded {
        /// Reader name.
        reader: String,
    },
    /// A reader went away.
    ReaderRemoved {
        /// Reader name.
        reader: String,
    },
    /// A card was inserted.
    CardInserted {
        /// Reader name.
        reader: String,
        /// The card's ATR.
        atr: Vec<u8>,
    },
    /// The card was removed.
    CardRemoved {
        /// Reader name.
        reader: String,
    },
    /// pcscd stopped or cannot be reached.
    ServiceLost,
    /// pcscd is reachable again.
    ServiceRestored,
}

#[derive(Debug, Clone)]
struct Known {
    state: State,
    present: bool,
    events: u32,
}

impl Default for Known {
    fn default() -> Self {
        Self {
            state: State::UNAWARE,
            present: false,
            events: 0,
        }
    }
}

/// Watches readers and cards.
pub struct EventWatcher {
    ctx: Option<Context>,
    readers: BTreeMap<String, Known>,
    service_up: bool,
    started: bool,
}

impl std::fmt::Debug for EventWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWatcher")
            .field("readers", &self.readers.keys().collect::<Vec<_>>())
            .field("service_up", &self.service_up)
            .finish()
    }
}

fn present(state: State) -> bool {
    state.contains(State::PRESENT) && !state.contains(State::EMPTY)
}

fn event_count(state: State) -> u32 {
    // pcsc-lite keeps a per-reader event counter in the high 16 bits of the state.
    (state.bits() >> 16) as u32
}

/// Cancels a watcher's blocking wait from another thread.
#[derive(Clone)]
pub struct Canceller(Context);

impl Canceller {
    /// Make the current or next `next_events` return early.
    pub fn cancel(&self) {
        let _ = self.0.cancel();
    }
}

impl EventWatcher {
    /// A watcher. Works without pcscd: it then reports `ServiceLost` first and waits for pcscd.
    pub fn new() -> Self {
        Self {
            ctx: Context::establish(Scope::User).ok(),
            readers: BTreeMap::new(),
            service_up: false,
            started: false,
        }
    }

    /// A handle that interrupts a blocking [`EventWatcher::next_events`].
    pub fn canceller(&self) -> Option<Canceller> {
        self.ctx.as_ref().map(|c| Canceller(c.clone()))
    }

    /// Readers currently known.
    pub fn readers(&self) -> Vec<String> {
        self.readers.keys().cloned().collect()
    }

    /// Whether a card is in `reader`, as last seen.
    pub fn card_present(&self, reader: &str) -> bool {
        self.readers.get(reader).is_some_and(|k| k.present)
    }

    fn lose_service(&mut self, out: &mut Vec<ReaderEvent>) {
        self.ctx = None;
        for (reader, k) in std::mem::take(&mut self.readers) {
            if k.present {
                out.push(ReaderEvent::CardRemoved {
                    reader: reader.clone(),
                });
            }
            out.push(ReaderEvent::ReaderRemoved { reader });
        }
        if self.service_up || !self.started {
            out.push(ReaderEvent::ServiceLost);
        }
        self.service_up = false;
        self.started = true;
    }

    /// Bring the reader list up to date, emitting added/removed readers and, for new readers,
    /// the cards already in them.
    fn sync_readers(&mut self, out: &mut Vec<ReaderEvent>) -> Result<(), pcsc::Error> {
        let Some(ctx) = self.ctx.as_ref() else {
            return Ok(());
        };
        let names: Vec<String> = match ctx.list_readers_owned() {
            Ok(n) => n
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect(),
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(e),
        };
        let gone: Vec<String> = self
            .readers
            .keys()
            .filter(|r| !names.contains(r))
            .cloned()
            .collect();
        for reader in gone {
            if self.readers.remove(&reader).is_some_and(|k| k.present) {
                out.push(ReaderEvent::CardRemoved {
                    reader: reader.clone(),
                });
            }
            out.push(ReaderEvent::ReaderRemoved { reader });
        }
        for name in names {
            if self.readers.contains_key(&name) {
                continue;
            }
            out.push(ReaderEvent::ReaderAdded {
                reader: name.clone(),
            });
            // Ask for the current state right away.
            let Ok(c) = CString::new(name.clone()) else {
                continue;
            };
            let mut rs = [ReaderState::new(c, State::UNAWARE)];
            let mut known = Known::default();
            if ctx.get_status_change(Duration::ZERO, &mut rs).is_ok() {
                let st = rs[0].event_state();
                known.state = st;
                known.events = event_count(st);
                if present(st) {
                    known.present = true;
                    out.push(ReaderEvent::CardInserted {
                        reader: name.clone(),
                        atr: rs[0].atr().to_vec(),
                    });
                }
            }
            self.readers.insert(name, known);
        }
        Ok(())
    }

    /// Wait up to `timeout` for something to happen; returns the events (possibly none). The
    /// first call reports the readers and cards already there.
    pub fn next_events(&mut self, timeout: Duration) -> Vec<ReaderEvent> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        if self.ctx.is_none() {
            self.ctx = Context::establish(Scope::User).ok();
        }
        if self.ctx.is_none() {
            if self.service_up || !self.started {
                self.lose_service(&mut out);
                return out;
            }
            // Poll for pcscd's return.
            std::thread::sleep(timeout.min(Duration::from_millis(200)));
            return out;
        }
        if !self.service_up {
            if self.started {
                out.push(ReaderEvent::ServiceRestored);
            }
            self.service_up = true;
            self.started = true;
            if let Err(e) = self.sync_readers(&mut out)
                && is_service_error(e)
            {
                self.lose_service(&mut out);
            }
            if !out.is_empty() {
                return out;
            }
        }
        // Build the state list: the PnP pseudo reader and every known reader.
        let mut states = vec![ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE)];
        for (name, k) in &self.readers {
            if let Ok(c) = CString::new(name.clone()) {
                let mut current = k.state;
                current.remove(State::CHANGED);
                states.push(ReaderState::new(c, current));
            }
        }
        // Learn the PnP counter without blocking, then wait.
        let Some(ctx) = self.ctx.clone() else {
            return out;
        };
        if let Err(e) = ctx.get_status_change(Duration::ZERO, &mut states[..1])
            && is_service_error(e)
        {
            self.lose_service(&mut out);
            return out;
        }
        states[0].sync_current_state();
        let wait = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(wait, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) | Err(pcsc::Error::Cancelled) => return out,
            Err(e) if is_service_error(e) => {
                self.lose_service(&mut out);
                return out;
            }
            Err(_) => return out,
        }
        let pnp_changed = states[0].event_state().contains(State::CHANGED);
        for rs in states.iter().skip(1) {
            let name = rs.name().to_string_lossy().into_owned();
            let st = rs.event_state();
            if !st.contains(State::CHANGED) {
                continue;
            }
            if st.intersects(State::UNKNOWN | State::IGNORE) {
                // The reader is gone; sync_readers reports it.
                continue;
            }
            let Some(k) = self.readers.get_mut(&name) else {
                continue;
            };
            let now_present = present(st);
            let count = event_count(st);
            // Counter moved by more than the one event we can see: a removal and insertion
            // happened in between.
            let missed_cycle = k.present && now_present && count.wrapping_sub(k.events) >= 2;
            if k.present && (!now_present || missed_cycle) {
                out.push(ReaderEvent::CardRemoved {
                    reader: name.clone(),
                });
            }
            if now_present && (!k.present || missed_cycle) {
                out.push(ReaderEvent::CardInserted {
                    reader: name.clone(),
                    atr: rs.atr().to_vec(),
                });
            }
            k.present = now_present;
            k.state = st;
            k.events = count;
        }
        if (pnp_changed || states.len() == 1)
            && let Err(e) = self.sync_readers(&mut out)
            && is_service_error(e)
        {
            self.lose_service(&mut out);
        }
        out
    }
}

impl Default for EventWatcher {
    fn default() -> Self {
        Self::new()
    }
}

fn is_service_error(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::NoService
            | pcsc::Error::ServiceStopped
            | pcsc::Error::InvalidHandle
            | pcsc::Error::CommError
    )
}

impl From<pcsc::Error> for DriverError {
    fn from(e: pcsc::Error) -> Self {
        DriverError::from_pcsc("get status change", "", e)
    }
}
