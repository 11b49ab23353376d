//! Ledger and sync benchmarks (issue 5), one run, printing markdown tables:
//!
//! 1. durable ledger appends (the write-ahead intent, one `synchronous=FULL` commit each)
//!    against raw SQLite inserts of a row of the same shape with the same pragmas, in
//!    alternating rounds;
//! 2. entries uploaded and booked end to end over loopback HTTP, every cryptogram verified by
//!    hsm-sim over TCP, the server on SQLite (`synchronous=FULL`): 100,000 entries from one
//!    terminal, then scaling with the batch size and with the number of terminals.
//!
//! `BENCH_ENTRIES` (default 100000) and `BENCH_SCALE_ENTRIES` (default 20000) size part 2;
//! `BENCH_APPENDS` (default 2000) sizes part 1.
//!
//! 3. appends against the ledger's size: the ledger and the raw table are pre-filled to each of
//!    `BENCH_LEDGER_SIZES` (default `1000,10000,100000`; `scripts/bench-report.sh` goes to 10M)
//!    by bulk inserts of rows of the same shape (one transaction per 100,000 rows, no fsync), then
//!    `BENCH_SIZE_APPENDS` (default 200) durable appends are timed on each side, alternating.
//!
//! `BENCH_BATCHES` (default `10,50,200,500,1000`) and `BENCH_TERMINALS` (default `1,2,4,8`)
//! choose the scaling runs. With `BENCH_JSON=path` every figure is also appended there as a
//! JSON line (crates/bench-report).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_sync::agent::backoff::RetryPolicy;
use backend_sync::agent::{Agent, AgentConfig, SyncReport};
use backend_sync::entry::{CNY, EntryKind, TerminalId, TxnTime};
use backend_sync::field_crypto::FieldKey;
use backend_sync::ledger::{self, Durability, Ledger, NewPayment, Outcome};
use backend_sync::server::db::DbUrl;
use backend_sync::server::hsm::HsmConfig;
use backend_sync::server::{AppState, ServerConfig, admin};
use backend_sync::testkit::{self, TestCard};
use card_core::crypto::sm2::Sm2PrivateKey;
use hsm_sim::server::BackgroundServer;
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

const FIELD_KEY: &str = "000102030405060708090A0B0C0D0E0F";

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

const RAW_TABLE: &str = "CREATE TABLE entries (seq INTEGER PRIMARY KEY,
    idempotency_id TEXT NOT NULL UNIQUE, batch_no INTEGER NOT NULL, kind TEXT NOT NULL,
    amount_fen INTEGER NOT NULL, currency INTEGER NOT NULL, pan_masked TEXT NOT NULL,
    pan_index BLOB NOT NULL, pan_enc BLOB NOT NULL, psn_enc BLOB NOT NULL,
    txn_time TEXT NOT NULL, created_at INTEGER NOT NULL)";

const RAW_INSERT: &str =
    "INSERT INTO entries VALUES (?1, ?2, 1, 'ec_purchase', 100, 156, ?3, ?4, ?5, ?6, ?7, ?8)";

/// One autocommit INSERT of a ledger-shaped row (the peer of `Ledger::begin_payment`).
fn raw_insert(raw: &rusqlite::Connection, seq: i64, masked: &str) {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).unwrap();
    raw.prepare_cached(RAW_INSERT)
        .unwrap()
        .execute(rusqlite::params![
            seq,
            hex::encode(id),
            masked,
            vec![0u8; 32],
            vec![0u8; 81],
            vec![0u8; 65],
            "20250301101500",
            seq
        ])
        .unwrap();
}

