//! Recorded command/response transcripts.
//!
//! A transcript is text, one exchange per two lines:
//!
//! ```text
//! # comment
//! > 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00
//! < 6F108408... 9000
//! > 00B2012C00
//! ! removed
//! ```
//!
//! `>` is a command as it must appear on the wire (spaces ignored; `..` matches any one byte,
//! for challenges and other fresh values), `<` the card's answer, `!` a transport error
//! (`removed`, `reset`, `mute`, `no-card`). [`ReplayChannel`] plays a transcript as a card, so a
//! flow can be tested against recorded exchanges; [`RecordingChannel`] records one from a real
//! exchange.

use core::fmt;

use crate::apdu::HexFmt;
use crate::channel::{CardChannel, TransportError};

/// Errors reading or replaying a transcript.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// A line that is not a comment, `>`, `<` or `!` line, or bad hex.
    #[error("transcript line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Not every recorded exchange was used.
    #[error("transcript has {remaining} unused exchanges (next expects {next})")]
    Unfinished {
        /// Unused exchanges.
        remaining: usize,
        /// The next expected command.
        next: String,
    },
}

/// One byte of an expected command: a value or a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Must match exactly.
    Byte(u8),
    /// Any byte.
    Any,
}

/// What the card does in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Respond with these bytes (data ‖ SW).
    Bytes(Vec<u8>),
    /// Fail with a transport error.
    Error(TransportError),
}

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Expected command.
    pub command: Vec<Pattern>,
    /// The answer.
    pub answer: Answer,
    /// Line of the command in the source text.
    pub line: usize,
}

impl Exchange {
    /// Whether `bytes` matches the expected command.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.command.len() == bytes.len()
            && self.command.iter().zip(bytes).all(|(p, b)| match p {
                Pattern::Any => true,
                Pattern::Byte(x) => x == b,
            })
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.command {
            match p {
                Pattern::Byte(b) => write!(f, "{b:02X}")?,
                Pattern::Any => f.write_str("..")?,
            }
        }
        Ok(())
    }
}

fn parse_hex(text: &str, line: usize, wildcards: bool) -> Result<Vec<Pattern>, TranscriptError> {
    let compact: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.len().is_multiple_of(2) {
        return Err(TranscriptError::Syntax {
            line,
            reason: "odd number of hex digits".into(),
        });
    }
    compact
        .chunks(2)
        .map(|pair| match pair {
            ['.', '.'] if wildcards => Ok(Pattern::Any),
            [a, b] => match (a.to_digit(16), b.to_digit(16)) {
                (Some(h), Some(l)) => Ok(Pattern::Byte((h * 16 + l) as u8)),
                _ => Err(TranscriptError::Syntax {
                    line,
                    reason: format!("bad hex {a}{b}"),
                }),
            },
            _ => Err(TranscriptError::Syntax {
                line,
                reason: "odd number of hex digits".into(),
            }),
        })
        .collect()
}

/// Parse a transcript.
pub fn parse(text: &str) -> Result<Vec<Exchange>, TranscriptError> {
    let mut out = Vec::new();
    let mut pending: Option<(Vec<Pattern>, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (mark, rest) = l.split_at(1);
        match mark {
            ">" => {
                if let Some((_, at)) = pending {
                    return Err(TranscriptError::Syntax {
                        line,
                        reason: format!("command on line {at} has no answer"),
                    });
                }
                pending = Some((parse_hex(rest, line, true)?, line));
            }
            "<" | "!" => {
                let Some((command, at)) = pending.take() else {
                    return Err(TranscriptError::Syntax {
                        line,
                        reason: "answer without a command".into(),
                    });
                };
                let answer = if mark == "<" {
                    let bytes = parse_hex(rest, line, false)?
                        .into_iter()
                        .filter_map(|p| match p {
                            Pattern::Byte(b) => Some(b),
                            Pattern::Any => None,
                        })
                        .collect();
                    Answer::Bytes(bytes)
                } else {
                    Answer::Error(match rest.trim() {
                        "removed" => TransportError::CardRemoved,
                        "reset" => TransportError::CardReset,
                        "mute" => TransportError::CardUnresponsive,
                        "no-card" => TransportError::NoCard,
                        other => TransportError::Other(other.to_string()),
                    })
                };
                out.push(Exchange {
                    command,
                    answer,
                    line: at,
                });
            }
            _ => {
                return Err(TranscriptError::Syntax {
                    line,
                    reason: "expected '>', '<', '!' or '#'".into(),
                });
            }
        }
    }
    if let Some((_, at)) = pending {
        return Err(TranscriptError::Syntax {
            line: at,
            reason: "command has no answer".into(),
        });
    }
    Ok(out)
}

