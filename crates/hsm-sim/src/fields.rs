//! Reading the fields of a command body: fixed-length characters, hex, key labels,
//! length-prefixed data and delimiters. Every read checks the input and fails with the error code
//! payShield gives for it, never with a panic.

use crate::codes::ErrorCode;

/// Length of a key label.
pub const LABEL_LEN: usize = 8;

/// A cursor over a command body.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Read `body` from the start.
    pub const fn new(body: &'a [u8]) -> Self {
        Self { body, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorCode> {
        let out = self
            .body
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(ErrorCode::DataLength)?;
        self.pos += n;
        Ok(out)
    }

    /// `n` printable ASCII characters.
    pub fn text(&mut self, n: usize) -> Result<&'a str, ErrorCode> {
        let bytes = self.take(n)?;
        if !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(ErrorCode::InvalidInput);
        }
        core::str::from_utf8(bytes).map_err(|_| ErrorCode::InvalidInput)
    }

    /// One character.
    pub fn char(&mut self) -> Result<u8, ErrorCode> {
        Ok(self.text(1)?.as_bytes().first().copied().unwrap_or(b' '))
    }

    /// `n` bytes written as `2n` hex characters (upper or lower case).
    pub fn hex(&mut self, n: usize) -> Result<Vec<u8>, ErrorCode> {
        let text = self.take(n.checked_mul(2).ok_or(ErrorCode::DataLength)?)?;
        // Straight into a buffer of the right size: no intermediate collection, no copy of
        // the (often secret) bytes left behind by a reallocation.
        let mut out = vec![0u8; n];
        hex::decode_to_slice(text, &mut out).map_err(|_| ErrorCode::InvalidInput)?;
        Ok(out)
    }

    /// Exactly `N` bytes in hex.
    pub fn hex_array<const N: usize>(&mut self) -> Result<[u8; N], ErrorCode> {
        let v = self.hex(N)?;
        v.try_into().map_err(|_| ErrorCode::InvalidInput)
    }

    /// A number of `n` decimal digits.
    pub fn decimal(&mut self, n: usize) -> Result<usize, ErrorCode> {
        let text = self.text(n)?;
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ErrorCode::InvalidInput);
        }
        text.parse().map_err(|_| ErrorCode::InvalidInput)
    }

    /// A number of `n` hex digits.
    pub fn hex_number(&mut self, n: usize) -> Result<usize, ErrorCode> {
        let text = self.text(n)?;
        usize::from_str_radix(text, 16).map_err(|_| ErrorCode::InvalidInput)
    }

    /// Data preceded by its length in bytes as 4 hex digits, the data in hex.
    pub fn var_hex(&mut self) -> Result<Vec<u8>, ErrorCode> {
        let n = self.hex_number(4)?;
        self.hex(n)
    }

    /// A key label: 8 characters `A-Z`, `0-9`, `-`, `_`.
    pub fn label(&mut self) -> Result<String, ErrorCode> {
        let text = self.text(LABEL_LEN)?;
        if !text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(ErrorCode::InvalidInput);
        }
        Ok(text.to_string())
    }

    /// Characters up to (not including) `delimiter`, which is consumed; or to the end.
    pub fn until(&mut self, delimiter: u8) -> Result<&'a str, ErrorCode> {
        let rest = self.body.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|b| *b == delimiter)
            .unwrap_or(rest.len());
        let text = self.text(n)?;
        if self.body.get(self.pos) == Some(&delimiter) {
            self.pos += 1;
        }
        Ok(text)
    }

    /// Expect `delimiter` next.
    pub fn delimiter(&mut self, delimiter: u8) -> Result<(), ErrorCode> {
        match self.take(1)? {
            [d] if *d == delimiter => Ok(()),
            _ => Err(ErrorCode::InvalidInput),
        }
    }

    /// Whether the body is used up.
    pub fn at_end(&self) -> bool {
        self.pos >= self.body.len()
    }

    /// Expect the end of the body.
    pub fn end(&self) -> Result<(), ErrorCode> {
        if self.at_end() {
            Ok(())
        } else {
            Err(ErrorCode::DataLength)
        }
    }
}

/// Append hex (upper case).
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const fn digit(n: u8) -> u8 {
        if n < 10 { b'0' + n } else { b'A' + n - 10 }
    }
    // Written in place: no temporary string (which `hex::encode_upper` makes, and which would
    // keep a copy of PANs and cryptogram inputs on the heap unzeroized).
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_fields() {
        let mut f = Fields::new(b"109UIMKAC-01000412345678;abCD");
        assert_eq!(f.text(3), Ok("109"));
        assert_eq!(f.char(), Ok(b'U'));
        assert_eq!(f.label().as_deref(), Ok("IMKAC-01"));
        assert_eq!(f.var_hex(), Ok(vec![0x12, 0x34, 0x56, 0x78]));
        assert_eq!(f.delimiter(b';'), Ok(()));
        assert_eq!(f.hex(2), Ok(vec![0xab, 0xcd]));
        assert!(f.end().is_ok());
        assert_eq!(Fields::new(b"12").hex(2), Err(ErrorCode::DataLength));
        assert_eq!(Fields::new(b"zz").hex(1), Err(ErrorCode::InvalidInput));
        assert_eq!(
            Fields::new(b"imk-ac01").label(),
            Err(ErrorCode::InvalidInput)
        );
        assert_eq!(Fields::new(b"12x").decimal(3), Err(ErrorCode::InvalidInput));
        let mut f = Fields::new(b"ab;cd");
        assert_eq!(f.until(b';'), Ok("ab"));
        assert_eq!(f.until(b';'), Ok("cd"));
        assert!(f.at_end());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..70) {
            let mut f = Fields::new(&bytes);
            let _ = f.var_hex();
            let _ = f.hex(n);
            let _ = f.label();
            let _ = f.until(b';');
            let _ = f.decimal(n);
        }

        #[test]
        fn hex_written_in_place_is_upper_case_hex_and_reads_back(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut out = b"KQ".to_vec();
            push_hex(&mut out, &bytes);
            let expected = hex::encode_upper(&bytes);
            prop_assert_eq!(&out[2..], expected.as_bytes());
            let mut f = Fields::new(&out[2..]);
            prop_assert_eq!(f.hex(bytes.len()), Ok(bytes.clone()));
            prop_assert!(f.end().is_ok());
        }
    }
}
