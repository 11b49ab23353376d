//! Line faults the simulated reader can inject, each for the next XfrBlock command(s):
//!
//! | name | what happens on the line |
//! |---|---|
//! | `drop-command N` | N bytes of the command frame are lost on the way in (the reader sees a short frame, waits, and NAKs) |
//! | `flip-command BIT` | one bit of the command frame flips on the way in (bad checksum: NAK) |
//! | `drop-response N` | N bytes of the response frame are lost on the way out |
//! | `flip-response BIT` | one bit of the response frame flips on the way out |
//! | `noisy-return BIT` | the same bit flips in the response and in every repeat of it the host asks for with NAK (a line that stays bad on the way back) |
//! | `flip-echo BIT` | one bit of the echo flips |
//! | `lose-response` | echo and response never arrive (the host must ask again) |
//! | `stale` | an old response (previous bSeq) goes out before the real one |
//! | `garbage` | three noise bytes before the response |
//! | `delay MS` | the card takes MS milliseconds: time requests (`80`..) every 100 ms meanwhile |
//! | `time-extension MS` | as `delay`, but announced with CCID time-extension frames (bStatus 0x80) |
//! | `wtx N` | T=1: the card asks S(WTX N) before answering |
//!
//! Bit positions count from the first byte of the frame (SYNC), 8 bits a byte. `mute MS` (the
//! reader answers nothing at all for MS milliseconds, as when unplugged) is not tied to a
//! command and is handled by the serving loop.

use std::collections::VecDeque;
use std::time::Duration;

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Lose bytes of the command frame.
    DropCommand(usize),
    /// Flip one bit of the command frame.
    FlipCommand(usize),
    /// Lose bytes of the response frame.
    DropResponse(usize),
    /// Flip one bit of the response frame.
    FlipResponse(usize),
    /// Flip one bit of the response frame and of every repeat of it after a NAK.
    NoisyReturn(usize),
    /// Flip one bit of the echo.
    FlipEcho(usize),
    /// Lose echo and response entirely.
    LoseResponse,
    /// Send a stale response first.
    Stale,
    /// Noise before the response.
    Garbage,
    /// Slow card with T=0 time requests.
    Delay(Duration),
    /// Slow card with CCID time-extension frames.
    TimeExtension(Duration),
    /// T=1 S(WTX) request.
    Wtx(u8),
}

impl Fault {
    /// Parse `NAME [ARG]` (see the module table).
    pub fn parse(words: &[&str]) -> Result<Self, String> {
        let num = |i: usize| -> Result<usize, String> {
            words
                .get(i)
                .ok_or_else(|| format!("{} needs a number", words.first().unwrap_or(&"")))?
                .parse::<usize>()
                .map_err(|e| e.to_string())
        };
        let ms = |i: usize| num(i).map(|n| Duration::from_millis(n as u64));
        Ok(match words.first().copied().unwrap_or("") {
            "drop-command" => Self::DropCommand(num(1)?),
            "flip-command" => Self::FlipCommand(num(1)?),
            "drop-response" => Self::DropResponse(num(1)?),
            "flip-response" => Self::FlipResponse(num(1)?),
            "noisy-return" => Self::NoisyReturn(num(1)?),
            "flip-echo" => Self::FlipEcho(num(1)?),
            "lose-response" => Self::LoseResponse,
            "stale" => Self::Stale,
            "garbage" => Self::Garbage,
            "delay" => Self::Delay(ms(1)?),
            "time-extension" => Self::TimeExtension(ms(1)?),
            "wtx" => Self::Wtx(u8::try_from(num(1)?).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown fault {other:?}")),
        })
    }

    /// Whether the fault acts on the command on its way in.
    pub const fn inbound(&self) -> bool {
        matches!(self, Self::DropCommand(_) | Self::FlipCommand(_))
    }
}

/// Faults waiting for the next XfrBlock commands, in order.
#[derive(Debug, Default)]
pub struct FaultPlan {
    queue: VecDeque<Fault>,
    /// Faults injected so far.
    pub injected: u64,
}

impl FaultPlan {
    /// Add `fault` for the next `count` XfrBlock commands.
    pub fn push(&mut self, fault: Fault, count: usize) {
        for _ in 0..count {
            self.queue.push_back(fault);
        }
    }

    /// The fault for the XfrBlock command now arriving, if any.
    pub fn take_next(&mut self) -> Option<Fault> {
        let f = self.queue.pop_front();
        if f.is_some() {
            self.injected += 1;
        }
        f
    }

    /// Faults not yet used.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Forget all pending faults.
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// Flip bit `bit` (counted over the whole frame) of `frame`, if it is inside.
pub fn flip(frame: &mut [u8], bit: usize) {
    if let Some(b) = frame.get_mut(bit / 8) {
        *b ^= 1 << (bit % 8);
    }
}

/// Remove `n` bytes from the middle of `frame` (never its first byte).
pub fn drop_bytes(frame: &mut Vec<u8>, n: usize) {
    let start = (frame.len() / 2).max(1);
    let end = (start + n).min(frame.len());
    frame.drain(start..end);
}
