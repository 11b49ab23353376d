//! What a technician sees in the terminal's service mode: the readers, the last card exchanges,
//! and the card checks. Built by the session worker (`Request::Service`), shown by the kiosk
//! behind a technician PIN ([`TechnicianPin`]).
//!
//! The exchange list keeps only what identifies an exchange: the command header, how many data
//! bytes went each way, the status word and the time. No data field is kept, so neither a PIN
//! block nor a record with a citizen's name can reach the screen through it (card-core's trace
//! hook already cuts sensitive fields; this view keeps even less).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use card_core::trace::{TraceEvent, TraceSink};
use zeroize::Zeroizing;

/// How many exchanges the ring keeps.
pub const TRACE_LINES: usize = 200;

/// The last exchanges of every card session of the worker, shared with it.
#[derive(Debug, Clone, Default)]
pub struct TraceRing(Arc<Mutex<VecDeque<String>>>);

impl TraceRing {
    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One exchange as the service view shows it: kind, header, lengths, status word, time.
pub fn line_of(event: &TraceEvent<'_>) -> String {
    let mut out = String::new();
    let header: Vec<String> = event
        .command
        .iter()
        .take(4)
        .map(|b| format!("{b:02X}"))
        .collect();
    let sent = event
        .command
        .len()
        .saturating_sub(5)
        .saturating_add(event.command_redacted);
    let got = event.response.len().saturating_add(event.response_redacted);
    let _ = write!(out, "{:<12} {} → ", event.kind.as_str(), header.join(" "));
    match (event.sw, event.error) {
        (_, Some(e)) => {
            let _ = write!(out, "error: {e}");
        }
        (Some(sw), None) => {
            let _ = write!(out, "{:04X}", sw.to_u16());
        }
        (None, None) => out.push_str("no status word"),
    }
    let _ = write!(
        out,
        "  out {sent} B, in {got} B, {:.1} ms",
        event.elapsed.as_secs_f64() * 1e3
    );
    out
}

impl TraceSink for TraceRing {
    fn record(&mut self, event: &TraceEvent<'_>) {
        if let Ok(mut l) = self.0.lock() {
            if l.len() >= TRACE_LINES {
                l.pop_front();
            }
            l.push_back(line_of(event));
        }
    }
}

/// One check of the card, as the service view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// Stable id, e.g. `iso.wrong_cla`.
    pub id: String,
    /// `pass`, `warn`, `fail` or `skip`.
    pub verdict: String,
    /// Why.
    pub reason: String,
}

/// The service view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceView {
    /// The readers the terminal sees, each with its state.
    pub readers: Vec<String>,
    /// The last exchanges, oldest first.
    pub trace: Vec<String>,
    /// The card checks, when they were run on the card in the reader.
    pub checks: Option<Vec<CheckLine>>,
}

/// The technician PIN: only its SM3 digest is kept (in the configuration file and in memory);
/// three wrong entries lock the service mode for five minutes.
#[derive(Clone)]
pub struct TechnicianPin {
    digest: [u8; 32],
}

impl std::fmt::Debug for TechnicianPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TechnicianPin(<digest>)")
    }
}

impl TechnicianPin {
    /// From the PIN itself (the demo's, or a test's).
    pub fn from_pin(pin: &str) -> Self {
        Self {
            digest: card_core::crypto::sm3::digest(pin.as_bytes()),
        }
    }

    /// From the hex SM3 digest a configuration file holds (64 hex digits).
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest.trim(), &mut digest).ok()?;
        Some(Self { digest })
    }

    /// The digest in hex, for the configuration file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Whether `typed` is the PIN (compared digest to digest, in constant time).
    pub fn matches(&self, typed: &Zeroizing<String>) -> bool {
        let d = card_core::crypto::sm3::digest(typed.as_bytes());
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use card_core::status::StatusWord;
    use card_core::trace::ExchangeKind;
    use std::time::Duration;

    #[test]
    fn a_verify_line_has_no_pin_and_a_record_line_no_data() {
        let verify = TraceEvent {
            kind: ExchangeKind::Command,
            command: &[0x00, 0x20, 0x00, 0x00, 0x03],
            command_redacted: 3,
            response: &[],
            response_redacted: 0,
            sw: Some(StatusWord::Success),
            elapsed: Duration::from_micros(400),
            error: None,
        };
        let line = line_of(&verify);
        assert_eq!(
            line,
            "command      00 20 00 00 → 9000  out 3 B, in 0 B, 0.4 ms"
        );
        // A record with a name in GBK: only its length is shown.
        let record = TraceEvent {
            kind: ExchangeKind::Command,
            command: &[0x00, 0xB2, 0x01, 0x14, 0x00],
            command_redacted: 0,
            response: &[0x5F, 0x20, 0x04, 0xD5, 0xC5, 0xC8, 0xFD],
            response_redacted: 0,
            sw: Some(StatusWord::Success),
            elapsed: Duration::from_micros(250),
            error: None,
        };
        let line = line_of(&record);
        assert!(line.ends_with("out 0 B, in 7 B, 0.2 ms"), "{line}");
        assert!(!line.contains("D5") && !line.contains("C5"), "{line}");
    }

    #[test]
    fn the_ring_keeps_the_last_lines() {
        let mut ring = TraceRing::default();
        for i in 0..(TRACE_LINES + 5) {
            ring.record(&TraceEvent {
                kind: ExchangeKind::Command,
                command: &[0x80, 0xCA, 0x9F, (i % 256) as u8, 0x00],
                command_redacted: 0,
                response: &[],
                response_redacted: 0,
                sw: None,
                elapsed: Duration::ZERO,
                error: Some("card removed"),
            });
        }
        let lines = ring.lines();
        assert_eq!(lines.len(), TRACE_LINES);
        assert!(lines[0].contains("80 CA 9F 05"), "{}", lines[0]);
        assert!(lines[TRACE_LINES - 1].contains("error: card removed"));
    }

    #[test]
    fn technician_pin_matches_only_itself() {
        let pin = TechnicianPin::from_pin("2468");
        assert!(pin.matches(&Zeroizing::new("2468".into())));
        assert!(!pin.matches(&Zeroizing::new("2469".into())));
        assert!(!pin.matches(&Zeroizing::new(String::new())));
        let again = TechnicianPin::from_hex(&pin.to_hex()).unwrap();
        assert!(again.matches(&Zeroizing::new("2468".into())));
        assert!(TechnicianPin::from_hex("zz").is_none());
        assert!(!format!("{pin:?}").contains(&pin.to_hex()));
    }
}
