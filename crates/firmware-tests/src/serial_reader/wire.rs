//! The reader's side of the GemPC Twin serial framing.
//!
//! Written apart from reader-driver's host side on purpose: a misunderstanding shared by both
//! ends would pass every test between them, while pcscd's libccidtwin, the independent host,
//! would catch it here. Frames are `03 06 <CCID message> <XOR of all previous bytes>`; a NAK
//! is `03 15 16`.

/// Start of a frame.
pub const SYNC: u8 = 0x03;
/// Control byte of a frame with a message.
pub const ACK: u8 = 0x06;
/// Control byte of "send your last frame again".
pub const NAK: u8 = 0x15;
/// The NAK the reader sends for a frame it could not take.
pub const NAK_FRAME: [u8; 3] = [SYNC, NAK, SYNC ^ NAK];
/// Longest CCID message accepted (GemPC Twin dwMaxCCIDMessageLength).
pub const MAX_MESSAGE: usize = 271;

/// A CCID message in a frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(SYNC);
    out.push(ACK);
    out.extend_from_slice(message);
    let x = out.iter().fold(0u8, |a, b| a ^ b);
    out.push(x);
    out
}

/// What the host sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A command frame with a good checksum: the whole frame as received.
    Frame(Vec<u8>),
    /// The host asks for the last response again.
    Nak,
    /// Bytes that do not make a good frame.
    Garbage,
}

/// Parser of what the host sends, byte by byte.
#[derive(Debug, Default)]
pub struct HostDecoder {
    raw: Vec<u8>,
    need: usize,
}

impl HostDecoder {
    /// Whether a frame has started.
    pub fn partial(&self) -> bool {
        !self.raw.is_empty()
    }

    /// Drop a partial frame (after the inter-character timeout).
    pub fn reset(&mut self) {
        self.raw.clear();
        self.need = 0;
    }

    /// One byte in; a complete input out.
    pub fn push(&mut self, b: u8) -> Option<Input> {
        if self.raw.is_empty() && b != SYNC {
            return Some(Input::Garbage);
        }
        self.raw.push(b);
        match self.raw.as_slice() {
            [SYNC] => None,
            [SYNC, NAK] => None,
            [SYNC, NAK, c] => {
                let ok = *c == SYNC ^ NAK;
                self.reset();
                Some(if ok { Input::Nak } else { Input::Garbage })
            }
            [SYNC, ACK, ..] => {
                if self.raw.len() == 12 {
                    let len = self
                        .raw
                        .get(3..7)
                        .and_then(|l| <[u8; 4]>::try_from(l).ok())
                        .map_or(u32::MAX, u32::from_le_bytes);
                    let total = usize::try_from(len).unwrap_or(usize::MAX);
                    if total > MAX_MESSAGE - 10 {
                        self.reset();
                        return Some(Input::Garbage);
                    }
                    self.need = 2 + 10 + total + 1;
                }
                if self.need != 0 && self.raw.len() == self.need {
                    let raw = core::mem::take(&mut self.raw);
                    self.reset();
                    if raw.iter().fold(0u8, |a, b| a ^ b) == 0 {
                        return Some(Input::Frame(raw));
                    }
                    return Some(Input::Garbage);
                }
                None
            }
            _ => {
                self.reset();
                Some(Input::Garbage)
            }
        }
    }
}
