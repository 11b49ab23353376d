//! A simulated serial reader on a pty pair, for tests and benchmarks.
//!
//! [`SerialLine::start`] makes a pty pair with socat (`pty,raw,echo=0` on both ends, links
//! in a fresh directory), starts the `serial-reader` binary on one end, and hands out the
//! other end's path for the host. [`SerialLine::unplug`] ends both processes (the host sees
//! end of file, as when a USB serial adapter is pulled); [`SerialLine::replug`] brings the
//! line back on the same path. Dropping the line ends its processes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `serial-reader` binary: `$SSCARD_SERIAL_READER_BIN` (which `scripts/pcsc-env.sh env`
/// prints), else the debug build of `cargo build -p firmware-tests --bin serial-reader` in this
/// checkout, built on the spot.
pub fn reader_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SSCARD_SERIAL_READER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "firmware-tests",
            "--bin",
            "serial-reader",
        ])
        .current_dir(&workspace)
        .output()
        .map_err(|e| format!("running cargo build for serial-reader: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build of serial-reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(target.join("debug").join("serial-reader"))
}

fn wait_for(path: &Path, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(format!("{what} {} did not appear", path.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A pty pair with the simulated reader on one end.
#[derive(Debug)]
pub struct SerialLine {
    dir: PathBuf,
    bin: PathBuf,
    baud: u32,
    card: Option<String>,
    socat: Option<Child>,
    reader: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
}

static LINES: AtomicU64 = AtomicU64::new(0);

impl SerialLine {
    /// A line whose reader (`bin`) simulates `baud` (0: no delay) and holds fixture `card`.
    pub fn start(bin: &Path, baud: u32, card: Option<&str>) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "sscard-serial-{}-{}",
            std::process::id(),
            LINES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut line = Self {
            dir,
            bin: bin.to_path_buf(),
            baud,
            card: card.map(str::to_string),
            socat: None,
            reader: None,
            stdin: None,
            stdout: None,
        };
        line.replug()?;
        Ok(line)
    }

    /// The host's end of the line.
    pub fn host_path(&self) -> PathBuf {
        self.dir.join("host")
    }

    fn reader_path(&self) -> PathBuf {
        self.dir.join("reader")
    }

    /// Start socat and the reader (again).
    pub fn replug(&mut self) -> Result<(), String> {
        self.unplug();
        let socat = Command::new("socat")
            .arg(format!(
                "pty,raw,echo=0,link={}",
                self.reader_path().display()
            ))
            .arg(format!(
                "pty,raw,echo=0,link={}",
                self.host_path().display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("socat (apt package socat): {e}"))?;
        self.socat = Some(socat);
        wait_for(&self.reader_path(), "pty")?;
        wait_for(&self.host_path(), "pty")?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.reader_path())
            .arg("--baud")
            .arg(self.baud.to_string());
        if let Some(card) = &self.card {
            cmd.arg("--insert").arg(card);
        }
        let mut reader = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        self.stdin = reader.stdin.take();
        self.stdout = reader.stdout.take().map(BufReader::new);
        self.reader = Some(reader);
        // The reader says "ready" once it has the line open.
        let mut first = String::new();
        if let Some(out) = self.stdout.as_mut() {
            out.read_line(&mut first).map_err(|e| e.to_string())?;
        }
        if !first.starts_with("ready") {
            return Err(format!("serial-reader did not start: {first:?}"));
        }
        Ok(())
    }

    /// End the reader and socat: the host's port reports end of file.
    pub fn unplug(&mut self) {
        self.stdin = None;
        self.stdout = None;
        if let Some(mut r) = self.reader.take() {
            end(&mut r);
        }
        if let Some(mut s) = self.socat.take() {
            end(&mut s);
        }
        let _ = std::fs::remove_file(self.reader_path());
        let _ = std::fs::remove_file(self.host_path());
    }

    /// Send a control command (see the control module); the answer after `ok`.
    pub fn cmd(&mut self, line: &str) -> Result<String, String> {
        let (Some(stdin), Some(stdout)) = (self.stdin.as_mut(), self.stdout.as_mut()) else {
            return Err("the reader is unplugged".into());
        };
        writeln!(stdin, "{line}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stdout.read_line(&mut answer).map_err(|e| e.to_string())?;
        let answer = answer.trim_end();
        match answer.strip_prefix("ok") {
            Some(rest) => Ok(rest.trim_start().to_string()),
            None => Err(format!("{line}: {answer}")),
        }
    }

    /// Set the fixture card inserted at the next [`SerialLine::replug`].
    pub fn set_card(&mut self, card: Option<&str>) {
        self.card = card.map(str::to_string);
    }

    /// The PIDs of socat and the reader (for tests that check clean-up).
    pub fn pids(&self) -> Vec<u32> {
        self.socat
            .iter()
            .chain(self.reader.iter())
            .map(Child::id)
            .collect()
    }
}

impl Drop for SerialLine {
    fn drop(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "quit");
        }
        self.unplug();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
