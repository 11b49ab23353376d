//! The virtual card as pcscd sees it, through the vpcd driver (vsmartcard).
//!
//! pcscd's vpcd driver listens on TCP (35963 for its first slot); the card connects as a
//! client. Every message both ways is a 2-byte big-endian length and a payload. One-byte
//! messages from vpcd are control: `00` power off, `01` power on, `02` reset (no reply), `04`
//! get ATR (reply: the ATR). Anything longer is a command APDU, answered by the response APDU.
//!
//! Debian 12's vpcd writes the length and the payload in two writes; with delayed ACKs that
//! stalls every APDU by about 40 ms. Setting `TCP_QUICKACK` before every read (Linux clears it
//! again after use) brings the round trip down to tens of microseconds.
//!
//! A [`VirtualSlot`] is one vpcd reader slot: a card can be inserted (connect), removed
//! (disconnect, which pcscd sees as card removal) or pulled in the middle of a command, before
//! it processed the command ([`VirtualSlot::pull_after`]) or after it processed and committed
//! it but before its answer left ([`VirtualSlot::pull_after_processing`]). While a card is
//! inserted the slot reconnects by itself when pcscd goes away and comes back.
//! [`VirtualSlot::set_quickack`] turns the `TCP_QUICKACK` fix off, to measure the stall.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::SockRef;

use crate::os::SoftCard;

/// A card shared between the slot's thread and its owner.
pub type SharedCard = Arc<Mutex<SoftCard>>;

/// What a slot serves: the software card, or anything that answers like a card (the hostile
/// cards of [`crate::hostile`]). vpcd's control messages map onto the first four methods.
pub trait SlotCard: Send {
    /// Power on (vpcd `01`).
    fn power_on(&mut self);
    /// Power off (vpcd `00`).
    fn power_off(&mut self);
    /// Reset (vpcd `02`).
    fn reset(&mut self);
    /// The ATR (vpcd `04`).
    fn atr(&self) -> Vec<u8>;
    /// The answer to a command APDU; `None` leaves vpcd waiting for one (a mute card).
    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>>;
}

impl SlotCard for SoftCard {
    fn power_on(&mut self) {
        SoftCard::power_on(self);
    }
    fn power_off(&mut self) {
        SoftCard::power_off(self);
    }
    fn reset(&mut self) {
        SoftCard::reset(self);
    }
    fn atr(&self) -> Vec<u8> {
        SoftCard::atr(self).to_vec()
    }
    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        Some(self.process(apdu))
    }
}

/// Any card a slot can serve, shared between the slot's thread and its owner.
pub type DynCard = Arc<Mutex<dyn SlotCard>>;

fn lock_dyn<'a>(card: &'a Mutex<dyn SlotCard + 'static>) -> MutexGuard<'a, dyn SlotCard + 'static> {
    card.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lock a shared card, recovering from a poisoned lock (a panicking test thread must not take
/// the card down with it).
pub fn lock(card: &SharedCard) -> MutexGuard<'_, SoftCard> {
    card.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Longest message accepted from vpcd (an extended APDU plus header).
const MAX_MESSAGE: usize = 65_544;

fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>, quickack: bool) -> io::Result<bool> {
    if quickack {
        let _ = SockRef::from(&*stream).set_tcp_quickack(true);
    }
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let n = usize::from(u16::from_be_bytes(len));
    if n > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "vpcd message too long",
        ));
    }
    buf.resize(n, 0);
    if quickack {
        let _ = SockRef::from(&*stream).set_tcp_quickack(true);
    }
    stream.read_exact(buf)?;
    Ok(true)
}

fn write_message(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response too long for vpcd"))?;
    // One write: length and payload together.
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    stream.write_all(&out)
}

/// Why a serving loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// vpcd closed the connection (pcscd stopped).
    PeerClosed,
    /// The card was pulled on purpose.
    Pulled,
}