/// Bulk-fill the `entries` table at `path` up to `target` rows with ledger-shaped rows (random
/// idempotency ids, so the unique index grows as the ledger's does), 100,000 rows per
/// transaction, without fsync: set-up, not measured.
fn prefill(path: &Path, target: usize, masked: &str, rng: &mut u64) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -400000;",
    )
    .unwrap();
    let mut have: i64 = c
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM entries", [], |r| {
            r.get(0)
        })
        .unwrap();
    let (idx, enc_pan, enc_psn) = (vec![7u8; 32], vec![0u8; 81], vec![0u8; 65]);
    while (have as usize) < target {
        let tx = c.transaction().unwrap();
        {
            let mut st = tx.prepare_cached(RAW_INSERT).unwrap();
            let end = (have as usize + 100_000).min(target) as i64;
            while have < end {
                have += 1;
                // xorshift64*: cheap, unique enough for 10M ids with the sequence number in it.
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let id = format!(
                    "{:016x}{:016x}",
                    rng.wrapping_mul(0x2545_f491_4f6c_dd1d),
                    have
                );
                st.execute(rusqlite::params![
                    have,
                    id,
                    masked,
                    &idx,
                    &enc_pan,
                    &enc_psn,
                    "20250301101500",
                    have
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
}

/// Part 3: durable appends per second at each ledger size, ours against raw SQLite.
fn appends_by_size(dir: &Path, sizes: &[usize], appends: usize) -> Vec<(usize, f64, f64)> {
    let tid: TerminalId = "BENCH-S".parse().unwrap();
    let (lpath, rpath) = (dir.join("size-ledger.db"), dir.join("size-raw.db"));
    let card = TestCard::demo_sm4(3).unwrap();
    let masked = card.pan.masked();
    drop(Ledger::open(&lpath, &tid, FieldKey::from_hex(FIELD_KEY).unwrap()).unwrap());
    {
        let raw = rusqlite::Connection::open(&rpath).unwrap();
        raw.execute_batch(ledger::pragmas(Durability::Full))
            .unwrap();
        raw.execute_batch(RAW_TABLE).unwrap();
        // The ledger's other index on entries.
        raw.execute_batch("CREATE INDEX entries_by_batch ON entries(batch_no, seq)")
            .unwrap();
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::new();
    for &size in sizes {
        prefill(&lpath, size, &masked, &mut rng);
        prefill(&rpath, size, &masked, &mut rng);
        // Write both files out before timing: otherwise the kernel is still writing back the
        // gigabytes just inserted while the appends' fsyncs wait behind it, and the side
        // filled last loses (a first 10M run measured the raw side at a ninth of the ledger).
        for p in [&lpath, &rpath] {
            std::fs::File::open(p).unwrap().sync_all().unwrap();
        }
        let mut l = Ledger::open(&lpath, &tid, FieldKey::from_hex(FIELD_KEY).unwrap()).unwrap();
        let raw = rusqlite::Connection::open(&rpath).unwrap();
        raw.execute_batch(ledger::pragmas(Durability::Full))
            .unwrap();
        let mut seq: i64 = raw
            .query_row("SELECT MAX(seq) FROM entries", [], |r| r.get(0))
            .unwrap();
        // Warm both (page cache, prepared statements).
        for _ in 0..10 {
            l.begin_payment(&payment(&card, 100)).unwrap();
            seq += 1;
            raw_insert(&raw, seq, &masked);
        }
        // Many short rounds: the fsync time of this disk wanders, and the sides should meet
        // the same weather.
        let rounds = 10;
        let per = (appends / rounds).max(1);
        let (mut t_l, mut t_r) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..per {
                l.begin_payment(&payment(&card, 100)).unwrap();
            }
            t_l += t.elapsed();
            let t = Instant::now();
            for _ in 0..per {
                seq += 1;
                raw_insert(&raw, seq, &masked);
            }
            t_r += t.elapsed();
        }
        let n = (per * rounds) as f64;
        out.push((size, n / t_l.as_secs_f64(), n / t_r.as_secs_f64()));
    }
    out
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payment(card: &TestCard, amount: u64) -> NewPayment {
    NewPayment {
        kind: EntryKind::EcPurchase,
        amount_fen: amount,
        currency: CNY,
        pan: card.pan.clone(),
        psn: card.psn.clone(),
        txn_time: "20250301101500".parse().unwrap(),
    }
}

/// Part 1: appends per second, ledger against raw inserts, alternating rounds.
fn ledger_vs_raw(dir: &Path, n: usize) -> (f64, f64) {
    let tid: TerminalId = "BENCH-L".parse().unwrap();
    let mut l = Ledger::open(
        &dir.join("ledger.db"),
        &tid,
        FieldKey::from_hex(FIELD_KEY).unwrap(),
    )
    .unwrap();
    let raw = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    raw.execute_batch(ledger::pragmas(Durability::Full))
        .unwrap();
    raw.execute_batch(RAW_TABLE).unwrap();
    let card = TestCard::demo_sm4(1).unwrap();
    let rounds = 10;
    let per = (n / rounds).max(1);
    let (mut t_ledger, mut t_raw) = (Duration::ZERO, Duration::ZERO);
    let mut seq = 0i64;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per {
            l.begin_payment(&payment(&card, 100)).unwrap();
        }
        t_ledger += t.elapsed();
        let t = Instant::now();
        for _ in 0..per {
            seq += 1;
            raw_insert(&raw, seq, &card.pan.masked());
        }
        t_raw += t.elapsed();
    }
    let total = (per * rounds) as f64;
    (total / t_ledger.as_secs_f64(), total / t_raw.as_secs_f64())
}

fn start_hsm() -> BackgroundServer {
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
    BackgroundServer::start(Arc::new(hsm), "127.0.0.1:0", 1).unwrap()
}

struct ServerRun {
    url: String,
    state: Arc<AppState>,
    _thread: std::thread::JoinHandle<()>,
}

fn start_server(dir: &Path, hsm: &str) -> ServerRun {
    let (tx, rx) = std::sync::mpsc::channel();
    let db = dir.join("central.db");
    let hsm = hsm.to_string();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state = AppState::new(ServerConfig {
                db: DbUrl::Sqlite(db),
                db_pool: 4,
                hsm: HsmConfig {
                    addr: hsm,
                    header_len: 4,
                    mk_tdes: testkit::DEMO_MK_TDES_LABEL.into(),
                    mk_sm4: testkit::DEMO_MK_SM4_LABEL.into(),
                    connections: 8,
                    timeout: Duration::from_secs(10),
                },
                server_key: Sm2PrivateKey::generate_os().unwrap(),
                field_key: FieldKey::from_hex("0F0E0D0C0B0A09080706050403020100").unwrap(),
                window_secs: 300,
                ssse_trust: None,
            })
            .await
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((
                format!("http://{}", listener.local_addr().unwrap()),
                Arc::clone(&state),
            ))
            .unwrap();
            backend_sync::server::serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
    });
    let (url, state) = rx.recv().unwrap();
    ServerRun {
        url,
        state,
        _thread: thread,
    }
}

/// A terminal with `n` approved entries in its ledger (filled without fsync: setup only).
fn fill_terminal(dir: &Path, id: &str, n: usize, seed: u64) -> (TerminalId, std::path::PathBuf) {
    let tid: TerminalId = id.parse().unwrap();
    let path = dir.join(format!("{id}.db"));
    let mut l = Ledger::open_with(
        &path,
        &tid,
        FieldKey::from_hex(FIELD_KEY).unwrap(),
        Durability::Relaxed,
    )
    .unwrap();
    let t: TxnTime = "20250301101500".parse().unwrap();
    let mut cards: Vec<TestCard> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                TestCard::demo_sm4(seed * 100 + i)
            } else {
                TestCard::demo_tdes(seed * 100 + i)
            }
            .unwrap()
        })
        .collect();
    for i in 0..n {
        let card = &mut cards[i % 16];
        let amount = 100 + (i as u64 * 7) % 5000;
        let intent = l.begin_payment(&payment(card, amount)).unwrap();
        let r = card.generate_ac(0x40, amount, CNY, &t, EntryKind::EcPurchase);
        l.record_outcome(intent.seq, &Outcome::Approved(r)).unwrap();
    }
    (tid, path)
}

