//! Errors of the serial backend, and how they reach card-core.

use std::time::Duration;

use card_core::TransportError;

use super::ccid::CcidError;
use super::frame::FrameError;

/// A T=1 block exchange that failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum T1Error {
    /// A block that breaks the rules of ISO/IEC 7816-3 §11.
    #[error("invalid T=1 block: {0}")]
    Invalid(&'static str),
    /// Retransmissions and resynchronisation did not help; the command's outcome is unknown.
    #[error("T=1 exchange failed ({0}); the card was resynchronised")]
    Unrecoverable(&'static str),
}

/// Errors of a serial reader.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// The port could not be opened or configured.
    #[error("cannot open serial port {path}: {reason}")]
    Open {
        /// Device path.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The port is open but nothing answering as a GemPC Twin is on the line.
    #[error("no GemPC Twin reader answers on {path}")]
    NoReader {
        /// Device path.
        path: String,
    },
    /// The line was closed (the reader or adapter was unplugged) or failed.
    #[error("serial line {path} is gone: {reason}")]
    Disconnected {
        /// Device path.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The reader did not answer in time.
    #[error("the reader did not answer within {waited:?}")]
    Timeout {
        /// How long we waited.
        waited: Duration,
    },
    /// Frames stayed garbled after every allowed retransmission.
    #[error("the serial line stays garbled after {attempts} attempts (last: {last})")]
    Garbled {
        /// Attempts made.
        attempts: u32,
        /// The last framing error.
        last: FrameError,
    },
    /// The reader kept refusing our frame with NAK.
    #[error("the reader refused the command {attempts} times (NAK)")]
    Refused {
        /// Attempts made.
        attempts: u32,
    },
    /// The reader echoed a command other than the one sent: it received a corrupted command,
    /// and may have executed it.
    #[error("the reader received a different command than was sent (echo mismatch)")]
    EchoMismatch,
    /// A response with a good checksum that is not a valid CCID response.
    #[error("bad CCID response: {0}")]
    Ccid(#[from] CcidError),
    /// A response of another type than the command calls for.
    #[error("CCID response type {got:#04x} where {expected:#04x} was due")]
    WrongResponseType {
        /// Expected bMessageType.
        expected: u8,
        /// Received bMessageType.
        got: u8,
    },
    /// The reader failed the command (CCID bmCommandStatus = failed).
    #[error("the reader failed the command: bError {error:#04x}, bStatus {status:#04x}")]
    CommandFailed {
        /// bStatus.
        status: u8,
        /// bError.
        error: u8,
    },
    /// No card in the reader.
    #[error("no card in the reader")]
    NoCard,
    /// The card does not answer (bError ICC mute with a card present).
    #[error("the card does not answer")]
    CardMute,
    /// The card was removed (or replaced) since it was powered for this session.
    #[error("the card was removed")]
    CardRemoved,
    /// The ATR cannot be used.
    #[error("unusable ATR: {0}")]
    Atr(String),
    /// The card does not offer the protocol asked for, or asks for what the reader lacks.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A T=1 exchange failed.
    #[error(transparent)]
    T1(#[from] T1Error),
    /// A command APDU that T=0 cannot carry.
    #[error("cannot send this APDU with T=0: {0}")]
    Tpdu(&'static str),
    /// A response APDU without a status word.
    #[error("response of {len} bytes has no status word")]
    NoStatusWord {
        /// Length.
        len: usize,
    },
    /// An invalid configuration entry.
    #[error("serial reader configuration, line {line}: {reason}")]
    Config {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl SerialError {
    /// Whether the reader itself is gone (to be reported as removed and reopened later).
    pub const fn reader_gone(&self) -> bool {
        matches!(
            self,
            Self::Disconnected { .. } | Self::Timeout { .. } | Self::NoReader { .. }
        )
    }
}

/// The transport error card-core sees for a serial error on reader `reader`.
pub fn to_transport(reader: &str, e: SerialError) -> TransportError {
    match e {
        SerialError::NoCard => TransportError::NoCard,
        SerialError::CardRemoved => TransportError::CardRemoved,
        SerialError::CardMute => TransportError::CardUnresponsive,
        SerialError::Disconnected { .. }
        | SerialError::Timeout { .. }
        | SerialError::NoReader { .. }
        | SerialError::Open { .. } => TransportError::ReaderUnavailable {
            reader: reader.to_string(),
        },
        SerialError::Protocol(p) => TransportError::Protocol(p),
        other => TransportError::Other(other.to_string()),
    }
}