/// What the serving loop shares with the slot's owner.
#[derive(Debug)]
struct Control {
    /// APDUs until the card is pulled (0: never).
    pull_after: AtomicU64,
    /// The card processes the APDU it is pulled at (its answer is lost) instead of never
    /// seeing it.
    pull_processed: AtomicBool,
    /// APDUs served.
    apdus: AtomicU64,
    /// Set `TCP_QUICKACK` before every read.
    quickack: AtomicBool,
}

/// Serve one vpcd connection until it closes. `pull_after` counts APDUs; when it reaches zero
/// the card is pulled *before* answering that APDU (after processing it if `pull_processed`).
fn serve(
    mut stream: TcpStream,
    card: &Mutex<dyn SlotCard>,
    control: &Control,
) -> io::Result<Ended> {
    let mut buf = Vec::with_capacity(300);
    loop {
        let quickack = control.quickack.load(Ordering::Relaxed);
        if !read_message(&mut stream, &mut buf, quickack)? {
            return Ok(Ended::PeerClosed);
        }
        match buf.as_slice() {
            [0x00] => lock_dyn(card).power_off(),
            [0x01] => lock_dyn(card).power_on(),
            [0x02] => lock_dyn(card).reset(),
            [0x04] => {
                let atr = lock_dyn(card).atr();
                write_message(&mut stream, &atr)?;
            }
            [_] => {
                // Unknown control byte: ignore, as vpcd's own cards do.
            }
            apdu => {
                control.apdus.fetch_add(1, Ordering::Relaxed);
                let left = control.pull_after.load(Ordering::SeqCst);
                if left == 1 {
                    control.pull_after.store(0, Ordering::SeqCst);
                    let mut card = lock_dyn(card);
                    if control.pull_processed.load(Ordering::SeqCst) {
                        // The card did the work and committed it; power goes before the
                        // answer leaves.
                        let _ = card.answer(apdu);
                    }
                    let _ = stream.shutdown(Shutdown::Both);
                    card.power_off();
                    return Ok(Ended::Pulled);
                }
                if left > 1 {
                    control.pull_after.store(left - 1, Ordering::SeqCst);
                }
                // A mute card leaves vpcd waiting: nothing is written back.
                if let Some(response) = lock_dyn(card).answer(apdu) {
                    write_message(&mut stream, &response)?;
                }
            }
        }
    }
}

struct Running {
    /// The software card, when the slot serves one.
    card: Option<SharedCard>,
    served: DynCard,
    stop: Arc<AtomicBool>,
    stream: Arc<Mutex<Option<TcpStream>>>,
    thread: JoinHandle<()>,
}

/// One vpcd reader slot.
pub struct VirtualSlot {
    addr: SocketAddr,
    running: Option<Running>,
    control: Arc<Control>,
}

