//! `serial-reader`: a simulated GemPC Twin serial card reader holding the software card, on
//! one end of a pty pair (see `firmware_tests::serial_reader`).
//!
//! ```text
//! socat pty,raw,echo=0,link=/tmp/r pty,raw,echo=0,link=/tmp/h &
//! serial-reader --port /tmp/r --insert zhangsan [--baud 9600] [--control /tmp/r.sock]
//! ```
//!
//! Prints `ready` once the line is open, then reads control commands (insert, remove, fault,
//! mute, baud, stats, tries, quit) from standard input and from the control socket, one per
//! line, each answered by a line starting with `ok` or `error`. Without a control socket, end
//! of standard input stops it; it also stops when the line closes.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc::channel;

use anyhow::{Context, Result, bail};
use clap::Parser;
use firmware_tests::serial_reader::control::{self, Control, Request};
use firmware_tests::serial_reader::serve::{self, Ended, ReaderOptions};

#[derive(Parser, Debug)]
#[command(version, about = "A simulated GemPC Twin serial card reader on a pty")]
struct Args {
    /// The reader's end of the line (a pty made by socat).
    #[arg(long)]
    port: PathBuf,
    /// Simulate the delay of this line speed (0: none).
    #[arg(long, default_value_t = 0)]
    baud: u32,
    /// Insert this fixture card at start.
    #[arg(long, value_name = "NAME")]
    insert: Option<String>,
    /// Also take commands on this Unix socket.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Do not echo command frames (GemPC Twin readers do).
    #[arg(long)]
    no_echo: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (tx, rx) = channel::<Request>();
    if let Some(path) = &args.control {
        control::listen(path, tx.clone())
            .with_context(|| format!("control socket {}", path.display()))?;
    }
    let stdin_ends = args.control.is_none();
    let stdin_tx = tx.clone();
    std::thread::Builder::new()
        .name("serial-reader-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut out = std::io::stdout();
            for line in stdin.lock().lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                let answer = control::ask(&stdin_tx, &line);
                let _ = writeln!(out, "{answer}");
                let _ = out.flush();
            }
            if stdin_ends {
                let (reply, _keep) = channel();
                let _ = stdin_tx.send(Request {
                    control: Control::Quit,
                    reply,
                });
            }
        })?;
    let opts = ReaderOptions {
        baud: args.baud,
        echo: !args.no_echo,
        ..ReaderOptions::default()
    };
    // Open check first so that "ready" means the line is there.
    std::fs::metadata(&args.port).with_context(|| format!("port {}", args.port.display()))?;
    println!("ready {}", args.port.display());
    std::io::stdout().flush()?;
    drop(tx);
    match serve::run(&args.port, opts, &rx, args.insert.as_deref())
        .with_context(|| format!("serving {}", args.port.display()))?
    {
        Ended::Quit => Ok(()),
        Ended::LineClosed => bail!("the line {} closed", args.port.display()),
    }
}
