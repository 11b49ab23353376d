//! The T=1 block protocol, terminal side (ISO/IEC 7816-3:2006 §11).
//!
//! A GemPC Twin exchanges TPDUs (its dwFeatures has "TPDU level exchange"), so with a T=1 card
//! the host builds the blocks itself and the reader only carries them in XfrBlock messages.
//! Implemented: I-blocks with chaining in both directions (§11.6.2.3), R-blocks asking for
//! a retransmission after an invalid or missing block (§11.6.3, rules 7.1–7.3), S(WTX) and
//! S(IFS) requests from the card (§11.6.2.4), S(IFS) request to raise IFSD, and S(RESYNCH) after
//! three failed attempts (rule 6.4). The checksum is the LRC (TC3 absent or 0); a card that asks
//! for CRC is refused when the protocol is set up.
//!
//! When a block cannot be recovered the exchange ends with an error after a resynchronisation:
//! whether the card executed the command is then unknown, so nothing is retried above.

use super::error::{SerialError, T1Error};

const R_BLOCK: u8 = 0x80;
const S_BLOCK: u8 = 0xc0;
const MORE: u8 = 0x20;
const S_RESPONSE: u8 = 0x20;
const S_RESYNCH: u8 = 0x00;
const S_IFS: u8 = 0x01;
const S_ABORT: u8 = 0x02;
const S_WTX: u8 = 0x03;
/// Attempts for one block before resynchronising (rule 7.4.2 allows at least two).
const RETRIES: u8 = 3;

/// A block as it came from the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Information block.
    I {
        /// N(S).
        seq: bool,
        /// More data follows (chaining).
        more: bool,
        /// INF.
        data: Vec<u8>,
    },
    /// Receive-ready block.
    R {
        /// N(R).
        seq: bool,
        /// Error bits (0 none, 1 EDC/parity, 2 other).
        error: u8,
    },
    /// Supervisory block.
    S {
        /// Request type (RESYNCH 0, IFS 1, ABORT 2, WTX 3).
        kind: u8,
        /// A response rather than a request.
        response: bool,
        /// INF.
        data: Vec<u8>,
    },
}

/// Build a block with NAD 0 and the LRC.
pub fn encode(pcb: u8, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(data.len() + 4);
    b.push(0);
    b.push(pcb);
    b.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
    b.extend_from_slice(data);
    b.push(super::frame::lrc(&b));
    b
}

/// Parse a block from the card, checking NAD, LEN and the LRC.
pub fn decode(b: &[u8]) -> Result<Block, T1Error> {
    let [nad, pcb, len, rest @ ..] = b else {
        return Err(T1Error::Invalid("block shorter than its prologue"));
    };
    if *nad != 0 {
        return Err(T1Error::Invalid("NAD is not 0"));
    }
    if *len == 0xff || rest.len() != usize::from(*len) + 1 {
        return Err(T1Error::Invalid("LEN disagrees with the block"));
    }
    if super::frame::lrc(b) != 0 {
        return Err(T1Error::Invalid("LRC mismatch"));
    }
    let data = rest.get(..usize::from(*len)).unwrap_or_default().to_vec();
    Ok(match pcb & 0xc0 {
        R_BLOCK => {
            if !data.is_empty() || pcb & 0x20 != 0 {
                return Err(T1Error::Invalid("malformed R-block"));
            }
            Block::R {
                seq: pcb & 0x10 != 0,
                error: pcb & 0x0f,
            }
        }
        S_BLOCK => Block::S {
            kind: pcb & 0x1f,
            response: pcb & S_RESPONSE != 0,
            data,
        },
        _ => Block::I {
            seq: pcb & 0x40 != 0,
            more: pcb & MORE != 0,
            data,
        },
    })
}

fn i_pcb(seq: bool, more: bool) -> u8 {
    (if seq { 0x40 } else { 0 }) | if more { MORE } else { 0 }
}

fn r_pcb(seq: bool, error: u8) -> u8 {
    R_BLOCK | (if seq { 0x10 } else { 0 }) | (error & 0x0f)
}

/// One exchange of a block with the card: the block to send and the BWT multiplier (0 = the
/// negotiated time), returning the card's block.
pub type Exchange<'a> = dyn FnMut(&[u8], u8) -> Result<Vec<u8>, SerialError> + 'a;

/// State of the T=1 protocol for one card session.
#[derive(Debug, Clone)]
pub struct T1 {
    ns: bool,
    nr: bool,
    ifsc: usize,
}

impl T1 {
    /// The state right after the ATR, with the card's IFSC (TA3, default 32).
    pub fn new(ifsc: u8) -> Self {
        Self {
            ns: false,
            nr: false,
            ifsc: usize::from(ifsc.clamp(1, 254)),
        }
    }

