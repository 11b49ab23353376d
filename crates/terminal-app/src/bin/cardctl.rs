//! `cardctl`: the field technician's card tool. See `cardctl --help`.
//!
//! Exit codes: 0 success, 1 error, 2 usage, 3 wrong PIN, 4 PIN blocked, 5 card not genuine.
//! docs/cardctl.md describes every subcommand.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use reader_driver::ProtocolChoice;
use terminal_app::cardctl::{self, Common, Exit};
use terminal_app::techtools;

#[derive(Parser, Debug)]
#[command(version, about = "Social-security card tool for field technicians")]
struct Cli {
    /// Reader to use (default: the first reader with a card).
    #[arg(long, global = true)]
    reader: Option<String>,
    /// Protocol to connect with.
    #[arg(long, global = true, value_enum, default_value_t = Proto::Any)]
    protocol: Proto,
    /// Append a redacted APDU trace (JSON lines) to FILE ("-": standard output).
    #[arg(long, global = true, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Seconds to wait for the card's answer to one command before calling it mute
    /// (default 15).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = parse_timeout)]
    command_timeout: Option<f64>,
    #[command(subcommand)]
    command: Cmd,
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
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
    /// Show and decode the card's ATR, and name the card from pcsc-tools' smartcard_list.txt.
    Atr {
        /// The list of ATRs and card names (default: the one pcsc-tools installed).
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
    },
    /// Which applications the card has (SSSE, PKI, PBOC debit/credit, electronic cash) and
    /// their versions, without starting a transaction.
    Identify {
        /// Show personal data (card number, PAN, EC balance) in clear.
        #[arg(long)]
        reveal: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The TLV tree of everything the card gives without a PIN, tags named; personal data
    /// masked.
    Dump {
        /// Show personal data in clear.
        #[arg(long)]
        reveal: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read payment records without GET PROCESSING OPTIONS (leaves the ATC alone).
        #[arg(long)]
        no_gpo: bool,
    },
    /// Run another subcommand with a redacted APDU trace (JSON lines) to FILE, or to standard
    /// output (the subcommand's own output then goes to standard error).
    Trace {
        /// Append the trace to FILE instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The subcommand and its arguments, e.g. `-- identify`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// The diagnostics report: reader, ATR and its name, applications, checks; as JSON and as
    /// a self-contained HTML page (personal data masked).
    Report {
        /// Write the JSON report to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the HTML report to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// The list of ATRs and card names (default: the one pcsc-tools installed).
        #[arg(long, value_name = "FILE")]
        list: Option<PathBuf>,
        /// Trust anchors (SM2 CA keys, one per line: RID INDEX MMYY X||Y, hex) to verify the
        /// certificates; the PBOC ICC certificate then needs GET PROCESSING OPTIONS (ATC + 1).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
    },
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
    /// The conformance and health suite: ISO 7816 behaviour, PIN tries, certificate chains
    /// and dates, electronic cash and its limits, ATC, transaction log; one line per check
    /// (PASS, WARN, FAIL, SKIP) with its reason. Exit 1 when a check fails.
    Check {
        /// Trust store: CA keys, one per line (RID INDEX MMYY X||Y, hex); without it the
        /// certificate checks are skipped.
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Check validity against this date, YYYY-MM-DD (default: today).
        #[arg(long, value_name = "DATE", value_parser = cardctl::parse_date)]
        date: Option<card_core::ssse::Date>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Do not send GET PROCESSING OPTIONS (leaves the ATC alone; the PBOC ICC certificate
        /// is then not verified).
        #[arg(long)]
        no_gpo: bool,
        /// Show the electronic cash balance.
        #[arg(long)]
        reveal: bool,
    },
    /// Check that the card is genuine: certificate chain and a fresh challenge.
    Authenticate {
        /// Trust store: CA keys, one per line (RID INDEX MMYY X||Y, hex).
        #[arg(long)]
        trust: PathBuf,
    },
    /// Write a cardholder record (EF06) at the issuer's counter: EXTERNAL AUTHENTICATE with
    /// the cryptogram from hsm-sim (`KE`; the maintenance master never leaves it), UPDATE
    /// RECORD, and the record read back. Exit 3 if the card was lost mid-write (it holds the
    /// old or the new value: run the command again, or `read --reveal`).
    UpdateRecord {
        /// hsm-sim's address, HOST:PORT.
        #[arg(long, value_name = "ADDR")]
        hsm: String,
        /// hsm-sim's message header length.
        #[arg(long, default_value_t = hsm_sim::hsm::DEFAULT_HEADER_LEN)]
        hsm_header: usize,
        /// Label of the maintenance master key (type 409) in the HSM.
        #[arg(long, default_value = firmware_tests::personalize::MAINTENANCE_LABEL)]
        key: String,
        /// The record's tag in hex: 09 name, 4E name extension, 0B nation, ...
        #[arg(long, value_parser = cardctl::parse_tag)]
        tag: u8,
        /// The new value as Chinese text, stored in GBK and padded with 00 to the record's
        /// current length.
        #[arg(long, group = "value", required = true)]
        gbk: Option<String>,
        /// The new value as ASCII text, padded with 00 to the record's current length.
        #[arg(long, group = "value")]
        text: Option<String>,
        /// The new value in hex, exactly.
        #[arg(long, group = "value")]
        hex: Option<String>,
    },
    /// Send APDUs (hex, one per argument) and print the answers.
    Apdu {
        /// Do not fetch 61xx data or re-send on 6Cxx.
        #[arg(long)]
        raw: bool,
        /// Interactive console: APDUs from standard input, one per line, with history
        /// (`!!`, `!N`, `history`).
        #[arg(long, conflicts_with = "apdus")]
        console: bool,
        /// Console history file (commands carrying a PIN are never written to it).
        #[arg(long, value_name = "FILE", requires = "console")]
        history: Option<PathBuf>,
        /// The APDUs.
        #[arg(required_unless_present = "console")]
        apdus: Vec<String>,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // `trace -- <subcommand>`: the inner subcommand with the trace on.
    let mut trace_to_stdout = false;
    if let Cmd::Trace { out, command } = &cli.command {
        let (out, command) = (out.clone(), command.clone());
        let inner = match Cli::try_parse_from(
            std::iter::once("cardctl".to_string()).chain(command.iter().cloned()),
        ) {
            Ok(inner) => inner,
            Err(e) => e.exit(),
        };
        if matches!(inner.command, Cmd::Trace { .. }) {
            eprintln!("cardctl: trace: the subcommand cannot be trace again");
            return ExitCode::from(2);
        }
        trace_to_stdout = out.is_none();
        cli = Cli {
            reader: inner.reader.or(cli.reader),
            protocol: if matches!(inner.protocol, Proto::Any) {
                cli.protocol
            } else {
                inner.protocol
            },
            // "-": standard output.
            trace: Some(out.unwrap_or_else(|| PathBuf::from("-"))),
            command_timeout: inner.command_timeout.or(cli.command_timeout),
            command: inner.command,
        };
    }
    let common = Common {
        reader: cli.reader,
        protocol: match cli.protocol {
            Proto::T0 => ProtocolChoice::T0,
            Proto::T1 => ProtocolChoice::T1,
            Proto::Any => ProtocolChoice::Any,
        },
        trace: cli.trace,
        command_timeout: cli.command_timeout.map_or(
            reader_driver::DEFAULT_COMMAND_TIMEOUT,
            Duration::from_secs_f64,
        ),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out: Box<dyn std::io::Write> = if trace_to_stdout {
        Box::new(stderr.lock())
    } else {
        Box::new(stdout.lock())
    };
    let result = match cli.command {
        Cmd::Readers => cardctl::readers(&mut out),
        Cmd::Watch { count, timeout } => cardctl::watch(
            &mut out,
            count,
            timeout.map(|t| Duration::from_secs_f64(t.max(0.0))),
        ),
        Cmd::Atr { list } => cardctl::atr(&mut out, &common, list.as_deref()),
        Cmd::Identify { reveal, json } => techtools::cli::identify(&mut out, &common, reveal, json),
        Cmd::Dump {
            reveal,
            json,
            no_gpo,
        } => techtools::cli::dump(&mut out, &common, reveal, json, no_gpo),
        Cmd::Trace { .. } => Ok(()),
        Cmd::Report {
            json,
            html,
            list,
            trust,
        } => techtools::cli::report(
            &mut out,
            &common,
            json.as_deref(),
            html.as_deref(),
            list.as_deref(),
            trust.as_deref(),
        ),
        Cmd::Read {
            reveal,
            by_tag,
            json,
        } => cardctl::read(&mut out, &common, reveal, by_tag, json),
        Cmd::VerifyPin { pin_stdin } => cardctl::read_pin(pin_stdin, "PIN: ")
            .and_then(|pin| cardctl::verify_pin(&mut out, &common, &pin)),
        Cmd::PinStatus => cardctl::pin_status(&mut out, &common),
        Cmd::Authenticate { trust } => cardctl::authenticate(&mut out, &common, &trust),
        Cmd::Check {
            trust,
            date,
            json,
            no_gpo,
            reveal,
        } => cardctl::check(
            &mut out,
            &common,
            &cardctl::CheckArgs {
                trust,
                date,
                json,
                no_gpo,
                reveal,
            },
        ),
        Cmd::UpdateRecord {
            hsm,
            hsm_header,
            key,
            tag,
            gbk,
            text,
            hex,
        } => {
            let value = match (gbk, text, hex) {
                (Some(g), _, _) => cardctl::NewValue::Gbk(g),
                (_, Some(t), _) => cardctl::NewValue::Text(t),
                (_, _, Some(h)) => cardctl::NewValue::Hex(h),
                _ => cardctl::NewValue::Hex(String::new()),
            };
            cardctl::update_record(
                &mut out,
                &common,
                &cardctl::HsmAddress {
                    addr: hsm,
                    header_len: hsm_header,
                    key,
                },
                tag,
                &value,
            )
        }
        Cmd::Apdu {
            raw,
            console: true,
            history,
            ..
        } => techtools::cli::console(&mut out, &common, raw, history),
        Cmd::Apdu { raw, apdus, .. } => cardctl::apdu(&mut out, &common, &apdus, raw),
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
