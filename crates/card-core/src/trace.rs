//! The APDU trace hook.
//!
//! [`CardSession`](crate::channel::CardSession) reports every exchange on the wire to a
//! [`TraceSink`]. The event it hands over is already redacted: a command marked sensitive
//! (PIN blocks, keys) arrives cut before its data field, with only the number of bytes left
//! out; a response marked sensitive (answers to challenges) arrives without its data. Sinks
//! therefore cannot leak what they never receive.

use std::time::Duration;

use crate::apdu::HexFmt;
use crate::status::StatusWord;

/// What an exchange on the wire was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// The command as the caller sent it.
    Command,
    /// A GET RESPONSE fetching the rest of a `61xx` answer.
    GetResponse,
    /// The command sent again with the Le a `6Cxx` asked for.
    ResendWithLe,
    /// One part of a chained command.
    ChainPart,
}

impl ExchangeKind {
    /// A short lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::GetResponse => "get-response",
            Self::ResendWithLe => "resend-le",
            Self::ChainPart => "chain-part",
        }
    }
}

/// One exchange, redacted.
#[derive(Debug, Clone, Copy)]
pub struct TraceEvent<'a> {
    /// What the exchange was for.
    pub kind: ExchangeKind,
    /// Command bytes that may be shown (the whole APDU, or the part before a secret data field).
    pub command: &'a [u8],
    /// Number of command data bytes left out (0 if none).
    pub command_redacted: usize,
    /// Response data that may be shown (empty if redacted).
    pub response: &'a [u8],
    /// Number of response data bytes left out (0 if none).
    pub response_redacted: usize,
    /// The status word, if a well-formed response arrived.
    pub sw: Option<StatusWord>,
    /// Time spent in the transport.
    pub elapsed: Duration,
    /// The transport error, if the exchange failed.
    pub error: Option<&'a str>,
}

impl TraceEvent<'_> {
    /// The event as one line of JSON (no trailing newline), e.g.
    /// `{"kind":"command","apdu":"00A4...","response":"6F..","sw":"9000","micros":61}`.
    pub fn to_json_line(&self) -> String {
        let mut s = String::with_capacity(64 + 2 * (self.command.len() + self.response.len()));
        s.push_str("{\"kind\":\"");
        s.push_str(self.kind.as_str());
        s.push_str("\",\"apdu\":\"");
        s.push_str(&HexFmt(self.command).to_string());
        s.push('"');
        if self.command_redacted > 0 {
            s.push_str(&format!(",\"redacted\":{}", self.command_redacted));
        }
        s.push_str(",\"response\":\"");
        s.push_str(&HexFmt(self.response).to_string());
        s.push('"');
        if self.response_redacted > 0 {
            s.push_str(&format!(
                ",\"response_redacted\":{}",
                self.response_redacted
            ));
        }
        if let Some(sw) = self.sw {
            s.push_str(&format!(",\"sw\":\"{:04X}\"", sw.to_u16()));
        }
        s.push_str(&format!(",\"micros\":{}", self.elapsed.as_micros()));
        if let Some(e) = self.error {
            s.push_str(",\"error\":");
            push_json_string(&mut s, e);
        }
        s.push('}');
        s
    }
}

/// Append `text` as a JSON string literal.
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Receives every exchange of a session.
pub trait TraceSink {
    /// Record one exchange.
    fn record(&mut self, event: &TraceEvent<'_>);
}

/// Counts exchanges and keeps the JSON lines in memory (for tests and short diagnostics).
#[derive(Debug, Default, Clone)]
pub struct MemoryTrace {
    /// The recorded lines.
    pub lines: Vec<String>,
}

impl TraceSink for MemoryTrace {
    fn record(&mut self, event: &TraceEvent<'_>) {
        self.lines.push(event.to_json_line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_escapes_errors() {
        let e = TraceEvent {
            kind: ExchangeKind::Command,
            command: &[0, 0xa4],
            command_redacted: 0,
            response: &[],
            response_redacted: 0,
            sw: None,
            elapsed: Duration::from_micros(12),
            error: Some("bad \"thing\"\n"),
        };
        assert_eq!(
            e.to_json_line(),
            r#"{"kind":"command","apdu":"00A4","response":"","micros":12,"error":"bad \"thing\"\n"}"#
        );
    }
}
