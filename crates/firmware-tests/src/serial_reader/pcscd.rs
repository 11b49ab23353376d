//! The serial readers of the machine's one pcscd (driven by libccidtwin), shared between
//! tests.
//!
//! `scripts/pcsc-env.sh start --serial N` makes N pty pairs, runs the simulated reader on one
//! end of each (control socket in the state directory), lists the other ends in pcscd's
//! reader.conf with libccidtwin, and writes `SSCARD_SERIAL_READERS` (pcscd's reader names)
//! and `SSCARD_SERIAL_CONTROLS` (the sockets) to its environment file. A test takes a
//! [`SerialLease`]: an exclusive lock on one serial reader and a shared lock on pcscd, as
//! [`crate::testenv`] does for the vpcd slots.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::control::ControlClient;
use crate::testenv;

/// Exclusive use of one simulated serial reader inside pcscd.
#[derive(Debug)]
pub struct SerialLease {
    /// pcscd's name for the reader.
    pub reader: String,
    /// The reader's control socket.
    pub control: PathBuf,
    _reader: File,
    _pcscd: File,
}

impl SerialLease {
    /// A connection to the reader's control socket.
    pub fn control(&self) -> Result<ControlClient, String> {
        ControlClient::connect(&self.control)
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("SSCARD_PCSC_DIR")
        .map_or_else(|| PathBuf::from("/tmp/sscard-pcsc"), PathBuf::from)
}

fn vars() -> HashMap<String, String> {
    let text = std::fs::read_to_string(state_dir().join("env")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim().trim_matches('\'').to_string()))
        })
        .collect()
}

fn lock(dir: &Path, name: &str) -> Result<File, String> {
    let locks = dir.join("locks");
    std::fs::create_dir_all(&locks).map_err(|e| format!("{}: {e}", locks.display()))?;
    let path = locks.join(name);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The serial readers pcscd has now: (reader name, control socket).
pub fn readers() -> Vec<(String, PathBuf)> {
    let v = vars();
    let names = v.get("SSCARD_SERIAL_READERS").cloned().unwrap_or_default();
    let controls = v.get("SSCARD_SERIAL_CONTROLS").cloned().unwrap_or_default();
    names
        .split('|')
        .zip(controls.split('|'))
        .filter(|(n, c)| !n.is_empty() && !c.is_empty())
        .map(|(n, c)| (n.to_string(), PathBuf::from(c)))
        .collect()
}

/// The path of the serial-reader binary the script runs (empty if none).
pub fn script_reader_binary() -> Option<PathBuf> {
    vars()
        .get("SSCARD_SERIAL_READER_BIN")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Make sure pcscd runs with at least one serial reader: if it has none, take pcscd
/// exclusively and restart it with `--serial 2` (the script remembers the setting, so later
/// restarts keep the serial readers).
pub fn ensure() -> Result<(), String> {
    if !readers().is_empty() {
        return Ok(());
    }
    let env = testenv::PcscEnv::load()?;
    let lease = env.exclusive()?;
    if readers().is_empty() {
        let out = Command::new("bash")
            .arg(testenv::script())
            .args(["start", "--serial", "2"])
            .env("SSCARD_PCSC_DIR", &env.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pcsc-env.sh start --serial 2: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    drop(lease);
    if readers().is_empty() {
        return Err("pcscd still has no serial reader".into());
    }
    Ok(())
}

/// Take a free serial reader, waiting for one if all are busy.
pub fn lease() -> Result<SerialLease, String> {
    ensure()?;
    let dir = state_dir();
    let pcscd = lock(&dir, "pcscd.lock")?;
    pcscd
        .lock_shared()
        .map_err(|e| format!("pcscd lock: {e}"))?;
    loop {
        for (i, (reader, control)) in readers().into_iter().enumerate() {
            let f = lock(&dir, &format!("serial-{i}.lock"))?;
            if f.try_lock().is_ok() {
                return Ok(SerialLease {
                    reader,
                    control,
                    _reader: f,
                    _pcscd: pcscd,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
