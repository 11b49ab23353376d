//! Shared test harness: a real hsm-sim on loopback TCP, the `central-server` and `sync-agent`
//! binaries as real processes (killed with SIGKILL where a test says so), real SQLite files and
//! a real PostgreSQL (started by scripts/postgres-env.sh).

#![allow(
    dead_code,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use backend_sync::agent::client::SyncClient;
use backend_sync::entry::{
    CNY, EntryKind, EntryState, IdempotencyId, TerminalId, TxnTime, UploadEntry,
};
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::{Ledger, NewPayment, Outcome, UploadState};
use backend_sync::recovery::{LogRecordData, Recovered};
use backend_sync::server::db::{Db, DbUrl, Val};
use backend_sync::testkit::{self, TestCard};
use backend_sync::wire::{self, EntryStatus, RejectReason, UploadRequest, UploadResponse};
use card_core::crypto::sm2::Sm2PrivateKey;
use hsm_sim::server::BackgroundServer;
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

pub mod auth_checks;
pub mod medical_card;

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_central-server");
pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_sync-agent");
pub const FIELD_KEY: &str = "00112233445566778899AABBCCDDEEF0";
pub const TERMINAL_FIELD_KEY: &str = "0F0E0D0C0B0A09080706050403020100";

/// One hsm-sim for the whole test binary, on real TCP, with the demo issuer master keys.
pub fn hsm_addr() -> String {
    static HSM: OnceLock<(BackgroundServer, String)> = OnceLock::new();
    HSM.get_or_init(|| {
        let hsm = Hsm::in_memory(
            Lmk::from_hex("00112233445566778899AABBCCDDEEFF").unwrap(),
            4,
        )
        .unwrap();
        hsm.form_key_from_components(
            testkit::DEMO_MK_TDES_LABEL,
            KeyType::MkAc,
            Scheme::Tdes,
            &[&hex::decode(testkit::DEMO_IMK_TDES).unwrap()],
        )
        .unwrap();
        hsm.form_key_from_components(
            testkit::DEMO_MK_SM4_LABEL,
            KeyType::MkAc,
            Scheme::Sm4,
            &[&hex::decode(testkit::DEMO_IMK_SM4).unwrap()],
        )
        .unwrap();
        let s = BackgroundServer::start(Arc::new(hsm), "127.0.0.1:0", 2).unwrap();
        let addr = s.addr().to_string();
        (s, addr)
    })
    .1
    .clone()
}

/// A runtime for the library calls tests make.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The PostgreSQL base URL (scripts/postgres-env.sh start, idempotent, is run if needed).
pub fn postgres_base_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("SSCARD_PG_URL") {
            return u;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres-env.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .expect("run postgres-env.sh");
        assert!(
            out.status.success(),
            "postgres-env.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = std::env::var("SSCARD_PG_DIR").unwrap_or_else(|_| "/tmp/sscard-pg".into());
        std::fs::read_to_string(Path::new(&dir).join("url"))
            .expect("url file")
            .trim()
            .to_string()
    })
    .clone()
}

/// A fresh PostgreSQL database for one test.
pub fn fresh_postgres_db() -> String {
    let base = postgres_base_url();
    let name = format!("t_{}", hex::encode(rand16()));
    let rt = rt();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("bad base url {base}"),
    }
}

pub fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b
}

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server's files: database, keys.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub server_key: PathBuf,
    pub field_key: PathBuf,
}

