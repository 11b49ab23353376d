//! PC/SC readers through pcsc-lite (the `pcsc` crate).
//!
//! [`PcscContext`] owns the resource-manager context and rebuilds it when pcscd has gone away
//! and come back (after a restart every call on the old context fails with
//! `SCARD_E_NO_SERVICE` / `SCARD_E_INVALID_HANDLE` until a new one is established).
//! [`PcscCard`] is a connected card: shared mode, T=0 or T=1 as asked, a [`CardChannel`] for
//! card-core. After the card was reset (another application, or a re-power) it reconnects and
//! reports [`TransportError::CardReset`] once, so the flow above re-selects its application and
//! forgets verified PINs. Dropping it disconnects with `LeaveCard`: the `pcsc` crate's own drop
//! would reset the card, which would throw away other applications' state.

use std::ffi::{CStr, CString};

use card_core::TransportError;
use card_core::channel::CardChannel;
use std::time::{Duration, Instant};

use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use crate::error::{DriverError, transport_error};

/// Which protocol to connect with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// T=0 only.
    T0,
    /// T=1 only.
    T1,
    /// Whatever the card and reader agree (T=0 or T=1).
    #[default]
    Any,
}

impl ProtocolChoice {
    fn protocols(self) -> Protocols {
        match self {
            Self::T0 => Protocols::T0,
            Self::T1 => Protocols::T1,
            Self::Any => Protocols::T0 | Protocols::T1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::T0 => "T=0",
            Self::T1 => "T=1",
            Self::Any => "T=0 or T=1",
        }
    }
}

/// The active protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveProtocol {
    /// T=0.
    T0,
    /// T=1.
    T1,
    /// Raw or unknown.
    Other,
}

impl From<Option<pcsc::Protocol>> for ActiveProtocol {
    fn from(p: Option<pcsc::Protocol>) -> Self {
        match p {
            Some(pcsc::Protocol::T0) => Self::T0,
            Some(pcsc::Protocol::T1) => Self::T1,
            _ => Self::Other,
        }
    }
}

impl std::fmt::Display for ActiveProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::T0 => "T=0",
            Self::T1 => "T=1",
            Self::Other => "raw",
        })
    }
}

/// A connection to pcscd that survives pcscd restarts.
pub struct PcscContext {
    ctx: Option<Context>,
}

impl std::fmt::Debug for PcscContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscContext")
            .field("established", &self.ctx.is_some())
            .finish()
    }
}

fn establish() -> Result<Context, DriverError> {
    Context::establish(Scope::User).map_err(|e| DriverError::from_pcsc("establish", "", e))
}

impl PcscContext {
    /// Connect to pcscd. Fails with [`DriverError::ServiceNotRunning`] (whose message says how
    /// to start it) if pcscd is not there.
    pub fn new() -> Result<Self, DriverError> {
        Ok(Self {
            ctx: Some(establish()?),
        })
    }

    /// The pcsc context, established if needed.
    pub fn context(&mut self) -> Result<&Context, DriverError> {
        if self.ctx.is_none() {
            self.ctx = Some(establish()?);
        }
        self.ctx.as_ref().ok_or(DriverError::ServiceNotRunning)
    }

    /// Forget the context (the next call establishes a new one).
    pub fn invalidate(&mut self) {
        self.ctx = None;
    }

    /// Run `op`; if it fails because the context is stale (pcscd restarted), rebuild the
    /// context and run it once more.
    fn with_context<T>(
        &mut self,
        op: impl Fn(&Context) -> Result<T, pcsc::Error>,
        operation: &'static str,
        reader: &str,
    ) -> Result<T, DriverError> {
        let first = op(self.context()?);
        match first {
            Err(
                pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::InvalidHandle,
            ) => {
                self.invalidate();
                op(self.context()?).map_err(|e| {
                    if matches!(
                        e,
                        pcsc::Error::NoService
                            | pcsc::Error::ServiceStopped
                            | pcsc::Error::InvalidHandle
                    ) {
                        self.invalidate();
                    }
                    DriverError::from_pcsc(operation, reader, e)
                })
            }
            other => other.map_err(|e| DriverError::from_pcsc(operation, reader, e)),
        }
    }

