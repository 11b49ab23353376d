//! The demo's local backend (`kiosk --with-backend`): the workspace's own `hsm-sim`,
//! `central-server` and `sync-agent` as child processes on 127.0.0.1 with ports the system
//! picks, everything under `STATE_DIR/backend/` (mode 0700).
//!
//! ```text
//!  kiosk ── ledger (kiosk-ledger.db) ◀── sync-agent run --interval 2 ──HTTP──▶ central-server
//!    │                                                                            │ KQ
//!    └── demo cards personalised through ─────────────── hsm-sim ◀────────────────┘
//! ```
//!
//! The first start sets it all up, then writes `ready`; a later start with the same state dir
//! uses what is there (a set-up cut short is wiped and done again):
//!
//! 1. hsm-sim: a random LMK (`hsm-lmk.hex`) and the personalisation device's transport key
//!    (`zmk.hex`), formed into the key store by the key ceremony (`hsm-sim form-key`, the
//!    component on standard input); then `hsm-sim serve`.
//! 2. The demo cards, personalised through it ([`DemoWorld::build_with_hsm`]): the payment
//!    applications' card keys derive from issuer master keys generated inside the HSM.
//! 3. central-server: its SM2 key and field key (`keygen`, `fieldkey`), the terminal
//!    (`add-terminal`, whose one-time enrolment token is kept in memory only), the demo's
//!    cardholder records in the terminal's region (`import-cardholders`) and the demo card
//!    reported lost (`report-lost`); then `serve`, verifying cryptograms with the HSM's MK-AC.
//! 4. The terminal: its SM2 key (`sync-agent keygen`, `terminal.key`, mode 0600), registered
//!    with the token (`sync-agent register`); the ledger's field key in `kiosk-field.key`.
//! 5. A first sync (`sync-agent once`) so the hot list and the records are in the ledger before
//!    the kiosk opens, then `sync-agent run` every [`SYNC_INTERVAL_SECS`] seconds.
//!
//! Each child's standard output and error go to `<name>.log` in that directory (the one-shot
//! set-up commands' errors to `setup.log`); a child that fails to start is reported with its
//! log. [`Backend`] stops the children when dropped (the kiosk's exit, also on an error), and on
//! SIGINT, SIGTERM or SIGHUP; their process ids are kept in `pids`, so that children left by a
//! kiosk killed with SIGKILL are stopped at the next start with the same state dir.
//! `admin.sh` runs central-server's admin commands on this backend, with the demo card names
//! for their card numbers (`admin.sh report-lost lisi`).

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backend_sync::entry::Pan;
use backend_sync::ledger::{Ledger, LedgerError, SyncSummary};
use hsm_sim::client::{BlockingClient, HsmClient};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{KeyType, Scheme};
use zeroize::Zeroizing;

use super::{DemoWorld, PBOC_MASTER_LABELS, TERMINAL, ZMK_LABEL};

/// The region the demo terminal serves; the demo's cardholder records are registered in it.
pub const REGION: &str = "110105";
/// Seconds between the sync agent's runs.
pub const SYNC_INTERVAL_SECS: u64 = 2;
/// How long a child may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The three binaries, by name.
const HSM_SIM: &str = "hsm-sim";
const CENTRAL_SERVER: &str = "central-server";
const SYNC_AGENT: &str = "sync-agent";

