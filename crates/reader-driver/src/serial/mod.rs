//! Serial card readers: CCID over RS-232 as GemPC Twin serial readers speak it, the protocol
//! of pcscd's serial CCID driver (libccid's `ccid_serial.c`, built as `libccidtwin.so`).
//!
//! The layers, bottom up:
//!
//! - [`frame`]: `SYNC CTRL message LRC` framing, NAK, slot-change and time-request bytes; an
//!   incremental parser that never panics;
//! - [`ccid`]: the USB CCID messages carried in the frames (IccPowerOn/Off, GetSlotStatus,
//!   XfrBlock, Escape, Get/SetParameters and their responses);
//! - [`link`]: one command, one response, with echo check, NAK and retransmission, stale
//!   sequence numbers discarded, time extensions, timeouts, end of file;
//! - [`tpdu`] and [`t1`]: T=0 TPDUs and the T=1 block protocol, since the reader works at
//!   TPDU level;
//! - [`reader`]: [`SerialReader`] (the port, reopened after an unplug), [`SerialCard`] (a
//!   [`card_core::CardChannel`], like [`crate::PcscCard`]) and [`SerialWatcher`] (the same
//!   [`crate::ReaderEvent`]s as [`crate::EventWatcher`]);
//! - [`config`]: serial readers from a pcscd-style `reader.conf`.
//!
//! See `docs/serial-readers.md` for the protocol as measured against libccidtwin.

pub mod ccid;
pub mod config;
pub mod error;
pub mod frame;
pub mod link;
pub mod reader;
pub mod t1;
pub mod tpdu;

pub use config::parse_reader_conf;
pub use error::{SerialError, T1Error};
pub use link::{LinkConfig, LinkStats};
pub use reader::{SerialCard, SerialReader, SerialReaderConfig, SerialWatcher};