/// A card that plays a transcript: each command must match the next recorded one.
#[derive(Debug, Clone)]
pub struct ReplayChannel {
    exchanges: Vec<Exchange>,
    next: usize,
}

impl ReplayChannel {
    /// Replay these exchanges.
    pub const fn new(exchanges: Vec<Exchange>) -> Self {
        Self { exchanges, next: 0 }
    }

    /// Parse and replay a transcript.
    pub fn parse(text: &str) -> Result<Self, TranscriptError> {
        Ok(Self::new(parse(text)?))
    }

    /// Fails if exchanges remain unused.
    pub fn assert_finished(&self) -> Result<(), TranscriptError> {
        match self.exchanges.get(self.next) {
            None => Ok(()),
            Some(e) => Err(TranscriptError::Unfinished {
                remaining: self.exchanges.len() - self.next,
                next: e.to_string(),
            }),
        }
    }

    /// Exchanges used so far.
    pub const fn position(&self) -> usize {
        self.next
    }
}

impl CardChannel for ReplayChannel {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let Some(expected) = self.exchanges.get(self.next) else {
            return Err(TransportError::Other(format!(
                "transcript exhausted; unexpected command {}",
                HexFmt(command)
            )));
        };
        if !expected.matches(command) {
            return Err(TransportError::Other(format!(
                "transcript line {}: expected {expected}, got {}",
                expected.line,
                HexFmt(command)
            )));
        }
        self.next += 1;
        match &expected.answer {
            Answer::Bytes(b) => Ok(b.clone()),
            Answer::Error(e) => Err(e.clone()),
        }
    }
}

/// Wraps a channel and writes every exchange as transcript text.
///
/// Secret data must not be recorded: commands whose data the caller marks as secret never reach
/// the channel in clear anyway, so only record transcripts of flows that carry no secrets, or
/// with test PINs.
#[derive(Debug)]
pub struct RecordingChannel<C> {
    inner: C,
    text: String,
}

impl<C: CardChannel> RecordingChannel<C> {
    /// Record exchanges on `inner`.
    pub const fn new(inner: C) -> Self {
        Self {
            inner,
            text: String::new(),
        }
    }

    /// The transcript so far.
    pub fn transcript(&self) -> &str {
        &self.text
    }

    /// Give back the wrapped channel and the transcript.
    pub fn into_parts(self) -> (C, String) {
        (self.inner, self.text)
    }
}

impl<C: CardChannel> CardChannel for RecordingChannel<C> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let result = self.inner.transmit(command);
        self.text.push_str(&format!("> {}\n", HexFmt(command)));
        match &result {
            Ok(r) => self.text.push_str(&format!("< {}\n", HexFmt(r))),
            Err(TransportError::CardRemoved) => self.text.push_str("! removed\n"),
            Err(TransportError::CardReset) => self.text.push_str("! reset\n"),
            Err(TransportError::CardUnresponsive) => self.text.push_str("! mute\n"),
            Err(TransportError::NoCard) => self.text.push_str("! no-card\n"),
            Err(e) => self.text.push_str(&format!("! {e}\n")),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_replays_with_wildcards() {
        let mut ch = ReplayChannel::parse(
            "# challenge\n> 0088000004 ........\n< 0102 9000\n> 00A4\n! reset\n",
        )
        .unwrap();
        assert_eq!(
            ch.transmit(&[0, 0x88, 0, 0, 4, 9, 8, 7, 6]).unwrap(),
            [1, 2, 0x90, 0]
        );
        assert_eq!(ch.transmit(&[0, 0xa4]), Err(TransportError::CardReset));
        ch.assert_finished().unwrap();
    }

    #[test]
    fn mismatch_names_the_line() {
        let mut ch = ReplayChannel::parse("> 00A4\n< 9000\n").unwrap();
        let err = ch.transmit(&[0, 0xa5]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(
            parse("< 9000"),
            Err(TranscriptError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            parse("> 00A\n< 9000"),
            Err(TranscriptError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            parse("> 00A4\n> 00A4"),
            Err(TranscriptError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            parse("> 00A4"),
            Err(TranscriptError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            parse("? 00"),
            Err(TranscriptError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            parse("> ZZ\n< 9000"),
            Err(TranscriptError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn recording_round_trips() {
        let replay =
            ReplayChannel::parse("> 00A4040000\n< 6F00 9000\n> 00B0\n! removed\n").unwrap();
        let mut rec = RecordingChannel::new(replay);
        rec.transmit(&[0, 0xa4, 4, 0, 0]).unwrap();
        let _ = rec.transmit(&[0, 0xb0]);
        let again = parse(rec.transcript()).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].answer, Answer::Error(TransportError::CardRemoved));
    }
}