/// Errors of the local backend, one per cause. Each names the log to read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A binary is not where it was looked for.
    #[error(
        "{name} not found in {}: build it with `cargo build --release -p hsm-sim -p backend-sync \
         --bins` (scripts/demo.sh --with-backend does), or give its directory with \
         --backend-bin-dir",
        dir.display()
    )]
    MissingBinary {
        /// The binary.
        name: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A child did not come up.
    #[error("{name} did not start: {why}; see its log {}", log.display())]
    StartFailed {
        /// The binary.
        name: &'static str,
        /// What happened (the last line of its log, if any).
        why: String,
        /// Its log file.
        log: PathBuf,
    },
    /// A set-up or admin command failed.
    #[error("`{command}` failed ({status}): {last_line}; see {}", log.display())]
    CommandFailed {
        /// The command (binary and subcommand; no secret).
        command: String,
        /// Its exit status.
        status: String,
        /// The last line it wrote to its standard error.
        last_line: String,
        /// The log its standard error went to.
        log: PathBuf,
    },
    /// A command's output is not what it should be.
    #[error("`{command}` printed no {what}")]
    BadOutput {
        /// The command.
        command: String,
        /// What was expected.
        what: &'static str,
    },
    /// The demo cards could not be personalised through the HSM.
    #[error("personalising the demo cards through hsm-sim: {0}")]
    Cards(String),
    /// The HSM could not be reached or refused.
    #[error("hsm-sim: {0}")]
    Hsm(#[from] hsm_sim::ClientError),
    /// The terminal's ledger failed.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// Something expected did not happen in time.
    #[error("{what} did not happen within {secs} s; see {}", log.display())]
    Timeout {
        /// What was waited for.
        what: String,
        /// The time waited.
        secs: u64,
        /// The log that may say why.
        log: PathBuf,
    },
    /// Processes of an earlier run from this state dir are still alive.
    #[error(
        "an earlier backend still runs from {} (pids {pids}); stop it or use another --state-dir",
        dir.display()
    )]
    StaleChildren {
        /// The backend directory.
        dir: PathBuf,
        /// Their pids.
        pids: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    let what = what.into();
    move |source| BackendError::Io { what, source }
}

/// Where the backend runs from.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The kiosk's state directory; the backend's files go to `STATE_DIR/backend/`.
    pub state_dir: PathBuf,
    /// The directory holding `hsm-sim`, `central-server` and `sync-agent`.
    pub bin_dir: PathBuf,
}

impl BackendConfig {
    /// The binaries next to the running executable (`target/release/kiosk` finds
    /// `target/release/hsm-sim`, ...).
    pub fn beside_current_exe(state_dir: PathBuf) -> Result<Self, BackendError> {
        let exe = std::env::current_exe().map_err(io("finding the kiosk's executable"))?;
        let bin_dir = exe
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Self { state_dir, bin_dir })
    }
}

/// A running child.
#[derive(Debug)]
struct ChildProc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Reported as stopped already (by the watcher).
    reported: bool,
}

/// The running children, shared with the signal and watch threads.
type Children = Arc<Mutex<Vec<ChildProc>>>;

fn stop_all(children: &Children) {
    let mut list = children.lock().unwrap_or_else(PoisonError::into_inner);
    // The agent first, then the server, then the HSM.
    while let Some(mut c) = list.pop() {
        let _ = c.child.kill();
        let _ = c.child.wait();
    }
}

/// The demo's local backend: running children, and what the kiosk and its headless journey
/// need to talk to them. Dropping it stops the children.
#[derive(Debug)]
pub struct Backend {
    dir: PathBuf,
    bin_dir: PathBuf,
    children: Children,
    hsm_addr: String,
    server_url: String,
    ledger_path: PathBuf,
    field_key_hex: Zeroizing<String>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        stop_all(&self.children);
        let _ = fs::remove_file(self.dir.join("pids"));
    }
}

/// A file only the owner may read, written whole.
fn write_private(path: &Path, text: &str) -> Result<(), BackendError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    // An older file keeps its mode through `open`.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io(format!("protecting {}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

