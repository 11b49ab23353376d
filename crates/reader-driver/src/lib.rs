//! `reader-driver` connects card-core to real card readers. Its PC/SC backend
//! ([`pcsc_backend`]) lists readers, connects in shared mode with T=0 or T=1, runs exclusive
//! transactions, reconnects after a card reset so the flow above can re-select, disconnects
//! without resetting the card, and rebuilds its context when pcscd restarts. [`events`] turns
//! pcsc-lite's status changes into reader and card events (plugged, unplugged, inserted,
//! removed, pcscd lost and back). [`trace`] writes card-core's redacted APDU trace as JSON
//! lines. Its serial backend ([`serial`]) drives GemPC Twin serial readers directly, CCID over
//! RS-232 as pcscd's libccidtwin speaks it, with the same [`card_core::CardChannel`] and
//! [`ReaderEvent`]s. [`TimedCard`] bounds each command in time for drivers that wait for a
//! mute card forever. Errors say what to do, e.g. how to start pcscd when it is not running.

pub mod error;
pub mod events;
pub mod pcsc_backend;
pub mod serial;
pub mod timed;
pub mod trace;

pub use error::DriverError;
pub use events::{EventWatcher, ReaderEvent};
pub use pcsc_backend::{
    ActiveProtocol, PcscCard, PcscCardInfo, PcscContext, PcscTransaction, ProtocolChoice,
    ReaderStatus,
};
pub use serial::{SerialCard, SerialError, SerialReader, SerialReaderConfig, SerialWatcher};
pub use timed::{ChannelInfo, DEFAULT_COMMAND_TIMEOUT, TimedCard};
pub use trace::JsonLinesTrace;
