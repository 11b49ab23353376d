//! Host-command framing in the style of a payShield 10K.
//!
//! On the wire every message is a 2-byte big-endian length followed by that many bytes. A
//! request's bytes are a header (`header_len` characters, 4 by default, echoed back
//! unchanged), a 2-character command code and the command's fields. A response carries the
//! same header, the response code (the command code with its second character incremented:
//! `A0` → `A1`, `NC` → `ND`, `KQ` → `KR`), a 2-character error code and the response fields.

use crate::codes::ErrorCode;

/// Largest message accepted (payShield's limit is 32 KiB).
pub const MAX_MESSAGE: usize = 32 * 1024;

/// A request split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header, echoed in the response.
    pub header: &'a [u8],
    /// The command code, e.g. `*b"A0"`.
    pub command: [u8; 2],
    /// The command's fields.
    pub body: &'a [u8],
}

/// Why a request could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than header plus command code.
    TooShort,
    /// The header or command code is not printable ASCII.
    BadHeader,
}

impl FrameError {
    /// The error code to answer with.
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::TooShort => ErrorCode::DataLength,
            Self::BadHeader => ErrorCode::InvalidHeader,
        }
    }
}

/// Split a message (without its length prefix).
pub fn parse_request(message: &[u8], header_len: usize) -> Result<Request<'_>, FrameError> {
    let (header, rest) = message
        .split_at_checked(header_len)
        .ok_or(FrameError::TooShort)?;
    let (command, body) = rest.split_first_chunk::<2>().ok_or(FrameError::TooShort)?;
    if !header
        .iter()
        .chain(command.iter())
        .all(|b| (0x20..0x7f).contains(b))
    {
        return Err(FrameError::BadHeader);
    }
    Ok(Request {
        header,
        command: *command,
        body,
    })
}

/// The response code for a command code: the second character plus one.
pub fn response_code(command: [u8; 2]) -> [u8; 2] {
    let [a, b] = command;
    let next = match b {
        b'9' => b'0',
        b'Z' => b'A',
        b'z' => b'a',
        _ => b.wrapping_add(1),
    };
    [a, next]
}

/// Build a response message (without its length prefix).
pub fn build_response(header: &[u8], command: [u8; 2], error: ErrorCode, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 4 + body.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&response_code(command));
    out.extend_from_slice(error.as_str().as_bytes());
    out.extend_from_slice(body);
    out
}

/// The response to a message that could not be split into header and command: the header
/// (padded to its length) and `ZZ`, then the error code.
pub fn build_frame_error(header: &[u8], header_len: usize, error: ErrorCode) -> Vec<u8> {
    let mut out: Vec<u8> = header.iter().copied().take(header_len).collect();
    out.resize(header_len, b' ');
    out.extend_from_slice(b"ZZ");
    out.extend_from_slice(error.as_str().as_bytes());
    out
}

/// Prefix a message with its 2-byte length.
pub fn with_length(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// The echoed header.
    pub header: &'a [u8],
    /// The response code.
    pub code: [u8; 2],
    /// The error code.
    pub error: ErrorCode,
    /// The response fields.
    pub body: &'a [u8],
}

/// Split a response message (client side).
pub fn parse_response(message: &[u8], header_len: usize) -> Option<Response<'_>> {
    let (header, rest) = message.split_at_checked(header_len)?;
    let (code, rest) = rest.split_first_chunk::<2>()?;
    let (error, body) = rest.split_first_chunk::<2>()?;
    let error = ErrorCode::parse(core::str::from_utf8(error).ok()?)?;
    Some(Response {
        header,
        code: *code,
        error,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn response_codes() {
        assert_eq!(&response_code(*b"A0"), b"A1");
        assert_eq!(&response_code(*b"NC"), b"ND");
        assert_eq!(&response_code(*b"KQ"), b"KR");
        assert_eq!(&response_code(*b"M8"), b"M9");
        assert_eq!(&response_code(*b"K9"), b"K0");
    }

    #[test]
    fn splits_and_builds() {
        let r = parse_request(b"HEADA0109U", 4).unwrap();
        assert_eq!(r.header, b"HEAD");
        assert_eq!(&r.command, b"A0");
        assert_eq!(r.body, b"109U");
        let resp = build_response(r.header, r.command, ErrorCode::Ok, b"XYZ");
        assert_eq!(resp, b"HEADA100XYZ");
        let back = parse_response(&resp, 4).unwrap();
        assert_eq!(back.error, ErrorCode::Ok);
        assert_eq!(back.body, b"XYZ");
        assert_eq!(parse_request(b"HEA", 4), Err(FrameError::TooShort));
        assert_eq!(parse_request(b"HEADA", 4), Err(FrameError::TooShort));
        assert_eq!(parse_request(b"HE\x00DA0", 4), Err(FrameError::BadHeader));
        assert_eq!(with_length(b"abc").unwrap(), b"\x00\x03abc");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), h in 0usize..8) {
            let _ = parse_request(&bytes, h);
            let _ = parse_response(&bytes, h);
        }
    }
}
