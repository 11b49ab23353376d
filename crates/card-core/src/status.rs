//! Status words (SW1 SW2) as an enum.
//!
//! The meanings are those of ISO/IEC 7816-4 §5.6 and, for the `9xxx` range and the PIN
//! counters, JR/T 0025.5 (PBOC 3.0 card specification) and JR/T 0025.3 §9.3.1.2. Anything not
//! listed keeps its raw value in [`StatusWord::Other`], so a round trip through
//! [`StatusWord::from_u16`] and [`StatusWord::to_u16`] never loses information.

use core::fmt;

/// A response status word.
///
/// `StatusWord::from_u16(x).to_u16() == x` for every `x`: each variant maps back to exactly the
/// value it was decoded from (the property test in this module checks all 65536 values).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusWord {
    /// `9000`: normal processing.
    Success,
    /// `61xx`: `xx` more response bytes are available with GET RESPONSE (`00` = 256 or more).
    /// JR/T 0025.3 §9.3.1.2.
    BytesAvailable(u8),
    /// `6281`: part of the returned data may be corrupted.
    DataMayBeCorrupted,
    /// `6282`: end of file or record reached before reading Le bytes.
    EndOfFile,
    /// `6283`: selected file or application is invalidated (PBOC: application blocked,
    /// JR/T 0025.5 §6.5).
    SelectedFileInvalidated,
    /// `62xx` (other): warning, non-volatile memory unchanged.
    WarningUnchanged(u8),
    /// `6300`: verification or authentication failed, no further information (PBOC EXTERNAL
    /// AUTHENTICATE, JR/T 0025.5 §15.3).
    AuthenticationFailed,
    /// `63Cx`: wrong PIN (or other reference data); `x` tries are left.
    WrongPin {
        /// Number of further tries the card allows (0 = now blocked).
        tries_left: u8,
    },
    /// `63xx` (other): warning, non-volatile memory changed.
    WarningChanged(u8),
    /// `6400`: execution error, non-volatile memory unchanged.
    ExecutionError,
    /// `6581`: memory failure.
    MemoryFailure,
    /// `65xx` (other): execution error, non-volatile memory changed.
    ExecutionErrorChanged(u8),
    /// `6700`: wrong length (Lc or Le).
    WrongLength,
    /// `6881`: logical channel not supported.
    LogicalChannelNotSupported,
    /// `6882`: secure messaging not supported.
    SecureMessagingNotSupported,
    /// `6883`: last command of the chain expected.
    LastCommandOfChainExpected,
    /// `6884`: command chaining not supported.
    ChainingNotSupported,
    /// `6981`: command incompatible with file structure.
    IncompatibleFileStructure,
    /// `6982`: security status not satisfied (e.g. PIN not verified).
    SecurityStatusNotSatisfied,
    /// `6983`: authentication method blocked (PIN blocked). JR/T 0025.5 §11.3.
    AuthenticationBlocked,
    /// `6984`: referenced data invalidated (PBOC: PIN try limit exceeded in an earlier
    /// transaction, JR/T 0025.5 §11.3; also "no challenge obtained").
    ReferenceDataInvalidated,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6986`: command not allowed (no current EF).
    CommandNotAllowed,
    /// `6987`: expected secure-messaging data objects missing.
    SmObjectsMissing,
    /// `6988`: secure-messaging data objects incorrect.
    SmObjectsIncorrect,
    /// `6A80`: incorrect parameters in the data field.
    IncorrectData,
    /// `6A81`: function not supported (PBOC: card or application blocked).
    FunctionNotSupported,
    /// `6A82`: file or application not found.
    FileNotFound,
    /// `6A83`: record not found.
    RecordNotFound,
    /// `6A84`: not enough memory space in the file.
    NotEnoughMemory,
    /// `6A86`: incorrect P1 P2.
    IncorrectP1P2,
    /// `6A88`: referenced data not found (PBOC GET DATA of an unknown tag).
    ReferencedDataNotFound,
    /// `6B00`: wrong parameters P1 P2 (offset outside the EF).
    WrongP1P2,
    /// `6Cxx`: wrong Le; `xx` is the exact length available (`00` = 256).
    WrongLe(u8),
    /// `6D00`: instruction code not supported.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    /// `6F00`: no precise diagnosis.
    NoPreciseDiagnosis,
    /// `9302`: MAC invalid (PBOC issuer script / load).
    MacInvalid,
    /// `9303`: application permanently blocked.
    ApplicationBlocked,
    /// `9401`: insufficient balance.
    InsufficientBalance,
    /// `9403`: key index not supported.
    KeyIndexNotSupported,
    /// `9406`: required MAC not available.
    MacNotAvailable,
    /// Any other value, kept as is.
    Other(u16),
}

impl StatusWord {
    /// Decode SW1 SW2 into its meaning.
    pub const fn from_u16(sw: u16) -> Self {
        let sw1 = (sw >> 8) as u8;
        let sw2 = (sw & 0xff) as u8;
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Success,
            (0x61, n) => Self::BytesAvailable(n),
            (0x62, 0x81) => Self::DataMayBeCorrupted,
            (0x62, 0x82) => Self::EndOfFile,
            (0x62, 0x83) => Self::SelectedFileInvalidated,
            (0x62, n) => Self::WarningUnchanged(n),
            (0x63, 0x00) => Self::AuthenticationFailed,
            (0x63, n) if n & 0xf0 == 0xc0 => Self::WrongPin {
                tries_left: n & 0x0f,
            },
            (0x63, n) => Self::WarningChanged(n),
            (0x64, 0x00) => Self::ExecutionError,
            (0x65, 0x81) => Self::MemoryFailure,
            (0x65, n) => Self::ExecutionErrorChanged(n),
            (0x67, 0x00) => Self::WrongLength,
            (0x68, 0x81) => Self::LogicalChannelNotSupported,
            (0x68, 0x82) => Self::SecureMessagingNotSupported,
            (0x68, 0x83) => Self::LastCommandOfChainExpected,
            (0x68, 0x84) => Self::ChainingNotSupported,
            (0x69, 0x81) => Self::IncompatibleFileStructure,
            (0x69, 0x82) => Self::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Self::AuthenticationBlocked,
            (0x69, 0x84) => Self::ReferenceDataInvalidated,
            (0x69, 0x85) => Self::ConditionsNotSatisfied,
            (0x69, 0x86) => Self::CommandNotAllowed,
            (0x69, 0x87) => Self::SmObjectsMissing,
            (0x69, 0x88) => Self::SmObjectsIncorrect,
            (0x6a, 0x80) => Self::IncorrectData,
            (0x6a, 0x81) => Self::FunctionNotSupported,
            (0x6a, 0x82) => Self::FileNotFound,
            (0x6a, 0x83) => Self::RecordNotFound,
            (0x6a, 0x84) => Self::NotEnoughMemory,
            (0x6a, 0x86) => Self::IncorrectP1P2,
            (0x6a, 0x88) => Self::ReferencedDataNotFound,
            (0x6b, 0x00) => Self::WrongP1P2,
            (0x6c, n) => Self::WrongLe(n),
            (0x6d, 0x00) => Self::InsNotSupported,
            (0x6e, 0x00) => Self::ClaNotSupported,
            (0x6f, 0x00) => Self::NoPreciseDiagnosis,
            (0x93, 0x02) => Self::MacInvalid,
            (0x93, 0x03) => Self::ApplicationBlocked,
            (0x94, 0x01) => Self::InsufficientBalance,
            (0x94, 0x03) => Self::KeyIndexNotSupported,
            (0x94, 0x06) => Self::MacNotAvailable,
            _ => Self::Other(sw),
        }
    }

    /// Decode from the two status bytes.
    pub const fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self::from_u16(((sw1 as u16) << 8) | sw2 as u16)
    }

    /// The raw value, SW1 in the high byte.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::Success => 0x9000,
            Self::BytesAvailable(n) => 0x6100 | n as u16,
            Self::DataMayBeCorrupted => 0x6281,
            Self::EndOfFile => 0x6282,
            Self::SelectedFileInvalidated => 0x6283,
            Self::WarningUnchanged(n) => 0x6200 | n as u16,
            Self::AuthenticationFailed => 0x6300,
            Self::WrongPin { tries_left } => 0x63c0 | (tries_left & 0x0f) as u16,
            Self::WarningChanged(n) => 0x6300 | n as u16,
            Self::ExecutionError => 0x6400,
            Self::MemoryFailure => 0x6581,
            Self::ExecutionErrorChanged(n) => 0x6500 | n as u16,
            Self::WrongLength => 0x6700,
            Self::LogicalChannelNotSupported => 0x6881,
            Self::SecureMessagingNotSupported => 0x6882,
            Self::LastCommandOfChainExpected => 0x6883,
            Self::ChainingNotSupported => 0x6884,
            Self::IncompatibleFileStructure => 0x6981,
            Self::SecurityStatusNotSatisfied => 0x6982,
            Self::AuthenticationBlocked => 0x6983,
            Self::ReferenceDataInvalidated => 0x6984,
            Self::ConditionsNotSatisfied => 0x6985,
            Self::CommandNotAllowed => 0x6986,
            Self::SmObjectsMissing => 0x6987,
            Self::SmObjectsIncorrect => 0x6988,
            Self::IncorrectData => 0x6a80,
            Self::FunctionNotSupported => 0x6a81,
            Self::FileNotFound => 0x6a82,
            Self::RecordNotFound => 0x6a83,
            Self::NotEnoughMemory => 0x6a84,
            Self::IncorrectP1P2 => 0x6a86,
            Self::ReferencedDataNotFound => 0x6a88,
            Self::WrongP1P2 => 0x6b00,
            Self::WrongLe(n) => 0x6c00 | n as u16,
            Self::InsNotSupported => 0x6d00,
            Self::ClaNotSupported => 0x6e00,
            Self::NoPreciseDiagnosis => 0x6f00,
            Self::MacInvalid => 0x9302,
            Self::ApplicationBlocked => 0x9303,
            Self::InsufficientBalance => 0x9401,
            Self::KeyIndexNotSupported => 0x9403,
            Self::MacNotAvailable => 0x9406,
            Self::Other(sw) => sw,
        }
    }

    /// SW1 and SW2 as bytes.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.to_u16().to_be_bytes()
    }

    /// `9000`.
    pub const fn is_success(self) -> bool {
        matches!(self, Self::Success)
    }

    /// A warning (`62xx`, `63xx`): the command was processed but something is worth noting.
    pub const fn is_warning(self) -> bool {
        matches!(self.to_bytes()[0], 0x62 | 0x63)
    }

    /// An error after which non-volatile memory may have changed (`65xx`, ISO/IEC 7816-4
    /// §5.1.3), as opposed to `64xx` (unchanged): a write answered so may have happened.
    pub const fn memory_may_have_changed(self) -> bool {
        self.to_bytes()[0] == 0x65
    }

    /// A short English description of the meaning.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Success => "normal processing",
            Self::BytesAvailable(_) => "response bytes still available",
            Self::DataMayBeCorrupted => "part of returned data may be corrupted",
            Self::EndOfFile => "end of file or record reached before Le bytes",
            Self::SelectedFileInvalidated => "selected file or application invalidated",
            Self::WarningUnchanged(_) => "warning, memory unchanged",
            Self::AuthenticationFailed => "verification failed",
            Self::WrongPin { .. } => "wrong PIN",
            Self::WarningChanged(_) => "warning, memory changed",
            Self::ExecutionError => "execution error, memory unchanged",
            Self::MemoryFailure => "memory failure",
            Self::ExecutionErrorChanged(_) => "execution error, memory changed",
            Self::WrongLength => "wrong length",
            Self::LogicalChannelNotSupported => "logical channel not supported",
            Self::SecureMessagingNotSupported => "secure messaging not supported",
            Self::LastCommandOfChainExpected => "last command of the chain expected",
            Self::ChainingNotSupported => "command chaining not supported",
            Self::IncompatibleFileStructure => "command incompatible with file structure",
            Self::SecurityStatusNotSatisfied => "security status not satisfied",
            Self::AuthenticationBlocked => "authentication method blocked",
            Self::ReferenceDataInvalidated => "referenced data invalidated",
            Self::ConditionsNotSatisfied => "conditions of use not satisfied",
            Self::CommandNotAllowed => "command not allowed (no current EF)",
            Self::SmObjectsMissing => "expected secure messaging data objects missing",
            Self::SmObjectsIncorrect => "secure messaging data objects incorrect",
            Self::IncorrectData => "incorrect parameters in the data field",
            Self::FunctionNotSupported => "function not supported or card blocked",
            Self::FileNotFound => "file or application not found",
            Self::RecordNotFound => "record not found",
            Self::NotEnoughMemory => "not enough memory space in the file",
            Self::IncorrectP1P2 => "incorrect parameters P1-P2",
            Self::ReferencedDataNotFound => "referenced data not found",
            Self::WrongP1P2 => "wrong parameters P1-P2",
            Self::WrongLe(_) => "wrong Le field",
            Self::InsNotSupported => "instruction code not supported",
            Self::ClaNotSupported => "class not supported",
            Self::NoPreciseDiagnosis => "no precise diagnosis",
            Self::MacInvalid => "MAC invalid",
            Self::ApplicationBlocked => "application permanently blocked",
            Self::InsufficientBalance => "insufficient balance",
            Self::KeyIndexNotSupported => "key index not supported",
            Self::MacNotAvailable => "required MAC not available",
            Self::Other(_) => "unknown status word",
        }
    }
}

impl From<u16> for StatusWord {
    fn from(sw: u16) -> Self {
        Self::from_u16(sw)
    }
}

impl From<StatusWord> for u16 {
    fn from(sw: StatusWord) -> Self {
        sw.to_u16()
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongPin { tries_left } => {
                write!(
                    f,
                    "{:04X} ({}, {tries_left} tries left)",
                    self.to_u16(),
                    self.meaning()
                )
            }
            Self::BytesAvailable(n) | Self::WrongLe(n) => {
                let n = if *n == 0 { 256 } else { u16::from(*n) };
                write!(f, "{:04X} ({}: {n})", self.to_u16(), self.meaning())
            }
            _ => write!(f, "{:04X} ({})", self.to_u16(), self.meaning()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for raw in 0..=u16::MAX {
            let sw = StatusWord::from_u16(raw);
            assert_eq!(sw.to_u16(), raw, "{raw:04X} decoded as {sw:?}");
        }
    }

    #[test]
    fn only_65xx_says_memory_may_have_changed() {
        for (raw, changed) in [
            (0x6581, true),
            (0x6500, true),
            (0x6400, false),
            (0x6982, false),
            (0x9000, false),
        ] {
            assert_eq!(
                StatusWord::from_u16(raw).memory_may_have_changed(),
                changed,
                "{raw:04X}"
            );
        }
    }

    #[test]
    fn pin_counters_decode() {
        assert_eq!(
            StatusWord::from_u16(0x63c2),
            StatusWord::WrongPin { tries_left: 2 }
        );
        assert_eq!(
            StatusWord::from_u16(0x63c0),
            StatusWord::WrongPin { tries_left: 0 }
        );
        assert_eq!(
            StatusWord::from_u16(0x6983),
            StatusWord::AuthenticationBlocked
        );
        assert_eq!(
            StatusWord::from_u16(0x6300),
            StatusWord::AuthenticationFailed
        );
    }

    #[test]
    fn unknown_values_are_kept() {
        assert_eq!(StatusWord::from_u16(0x6999), StatusWord::Other(0x6999));
        assert_eq!(StatusWord::from_u16(0x1234), StatusWord::Other(0x1234));
        assert_eq!(
            StatusWord::from_bytes(0x90, 0x01),
            StatusWord::Other(0x9001)
        );
    }

    #[test]
    fn display_names_the_meaning() {
        assert_eq!(
            StatusWord::WrongPin { tries_left: 1 }.to_string(),
            "63C1 (wrong PIN, 1 tries left)"
        );
        assert_eq!(
            StatusWord::BytesAvailable(0).to_string(),
            "6100 (response bytes still available: 256)"
        );
        assert_eq!(
            StatusWord::FileNotFound.to_string(),
            "6A82 (file or application not found)"
        );
        assert!(StatusWord::WarningChanged(0x81).is_warning());
        assert!(!StatusWord::FileNotFound.is_warning());
    }
}
