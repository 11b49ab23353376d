//! The GemPC Twin serial framing (the host side).
//!
//! A CCID message travels on the serial line wrapped as `SYNC CTRL message LRC`:
//!
//! - `SYNC` is `03`;
//! - `CTRL` is `06` (ACK: a message follows) or `15` (NAK: "repeat what you sent", followed
//!   directly by its LRC `16`);
//! - the message is a USB CCID message: a 10-byte header whose bytes 1..5 hold `dwLength`
//!   (little endian), then `dwLength` bytes of data;
//! - `LRC` is the XOR of every byte before it, so the XOR of a whole good frame is zero.
//!
//! Besides frames, the reader may send two kinds of single bytes between frames: `50 xx`
//! (RDR_to_PC_NotifySlotChange: `xx` = `02` card absent, `03` card present) and, while a T=0
//! card is slow, time requests (one byte from `80` to `FF`). This is what pcscd's serial CCID
//! driver (libccid's `ccid_serial.c`, "libccidtwin") speaks; GemPC Twin readers also echo
//! every command frame back before they answer it.
//!
//! [`Decoder`] is an incremental parser: bytes go in one at a time and [`Item`]s or
//! [`FrameError`]s come out. It never panics and never allocates more than one frame
//! ([`MAX_MESSAGE`] bytes), whatever it is fed.

/// Start of every frame.
pub const SYNC: u8 = 0x03;
/// Control byte: a CCID message follows.
pub const ACK: u8 = 0x06;
/// Control byte: the peer asks for the last frame again.
pub const NAK: u8 = 0x15;
/// RDR_to_PC_NotifySlotChange, sent outside frames.
pub const NOTIFY_SLOT_CHANGE: u8 = 0x50;
/// Length of the CCID message header.
pub const HEADER_LEN: usize = 10;
/// Longest CCID message a GemPC Twin handles (its `dwMaxCCIDMessageLength`): a short APDU
/// of 261 bytes plus the header.
pub const MAX_MESSAGE: usize = 271;
/// A NAK on the wire: `SYNC NAK LRC`.
pub const NAK_FRAME: [u8; 3] = [SYNC, NAK, SYNC ^ NAK];

/// XOR of `bytes`.
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Wrap a CCID message into a frame (`03 06 message LRC`).
pub fn encode(message: &[u8]) -> Result<Vec<u8>, FrameError> {
    if message.len() > MAX_MESSAGE {
        return Err(FrameError::TooLong { len: message.len() });
    }
    if message.len() < HEADER_LEN {
        return Err(FrameError::TooShort { len: message.len() });
    }
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(SYNC);
    out.push(ACK);
    out.extend_from_slice(message);
    out.push(lrc(&out));
    Ok(out)
}

/// What the line carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame with a good checksum: the CCID message inside it.
    Frame(Vec<u8>),
    /// The peer asks for the last frame again.
    Nak,
    /// RDR_to_PC_NotifySlotChange with its slot state byte (`02` absent, `03` present).
    SlotChange(u8),
    /// A time request (T=0 card still working), the byte itself (`80`..`FF`).
    TimeRequest(u8),
}

/// A frame that cannot be trusted.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A byte outside any frame that is neither SYNC, a slot change nor a time request.
    #[error("unexpected byte {byte:#04x} between frames")]
    UnexpectedByte {
        /// The byte.
        byte: u8,
    },
    /// SYNC followed by something other than ACK or NAK.
    #[error("control byte {byte:#04x} is neither ACK nor NAK")]
    BadControl {
        /// The byte.
        byte: u8,
    },
    /// A NAK whose checksum byte is not `16`.
    #[error("NAK with checksum {byte:#04x}")]
    BadNakChecksum {
        /// The byte.
        byte: u8,
    },
    /// The XOR of the frame is not zero.
    #[error("checksum mismatch: frame XOR is {residue:#04x} over {len} message bytes")]
    BadChecksum {
        /// XOR of the whole frame (zero when good).
        residue: u8,
        /// Message length.
        len: usize,
    },
    /// `dwLength` announces more than a GemPC Twin can carry.
    #[error("message of {len} bytes is longer than the {MAX_MESSAGE} a GemPC Twin carries")]
    TooLong {
        /// Announced message length (header included).
        len: usize,
    },
    /// A frame that stopped in the middle (bytes lost on the line).
    #[error("frame cut off after {got} bytes")]
    Incomplete {
        /// Bytes of the item received.
        got: usize,
    },
    /// A message shorter than the CCID header.
    #[error("message of {len} bytes is shorter than the CCID header")]
    TooShort {
        /// Length.
        len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Idle,
    Control,
    NakChecksum,
    SlotChange,
    Message,
    Checksum,
}