/// Upload `total` entries split over `terminals` terminals with `batch` entries per request;
/// entries per second from the first request to the last answer stored.
fn upload_run(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    server: &ServerRun,
    tag: &str,
    total: usize,
    terminals: usize,
    batch: usize,
) -> f64 {
    let per = total / terminals;
    let mut agents = Vec::new();
    for t in 0..terminals {
        let id = format!("B-{tag}-{t}");
        let (tid, path) = fill_terminal(dir, &id, per, t as u64 + 1);
        let token = rt
            .block_on(admin::add_terminal(
                &server.state.db,
                &tid,
                &"110100".parse().unwrap(),
            ))
            .unwrap();
        let key = Sm2PrivateKey::generate_os().unwrap();
        let mut agent = Agent::open(
            AgentConfig {
                server: server.url.clone(),
                ledger: path,
                terminal: tid,
                ca_pem: None,
                batch_size: batch,
                max_age: Duration::from_secs(86_400 * 365),
                retry: RetryPolicy::default(),
                timeout: Duration::from_secs(60),
            },
            key,
            FieldKey::from_hex(FIELD_KEY).unwrap(),
        )
        .unwrap();
        rt.block_on(agent.register(&token)).unwrap();
        agents.push(agent);
    }
    let start = Instant::now();
    let reports: Vec<SyncReport> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for mut a in agents {
            set.spawn(async move {
                let mut r = SyncReport::default();
                a.upload_pending(&mut r, &mut |_| {}).await.unwrap();
                r
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap());
        }
        out
    });
    let secs = start.elapsed().as_secs_f64();
    let booked: u64 = reports.iter().map(|r| r.upload.booked).sum();
    assert_eq!(booked as usize, per * terminals, "every entry booked");
    booked as f64 / secs
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let appends = env_usize("BENCH_APPENDS", 2000);
    let entries = env_usize("BENCH_ENTRIES", 100_000);
    let scale = env_usize("BENCH_SCALE_ENTRIES", 20_000);

    let (ours, peer) = ledger_vs_raw(dir.path(), appends);
    println!("## Durable ledger appends ({appends} each, alternating rounds)\n");
    println!(
        "| operation | ours (appends/s) | peer: raw SQLite INSERT, same pragmas (/s) | ratio | goal |"
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| write-ahead intent (`begin_payment`, one FULL commit) | {ours:.0} | {peer:.0} | {:.2} | 0.80 |\n",
        ours / peer
    );
    emit::record(
        "sync_bench",
        "durable ledger append (`Ledger::begin_payment`, one FULL commit)",
        "/s",
        ours,
    )
    .peer("raw SQLite INSERT, same pragmas", Some(peer))
    .goal_ratio(0.80)
    .emit();

    let sizes = env_list("BENCH_LEDGER_SIZES", &[1000, 10_000, 100_000]);
    let size_appends = env_usize("BENCH_SIZE_APPENDS", 200);
    if sizes.iter().any(|&s| s > 0) {
        let by_size = appends_by_size(dir.path(), &sizes, size_appends);
        println!(
            "## Durable appends against the ledger's size ({size_appends} each, alternating)\n"
        );
        println!("| entries before | ours (appends/s) | raw SQLite INSERT (/s) | ratio |");
        println!("|---:|---:|---:|---:|");
        for (size, ours, peer) in by_size {
            println!("| {size} | {ours:.0} | {peer:.0} | {:.2} |", ours / peer);
            emit::record(
                "sync_bench",
                &format!("durable ledger append at {size} entries"),
                "/s",
                ours,
            )
            .peer("raw SQLite INSERT, same pragmas and indexes", Some(peer))
            .goal_ratio(0.80)
            .plot("ledger_size", "ours: Ledger::begin_payment", size as f64)
            .emit();
        }
        println!();
        for f in ["size-ledger.db", "size-raw.db"] {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.path().join(format!("{f}{suffix}")));
            }
        }
    }

    let hsm = start_hsm();
    let hsm_addr = hsm.addr().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = start_server(dir.path(), &hsm_addr);

    println!(
        "## End to end: upload, HSM cryptogram check, booking (loopback, 2 cores shared by all)\n"
    );
    println!("| entries | terminals | batch size | booked entries/s | vs 5,000/s |");
    println!("|---:|---:|---:|---:|---:|");
    let r = upload_run(&rt, dir.path(), &server, "main", entries, 1, 500);
    println!("| {entries} | 1 | 500 | {r:.0} | {:.2} |", r / 5000.0);
    emit::record(
        "sync_bench",
        &format!("sync, {entries} entries, 1 terminal, batches of 500 (booked entries/s)"),
        "/s",
        r,
    )
    .goal_ours(5000.0)
    .emit();
    for batch in env_list("BENCH_BATCHES", &[10, 50, 200, 500, 1000]) {
        let r = upload_run(
            &rt,
            dir.path(),
            &server,
            &format!("b{batch}"),
            scale,
            1,
            batch,
        );
        println!("| {scale} | 1 | {batch} | {r:.0} | {:.2} |", r / 5000.0);
        emit::record(
            "sync_bench",
            &format!("sync, {scale} entries, 1 terminal, batches of {batch}"),
            "/s",
            r,
        )
        .goal_ours(5000.0)
        .plot("sync_batch", "booked entries/s, 1 terminal", batch as f64)
        .emit();
    }
    for terminals in env_list("BENCH_TERMINALS", &[1, 2, 4, 8]) {
        let r = upload_run(
            &rt,
            dir.path(),
            &server,
            &format!("t{terminals}"),
            scale,
            terminals,
            500,
        );
        println!(
            "| {scale} | {terminals} | 500 | {r:.0} | {:.2} |",
            r / 5000.0
        );
        emit::record(
            "sync_bench",
            &format!(
                "sync, {scale} entries, {terminals} terminal{}, batches of 500",
                if terminals == 1 { "" } else { "s" }
            ),
            "/s",
            r,
        )
        .goal_ours(5000.0)
        .plot(
            "sync_terminals",
            "booked entries/s, batches of 500",
            terminals as f64,
        )
        .emit();
    }
    drop(hsm);
}