fn random_hex16() -> Result<Zeroizing<String>, BackendError> {
    let mut b = Zeroizing::new([0u8; 16]);
    getrandom::fill(b.as_mut()).map_err(|e| BackendError::Io {
        what: "random key".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Zeroizing::new(hex::encode_upper(b.as_ref())))
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>, BackendError> {
    let text = Zeroizing::new(
        fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?,
    );
    Ok(Zeroizing::new(text.trim().to_string()))
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_string()
}

fn log_tail(log: &Path) -> String {
    fs::read(log)
        .map(|b| last_line(&String::from_utf8_lossy(&b)))
        .unwrap_or_else(|_| "no output".into())
}

/// Pids of processes whose command line names `dir` (children of an earlier run).
fn live_children_of(dir: &Path) -> Vec<u32> {
    let Ok(text) = fs::read_to_string(dir.join("pids")) else {
        return Vec::new();
    };
    let needle = dir.as_os_str().as_encoded_bytes();
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

impl Backend {
    /// Start the backend and build the demo world against its HSM (see the module's doc).
    pub fn start(config: &BackendConfig) -> Result<(Self, DemoWorld), BackendError> {
        for name in [HSM_SIM, CENTRAL_SERVER, SYNC_AGENT] {
            if !config.bin_dir.join(name).is_file() {
                return Err(BackendError::MissingBinary {
                    name,
                    dir: config.bin_dir.clone(),
                });
            }
        }
        let dir = config.state_dir.join("backend");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("protecting {}", dir.display())))?;
        let dir = fs::canonicalize(&dir).map_err(io(format!("resolving {}", dir.display())))?;
        Self::stop_stale(&dir)?;
        let fresh = !dir.join("ready").is_file();
        if fresh {
            // Nothing of a set-up cut short is kept.
            for e in fs::read_dir(&dir).map_err(io(format!("reading {}", dir.display())))? {
                let p = e.map_err(io("reading the backend directory"))?.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        let children: Children = Arc::new(Mutex::new(Vec::new()));
        let mut backend = Self {
            bin_dir: config.bin_dir.clone(),
            children,
            hsm_addr: String::new(),
            server_url: String::new(),
            ledger_path: dir.join("kiosk-ledger.db"),
            field_key_hex: Zeroizing::new(String::new()),
            dir,
        };
        backend.stop_on_signals();
        let world = backend.set_up(fresh)?;
        Ok((backend, world))
    }

    fn stop_stale(dir: &Path) -> Result<(), BackendError> {
        let stale = live_children_of(dir);
        if stale.is_empty() {
            return Ok(());
        }
        for pid in &stale {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && !live_children_of(dir).is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = live_children_of(dir);
        if left.is_empty() {
            Ok(())
        } else {
            Err(BackendError::StaleChildren {
                dir: dir.to_path_buf(),
                pids: left
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    }

    /// Stop the children on SIGINT, SIGTERM and SIGHUP, then exit as the signal would have.
    fn stop_on_signals(&self) {
        let children = self.children.clone();
        let pids = self.dir.join("pids");
        let spawned = std::thread::Builder::new()
            .name("backend-signals".into())
            .spawn(move || {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let code = rt.block_on(async {
                    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                        signal(SignalKind::hangup()),
                    ) else {
                        return None;
                    };
                    tokio::select! {
                        _ = int.recv() => Some(130),
                        _ = term.recv() => Some(143),
                        _ = hup.recv() => Some(129),
                    }
                });
                if let Some(code) = code {
                    stop_all(&children);
                    let _ = fs::remove_file(pids);
                    std::process::exit(code);
                }
            });
        if let Err(e) = spawned {
            eprintln!("kiosk: no signal handling for the backend: {e}");
        }
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The central server's command with its database and field key.
    fn admin_cmd(&self) -> Command {
        let mut c = Command::new(self.bin(CENTRAL_SERVER));
        c.arg("--db")
            .arg(self.dir.join("central.db"))
            .arg("--field-key")
            .arg(self.dir.join("server-field.key"));
        c
    }

    /// The sync agent's command with the terminal's ledger and field key.
    fn agent_cmd(&self) -> Command {
        let mut c = Command::new(self.bin(SYNC_AGENT));
        c.arg("--ledger")
            .arg(&self.ledger_path)
            .args(["--terminal", TERMINAL, "--field-key"])
            .arg(self.dir.join("kiosk-field.key"));
        c
    }

    /// Agent options to reach the server with the terminal's key.
    fn conn_args(&self) -> Vec<OsString> {
        vec![
            "--server".into(),
            self.server_url.clone().into(),
            "--key".into(),
            self.dir.join("terminal.key").into(),
            "--retry-max-ms".into(),
            "2000".into(),
        ]
    }

    /// Run a one-shot command to its end: its standard output; its standard error goes to
    /// `setup.log`. `what` names it in errors (no secret in it).
    fn run_tool(
        &self,
        mut cmd: Command,
        what: &str,
        stdin: Option<&str>,
    ) -> Result<String, BackendError> {
        let log = self.dir.join("setup.log");
        let mut err_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let _ = writeln!(err_file, "== {what}");
        let before = err_file
            .metadata()
            .map_err(io(format!("reading {}", log.display())))?
            .len();
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(
            err_file
                .try_clone()
                .map_err(io(format!("opening {}", log.display())))?,
        );
        let mut child = cmd.spawn().map_err(io(format!("starting `{what}`")))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(io(format!("writing to `{what}`")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io(format!("running `{what}`")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let text = fs::read(&log).unwrap_or_default();
        let tail = text
            .get(usize::try_from(before).unwrap_or(0)..)
            .map(|t| last_line(&String::from_utf8_lossy(t)))
            .unwrap_or_else(|| "no output".into());
        Err(BackendError::CommandFailed {
            command: what.to_string(),
            status: out.status.to_string(),
            last_line: tail,
            log,
        })
    }

    /// Start a long-running child with its output in `<name>.log`; with `listen`, wait for the
    /// line `... listening on ADDR` and return ADDR.
    fn spawn(
        &self,
        name: &'static str,
        mut cmd: Command,
        listen: bool,
    ) -> Result<String, BackendError> {
        let log = self.dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&log)
            .map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", "info")
            // Plain text in the log files.
            .env("NO_COLOR", "1");
        let child = cmd.spawn().map_err(|e| BackendError::StartFailed {
            name,
            why: e.to_string(),
            log: log.clone(),
        })?;
        let pid = child.id();
        {
            let mut list = self.children.lock().unwrap_or_else(PoisonError::into_inner);
            list.push(ChildProc {
                name,
                child,
                log: log.clone(),
                reported: false,
            });
            let pids: String = list
                .iter()
                .map(|c| format!("{} {}\n", c.name, c.child.id()))
                .collect();
            let _ = fs::write(self.dir.join("pids"), pids);
        }
        if !listen {
            return Ok(String::new());
        }
        let started = Instant::now();
        loop {
            let text = fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            if let Some(addr) = text.lines().find_map(|l| {
                l.split_once("listening on ")
                    .map(|(_, a)| a.trim().to_string())
            }) {
                return Ok(addr);
            }
            if let Some(status) = self.exited(pid) {
                // Read the log again: the child may have written its last words between the
                // read above and its exit.
                return Err(BackendError::StartFailed {
                    name,
                    why: format!("it exited ({status}): {}", log_tail(&log)),
                    log,
                });
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(BackendError::StartFailed {
                    name,
                    why: format!("not listening after {} s", START_TIMEOUT.as_secs()),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status of the child `pid`, if it has exited.
    fn exited(&self, pid: u32) -> Option<ExitStatus> {
        let mut list = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter_mut()
            .find(|c| c.child.id() == pid)
            .and_then(|c| c.child.try_wait().ok().flatten())
    }

    fn set_up(&mut self, fresh: bool) -> Result<DemoWorld, BackendError> {
        let dir = self.dir.clone();
        let p = |name: &str| dir.join(name);

        // 1. hsm-sim.
        if fresh {
            write_private(&p("hsm-lmk.hex"), &random_hex16()?)?;
            let zmk = random_hex16()?;
            write_private(&p("zmk.hex"), &zmk)?;
            let mut cmd = Command::new(self.bin(HSM_SIM));
            cmd.arg("--store")
                .arg(p("hsm-keys.db"))
                .arg("--lmk-file")
                .arg(p("hsm-lmk.hex"))
                .args(["form-key", "--type", KeyType::Zmk.code(), "--scheme", "S"])
                .args(["--label", ZMK_LABEL]);
            let component = Zeroizing::new(format!("{}\n", zmk.as_str()));
            self.run_tool(cmd, "hsm-sim form-key", Some(&component))?;
        }
        let mut cmd = Command::new(self.bin(HSM_SIM));
        cmd.arg("--store")
            .arg(p("hsm-keys.db"))
            .arg("--lmk-file")
            .arg(p("hsm-lmk.hex"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"]);
        self.hsm_addr = self.spawn(HSM_SIM, cmd, true)?;

        // 2. The cards, through it.
        let zmk_hex = read_secret(&p("zmk.hex"))?;
        let zmk_bytes = Zeroizing::new(hex::decode(zmk_hex.as_str()).map_err(|_| {
            BackendError::Cards(format!("{} holds no hex key", p("zmk.hex").display()))
        })?);
        let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(zmk_bytes.to_vec()))
            .map_err(|e| BackendError::Cards(format!("ZMK: {e}")))?;
        let mut hsm = HsmClient::new(BlockingClient::connect(self.hsm_addr.as_str(), 4)?);
        let world = DemoWorld::build_with_hsm(&dir, &mut hsm, &zmk)
            .map_err(|e| BackendError::Cards(format!("{e:#}")))?;
        drop(hsm);
        self.ledger_path = world.ledger_path.clone();
        self.field_key_hex = Zeroizing::new(world.field_key_hex().to_string());

        // 3. central-server.
        let mut token = Zeroizing::new(String::new());
        if fresh {
            let mut c = self.admin_cmd();
            c.args(["keygen", "--out"]).arg(p("server.key"));
            self.run_tool(c, "central-server keygen", None)?;
            fs::set_permissions(p("server.key"), fs::Permissions::from_mode(0o600))
                .map_err(io("protecting server.key"))?;
            let mut c = self.admin_cmd();
            c.args(["fieldkey", "--out"]).arg(p("server-field.key"));
            self.run_tool(c, "central-server fieldkey", None)?;
            fs::set_permissions(p("server-field.key"), fs::Permissions::from_mode(0o600))
                .map_err(io("protecting server-field.key"))?;
            let mut c = self.admin_cmd();
            c.args(["add-terminal", "--terminal", TERMINAL, "--region", REGION]);
            token = Zeroizing::new(
                self.run_tool(c, "central-server add-terminal", None)?
                    .trim()
                    .to_string(),
            );
            if token.is_empty() {
                return Err(BackendError::BadOutput {
                    command: "central-server add-terminal".into(),
                    what: "enrolment token",
                });
            }
            self.import_cardholders()?;
            for pan in DemoWorld::lost_pans() {
                self.admin(&["report-lost", "--pan", &pan, "--reason", "lost"])?;
            }
        }
        let mut c = self.admin_cmd();
        c.args(["serve", "--listen", "127.0.0.1:0", "--hsm", &self.hsm_addr])
            .args(["--mk-sm4", PBOC_MASTER_LABELS[0], "--server-key"])
            .arg(p("server.key"))
            .args(["--workers", "1", "--hsm-connections", "2"]);
        self.server_url = self.spawn(CENTRAL_SERVER, c, true)?;

        // 4. The terminal.
        write_private(&p("kiosk-field.key"), &self.field_key_hex)?;
        if fresh {
            let mut c = self.agent_cmd();
            c.args(["keygen", "--out"]).arg(p("terminal.key"));
            self.run_tool(c, "sync-agent keygen", None)?;
            fs::set_permissions(p("terminal.key"), fs::Permissions::from_mode(0o600))
                .map_err(io("protecting terminal.key"))?;
            let mut c = self.agent_cmd();
            c.arg("register")
                .args(self.conn_args())
                .arg("--token")
                .arg(token.as_str());
            self.run_tool(c, "sync-agent register", None)?;
            write_private(&p("ready"), "set up\n")?;
        }
        drop(token);

        // 5. Sync once, then on a schedule.
        let mut c = self.agent_cmd();
        c.arg("once").args(self.conn_args());
        self.run_tool(c, "sync-agent once", None)?;
        let mut c = self.agent_cmd();
        c.arg("run")
            .args(self.conn_args())
            .args(["--interval", &SYNC_INTERVAL_SECS.to_string()]);
        self.spawn(SYNC_AGENT, c, false)?;
        self.write_admin_script(&world)?;
        Ok(world)
    }

    /// The demo's cardholder records to the server, in the terminal's region, through a CSV
    /// file that is removed again (it holds personal data, fictional as it is).
    fn import_cardholders(&self) -> Result<(), BackendError> {
        let records =
            DemoWorld::cardholder_records().map_err(|e| BackendError::Cards(format!("{e:#}")))?;
        let mut csv = backend_sync::server::admin::CSV_COLUMNS.join(",");
        csv.push('\n');
        for r in &records {
            csv.push_str(&format!(
                "{},{},{},{REGION},{},{},{},{}\n",
                r.ssn,
                r.name,
                r.card_no,
                r.insurance_status,
                r.contribution_months,
                r.medical_balance_fen,
                r.as_of.as_str()
            ));
        }
        let path = self.dir.join("cardholders.csv");
        write_private(&path, &csv)?;
        let result = self.admin(&["import-cardholders", "--csv", &path.to_string_lossy()]);
        let _ = fs::remove_file(&path);
        result.map(|_| ())
    }

    /// `admin.sh`: central-server's admin commands on this backend, card names for PANs.
    fn write_admin_script(&self, world: &DemoWorld) -> Result<(), BackendError> {
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        let cases: String = world
            .cards
            .iter()
            .map(|c| format!("        {}) echo {} ;;\n", c.name, c.pan))
            .collect();
        let names = world
            .cards
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join("|");
        let script = format!(
            "#!/bin/sh\n\
             # central-server's admin commands on the kiosk demo's local backend; a demo card's\n\
             # name stands for its card number:\n\
             #   admin.sh report-lost lisi    admin.sh unblock lisi    admin.sh report\n\
             set -eu\n\
             pan() {{\n    case \"$1\" in\n{cases}        *) echo \"$1\" ;;\n    esac\n}}\n\
             run() {{ exec {bin} --db {db} --field-key {key} \"$@\"; }}\n\
             case \"${{1:-}}\" in\n\
             \x20   report-lost|unblock) run \"$1\" --pan \"$(pan \"${{2:?a card: {names}}}\")\" ;;\n\
             \x20   '') run --help ;;\n\
             \x20   *) run \"$@\" ;;\n\
             esac\n",
            bin = q(&self.bin(CENTRAL_SERVER)),
            db = q(&self.dir.join("central.db")),
            key = q(&self.dir.join("server-field.key")),
        );
        let path = self.dir.join("admin.sh");
        write_private(&path, &script)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(io("making admin.sh executable"))
    }

    /// Run a central-server admin command (`report-lost`, `unblock`, `report`, ...) on this
    /// backend: its standard output.
    pub fn admin(&self, args: &[&str]) -> Result<String, BackendError> {
        let mut c = self.admin_cmd();
        c.args(args);
        let what = format!("central-server {}", args.first().copied().unwrap_or(""));
        self.run_tool(c, &what, None)
    }

    /// `sync-agent status` on the terminal's ledger.
    pub fn agent_status(&self) -> Result<String, BackendError> {
        let mut c = self.agent_cmd();
        c.arg("status");
        self.run_tool(c, "sync-agent status", None)
    }

    /// The backend's directory (`STATE_DIR/backend`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// hsm-sim's address.
    pub fn hsm_addr(&self) -> &str {
        &self.hsm_addr
    }

    /// The central server's base URL.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The running children: name, pid, log.
    pub fn children(&self) -> Vec<(&'static str, u32, PathBuf)> {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|c| (c.name, c.child.id(), c.log.clone()))
            .collect()
    }

    fn open_ledger(&self) -> Result<Ledger, BackendError> {
        Ok(DemoWorld::open_ledger(
            &self.ledger_path,
            &self.field_key_hex,
        )?)
    }

    /// The ledger's sync figures.
    pub fn sync_summary(&self) -> Result<SyncSummary, BackendError> {
        Ok(self.open_ledger()?.sync_summary()?)
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Ledger) -> Result<bool, BackendError>,
    ) -> Result<(), BackendError> {
        let started = Instant::now();
        let ledger = self.open_ledger()?;
        loop {
            if done(&ledger)? {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(BackendError::Timeout {
                    what: what.to_string(),
                    secs: timeout.as_secs(),
                    log: self.dir.join("sync-agent.log"),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until a sync run that started at `since` (Unix seconds) or later succeeded and
    /// nothing waits for upload.
    pub fn wait_uploaded(
        &self,
        since: i64,
        timeout: Duration,
    ) -> Result<SyncSummary, BackendError> {
        self.wait_for("the upload of the ledger", timeout, |l| {
            let s = l.sync_summary()?;
            Ok(s.pending == 0 && s.last_success.is_some_and(|t| t >= since))
        })?;
        self.sync_summary()
    }

    /// Wait until the ledger's hot list has reached `version`.
    pub fn wait_hotlist(&self, version: u64, timeout: Duration) -> Result<(), BackendError> {
        self.wait_for("the hot-list download", timeout, |l| {
            Ok(l.hotlist_version()? >= version)
        })
    }

    /// Report a card lost at the central server (the hot list's next version); returns the
    /// server's answer (the card masked) and the new version.
    pub fn report_lost(&self, pan: &str) -> Result<(String, u64), BackendError> {
        self.hotlist_change(&["report-lost", "--pan", pan, "--reason", "lost"])
    }

    /// Take a card off the hot list at the central server.
    pub fn unblock(&self, pan: &str) -> Result<(String, u64), BackendError> {
        self.hotlist_change(&["unblock", "--pan", pan])
    }

    fn hotlist_change(&self, args: &[&str]) -> Result<(String, u64), BackendError> {
        let out = self.admin(args)?;
        let line = out.trim().to_string();
        // "hot-list version N: 621700*****0002 lost"
        let version = line
            .strip_prefix("hot-list version ")
            .and_then(|r| r.split(':').next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BackendError::BadOutput {
                command: format!("central-server {}", args.first().copied().unwrap_or("")),
                what: "hot-list version",
            })?;
        Ok((line, version))
    }

    /// Start a thread that reports (once each) a child that stopped while the kiosk runs.
    pub fn watch(&self) {
        let children = self.children.clone();
        let _ = std::thread::Builder::new()
            .name("backend-watch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let mut list = children.lock().unwrap_or_else(PoisonError::into_inner);
                    if list.is_empty() {
                        return;
                    }
                    for c in list.iter_mut().filter(|c| !c.reported) {
                        if let Ok(Some(status)) = c.child.try_wait() {
                            c.reported = true;
                            eprintln!(
                                "kiosk: {} stopped ({status}): {}; see {}",
                                c.name,
                                log_tail(&c.log),
                                c.log.display()
                            );
                        }
                    }
                }
            });
    }

    /// What the kiosk prints at start: where things run and how to use the backend.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "local backend (files and logs in {}):\n",
            self.dir.display()
        );
        for (name, pid, _) in self.children() {
            let at = match name {
                HSM_SIM => self.hsm_addr.clone(),
                CENTRAL_SERVER => self.server_url.clone(),
                _ => format!("syncs every {SYNC_INTERVAL_SECS} s"),
            };
            s.push_str(&format!("  {name:<15} pid {pid:<8} {at}\n"));
        }
        let admin = self.dir.join("admin.sh");
        s.push_str(&format!(
            "  report a card lost:  {} report-lost lisi   (rejected at its next insert, after the next sync)\n\
             \x20 take it off again:   {} unblock lisi\n\
             \x20 what was booked:     {} report\n",
            admin.display(),
            admin.display(),
            admin.display()
        ));
        s
    }
}

/// The masked form of a card number (for what the kiosk prints).
pub fn masked(pan: &str) -> String {
    pan.parse::<Pan>()
        .map(|p| p.masked())
        .unwrap_or_else(|_| "card".into())
}
