//! Sharing the machine's one pcscd between tests.
//!
//! `scripts/pcsc-env.sh start` runs pcscd with several vpcd reader slots and writes their ports
//! and reader names to `$SSCARD_PCSC_DIR/env` (default `/tmp/sscard-pcsc/env`). Tests run in
//! parallel threads and processes, so each takes a [`SlotLease`]: an exclusive file lock on
//! one slot plus a shared lock on pcscd itself. A test that stops or restarts pcscd takes the
//! [`PcscdLease`] instead, an exclusive lock on pcscd, and so waits until no slot is in use.
//! The locks are `flock`s on files: the kernel drops them when a process dies.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The pcscd set-up the project script started.
#[derive(Debug, Clone)]
pub struct PcscEnv {
    /// State directory of the script.
    pub dir: PathBuf,
    /// vpcd slots: TCP port and pcscd reader name.
    pub slots: Vec<(u16, String)>,
}

/// Exclusive use of one vpcd slot (and shared use of pcscd).
#[derive(Debug)]
pub struct SlotLease {
    /// vpcd port of the slot.
    pub port: u16,
    /// pcscd's name for the reader.
    pub reader: String,
    _slot: File,
    _pcscd: File,
}

/// Exclusive use of pcscd (to stop or restart it).
#[derive(Debug)]
pub struct PcscdLease {
    env: PcscEnv,
    _pcscd: File,
}

/// The project's pcscd control script.
pub fn script() -> PathBuf {
    std::env::var_os("SSCARD_PCSC_SCRIPT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pcsc-env.sh"),
        PathBuf::from,
    )
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn lock_file(dir: &Path, name: &str) -> Result<File, String> {
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

impl PcscEnv {
    /// Read the environment the script wrote.
    pub fn load() -> Result<Self, String> {
        let dir = std::env::var_os("SSCARD_PCSC_DIR")
            .map_or_else(|| PathBuf::from("/tmp/sscard-pcsc"), PathBuf::from);
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "pcscd with the project's virtual readers is not set up ({}: {e}); run \
                 `scripts/pcsc-env.sh start` (the README's test command does)",
                file.display()
            )
        })?;
        let vars = parse_env(&text);
        let ports: Vec<u16> = vars
            .get("SSCARD_VPCD_PORTS")
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let readers: Vec<String> = vars
            .get("SSCARD_VPCD_READERS")
            .map(|r| r.split('|').map(str::to_string).collect())
            .unwrap_or_default();
        if ports.is_empty() || ports.len() != readers.len() {
            return Err(format!(
                "{} lists {} ports and {} readers",
                file.display(),
                ports.len(),
                readers.len()
            ));
        }
        Ok(Self {
            dir,
            slots: ports.into_iter().zip(readers).collect(),
        })
    }

    /// Take a free slot, waiting for one if all are busy.
    pub fn lease(&self) -> Result<SlotLease, String> {
        let pcscd = lock_file(&self.dir, "pcscd.lock")?;
        pcscd
            .lock_shared()
            .map_err(|e| format!("pcscd lock: {e}"))?;
        loop {
            for (port, reader) in &self.slots {
                let slot = lock_file(&self.dir, &format!("slot-{port}.lock"))?;
                if slot.try_lock().is_ok() {
                    return Ok(SlotLease {
                        port: *port,
                        reader: reader.clone(),
                        _slot: slot,
                        _pcscd: pcscd,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Take pcscd for yourself: waits until no slot lease is held anywhere.
    pub fn exclusive(&self) -> Result<PcscdLease, String> {
        let pcscd = lock_file(&self.dir, "pcscd.lock")?;
        pcscd.lock().map_err(|e| format!("pcscd lock: {e}"))?;
        Ok(PcscdLease {
            env: self.clone(),
            _pcscd: pcscd,
        })
    }
}

impl PcscdLease {
    fn run(&self, verb: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(script())
            .arg(verb)
            .env("SSCARD_PCSC_DIR", &self.env.dir)
            .output()
            .map_err(|e| format!("running {} {verb}: {e}", script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pcsc-env.sh {verb} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Stop pcscd.
    pub fn stop(&self) -> Result<(), String> {
        self.run("stop")
    }

    /// Start pcscd.
    pub fn start(&self) -> Result<(), String> {
        self.run("start")
    }

    /// Restart pcscd.
    pub fn restart(&self) -> Result<(), String> {
        self.run("restart")
    }

    /// The slots.
    pub fn env(&self) -> &PcscEnv {
        &self.env
    }
}

impl Drop for PcscdLease {
    fn drop(&mut self) {
        // Whatever the test did, leave pcscd running for the next one.
        let _ = self.run("start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_file() {
        let v = parse_env(
            "export SSCARD_PCSC_DIR=/tmp/x\nexport SSCARD_VPCD_PORTS=\"35963 35964\"\n\
             export SSCARD_VPCD_READERS='SSCard Virtual A 00 00|SSCard Virtual A 00 01'\n",
        );
        assert_eq!(v["SSCARD_VPCD_PORTS"], "35963 35964");
        assert_eq!(
            v["SSCARD_VPCD_READERS"],
            "SSCard Virtual A 00 00|SSCard Virtual A 00 01"
        );
        assert_eq!(v["SSCARD_PCSC_DIR"], "/tmp/x");
    }
}