    /// The card's current IFSC.
    pub const fn ifsc(&self) -> usize {
        self.ifsc
    }

    /// Tell the card the largest block we accept (S(IFS request), §11.4.2).
    pub fn negotiate_ifsd(&mut self, ifsd: u8, xfr: &mut Exchange<'_>) -> Result<(), SerialError> {
        let request = encode(S_BLOCK | S_IFS, &[ifsd]);
        for _ in 0..RETRIES {
            match xfr(&request, 0).and_then(|r| decode(&r).map_err(SerialError::from)) {
                Ok(Block::S {
                    kind: S_IFS,
                    response: true,
                    data,
                }) if data == [ifsd] => return Ok(()),
                Ok(_) | Err(SerialError::T1(_) | SerialError::Timeout { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        self.resynch(xfr)?;
        Err(T1Error::Unrecoverable("IFS negotiation failed").into())
    }

    /// S(RESYNCH request): both sequence numbers back to 0 (rule 6).
    pub fn resynch(&mut self, xfr: &mut Exchange<'_>) -> Result<(), SerialError> {
        let request = encode(S_BLOCK | S_RESYNCH, &[]);
        for _ in 0..RETRIES {
            match xfr(&request, 0).and_then(|r| decode(&r).map_err(SerialError::from)) {
                Ok(Block::S {
                    kind: S_RESYNCH,
                    response: true,
                    ..
                }) => {
                    self.ns = false;
                    self.nr = false;
                    return Ok(());
                }
                Ok(_) | Err(SerialError::T1(_) | SerialError::Timeout { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(T1Error::Unrecoverable("resynchronisation failed").into())
    }

    /// Send an APDU and return the card's response APDU.
    pub fn transceive(
        &mut self,
        apdu: &[u8],
        xfr: &mut Exchange<'_>,
    ) -> Result<Vec<u8>, SerialError> {
        let chunks: Vec<&[u8]> = apdu.chunks(self.ifsc).collect();
        let last = chunks.len().saturating_sub(1);
        let mut index = 0;
        let i_block = |ns: bool, index: usize| {
            encode(
                i_pcb(ns, index < last),
                chunks.get(index).copied().unwrap_or_default(),
            )
        };
        let mut to_send = i_block(self.ns, index);
        let mut repeat = to_send.clone();
        let mut receiving = false;
        let mut response = Vec::new();
        let mut failures = 0u8;
        let mut wtx = 0u8;
        loop {
            let reply = match xfr(&to_send, wtx) {
                Ok(r) => decode(&r),
                // A lost or garbled answer is an invalid block (rule 7.1): ask again.
                Err(SerialError::Timeout { .. }) => Err(T1Error::Invalid("no block")),
                Err(e) => return Err(e),
            };
            wtx = 0;
            let block = match reply {
                Ok(b) => b,
                Err(_) => {
                    failures += 1;
                    if failures >= RETRIES {
                        return self.give_up(xfr, "invalid blocks from the card");
                    }
                    // Rule 7.2: after an R-block, repeat it; otherwise ask for the block again.
                    if repeat.get(1).is_none_or(|p| p & 0xc0 != R_BLOCK) {
                        repeat = encode(r_pcb(self.nr, 0x01), &[]);
                    }
                    to_send = repeat.clone();
                    continue;
                }
            };
            match block {
                Block::I { seq, more, data } => {
                    if !receiving {
                        if index < last {
                            return self.give_up(xfr, "I-block before the chain was complete");
                        }
                        // The card's I-block acknowledges our last one.
                        self.ns = !self.ns;
                        receiving = true;
                    }
                    if seq != self.nr {
                        failures += 1;
                        if failures >= RETRIES {
                            return self.give_up(xfr, "wrong sequence number from the card");
                        }
                        repeat = encode(r_pcb(self.nr, 0x02), &[]);
                        to_send = repeat.clone();
                        continue;
                    }
                    self.nr = !self.nr;
                    failures = 0;
                    response.extend_from_slice(&data);
                    if response.len() > 65_538 {
                        return self.give_up(xfr, "response longer than an extended APDU");
                    }
                    if !more {
                        return Ok(response);
                    }
                    repeat = encode(r_pcb(self.nr, 0), &[]);
                    to_send = repeat.clone();
                }
                Block::R { seq, .. } => {
                    if !receiving && seq != self.ns && index < last {
                        // Our chained block was received; send the next one.
                        self.ns = !self.ns;
                        index += 1;
                        failures = 0;
                        repeat = i_block(self.ns, index);
                        to_send = repeat.clone();
                        continue;
                    }
                    // The card asks for our last block again.
                    failures += 1;
                    if failures >= RETRIES {
                        return self.give_up(xfr, "the card keeps asking for retransmission");
                    }
                    to_send = repeat.clone();
                }
                Block::S {
                    kind,
                    response: false,
                    data,
                } => match (kind, data.as_slice()) {
                    (S_WTX, &[n]) => {
                        wtx = n;
                        to_send = encode(S_BLOCK | S_RESPONSE | S_WTX, &[n]);
                    }
                    (S_IFS, &[n]) if n > 0 && n < 0xff => {
                        self.ifsc = usize::from(n);
                        to_send = encode(S_BLOCK | S_RESPONSE | S_IFS, &[n]);
                    }
                    (S_ABORT, _) => {
                        return self.give_up(xfr, "the card aborted the chain");
                    }
                    _ => return self.give_up(xfr, "unexpected S-block request"),
                },
                Block::S { .. } => {
                    failures += 1;
                    if failures >= RETRIES {
                        return self.give_up(xfr, "unexpected S-block response");
                    }
                    to_send = encode(r_pcb(self.nr, 0x02), &[]);
                }
            }
        }
    }

    fn give_up(
        &mut self,
        xfr: &mut Exchange<'_>,
        why: &'static str,
    ) -> Result<Vec<u8>, SerialError> {
        // Best effort: leave the card in a known state for the next command.
        let _ = self.resynch(xfr);
        Err(T1Error::Unrecoverable(why).into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// A scripted card: expects each block in turn and answers with the paired block.
    fn script(
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> impl FnMut(&[u8], u8) -> Result<Vec<u8>, SerialError> {
        let mut it = pairs.into_iter();
        move |sent, _| {
            let (want, answer) = it.next().expect("more exchanges than scripted");
            assert_eq!(sent, want.as_slice(), "sent {sent:02X?}");
            Ok(answer)
        }
    }

    #[test]
    fn single_block_exchange() {
        let mut t1 = T1::new(32);
        let mut x = script(vec![(
            encode(0x00, &[0, 0xa4, 4, 0]),
            encode(0x00, &[0x90, 0]),
        )]);
        assert_eq!(t1.transceive(&[0, 0xa4, 4, 0], &mut x).unwrap(), [0x90, 0]);
        // Sequence numbers toggled.
        let mut x = script(vec![(encode(0x40, &[1]), encode(0x40, &[0x90, 0]))]);
        assert_eq!(t1.transceive(&[1], &mut x).unwrap(), [0x90, 0]);
    }

    #[test]
    fn chaining_both_ways_and_wtx() {
        let mut t1 = T1::new(2);
        let mut x = script(vec![
            (encode(0x20, &[1, 2]), encode(0x90, &[])),
            (encode(0x40, &[3]), encode(0xc3, &[2])),
            (encode(0xe3, &[2]), encode(0x20, &[0xaa, 0xbb])),
            (encode(0x90, &[]), encode(0x40, &[0x90, 0])),
        ]);
        assert_eq!(
            t1.transceive(&[1, 2, 3], &mut x).unwrap(),
            [0xaa, 0xbb, 0x90, 0]
        );
    }

    #[test]
    fn garbled_block_is_asked_again() {
        let mut t1 = T1::new(32);
        let mut bad = encode(0x00, &[0x90, 0]);
        bad[3] ^= 1;
        let mut x = script(vec![
            (encode(0x00, &[5]), bad),
            (encode(0x81, &[]), encode(0x00, &[0x90, 0])),
        ]);
        assert_eq!(t1.transceive(&[5], &mut x).unwrap(), [0x90, 0]);
    }

    #[test]
    fn hopeless_card_ends_in_error_after_resync() {
        let mut t1 = T1::new(32);
        let mut n = 0;
        let mut x = |sent: &[u8], _| -> Result<Vec<u8>, SerialError> {
            n += 1;
            if sent == encode(0xc0, &[]).as_slice() {
                return Ok(encode(0xe0, &[]));
            }
            Ok(vec![1, 2, 3])
        };
        let e = t1.transceive(&[5], &mut x).unwrap_err();
        assert!(
            matches!(e, SerialError::T1(T1Error::Unrecoverable(_))),
            "{e}"
        );
        assert!(n >= 4);
    }

    #[test]
    fn decode_rejects_bad_blocks() {
        assert!(decode(&[0, 0]).is_err());
        assert!(decode(&[1, 0, 0, 1]).is_err());
        assert!(decode(&[0, 0, 2, 1, 3]).is_err());
        assert!(decode(&[0, 0x80, 0, 0x81]).is_err());
        assert_eq!(
            decode(&encode(0x91, &[])).unwrap(),
            Block::R {
                seq: true,
                error: 1
            }
        );
    }
}
