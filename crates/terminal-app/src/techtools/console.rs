//! `cardctl apdu --console`: an interactive APDU console.
//!
//! Reads one command per line: a hex APDU (spaces and colons allowed), or
//!
//! | input | does |
//! |---|---|
//! | `!!` | send the last command again |
//! | `!N` | send command N of the history again |
//! | `history` | list the history |
//! | `help` | list these commands |
//! | `quit`, `exit`, end of input | leave |
//! | empty line, `# comment` | nothing |
//!
//! Each command is echoed (`> …`) and answered with the response data and the status word
//! with its meaning (`< 6F19… 9000 (normal processing)`). Commands that carry a PIN (see
//! [`super::carries_pin`]) are sent marked sensitive, so the trace never sees their data, and
//! are echoed and listed redacted (`0020000003 [3 bytes redacted]`); they are kept in memory
//! (zeroized when the console ends) so that `!N` can repeat them, but never written to the
//! history file. There is no line editing of its own: run it under `rlwrap` for that.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use card_core::apdu::HexFmt;
use card_core::channel::{CardChannel, CardSession};
use zeroize::Zeroizing;

use super::{parse_hex, shown, user_command};

/// Options of the console.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Print a prompt before each line (when standard input is a terminal).
    pub prompt: bool,
    /// History file: loaded at the start, each new command without a PIN appended.
    pub history_file: Option<PathBuf>,
}

/// Errors of the console itself (a card error is printed and the console goes on).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Reading input or writing output failed.
    #[error("console I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The history file could not be read or written.
    #[error("history file {path}: {source}")]
    History {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct Entry {
    bytes: Zeroizing<Vec<u8>>,
    shown: String,
}

const HELP: &str = "commands: a hex APDU (e.g. 00A4040000), !! (last again), !N (entry N again), \
history, help, quit";

/// What the console did, for the caller's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsoleSummary {
    /// Commands sent to the card.
    pub sent: usize,
    /// Lines that were not understood.
    pub errors: usize,
}

/// Run the console until `quit` or the end of the input.
pub fn run<C: CardChannel>(
    s: &mut CardSession<C>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    opts: &ConsoleOptions,
) -> Result<ConsoleSummary, ConsoleError> {
    let mut history: Vec<Entry> = Vec::new();
    if let Some(path) = &opts.history_file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some(bytes) = parse_hex(line)
                        && let Ok(cmd) = user_command(&bytes)
                        && !cmd.is_sensitive()
                    {
                        history.push(Entry {
                            shown: shown(&bytes, &cmd),
                            bytes: Zeroizing::new(bytes),
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ConsoleError::History {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    let mut summary = ConsoleSummary::default();
    let mut line = Zeroizing::new(String::new());
    loop {
        if opts.prompt {
            write!(out, "apdu> ")?;
        }
        out.flush()?;
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let bytes: Zeroizing<Vec<u8>> = match text {
            "quit" | "exit" => break,
            "help" | "?" => {
                writeln!(out, "{HELP}")?;
                continue;
            }
            "history" => {
                for (i, e) in history.iter().enumerate() {
                    writeln!(out, "{:>4}  {}", i + 1, e.shown)?;
                }
                continue;
            }
            _ if text.starts_with('!') => {
                let which = if text == "!!" {
                    history.len().checked_sub(1)
                } else {
                    text.get(1..)
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1))
                        .filter(|&n| n < history.len())
                };
                match which.and_then(|i| history.get(i)) {
                    Some(e) => e.bytes.clone(),
                    None => {
                        writeln!(out, "error: no history entry {text:?}")?;
                        summary.errors += 1;
                        continue;
                    }
                }
            }
            _ => match parse_hex(text) {
                Some(b) => Zeroizing::new(b),
                None => {
                    writeln!(out, "error: not hex and not a console command ({HELP})")?;
                    summary.errors += 1;
                    continue;
                }
            },
        };
        let cmd = match user_command(&bytes) {
            Ok(c) => c,
            Err(e) => {
                writeln!(out, "error: not a command APDU: {e}")?;
                summary.errors += 1;
                continue;
            }
        };
        let display = shown(&bytes, &cmd);
        writeln!(out, "> {display}")?;
        match s.send(&cmd) {
            Ok(r) if r.data().is_empty() => writeln!(out, "< {}", r.sw())?,
            Ok(r) => writeln!(out, "< {} {}", HexFmt(r.data()), r.sw())?,
            Err(e) => {
                writeln!(out, "error: {e}")?;
                summary.errors += 1;
            }
        }
        summary.sent += 1;
        let repeat = history.last().is_some_and(|e| *e.bytes == *bytes);
        if !repeat {
            if let Some(path) = &opts.history_file
                && !cmd.is_sensitive()
            {
                append_history(path, &display)?;
            }
            history.push(Entry {
                bytes,
                shown: display,
            });
        }
    }
    Ok(summary)
}

fn append_history(path: &PathBuf, line: &str) -> Result<(), ConsoleError> {
    let io = |source| ConsoleError::History {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    writeln!(f, "{line}").map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use card_core::trace::{TraceEvent, TraceSink};
    use firmware_tests::SoftCard;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<String>>>);

    impl TraceSink for Shared {
        fn record(&mut self, event: &TraceEvent<'_>) {
            self.0.lock().unwrap().push(event.to_json_line());
        }
    }

    fn card() -> CardSession<SoftCard> {
        let image = firmware_tests::Profile::embedded("zhangsan")
            .unwrap()
            .build()
            .unwrap();
        CardSession::new(SoftCard::in_memory(image))
    }

    #[test]
    fn scripted_session_with_recall_and_redaction() {
        let mut s = card();
        let trace = Shared::default();
        s.set_trace(Some(Box::new(trace.clone())));
        let script = "# select SSSE\n\
                      00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n\
                      00 20 00 00 03 12 34 56\n\
                      00B2072800\n\
                      !!\n\
                      !1\n\
                      history\n\
                      !9\n\
                      zz\n\
                      quit\n\
                      00B2072800\n";
        let mut out = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let hist = dir.path().join("history");
        let summary = run(
            &mut s,
            &mut script.as_bytes(),
            &mut out,
            &ConsoleOptions {
                prompt: false,
                history_file: Some(hist.clone()),
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(summary.sent, 5, "{text}");
        assert_eq!(summary.errors, 2, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00");
        assert!(lines[1].ends_with("9000 (normal processing)"), "{text}");
        assert_eq!(lines[2], "> 0020000003 [3 bytes redacted]");
        assert_eq!(lines[3], "< 9000 (normal processing)");
        assert_eq!(
            lines[5],
            "< 0709413030303030303131 9000 (normal processing)"
        );
        // !! repeated the READ RECORD; !1 the SELECT.
        assert_eq!(lines[6], "> 00B2072800");
        assert_eq!(lines[8], "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00");
        assert!(
            text.contains("   2  0020000003 [3 bytes redacted]\n"),
            "{text}"
        );
        assert!(text.contains("   3  00B2072800\n"), "{text}");
        assert!(text.contains("error: no history entry \"!9\""), "{text}");
        assert!(!text.contains("123456"), "{text}");
        // The trace has the VERIFY without its data; the history file has no VERIFY at all.
        let lines = trace.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"apdu\":\"0020000003\",\"redacted\":3")),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains("123456")));
        let saved = std::fs::read_to_string(&hist).unwrap();
        assert_eq!(
            saved,
            "00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n00B2072800\n00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n"
        );
    }
}
