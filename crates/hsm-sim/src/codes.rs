//! Error codes, as a payShield 10K answers them (payShield 10K Core Host Commands, error code
//! table), plus the few this simulator needs for its key store, in a range payShield does not
//! use. docs/hsm-protocol.md lists them all.

use core::fmt;

/// A two-character error code in a response.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `00`: no error.
    Ok,
    /// `01`: verification failure (ARQC, MAC, certificate).
    VerificationFailure,
    /// `02`: key length wrong for the key type.
    WrongKeyLength,
    /// `04`: invalid key type code.
    InvalidKeyType,
    /// `05`: invalid key scheme (length flag).
    InvalidKeyScheme,
    /// `10`: source key parity error or key check value mismatch on import.
    SourceKeyParity,
    /// `15`: invalid input data (a field is malformed).
    InvalidInput,
    /// `17`: not authorised: the operation is not allowed for this key (e.g. export of a key
    /// that may not leave the HSM).
    NotAuthorised,
    /// `26`: key scheme not permitted for this command.
    SchemeNotPermitted,
    /// `27`: key type not permitted for this command.
    KeyTypeNotPermitted,
    /// `29`: key usage (function) not permitted.
    UsageNotPermitted,
    /// `41`: internal error.
    Internal,
    /// `51`: invalid message header.
    InvalidHeader,
    /// `68`: command unknown or disabled.
    CommandDisabled,
    /// `80`: data length error.
    DataLength,
    /// `K1` (simulator): no key with this label in the key store.
    KeyNotFound,
    /// `K2` (simulator): a key with this label exists already.
    KeyExists,
}

impl ErrorCode {
    /// The two characters on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "00",
            Self::VerificationFailure => "01",
            Self::WrongKeyLength => "02",
            Self::InvalidKeyType => "04",
            Self::InvalidKeyScheme => "05",
            Self::SourceKeyParity => "10",
            Self::InvalidInput => "15",
            Self::NotAuthorised => "17",
            Self::SchemeNotPermitted => "26",
            Self::KeyTypeNotPermitted => "27",
            Self::UsageNotPermitted => "29",
            Self::Internal => "41",
            Self::InvalidHeader => "51",
            Self::CommandDisabled => "68",
            Self::DataLength => "80",
            Self::KeyNotFound => "K1",
            Self::KeyExists => "K2",
        }
    }

    /// Decode the two characters.
    pub fn parse(code: &str) -> Option<Self> {
        ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// A short description.
    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "no error",
            Self::VerificationFailure => "verification failure",
            Self::WrongKeyLength => "key length wrong for the key type",
            Self::InvalidKeyType => "invalid key type code",
            Self::InvalidKeyScheme => "invalid key scheme",
            Self::SourceKeyParity => "key check value or parity mismatch",
            Self::InvalidInput => "invalid input data",
            Self::NotAuthorised => "operation not authorised for this key",
            Self::SchemeNotPermitted => "key scheme not permitted for this command",
            Self::KeyTypeNotPermitted => "key type not permitted for this command",
            Self::UsageNotPermitted => "key usage not permitted",
            Self::Internal => "internal error",
            Self::InvalidHeader => "invalid message header",
            Self::CommandDisabled => "command unknown or disabled",
            Self::DataLength => "data length error",
            Self::KeyNotFound => "no key with this label",
            Self::KeyExists => "a key with this label exists",
        }
    }
}

/// Every code, for tables and tests.
pub const ALL: [ErrorCode; 17] = [
    ErrorCode::Ok,
    ErrorCode::VerificationFailure,
    ErrorCode::WrongKeyLength,
    ErrorCode::InvalidKeyType,
    ErrorCode::InvalidKeyScheme,
    ErrorCode::SourceKeyParity,
    ErrorCode::InvalidInput,
    ErrorCode::NotAuthorised,
    ErrorCode::SchemeNotPermitted,
    ErrorCode::KeyTypeNotPermitted,
    ErrorCode::UsageNotPermitted,
    ErrorCode::Internal,
    ErrorCode::InvalidHeader,
    ErrorCode::CommandDisabled,
    ErrorCode::DataLength,
    ErrorCode::KeyNotFound,
    ErrorCode::KeyExists,
];

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
            assert_eq!(c.as_str().len(), 2);
            for d in &ALL[i + 1..] {
                assert_ne!(c.as_str(), d.as_str());
            }
        }
        assert_eq!(ErrorCode::parse("ZZ"), None);
    }
}
