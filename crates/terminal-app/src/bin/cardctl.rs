//! `cardctl`: the field technician's card tool. See `cardctl --help`.
//!
//! Exit codes: 0 success, 1 error, 2 usage, 3 wrong PIN, 4 PIN blocked, 5 card not genuine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use reader_driver::ProtocolChoice;
use terminal_app::cardctl::{self, Common, Exit};

#[derive(Parser, Debug)]
#[command(version, about = "Social-security card tool for field technicians")]
struct Cli {
    /// Reader to use (default: the first reader with a card).
    #[arg(long, global = true)]
    reader: Option<String>,
    /// Protocol to connect with.
    #[arg(long, global = true, value_enum, default_value_t = Proto::Any)]
    protocol: Proto,
    /// Append a redacted APDU trace (JSON lines) to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    trace: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Proto {
    T0,
    T1,
    Any,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List readers and the cards in them.
    Readers,
    /// Print reader and card events as they happen.
    Watch {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Show and decode the card's ATR.
    Atr,
    /// Read the social-security identity (EF05, EF06); personal data masked.
    Read {
        /// Show personal data in clear.
        #[arg(long)]
        reveal: bool,
        /// Read field by field instead of one command per file.
        #[arg(long)]
        by_tag: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify the cardholder PIN (prompted without echo).
    VerifyPin {
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Show how many PIN tries are left, without using one.
    PinStatus,
    /// Check that the card is genuine: certificate chain and a fresh challenge.
    Authenticate {
        /// Trust store: CA keys, one per line (RID INDEX MMYY X||Y, hex).
        #[arg(long)]
        trust: PathBuf,
    },
    /// Send APDUs (hex, one per argument) and print the answers.
    Apdu {
        /// Do not fetch 61xx data or re-send on 6Cxx.
        #[arg(long)]
        raw: bool,
        /// The APDUs.
        #[arg(required = true)]
        apdus: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = Common {
        reader: cli.reader,
        protocol: match cli.protocol {
            Proto::T0 => ProtocolChoice::T0,
            Proto::T1 => ProtocolChoice::T1,
            Proto::Any => ProtocolChoice::Any,
        },
        trace: cli.trace,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Cmd::Readers => cardctl::readers(&mut out),
        Cmd::Watch { count, timeout } => cardctl::watch(
            &mut out,
            count,
            timeout.map(|t| Duration::from_secs_f64(t.max(0.0))),
        ),
        Cmd::Atr => cardctl::atr(&mut out, &common),
        Cmd::Read {
            reveal,
            by_tag,
            json,
        } => cardctl::read(&mut out, &common, reveal, by_tag, json),
        Cmd::VerifyPin { pin_stdin } => cardctl::read_pin(pin_stdin, "PIN: ")
            .and_then(|pin| cardctl::verify_pin(&mut out, &common, &pin)),
        Cmd::PinStatus => cardctl::pin_status(&mut out, &common),
        Cmd::Authenticate { trust } => cardctl::authenticate(&mut out, &common, &trust),
        Cmd::Apdu { raw, apdus } => cardctl::apdu(&mut out, &common, &apdus, raw),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.code);
            eprintln!("cardctl: {e:#}");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
