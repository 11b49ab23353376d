//! Errors of the reader layer, with messages a technician can act on.

use card_core::TransportError;

/// What to tell people when pcscd is not there.
pub const START_PCSCD_HINT: &str = "The PC/SC service (pcscd) is not running. Start it with \
     `sudo systemctl start pcscd` (or `pcscd` as root); in this project's checkout \
     `scripts/pcsc-env.sh start` starts it with the virtual readers.";

/// Errors of the reader layer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// pcscd is not running or not reachable.
    #[error("{START_PCSCD_HINT}")]
    ServiceNotRunning,
    /// No reader is attached.
    #[error("no card reader is attached")]
    NoReaders,
    /// The named reader does not exist (any more).
    #[error("reader {0:?} is not available")]
    UnknownReader(String),
    /// There is no card in the reader.
    #[error("no card in reader {0:?}")]
    NoCard(String),
    /// The card does not offer the protocol asked for.
    #[error("the card in {reader:?} does not speak {requested}")]
    ProtocolMismatch {
        /// Reader.
        reader: String,
        /// What was asked ("T=0", "T=1").
        requested: String,
    },
    /// Another application holds the card exclusively.
    #[error("the card in {0:?} is in use by another application")]
    SharingViolation(String),
    /// Any other PC/SC failure.
    #[error("PC/SC {operation} failed: {error}")]
    Pcsc {
        /// The call that failed.
        operation: &'static str,
        /// pcsc-lite's error.
        error: pcsc::Error,
    },
}

impl DriverError {
    /// Map a pcsc error of `operation` on `reader`.
    pub fn from_pcsc(operation: &'static str, reader: &str, error: pcsc::Error) -> Self {
        use pcsc::Error as E;
        match error {
            E::NoService | E::ServiceStopped | E::NoReadersAvailable
                if operation == "establish" =>
            {
                Self::ServiceNotRunning
            }
            E::NoService | E::ServiceStopped => Self::ServiceNotRunning,
            E::NoReadersAvailable => Self::NoReaders,
            E::UnknownReader | E::ReaderUnavailable => Self::UnknownReader(reader.to_string()),
            E::NoSmartcard | E::RemovedCard => Self::NoCard(reader.to_string()),
            E::SharingViolation => Self::SharingViolation(reader.to_string()),
            error => Self::Pcsc { operation, error },
        }
    }

    /// Whether the context must be rebuilt (pcscd restarted or went away).
    pub const fn needs_new_context(&self) -> bool {
        matches!(self, Self::ServiceNotRunning)
    }
}

/// Map a pcsc error during a transmit to the transport error card-core understands.
pub fn transport_error(reader: &str, error: pcsc::Error) -> TransportError {
    use pcsc::Error as E;
    match error {
        E::RemovedCard | E::NoSmartcard => TransportError::CardRemoved,
        E::ResetCard => TransportError::CardReset,
        E::UnresponsiveCard | E::UnpoweredCard | E::Timeout => TransportError::CardUnresponsive,
        E::NoService | E::ServiceStopped | E::InvalidHandle => {
            TransportError::ServiceUnavailable(START_PCSCD_HINT.to_string())
        }
        E::ReaderUnavailable | E::UnknownReader => TransportError::ReaderUnavailable {
            reader: reader.to_string(),
        },
        E::ProtoMismatch => TransportError::Protocol(error.to_string()),
        // pcsc-lite reports a card that vanished in the middle of an exchange as a comm
        // error or "not transacted".
        E::CommError | E::NotTransacted => TransportError::CardRemoved,
        other => TransportError::Other(other.to_string()),
    }
}
