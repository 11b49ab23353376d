//! Commands to the simulated reader, one per line, each answered by one line that starts with
//! `ok` or `error`:
//!
//! ```text
//! insert NAME          insert fixture card NAME (unpowered; the host is notified)
//! remove               take the card out
//! fault NAME [ARG] [xN]  inject a line fault on the next (N) XfrBlock commands (see faults)
//! clear-faults         forget faults not used yet
//! mute MS              answer nothing for MS milliseconds (the reader seems unplugged)
//! baud N               simulate the line delay of N baud (0: none)
//! stats                counters: frames, NAKs, duplicates, APDUs, faults
//! tries                PIN tries left on the inserted card
//! quit                 stop the reader
//! ```
//!
//! They come from standard input and, with `--control PATH`, from a Unix socket (one command
//! per connection line; [`ControlClient`] speaks it).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use super::faults::Fault;

/// A command to the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Insert a fixture card.
    Insert(String),
    /// Remove the card.
    Remove,
    /// Inject a fault on the next commands.
    Fault(Fault, usize),
    /// Forget pending faults.
    ClearFaults,
    /// Go silent for a while.
    Mute(Duration),
    /// Simulated line speed.
    Baud(u32),
    /// Counters.
    Stats,
    /// PIN tries left.
    Tries,
    /// Stop.
    Quit,
}

impl Control {
    /// Parse one command line.
    pub fn parse(line: &str) -> Result<Self, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| words.get(i).copied().ok_or("missing argument");
        Ok(match words.first().copied().unwrap_or("") {
            "insert" => Self::Insert(arg(1)?.to_string()),
            "remove" => Self::Remove,
            "fault" => {
                let mut rest: Vec<&str> = words.get(1..).unwrap_or_default().to_vec();
                let mut count = 1;
                if let Some(last) = rest.last()
                    && let Some(n) = last.strip_prefix('x')
                    && let Ok(n) = n.parse()
                {
                    count = n;
                    rest.pop();
                }
                Self::Fault(Fault::parse(&rest)?, count)
            }
            "clear-faults" => Self::ClearFaults,
            "mute" => Self::Mute(Duration::from_millis(
                arg(1)?.parse().map_err(|e| format!("mute: {e}"))?,
            )),
            "baud" => Self::Baud(arg(1)?.parse().map_err(|e| format!("baud: {e}"))?),
            "stats" => Self::Stats,
            "tries" => Self::Tries,
            "quit" | "exit" => Self::Quit,
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

/// A command with the way back for its answer.
#[derive(Debug)]
pub struct Request {
    /// The command.
    pub control: Control,
    /// Where the answer line goes.
    pub reply: Sender<String>,
}

/// Send one line to the reader loop and wait for its answer.
pub fn ask(tx: &Sender<Request>, line: &str) -> String {
    match Control::parse(line) {
        Ok(control) => {
            let (reply, answer) = channel();
            if tx.send(Request { control, reply }).is_err() {
                return "error the reader has stopped".into();
            }
            answer
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| "error no answer".into())
        }
        Err(e) => format!("error {e}"),
    }
}

/// Accept control connections on the Unix socket `path` (replacing a stale one) in a thread.
pub fn listen(path: &Path, tx: Sender<Request>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("serial-reader-control".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                let _ = std::thread::Builder::new().spawn(move || {
                    let Ok(w) = stream.try_clone() else { return };
                    let mut w = w;
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let answer = ask(&tx, &line);
                        if writeln!(w, "{answer}").is_err() {
                            break;
                        }
                    }
                });
            }
        })?;
    Ok(())
}

/// A connection to a reader's control socket.
#[derive(Debug)]
pub struct ControlClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlClient {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, String> {
        let s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        Ok(Self {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Send a command; its answer without the `ok ` (or the `error` line as `Err`).
    pub fn cmd(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.writer, "{line}").map_err(|e| e.to_string())?;
        let mut answer = String::new();
        self.reader
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        let answer = answer.trim_end();
        match answer.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim_start().to_string()),
            None => Err(answer.to_string()),
        }
    }
}