impl Env {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => dir.path().join("central.db").display().to_string(),
            Backend::Postgres => fresh_postgres_db(),
        };
        let server_key = dir.path().join("server.key");
        let field_key = dir.path().join("field.key");
        std::fs::write(&field_key, FIELD_KEY).unwrap();
        let env = Self {
            dir,
            db,
            server_key,
            field_key,
        };
        env.admin(&["keygen", "--out", env.server_key.to_str().unwrap()]);
        env
    }

    /// Run an admin command; its standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(SERVER_BIN)
            .args([
                "--db",
                &self.db,
                "--field-key",
                self.field_key.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "central-server {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn add_terminal(&self, id: &str, region: &str) -> String {
        self.admin(&["add-terminal", "--terminal", id, "--region", region])
            .trim()
            .to_string()
    }

    pub fn start_server(&self, port: u16, env: &[(&str, &str)]) -> Server {
        Server::start(self, port, env, None)
    }

    /// The database, through the library.
    pub fn query(&self, sql: &str, params: Vec<Val>) -> Vec<backend_sync::server::db::Row> {
        let rt = rt();
        rt.block_on(async {
            let db = Db::open(&DbUrl::parse(&self.db), 1).await.unwrap();
            db.query(sql, params).await.unwrap()
        })
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql, vec![])[0].int(0).unwrap()
    }

    /// A statement on the database, through the library; rows changed.
    pub fn execute(&self, sql: &str, params: Vec<Val>) -> u64 {
        let rt = rt();
        rt.block_on(async {
            let db = Db::open(&DbUrl::parse(&self.db), 1).await.unwrap();
            db.execute(sql, params).await.unwrap()
        })
    }
}