    /// Names of the attached readers (empty if none).
    pub fn readers(&mut self) -> Result<Vec<String>, DriverError> {
        match self.with_context(Context::list_readers_owned, "list readers", "") {
            Ok(names) => Ok(names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(DriverError::NoReaders) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every reader with whether a card is in it and the card's ATR, without connecting.
    pub fn reader_states(&mut self) -> Result<Vec<ReaderStatus>, DriverError> {
        let names: Vec<CString> = self
            .readers()?
            .into_iter()
            .filter_map(|n| CString::new(n).ok())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let states = self.with_context(
            |ctx| {
                let mut states: Vec<ReaderState> = names
                    .iter()
                    .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
                    .collect();
                ctx.get_status_change(Duration::ZERO, &mut states)
                    .map(|()| states)
            },
            "get status",
            "",
        )?;
        Ok(states
            .iter()
            .map(|s| {
                let st = s.event_state();
                let present = st.contains(State::PRESENT) && !st.contains(State::EMPTY);
                ReaderStatus {
                    name: s.name().to_string_lossy().into_owned(),
                    present,
                    mute: st.contains(State::MUTE),
                    in_use: st.contains(State::INUSE),
                    atr: if present {
                        s.atr().to_vec()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }

    /// Connect to the card in `reader`, shared, with the protocol asked for.
    pub fn connect(
        &mut self,
        reader: &str,
        protocol: ProtocolChoice,
    ) -> Result<PcscCard, DriverError> {
        let name =
            CString::new(reader).map_err(|_| DriverError::UnknownReader(reader.to_string()))?;
        let card = self
            .with_context(
                |ctx| ctx.connect(&name, ShareMode::Shared, protocol.protocols()),
                "connect",
                reader,
            )
            .map_err(|e| match e {
                DriverError::Pcsc {
                    error: pcsc::Error::ProtoMismatch,
                    ..
                } => DriverError::ProtocolMismatch {
                    reader: reader.to_string(),
                    requested: protocol.name().to_string(),
                },
                e => e,
            })?;
        let atr = card_atr(&card);
        let ctx = self.context()?.clone();
        Ok(PcscCard {
            ctx,
            card: Some(card),
            reader: reader.to_string(),
            protocol,
            atr,
            resets: 0,
            buf: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        })
    }

    /// Connect to the first reader that holds a card.
    pub fn connect_first(&mut self, protocol: ProtocolChoice) -> Result<PcscCard, DriverError> {
        let readers = self.readers()?;
        if readers.is_empty() {
            return Err(DriverError::NoReaders);
        }
        let mut last = DriverError::NoReaders;
        for r in &readers {
            match self.connect(r, protocol) {
                Ok(card) => return Ok(card),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn card_atr(card: &pcsc::Card) -> Vec<u8> {
    card.get_attribute_owned(pcsc::Attribute::AtrString)
        .or_else(|_| card.status2_owned().map(|s| s.atr().to_vec()))
        .unwrap_or_default()
}

/// A reader as seen without connecting to its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStatus {
    /// Reader name.
    pub name: String,
    /// A card is in the reader.
    pub present: bool,
    /// The card does not answer to reset.
    pub mute: bool,
    /// Another application is connected.
    pub in_use: bool,
    /// The card's ATR (empty if no card).
    pub atr: Vec<u8>,
}

/// A card connected through PC/SC.
pub struct PcscCard {
    ctx: Context,
    card: Option<pcsc::Card>,
    reader: String,
    protocol: ProtocolChoice,
    atr: Vec<u8>,
    resets: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PcscCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscCard")
            .field("reader", &self.reader)
            .field("protocol", &self.active_protocol())
            .field("resets", &self.resets)
            .finish()
    }
}

impl PcscCard {
    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        &self.atr
    }

    /// The protocol in use.
    pub fn active_protocol(&self) -> ActiveProtocol {
        self.card.as_ref().map_or(ActiveProtocol::Other, |c| {
            ActiveProtocol::from(c.status2_owned().ok().and_then(|s| s.protocol2()))
        })
    }

    /// How many times the card was found reset and reconnected.
    pub const fn resets(&self) -> u64 {
        self.resets
    }

    /// Reconnect. `reset` asks for a warm reset of the card first; otherwise the card is left
    /// as it is.
    pub fn reconnect(&mut self, reset: bool) -> Result<(), DriverError> {
        self.reconnect_with(self.protocol, reset)
    }

    /// Reconnect with another protocol. pcsc-lite keeps the protocol negotiated first until
    /// the card is reset, so changing it needs `reset`.
    pub fn reconnect_with(
        &mut self,
        protocol: ProtocolChoice,
        reset: bool,
    ) -> Result<(), DriverError> {
        self.protocol = protocol;
        let reader = self.reader.clone();
        let card = self
            .card
            .as_mut()
            .ok_or_else(|| DriverError::NoCard(reader.clone()))?;
        let disposition = if reset {
            Disposition::ResetCard
        } else {
            Disposition::LeaveCard
        };
        card.reconnect(ShareMode::Shared, protocol.protocols(), disposition)
            .map_err(|e| match e {
                pcsc::Error::ProtoMismatch => DriverError::ProtocolMismatch {
                    reader: reader.clone(),
                    requested: protocol.name().to_string(),
                },
                e => DriverError::from_pcsc("reconnect", &reader, e),
            })?;
        self.atr = card_atr(card);
        Ok(())
    }

    /// Start an exclusive transaction: until the returned channel is dropped, no other
    /// application can send commands to the card between ours.
    pub fn transaction(&mut self) -> Result<PcscTransaction<'_>, DriverError> {
        let reader = self.reader.clone();
        let protocol = self.protocol;
        let card = self
            .card
            .as_mut()
            .ok_or_else(|| DriverError::NoCard(reader.clone()))?;
        let tx = match card.transaction2() {
            Ok(tx) => tx,
            Err((card, pcsc::Error::ResetCard)) => {
                // The card was reset since our last command: reconnect and try once more.
                card.reconnect(
                    ShareMode::Shared,
                    protocol.protocols(),
                    Disposition::LeaveCard,
                )
                .map_err(|e| DriverError::from_pcsc("reconnect", &reader, e))?;
                self.resets += 1;
                card.transaction()
                    .map_err(|e| DriverError::from_pcsc("begin transaction", &reader, e))?
            }
            Err((_, e)) => return Err(DriverError::from_pcsc("begin transaction", &reader, e)),
        };
        Ok(PcscTransaction {
            ctx: &self.ctx,
            tx,
            reader,
            protocol,
            buf: &mut self.buf,
            resets: &mut self.resets,
        })
    }

    /// Disconnect, leaving the card as it is (no reset).
    pub fn disconnect(mut self) -> Result<(), DriverError> {
        self.leave()
    }

    fn leave(&mut self) -> Result<(), DriverError> {
        if let Some(card) = self.card.take() {
            card.disconnect(Disposition::LeaveCard)
                .map_err(|(_, e)| DriverError::from_pcsc("disconnect", &self.reader, e))?;
        }
        Ok(())
    }
}

impl Drop for PcscCard {
    fn drop(&mut self) {
        let _ = self.leave();
    }
}

/// Whether the card in `reader` is gone: pcsc-lite says so now, or within `wait` (it polls
/// serial readers every 400 ms).
fn card_gone(ctx: &Context, card: &pcsc::Card, reader: &str, wait: Duration) -> bool {
    match card.status2_owned() {
        Err(pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard) => return true,
        Ok(s) if s.status().contains(pcsc::Status::ABSENT) => return true,
        _ => {}
    }
    let Ok(name) = CString::new(reader) else {
        return false;
    };
    let mut rs = [ReaderState::new(name, State::UNAWARE)];
    if ctx.get_status_change(Duration::ZERO, &mut rs).is_err() {
        return false;
    }
    let deadline = Instant::now() + wait;
    loop {
        let st = rs[0].event_state();
        if st.contains(State::EMPTY) || !st.contains(State::PRESENT) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        rs[0].sync_current_state();
        if ctx.get_status_change(left, &mut rs).is_err() {
            return false;
        }
    }
}

/// Send `command` on `card`, telling a card pulled mid-command from other failures.
fn transmit_on(
    ctx: &Context,
    card: &pcsc::Card,
    reader: &str,
    buf: &mut [u8],
    command: &[u8],
) -> Result<Vec<u8>, TransportError> {
    match card.transmit(command, buf) {
        // A response without a status word: the card went away while answering (vpcd reports
        // a dropped card this way), or it is mute.
        Ok(r) if r.len() < 2 => {
            if card_gone(ctx, card, reader, Duration::from_secs(1)) {
                Err(TransportError::CardRemoved)
            } else {
                Err(TransportError::CardUnresponsive)
            }
        }
        Ok(r) => Ok(r.to_vec()),
        Err(e @ (pcsc::Error::CommError | pcsc::Error::NotTransacted)) => {
            if card_gone(ctx, card, reader, Duration::from_secs(1)) {
                Err(TransportError::CardRemoved)
            } else {
                Err(transport_error(reader, e))
            }
        }
        Err(e) => Err(transport_error(reader, e)),
    }
}

impl CardChannel for PcscCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let result = {
            let card = self.card.as_ref().ok_or(TransportError::NoCard)?;
            transmit_on(&self.ctx, card, &self.reader, &mut self.buf, command)
        };
        if let Err(TransportError::CardReset) = result {
            // Reconnect without resetting again, then let the flow start over.
            if let Some(card) = self.card.as_mut() {
                card.reconnect(
                    ShareMode::Shared,
                    self.protocol.protocols(),
                    Disposition::LeaveCard,
                )
                .map_err(|e| transport_error(&self.reader, e))?;
                self.resets += 1;
            }
        }
        result
    }
}

/// What [`crate::TimedCard`] keeps of a [`PcscCard`] for its owner.
#[derive(Debug, Clone)]
pub struct PcscCardInfo {
    /// The reader's name.
    pub reader: String,
    /// The card's ATR.
    pub atr: Vec<u8>,
    /// The protocol in use when it was wrapped.
    pub protocol: ActiveProtocol,
}

impl crate::timed::ChannelInfo for PcscCard {
    type Info = PcscCardInfo;
    fn info(&self) -> PcscCardInfo {
        PcscCardInfo {
            reader: self.reader.clone(),
            atr: self.atr.clone(),
            protocol: self.active_protocol(),
        }
    }
}

impl crate::TimedCard<PcscCard> {
    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.info().reader
    }

    /// The card's ATR.
    pub fn atr(&self) -> &[u8] {
        &self.info().atr
    }

    /// The protocol in use.
    pub fn active_protocol(&self) -> ActiveProtocol {
        self.info().protocol
    }
}

/// A card inside an exclusive PC/SC transaction (ends with `LeaveCard` when dropped).
pub struct PcscTransaction<'a> {
    ctx: &'a Context,
    tx: pcsc::Transaction<'a>,
    reader: String,
    protocol: ProtocolChoice,
    buf: &'a mut Vec<u8>,
    resets: &'a mut u64,
}

impl CardChannel for PcscTransaction<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let result = transmit_on(self.ctx, &self.tx, &self.reader, self.buf, command);
        if let Err(TransportError::CardReset) = result {
            self.tx
                .reconnect(
                    ShareMode::Shared,
                    self.protocol.protocols(),
                    Disposition::LeaveCard,
                )
                .map_err(|e| transport_error(&self.reader, e))?;
            *self.resets += 1;
        }
        result
    }
}

/// The reader name as a C string for pcsc calls.
pub fn reader_cstring(name: &str) -> Option<CString> {
    CString::new(name).ok()
}

/// A C string reader name as text.
pub fn reader_name(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}