/// Errors of a slot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// vpcd is not listening: pcscd with the vpcd driver is not running.
    #[error(
        "cannot reach pcscd's vpcd driver at {addr}: {source}. Start pcscd with the project's \
         readers: scripts/pcsc-env.sh start"
    )]
    Connect {
        /// Address tried.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

impl VirtualSlot {
    /// A slot for the vpcd port `port` on 127.0.0.1.
    pub fn new(port: u16) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            running: None,
            control: Arc::new(Control {
                pull_after: AtomicU64::new(0),
                pull_processed: AtomicBool::new(false),
                apdus: AtomicU64::new(0),
                quickack: AtomicBool::new(true),
            }),
        }
    }

    /// The vpcd address.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a card is in the slot.
    pub fn is_inserted(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| !r.stop.load(Ordering::Relaxed) && !r.thread.is_finished())
    }

    /// APDUs served since the slot was created.
    pub fn apdus(&self) -> u64 {
        self.control.apdus.load(Ordering::Relaxed)
    }

    /// The card in the slot.
    pub fn card(&self) -> Option<SharedCard> {
        self.running.as_ref().and_then(|r| r.card.clone())
    }

    /// Insert a card: connect to vpcd and serve it. A card already in the slot is removed
    /// first. Fails if vpcd cannot be reached.
    pub fn insert(&mut self, card: SharedCard) -> Result<(), SlotError> {
        let served: DynCard = card.clone();
        self.insert_served(served, Some(card))
    }

    /// Insert any [`SlotCard`] (a hostile card, say), as [`VirtualSlot::insert`] does the
    /// software card. [`VirtualSlot::card`] and [`VirtualSlot::remove`] give `None` for it.
    pub fn insert_any(&mut self, card: DynCard) -> Result<(), SlotError> {
        self.insert_served(card, None)
    }

    fn insert_served(
        &mut self,
        served: DynCard,
        card: Option<SharedCard>,
    ) -> Result<(), SlotError> {
        self.remove();
        let first =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).map_err(|source| {
                SlotError::Connect {
                    addr: self.addr,
                    source,
                }
            })?;
        let _ = first.set_nodelay(true);
        let stop = Arc::new(AtomicBool::new(false));
        let stream_slot = Arc::new(Mutex::new(first.try_clone().ok()));
        let thread = {
            let card = Arc::clone(&served);
            let stop = Arc::clone(&stop);
            let stream_slot = Arc::clone(&stream_slot);
            let control = Arc::clone(&self.control);
            let addr = self.addr;
            std::thread::Builder::new()
                .name(format!("vpcd-{}", addr.port()))
                .spawn(move || {
                    let mut stream = Some(first);
                    while !stop.load(Ordering::Relaxed) {
                        let s = match stream.take() {
                            Some(s) => s,
                            None => {
                                match TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                                {
                                    Ok(s) => {
                                        let _ = s.set_nodelay(true);
                                        if let Ok(mut g) = stream_slot.lock() {
                                            *g = s.try_clone().ok();
                                        }
                                        s
                                    }
                                    Err(_) => {
                                        std::thread::sleep(Duration::from_millis(100));
                                        continue;
                                    }
                                }
                            }
                        };
                        match serve(s, &card, &control) {
                            Ok(Ended::Pulled) => {
                                stop.store(true, Ordering::Relaxed);
                            }
                            // pcscd went away or the connection broke: the card stays in the
                            // slot and reconnects when vpcd is back.
                            Ok(Ended::PeerClosed) | Err(_) => {
                                lock_dyn(&card).power_off();
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })
                .map_err(|source| SlotError::Connect {
                    addr: self.addr,
                    source,
                })?
        };
        self.running = Some(Running {
            card,
            served,
            stop,
            stream: stream_slot,
            thread,
        });
        Ok(())
    }

    /// Pull the card out in the middle of the `n`-th APDU from now: vpcd sees the connection
    /// drop while it waits for the answer, as when a citizen pulls the card mid-command.
    pub fn pull_after(&self, n: u64) {
        self.control.pull_processed.store(false, Ordering::SeqCst);
        self.control.pull_after.store(n, Ordering::SeqCst);
    }

    /// Pull the card out right after it processed the `n`-th APDU from now: the card has done
    /// the work and committed what it writes, but power goes before its answer leaves, so vpcd
    /// sees the connection drop while it waits for the answer (a debit whose answer is lost).
    pub fn pull_after_processing(&self, n: u64) {
        self.control.pull_processed.store(true, Ordering::SeqCst);
        self.control.pull_after.store(n, Ordering::SeqCst);
    }

    /// Whether the card sets `TCP_QUICKACK` before every read (default: yes). Without it each
    /// APDU through Debian 12's vpcd stalls about 40 ms (module documentation); benchmarks turn
    /// it off to measure that.
    pub fn set_quickack(&self, on: bool) {
        self.control.quickack.store(on, Ordering::Relaxed);
    }

    /// Remove the card (pcscd reports the removal). Returns it if it is a software card.
    pub fn remove(&mut self) -> Option<SharedCard> {
        let running = self.running.take()?;
        running.stop.store(true, Ordering::Relaxed);
        if let Ok(g) = running.stream.lock()
            && let Some(s) = g.as_ref()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = running.thread.join();
        lock_dyn(&running.served).power_off();
        running.card
    }
}

impl Drop for VirtualSlot {
    fn drop(&mut self) {
        self.remove();
    }
}