/// A running `central-server`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    paused: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(
        env: &Env,
        port: u16,
        extra_env: &[(&str, &str)],
        tls: Option<(&Path, &Path)>,
    ) -> Self {
        Self::start_with(env, port, extra_env, tls, &[])
    }

    /// [`Server::start`] with more `serve` options.
    pub fn start_with(
        env: &Env,
        port: u16,
        extra_env: &[(&str, &str)],
        tls: Option<(&Path, &Path)>,
        extra_args: &[&str],
    ) -> Self {
        let mut cmd = Command::new(SERVER_BIN);
        cmd.args([
            "--db",
            &env.db,
            "--field-key",
            env.field_key.to_str().unwrap(),
            "serve",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--hsm",
            &hsm_addr(),
        ])
        .args(["--server-key", env.server_key.to_str().unwrap()])
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some((cert, key)) = tls {
            cmd.args([
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ]);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on "), "server said {line:?}");
        let url = line.trim().trim_start_matches("listening on ").to_string();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, paused) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let lines = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(p) = l.strip_prefix("SSCARD-PAUSED ") {
                    let _ = tx.send(p.to_string());
                }
                lines.lock().unwrap().push(l);
            }
        });
        Self {
            child,
            url,
            port,
            stderr,
            paused,
        }
    }

    /// Wait until the server says it paused.
    pub fn wait_paused(&self, timeout: Duration) -> Option<String> {
        self.paused.recv_timeout(timeout).ok()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A terminal: its ledger, keys and cards.
pub struct Term {
    pub id: TerminalId,
    pub dir: tempfile::TempDir,
    pub ledger: PathBuf,
    pub key: PathBuf,
    pub field_key: PathBuf,
}

impl Term {
    pub fn new(id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.db");
        let key = dir.path().join("terminal.key");
        let field_key = dir.path().join("field.key");
        std::fs::write(&field_key, TERMINAL_FIELD_KEY).unwrap();
        let k = Sm2PrivateKey::generate_os().unwrap();
        std::fs::write(&key, hex::encode_upper(k.expose_bytes().as_ref())).unwrap();
        Self {
            id: id.parse().unwrap(),
            dir,
            ledger,
            key,
            field_key,
        }
    }

    pub fn open_ledger(&self) -> Ledger {
        Ledger::open(
            &self.ledger,
            &self.id,
            FieldKey::from_hex(TERMINAL_FIELD_KEY).unwrap(),
        )
        .unwrap()
    }

    pub fn signing_key(&self) -> Sm2PrivateKey {
        backend_sync::agent::read_key_file(&self.key).unwrap()
    }

    /// `sync-agent` with the terminal's options, then `args`.
    pub fn agent(&self, args: &[&str]) -> Command {
        let mut c = Command::new(AGENT_BIN);
        c.args([
            "--ledger",
            self.ledger.to_str().unwrap(),
            "--terminal",
            self.id.as_str(),
        ])
        .args(["--field-key", self.field_key.to_str().unwrap()])
        .args(args);
        c
    }

    /// The connection options for `register`/`once`/`run`.
    pub fn conn_args(&self, url: &str) -> Vec<String> {
        vec![
            "--server".into(),
            url.into(),
            "--key".into(),
            self.key.display().to_string(),
            "--retry-base-ms".into(),
            "20".into(),
            "--retry-max-ms".into(),
            "300".into(),
        ]
    }

    /// Run the agent to completion; (exit code, stdout, stderr).
    pub fn run_agent(&self, sub: &str, url: &str, extra: &[&str]) -> (i32, String, String) {
        let mut args: Vec<String> = vec![sub.into()];
        args.extend(self.conn_args(url));
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.agent(&refs).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A signed client of the protocol for hand-made requests.
    pub fn client(&self, url: &str) -> SyncClient {
        SyncClient::new(
            url,
            self.id.clone(),
            self.signing_key(),
            None,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    /// Upload `entries` by hand; the answers.
    pub fn upload(&self, url: &str, entries: Vec<UploadEntry>) -> UploadResponse {
        let c = self.client(url);
        rt().block_on(c.call(
            reqwest::Method::POST,
            "/v1/entries",
            wire::encode(&UploadRequest { entries }),
        ))
        .unwrap()
    }

    /// Record a payment by `card` whose GENERATE AC was torn (card pulled after it debited):
    /// the intent, `unknown`, then at the next insert the card's log proves the debit.
    pub fn torn_payment(&self, card: &mut TestCard, amount: u64) -> (u64, Recovered) {
        let mut l = self.open_ledger();
        let t: TxnTime = "20250301101500".parse().unwrap();
        let p = NewPayment {
            kind: EntryKind::EcPurchase,
            amount_fen: amount,
            currency: CNY,
            pan: card.pan.clone(),
            psn: card.psn.clone(),
            txn_time: t.clone(),
        };
        let seq = l.begin_payment(&p).unwrap().seq;
        l.record_outcome(seq, &Outcome::Unknown).unwrap();
        let r = card.torn_debit(amount, CNY, &t, EntryKind::EcPurchase);
        l.record_outcome(seq, &Outcome::Recovered(r.clone()))
            .unwrap();
        (seq, r)
    }

    /// Record an approved payment (TC) by `card`.
    pub fn approved_payment(&self, card: &mut TestCard, amount: u64) -> u64 {
        let mut l = self.open_ledger();
        let t: TxnTime = "20250301101500".parse().unwrap();
        let p = NewPayment {
            kind: EntryKind::EcPurchase,
            amount_fen: amount,
            currency: CNY,
            pan: card.pan.clone(),
            psn: card.psn.clone(),
            txn_time: t.clone(),
        };
        let seq = l.begin_payment(&p).unwrap().seq;
        let r = card.generate_ac(0x40, amount, CNY, &t, EntryKind::EcPurchase);
        l.record_outcome(seq, &Outcome::Approved(r)).unwrap();
        seq
    }

    pub fn register(&self, env: &Env, url: &str, region: &str) {
        let token = env.add_terminal(self.id.as_str(), region);
        let (code, out, err) = self.run_agent("register", url, &["--token", &token]);
        assert_eq!(code, 0, "register: {out} {err}");
    }

    /// Record `n` approved offline EC purchases with demo cards (SM4 and 3DES alternating);
    /// returns their amounts by sequence number.
    pub fn pay(&self, n: usize, seed: u64) -> Vec<(u64, u64)> {
        let mut l = self.open_ledger();
        let mut out = Vec::new();
        let mut sm4 = TestCard::demo_sm4(seed).unwrap();
        let mut tdes = TestCard::demo_tdes(seed).unwrap();
        let t: TxnTime = "20250301101500".parse().unwrap();
        for i in 0..n {
            let amount = 100 + (seed * 7 + i as u64 * 13) % 10_000;
            let card = if i % 2 == 0 { &mut sm4 } else { &mut tdes };
            let p = NewPayment {
                kind: EntryKind::EcPurchase,
                amount_fen: amount,
                currency: CNY,
                pan: card.pan.clone(),
                psn: card.psn.clone(),
                txn_time: t.clone(),
            };
            let intent = l.begin_payment(&p).unwrap();
            let r = card.generate_ac(0x40, amount, CNY, &t, EntryKind::EcPurchase);
            l.record_outcome(intent.seq, &Outcome::Approved(r)).unwrap();
            out.push((intent.seq, amount));
        }
        out
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawn the agent, wait for it to say it paused (or exit), SIGKILL it. True if it paused.
pub fn agent_until_pause(term: &Term, url: &str, point: &str, nth: u32, extra: &[&str]) -> bool {
    let mut args: Vec<String> = vec!["once".into()];
    args.extend(term.conn_args(url));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = term
        .agent(&refs)
        .env(backend_sync::pause::ENV, format!("{point}:{nth}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.starts_with("SSCARD-PAUSED") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut paused = false;
    while Instant::now() < deadline {
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            paused = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    paused
}

/// The invariant: every approved entry of the ledger is booked exactly once on the server with
/// its idempotency id and amount, the server has nothing else for the terminal, and the ledger
/// knows every entry as booked.
pub fn assert_exactly_once(env: &Env, term: &Term, expected: &[(u64, u64)]) {
    let rows = env.query(
        "SELECT seq, idempotency_id, status, amount_fen FROM entries WHERE terminal_id = $1 ORDER BY seq",
        vec![Val::Text(term.id.to_string())],
    );
    let l = term.open_ledger();
    let entries = l.entries().unwrap();
    assert_eq!(rows.len(), expected.len(), "server rows for {}", term.id);
    let mut ids = std::collections::HashSet::new();
    for (r, (seq, amount)) in rows.iter().zip(expected) {
        assert_eq!(r.int(0).unwrap() as u64, *seq);
        assert_eq!(r.text(2).unwrap(), "booked", "seq {seq}");
        assert_eq!(r.int(3).unwrap() as u64, *amount, "seq {seq}");
        let e = entries.iter().find(|e| e.seq == *seq).unwrap();
        assert_eq!(r.text(1).unwrap(), e.idempotency_id.to_hex());
        assert!(ids.insert(r.text(1).unwrap()), "idempotency id twice");
        assert_eq!(
            l.upload_state(*seq).unwrap().unwrap().0,
            backend_sync::ledger::UploadState::Booked,
            "ledger state of seq {seq}"
        );
    }
    let server_sum: i64 = rows.iter().map(|r| r.int(3).unwrap()).sum();
    let ledger_sum: u64 = expected.iter().map(|(_, a)| a).sum();
    assert_eq!(server_sum as u64, ledger_sum);
}

/// Kill the server inside its booking transaction three times while an agent uploads new
/// entries, each time at a different transaction (the first, second, third batch of the run).
pub fn server_killed_mid_transaction(backend: Backend) {
    let env = Env::new(backend);
    let port = free_port();
    let server = env.start_server(port, &[]);
    let term = Term::new("KIOSK-K2");
    term.register(&env, &server.url, "110100");
    drop(server);
    let mut expected = Vec::new();
    for k in 1..=3u32 {
        expected.extend(term.pay(40, 70 + u64::from(k)));
        let mut server =
            env.start_server(port, &[(backend_sync::pause::ENV, &format!("in_txn:{k}"))]);
        let mut args = vec!["once".to_string()];
        args.extend(term.conn_args(&server.url));
        args.extend(["--batch-size", "10", "--max-attempts", "100"].map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let agent = term
            .agent(&refs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let paused = server.wait_paused(Duration::from_secs(60));
        assert_eq!(
            paused.as_deref(),
            Some("in_txn"),
            "server never paused: {}",
            server.stderr()
        );
        server.kill9();
        // The agent keeps retrying against the dead server; bring it back on the same port.
        std::thread::sleep(Duration::from_millis(200));
        let back = env.start_server(port, &[]);
        let out = agent.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        drop(back);
        assert_exactly_once(&env, &term, &expected);
    }
    let server = env.start_server(port, &[]);
    let (code, out, err) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("batch 1: balanced"), "{out}");
    assert_exactly_once(&env, &term, &expected);
}

/// Recovered debits on the server: booked unverified with their evidence, outside the verified
/// total; a resend is a duplicate; reconciliation balances with them counted apart; an ATC the
/// card already used (by a TC, by another recovered debit, in the database or in the same
/// request) is refused, also after the card index was backfilled at a restart; evidence that
/// disagrees with the entry or is unusable is refused.
pub fn recovered_debits_are_booked_unverified_and_reconciled_apart(backend: Backend) {
    let env = Env::new(backend);
    let mut server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-R1");
    term.register(&env, &server.url, "110100");
    let mut card = TestCard::demo_sm4(8100).unwrap();
    let tc = term.approved_payment(&mut card, 120);
    let (rec, recovered) = term.torn_payment(&mut card, 330);
    assert_eq!((recovered.atc, card.atc), (2, 3));
    let form = term
        .open_ledger()
        .pending_upload(10)
        .unwrap()
        .into_iter()
        .find(|e| e.seq == rec)
        .unwrap();

    let (code, out, err) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("uploaded 2 (booked 2, duplicate 0, rejected 0) of which 1 recovered"),
        "{out}"
    );
    assert!(
        out.contains(
            "batch 1: balanced (recovered debits apart: terminal 1 / 330 fen, server 1 / 330 fen)"
        ),
        "{out}"
    );
    let rows = env.query(
        "SELECT status, state, atc, recovery, card_index FROM entries WHERE seq = $1",
        vec![Val::Int(rec as i64)],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0).unwrap(), "booked_unverified");
    assert_eq!(rows[0].text(1).unwrap(), "recovered");
    assert_eq!(rows[0].int(2).unwrap(), 2);
    let stored: Recovered = serde_json::from_str(&rows[0].text(3).unwrap()).unwrap();
    assert_eq!(stored, recovered);
    assert!(rows[0].opt_bytes(4).unwrap().is_some());
    let verified = env.count(
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM entries
         WHERE status = 'booked' AND state = 'approved_offline'",
    );
    assert_eq!(
        verified, 120,
        "the recovered debit is outside the verified total"
    );
    let l = term.open_ledger();
    assert_eq!(l.upload_state(rec).unwrap().unwrap().0, UploadState::Booked);
    let b1 = l.batch(1).unwrap().unwrap().result.unwrap();
    assert!(b1.balanced);
    assert_eq!((b1.server.debit_count, b1.server.debit_amount), (1, 120));
    assert_eq!(
        (b1.recovered.server.count, b1.recovered.server.amount),
        (1, 330)
    );
    assert_eq!(b1.recovered.seqs, vec![rec]);
    drop(l);
    let report = env.admin(&["report"]);
    assert!(
        report.contains("KIOSK-R1\t1\t0\t1\t120\t2\t1\t330"),
        "{report}"
    );
    let listed = env.admin(&["recovered"]);
    assert!(
        listed.contains(&card.pan.masked()) && listed.contains("torn_debit"),
        "{listed}"
    );
    assert!(
        !listed.contains(card.pan.expose()),
        "PAN in clear: {listed}"
    );

    // A resend is a duplicate, nothing booked twice.
    let again = term.upload(&server.url, vec![form.clone()]);
    assert_eq!(again.results[0].status, EntryStatus::Duplicate);
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 2);

    // Batch 2: a recovered debit claiming the ATC the TC used is refused; the batch shows it.
    let t: TxnTime = "20250301101500".parse().unwrap();
    let mut l = term.open_ledger();
    let p = NewPayment {
        kind: EntryKind::EcPurchase,
        amount_fen: 55,
        currency: CNY,
        pan: card.pan.clone(),
        psn: card.psn.clone(),
        txn_time: t.clone(),
    };
    let clash = l.begin_payment(&p).unwrap().seq;
    let mut r = recovered.clone();
    r.atc = 1;
    r.evidence.log_record = Some(testkit::log_record(55, CNY, &t, EntryKind::EcPurchase, 1));
    r.evidence.atc_before = Some(0);
    r.evidence.atc_after = Some(2);
    l.record_outcome(clash, &Outcome::Recovered(r)).unwrap();
    drop(l);
    let (code, out, err) = term.run_agent("once", &server.url, &["--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("rejected 1"), "{out}");
    assert!(out.contains("batch 2: NOT balanced"), "{out}");
    let l = term.open_ledger();
    assert_eq!(
        l.upload_state(clash).unwrap().unwrap(),
        (UploadState::Rejected, Some("atc_conflict".into()))
    );
    let b2 = l.batch(2).unwrap().unwrap().result.unwrap();
    assert_eq!(b2.missing_on_server, vec![clash]);
    assert_eq!(
        (b2.recovered.terminal.count, b2.recovered.server.count),
        (1, 0)
    );
    drop(l);

    // Hand-made entries: each check of the server on its own.
    let mut n = 1000;
    let mut make = |f: &dyn Fn(&mut UploadEntry)| {
        let mut e = form.clone();
        n += 1;
        e.seq = n;
        e.batch_no = 99;
        e.idempotency_id = IdempotencyId::from_bytes(rand16());
        f(&mut e);
        e
    };
    let with_log = |e: &mut UploadEntry, amount: u64, atc: u16, extra: Option<(u32, Vec<u8>)>| {
        let mut fields = testkit::log_record(amount, CNY, &t, EntryKind::EcPurchase, atc)
            .fields()
            .to_vec();
        fields.extend(extra);
        let r = e.recovered.as_mut().unwrap();
        r.atc = atc;
        r.evidence.log_record = Some(LogRecordData::from_fields(fields));
        r.evidence.atc_before = Some(atc - 1);
        r.evidence.atc_after = Some(atc);
    };
    let cases = [
        (
            make(&|e| e.amount_fen = 331),
            Some(RejectReason::DataMismatch),
        ),
        (
            make(&|e| with_log(e, 330, 9, Some((0x5A, vec![0x62, 0x17, 0x00, 0x81, 0x00])))),
            Some(RejectReason::EvidenceInvalid),
        ),
        (
            make(&|e| e.recovered = None),
            Some(RejectReason::StateInconsistent),
        ),
        (
            make(&|e| e.state = EntryState::ApprovedOffline),
            Some(RejectReason::StateInconsistent),
        ),
        // The recovered debit's own ATC, under another sequence number.
        (make(&|_| {}), Some(RejectReason::AtcConflict)),
        // A fresh ATC twice in one request: the first is booked, the second refused.
        (make(&|e| with_log(e, 330, 7, None)), None),
        (
            make(&|e| with_log(e, 330, 7, None)),
            Some(RejectReason::AtcConflict),
        ),
    ];
    let entries: Vec<UploadEntry> = cases.iter().map(|(e, _)| e.clone()).collect();
    let resp = term.upload(&server.url, entries);
    for ((e, want), got) in cases.iter().zip(&resp.results) {
        assert_eq!(got.seq, e.seq);
        match want {
            Some(reason) => {
                assert_eq!(got.status, EntryStatus::Rejected, "seq {}", e.seq);
                assert_eq!(got.reason, Some(*reason), "seq {}", e.seq);
            }
            None => assert_eq!(got.status, EntryStatus::BookedUnverified, "seq {}", e.seq),
        }
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM entries WHERE status = 'booked_unverified'"),
        2
    );

    // Entries booked before the card index existed get it at the next start: clear it, restart,
    // and the TC's ATC is still refused to a recovered debit.
    assert!(env.execute("UPDATE entries SET card_index = NULL", vec![]) >= 3);
    drop(server);
    server = env.start_server(0, &[]);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM entries WHERE card_index IS NULL"),
        0
    );
    let late = make(&|e| with_log(e, 330, 1, None));
    let resp = term.upload(&server.url, vec![late]);
    assert_eq!(resp.results[0].reason, Some(RejectReason::AtcConflict));
    let _ = tc;
    // Refused evidence is not kept (the one with a PAN element above).
    assert_eq!(
        env.count(
            "SELECT COUNT(*) FROM entries WHERE status = 'rejected' AND recovery IS NOT NULL"
        ),
        0
    );

    // The other order: a TC for an ATC a recovered debit claimed is booked (the cryptogram
    // proves it), and `central-server recovered` flags the recovered one.
    card.atc = 7;
    term.approved_payment(&mut card, 330);
    let (code, out, err) = term.run_agent("once", &server.url, &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("booked 1"), "{out}");
    let listed = env.admin(&["recovered"]);
    let flags: Vec<(&str, &str)> = listed
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[6], f[8])
        })
        .collect();
    assert_eq!(flags, vec![("2", "-"), ("7", "CLASH")], "{listed}");
}
