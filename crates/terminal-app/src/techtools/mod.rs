//! The technician's tools behind `cardctl`'s diagnostic subcommands (issue 7, part 3):
//!
//! - [`atr_names`]: card names for an ATR from pcsc-tools' `smartcard_list.txt`;
//! - [`identify`]: which applications the card has (SSSE, PKI, PBOC debit/credit, electronic
//!   cash) and their versions, without starting a transaction;
//! - [`dump`]: the TLV tree of what the card gives, tags named from card-core's dictionary,
//!   personal data masked;
//! - [`console`]: the interactive APDU console with history, PIN commands redacted;
//! - [`report`]: the diagnostics report as JSON and as a self-contained HTML page;
//! - [`cli`]: the glue that opens the reader and prints, called from `cardctl`.
//!
//! Everything but [`cli`] works on a [`card_core::CardSession`] over any channel, so the unit
//! tests run against the in-process software card.

pub mod atr_names;
pub mod cli;
pub mod console;
pub mod dump;
pub mod identify;
pub mod report;

use card_core::apdu::{Command, HexFmt};

/// Whether a command carries a PIN or other reference data in its data field: VERIFY (`20`,
/// `21`), CHANGE REFERENCE DATA (`24`), RESET RETRY COUNTER (`2C`), and the SSSE application's
/// CHANGE PIN and RELOAD PIN (`80 5E`, `80 5F`; docs/card-profile.md). Such commands are sent
/// with [`Command::sensitive`], so their data never reaches a trace, and are echoed redacted.
pub fn carries_pin(cmd: &Command) -> bool {
    if cmd.data().is_empty() {
        return false;
    }
    matches!(cmd.ins, 0x20 | 0x21 | 0x24 | 0x2c)
        || (cmd.cla & 0xf0 == 0x80 && matches!(cmd.ins, 0x5e | 0x5f))
}

/// A command typed by a person, marked sensitive if it carries a PIN.
pub fn user_command(bytes: &[u8]) -> Result<Command, card_core::apdu::ApduError> {
    let cmd = Command::parse(bytes)?;
    Ok(if carries_pin(&cmd) {
        cmd.sensitive()
    } else {
        cmd
    })
}

/// A command as it may be shown: the whole APDU, or for a PIN command its header and `Lc`
/// followed by how many bytes were left out (`0020000003 [3 bytes redacted]`).
pub fn shown(bytes: &[u8], cmd: &Command) -> String {
    if cmd.is_sensitive() {
        let head = bytes.get(..5).unwrap_or(bytes);
        format!("{} [{} bytes redacted]", HexFmt(head), cmd.data().len())
    } else {
        HexFmt(bytes).to_string()
    }
}

/// The trace of `cardctl trace` without `--out` (and of `--trace -`): the JSON lines of
/// [`reader_driver::JsonLinesTrace`] on standard output, one flushed line per exchange.
pub struct StdoutTrace {
    reader: String,
    seq: u64,
}

impl StdoutTrace {
    /// Lines tagged with `reader`.
    pub fn new(reader: &str) -> Self {
        Self {
            reader: reader.to_string(),
            seq: 0,
        }
    }
}

impl card_core::trace::TraceSink for StdoutTrace {
    fn record(&mut self, event: &card_core::trace::TraceEvent<'_>) {
        use std::io::Write;
        self.seq += 1;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let line = reader_driver::JsonLinesTrace::line(ts, &self.reader, self.seq, event);
        let mut out = std::io::stdout().lock();
        // A trace must never stop the card work: write errors are dropped.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Parse a hex APDU as people type it: spaces and colons allowed.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !matches!(c, ' ' | ':')).collect();
    hex::decode(clean).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_commands_are_recognised_and_redacted() {
        let verify = parse_hex("00 20 00 00 03 12 34 56").unwrap();
        let cmd = user_command(&verify).unwrap();
        assert!(cmd.is_sensitive());
        assert_eq!(shown(&verify, &cmd), "0020000003 [3 bytes redacted]");
        let change = parse_hex("805E0100 07 123456FF654321").unwrap();
        assert!(user_command(&change).unwrap().is_sensitive());
        // VERIFY without data asks for the tries left: nothing to hide.
        let status = parse_hex("00200000").unwrap();
        let cmd = user_command(&status).unwrap();
        assert!(!cmd.is_sensitive());
        assert_eq!(shown(&status, &cmd), "00200000");
        let select = parse_hex("00A4040002 3F00").unwrap();
        assert!(!user_command(&select).unwrap().is_sensitive());
        assert!(parse_hex("00A4zz").is_none());
    }
}
