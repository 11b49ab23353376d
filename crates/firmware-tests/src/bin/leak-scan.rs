//! `leak-scan`: look for the project's test and demo secrets in clear in files (logs, traces,
//! ledgers, crash output): PINs, full ID numbers, card numbers, PANs, names, keys
//! (`firmware_tests::leaks`). Prints one line per finding, `FILE:OFFSET: KIND (WHICH, FORM)`,
//! never the secret itself.
//!
//! ```text
//! leak-scan [--since FILE] [--skip PATH]... [--secret-file FILE]... PATH...
//! ```
//!
//! Exit codes: 0 nothing found, 1 findings, 2 usage or nothing could be read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use firmware_tests::leaks::{self, Catalogue, ScanOptions};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Find the project's test and demo secrets in clear in files"
)]
struct Args {
    /// Files or directories to scan (recursively; symbolic links are not followed). Paths
    /// that do not exist are listed as skipped.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Only files modified after FILE was.
    #[arg(long, value_name = "FILE")]
    since: Option<PathBuf>,
    /// Do not read PATH (a file or a directory); repeatable.
    #[arg(long, value_name = "PATH")]
    skip: Vec<PathBuf>,
    /// A key or token file: its content is a secret too, looked for everywhere else (the file
    /// itself is not read as a finding); repeatable.
    #[arg(long, value_name = "FILE")]
    secret_file: Vec<PathBuf>,
    /// Print at most this many findings.
    #[arg(long, default_value_t = 200)]
    max_lines: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("leak-scan: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let args = Args::parse();
    let mut catalogue = Catalogue::fixtures();
    let mut skip = args.skip.clone();
    for file in &args.secret_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading secret file {}", file.display()))?;
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        catalogue.add_secret_text(&format!("secret file {name}"), &text);
        skip.push(file.clone());
    }
    catalogue.compile();
    let since = match &args.since {
        Some(f) => Some(
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .with_context(|| format!("--since {}", f.display()))?,
        ),
        None => None,
    };
    let report = leaks::scan(
        &catalogue,
        &args.paths,
        &ScanOptions {
            since,
            skip,
            max_file: None,
        },
    );
    for f in report.findings.iter().take(args.max_lines) {
        println!("{f}");
    }
    if report.findings.len() > args.max_lines {
        println!(
            "... and {} more findings",
            report.findings.len() - args.max_lines
        );
    }
    for (path, why) in &report.skipped {
        eprintln!("leak-scan: skipped {}: {why}", path.display());
    }
    eprintln!(
        "leak-scan: {} files, {} bytes, {} patterns, {} findings",
        report.files,
        report.bytes,
        catalogue.len(),
        report.findings.len()
    );
    Ok(report.findings.is_empty())
}