/// Incremental frame parser.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    state: State,
    message: Vec<u8>,
    expected: usize,
}

impl Decoder {
    /// A parser waiting for the start of a frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a frame (or a two-byte item) has started and is not complete.
    pub fn in_item(&self) -> bool {
        self.state != State::Idle
    }

    /// Bytes of the partial item received so far.
    pub fn partial_len(&self) -> usize {
        match self.state {
            State::Idle => 0,
            State::Control | State::SlotChange => 1,
            State::NakChecksum => 2,
            State::Message | State::Checksum => 2 + self.message.len(),
        }
    }

    /// Forget any partial frame.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.message.clear();
        self.expected = 0;
    }

    /// Feed one byte; returns an item or an error when one is complete.
    pub fn push(&mut self, byte: u8) -> Option<Result<Item, FrameError>> {
        match self.state {
            State::Idle => match byte {
                SYNC => {
                    self.state = State::Control;
                    None
                }
                NOTIFY_SLOT_CHANGE => {
                    self.state = State::SlotChange;
                    None
                }
                0x80..=0xff => Some(Ok(Item::TimeRequest(byte))),
                _ => Some(Err(FrameError::UnexpectedByte { byte })),
            },
            State::SlotChange => {
                self.state = State::Idle;
                Some(Ok(Item::SlotChange(byte)))
            }
            State::Control => match byte {
                ACK => {
                    self.state = State::Message;
                    self.message.clear();
                    self.expected = HEADER_LEN;
                    None
                }
                NAK => {
                    self.state = State::NakChecksum;
                    None
                }
                _ => {
                    self.reset();
                    Some(Err(FrameError::BadControl { byte }))
                }
            },
            State::NakChecksum => {
                self.state = State::Idle;
                if byte == SYNC ^ NAK {
                    Some(Ok(Item::Nak))
                } else {
                    Some(Err(FrameError::BadNakChecksum { byte }))
                }
            }
            State::Message => {
                self.message.push(byte);
                if self.message.len() == HEADER_LEN {
                    let len = match self.message.get(1..5) {
                        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
                        _ => 0,
                    };
                    let total = usize::try_from(len)
                        .ok()
                        .and_then(|l| l.checked_add(HEADER_LEN))
                        .unwrap_or(usize::MAX);
                    if total > MAX_MESSAGE {
                        self.reset();
                        return Some(Err(FrameError::TooLong { len: total }));
                    }
                    self.expected = total;
                }
                if self.message.len() >= self.expected {
                    self.state = State::Checksum;
                }
                None
            }
            State::Checksum => {
                let residue = SYNC ^ ACK ^ lrc(&self.message) ^ byte;
                let message = core::mem::take(&mut self.message);
                self.reset();
                if residue == 0 {
                    Some(Ok(Item::Frame(message)))
                } else {
                    Some(Err(FrameError::BadChecksum {
                        residue,
                        len: message.len(),
                    }))
                }
            }
        }
    }

    /// Feed many bytes; every item and error in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Item, FrameError>> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    /// libccidtwin's first frame, as measured on the line (NOTES.md).
    const GET_FIRMWARE: [u8; 14] = [
        0x03, 0x06, 0x6B, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x6D,
    ];

    fn message(kind: u8, seq: u8, data: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(data.len() as u32).to_le_bytes());
        m.extend_from_slice(&[0, seq, 0, 0, 0]);
        m.extend_from_slice(data);
        m
    }

    #[test]
    fn encodes_libccidtwins_get_firmware() {
        let m = message(0x6b, 0, &[0x02]);
        assert_eq!(encode(&m).unwrap(), GET_FIRMWARE);
        let mut d = Decoder::new();
        assert_eq!(d.feed(&GET_FIRMWARE), vec![Ok(Item::Frame(m))]);
        assert!(!d.in_item());
    }

    #[test]
    fn nak_slot_change_and_time_requests_between_frames() {
        let mut d = Decoder::new();
        let mut bytes = vec![0x50, 0x03, 0x80, 0xff];
        bytes.extend_from_slice(&NAK_FRAME);
        bytes.extend_from_slice(&[0x50, 0x02]);
        assert_eq!(
            d.feed(&bytes),
            vec![
                Ok(Item::SlotChange(3)),
                Ok(Item::TimeRequest(0x80)),
                Ok(Item::TimeRequest(0xff)),
                Ok(Item::Nak),
                Ok(Item::SlotChange(2)),
            ]
        );
    }

    #[test]
    fn bad_checksum_and_control_are_errors() {
        let mut f = GET_FIRMWARE;
        f[12] ^= 0x10;
        let mut d = Decoder::new();
        assert_eq!(
            d.feed(&f),
            vec![Err(FrameError::BadChecksum {
                residue: 0x10,
                len: 11
            })]
        );
        assert_eq!(
            d.feed(&[0x03, 0x07]),
            vec![Err(FrameError::BadControl { byte: 0x07 })]
        );
        assert_eq!(
            d.feed(&[0x03, 0x15, 0x17]),
            vec![Err(FrameError::BadNakChecksum { byte: 0x17 })]
        );
        assert_eq!(
            d.feed(&[0x41]),
            vec![Err(FrameError::UnexpectedByte { byte: 0x41 })]
        );
    }

    #[test]
    fn announced_length_is_bounded() {
        let mut d = Decoder::new();
        let r = d.feed(&[0x03, 0x06, 0x80, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0]);
        assert!(matches!(r.as_slice(), [Err(FrameError::TooLong { .. })]));
        assert!(!d.in_item());
        assert!(encode(&[0; 272]).is_err());
        assert!(encode(&[0; 9]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut d = Decoder::new();
            for b in bytes {
                if let Some(Ok(Item::Frame(m))) = d.push(b) {
                    prop_assert!(m.len() >= HEADER_LEN && m.len() <= MAX_MESSAGE);
                }
                prop_assert!(d.message.len() <= MAX_MESSAGE);
            }
        }

        #[test]
        fn frames_round_trip(kind in any::<u8>(), seq in any::<u8>(),
                             data in proptest::collection::vec(any::<u8>(), 0..=261)) {
            let m = message(kind, seq, &data);
            let f = encode(&m).unwrap();
            prop_assert_eq!(lrc(&f), 0);
            let mut d = Decoder::new();
            prop_assert_eq!(d.feed(&f), vec![Ok(Item::Frame(m))]);
        }

        /// A single flipped bit anywhere in a frame never passes as a good frame: it is an
        /// error, or no frame at all, or (a flip in `dwLength` that shortens the frame and
        /// happens to leave a zero XOR, about 1 in 256 of those) a frame followed by the
        /// bytes it left over. The link layer rejects a response frame that is followed by
        /// anything, so that case is retransmitted too.
        #[test]
        fn a_flipped_bit_is_never_a_clean_frame(seq in any::<u8>(),
                                               data in proptest::collection::vec(any::<u8>(), 0..=261),
                                               pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let m = message(0x80, seq, &data);
            let mut f = encode(&m).unwrap();
            let i = pos.index(f.len());
            f[i] ^= 1 << bit;
            let mut d = Decoder::new();
            let out = d.feed(&f);
            let clean = matches!(out.as_slice(), [Ok(Item::Frame(_))]) && !d.in_item();
            prop_assert!(!clean, "garbled frame accepted: {:02X?}", out);
        }

        /// Every flip of a length bit that shortens the frame leaves bytes behind.
        #[test]
        fn a_shortened_frame_leaves_bytes_behind(data in proptest::collection::vec(any::<u8>(), 1..=200),
                                                 bit in 0u8..8) {
            let m = message(0x80, 1, &data);
            let mut f = encode(&m).unwrap();
            f[3] ^= 1 << bit;
            let mut d = Decoder::new();
            let out = d.feed(&f);
            if let Some(pos) = out.iter().position(|o| matches!(o, Ok(Item::Frame(_)))) {
                prop_assert!(pos + 1 < out.len() || d.in_item(), "{:02X?}", out);
            }
        }

        /// Frames survive being cut into arbitrary pieces.
        #[test]
        fn split_anywhere(data in proptest::collection::vec(any::<u8>(), 0..=100), cut in 0usize..120) {
            let m = message(0x81, 7, &data);
            let f = encode(&m).unwrap();
            let cut = cut.min(f.len());
            let mut d = Decoder::new();
            let mut out = d.feed(&f[..cut]);
            out.extend(d.feed(&f[cut..]));
            prop_assert_eq!(out, vec![Ok(Item::Frame(m))]);
        }
    }
}
