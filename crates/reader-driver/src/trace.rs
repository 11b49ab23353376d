//! The APDU trace as JSON lines, one exchange per line.
//!
//! Each line is card-core's redacted [`TraceEvent`] (PIN blocks and other secret command data
//! are cut before they reach this sink; secret responses arrive empty) with the time and the
//! reader added:
//!
//! ```text
//! {"ts_ms":1764331200123,"reader":"SSCard Virtual A 00 00","seq":1,"kind":"command","apdu":"0020000003","redacted":3,"response":"","sw":"63C2","micros":61}
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use card_core::trace::{TraceEvent, TraceSink, push_json_string};

/// Writes trace events to a file, appending.
pub struct JsonLinesTrace {
    out: BufWriter<File>,
    reader: String,
    seq: u64,
}

impl std::fmt::Debug for JsonLinesTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesTrace")
            .field("reader", &self.reader)
            .field("seq", &self.seq)
            .finish()
    }
}

impl JsonLinesTrace {
    /// Append to `path` (created if missing), tagging lines with `reader`.
    pub fn open(path: &Path, reader: &str) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            out: BufWriter::new(file),
            reader: reader.to_string(),
            seq: 0,
        })
    }

    /// Render one line (without the newline).
    pub fn line(ts_ms: u128, reader: &str, seq: u64, event: &TraceEvent<'_>) -> String {
        let body = event.to_json_line();
        let mut s = String::with_capacity(body.len() + reader.len() + 48);
        s.push_str(&format!("{{\"ts_ms\":{ts_ms},\"reader\":"));
        push_json_string(&mut s, reader);
        s.push_str(&format!(",\"seq\":{seq},"));
        // Splice the event's fields after ours.
        s.push_str(body.strip_prefix('{').unwrap_or(&body));
        s
    }
}

impl TraceSink for JsonLinesTrace {
    fn record(&mut self, event: &TraceEvent<'_>) {
        self.seq += 1;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let line = Self::line(ts, &self.reader, self.seq, event);
        // A trace must never stop the card work: write errors are dropped.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}
