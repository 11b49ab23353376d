//! ARQC verifications (with ARPC) per second: in-process, and over TCP with 1 to 64 concurrent
//! clients, against the 10,000/s of the top licence tier of a commercial payment HSM.
//!
//! Run: `cargo bench -p hsm-sim --bench hsm_throughput` (clients and server share the machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::sm4::Sm4MacRule;
use hsm_sim::client::{ArqcRequest, BlockingClient, Call, HsmClient, InProcess};
use hsm_sim::server::BackgroundServer;
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

const PEER_NAME: &str = "payment HSM, top licence tier (10,000/s)";

const PEER_PER_SECOND: f64 = 10_000.0;
const PAN: &str = "6217000010001234567";

struct Case {
    data: Vec<u8>,
    atc: u16,
    arqc: [u8; 8],
}

fn cases(alg: CardAlgorithm, imk: &[u8]) -> Vec<Case> {
    let imk = CardKey::from_slice(alg, imk).unwrap();
    let card = kdf::derive_card_key(&imk, PAN, Some("01")).unwrap();
    (0..256u16)
        .map(|atc| {
            let data = hex::decode(format!(
                "{:012}000000000000015600000000000156251128000012345678{:04X}041E0302",
                u64::from(atc) * 100,
                atc
            ))
            .unwrap();
            let sk = kdf::derive_session_key(&card, atc);
            let arqc = kdf::application_cryptogram(&sk, &data, Sm4MacRule::default());
            Case { data, atc, arqc }
        })
        .collect()
}

fn run<C: Call>(
    c: &mut HsmClient<C>,
    label: &str,
    cases: &[Case],
    stop: &AtomicBool,
    done: &AtomicU64,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let case = &cases[i % cases.len()];
        let q = ArqcRequest {
            mk_ac: label,
            pan: PAN,
            psn: "01",
            atc: case.atc,
            data: &case.data,
            arqc: case.arqc,
            arc: *b"00",
        };
        c.verify_arqc(&q).unwrap();
        done.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

fn measure(secs: f64, threads: usize, work: impl Fn(&AtomicBool, &AtomicU64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| work(&stop, &done));
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    // `BENCH_CLIENTS=1,2,4,...` sets the client counts (default 1, 4, 16, 64).
    let client_counts: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 4, 16, 64]);
    let hsm = Hsm::in_memory(
        Lmk::from_hex("00112233445566778899AABBCCDDEEFF").unwrap(),
        4,
    )
    .unwrap();
    let tdes_imk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
    let sm4_imk = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
    hsm.form_key_from_components("IMKAC001", KeyType::MkAc, Scheme::Tdes, &[&tdes_imk])
        .unwrap();
    hsm.form_key_from_components("IMKSM401", KeyType::MkAc, Scheme::Sm4, &[&sm4_imk])
        .unwrap();
    let hsm = Arc::new(hsm);
    let server = BackgroundServer::start(Arc::clone(&hsm), "127.0.0.1:0", 2).unwrap();

    println!(
        "hsm-sim: ARQC verification + ARPC per second ({secs} s per row; peer: 10,000/s, the top licence tier of a commercial payment HSM)"
    );
    println!();
    println!("| algorithm | transport | clients | per second | vs 10,000/s |");
    println!("|---|---|---:|---:|---:|");
    for (name, alg, label, imk) in [
        ("3DES", CardAlgorithm::Tdes, "IMKAC001", &tdes_imk),
        ("SM4", CardAlgorithm::Sm4, "IMKSM401", &sm4_imk),
    ] {
        let cases = cases(alg, imk);
        let rate = measure(secs, 1, |stop, done| {
            let mut c = HsmClient::new(InProcess::new(Arc::clone(&hsm)));
            run(&mut c, label, &cases, stop, done);
        });
        println!(
            "| {name} | in-process | 1 | {rate:.0} | {:.2} |",
            rate / PEER_PER_SECOND
        );
        emit::record(
            "hsm_throughput",
            &format!("{name} ARQC+ARPC, in-process, 1 client"),
            "/s",
            rate,
        )
        .peer(PEER_NAME, Some(PEER_PER_SECOND))
        .goal_ratio(1.0)
        .emit();
        for clients in client_counts.iter().copied() {
            let rate = measure(secs, clients, |stop, done| {
                let mut c = HsmClient::new(BlockingClient::connect(server.addr(), 4).unwrap());
                run(&mut c, label, &cases, stop, done);
            });
            println!(
                "| {name} | TCP | {clients} | {rate:.0} | {:.2} |",
                rate / PEER_PER_SECOND
            );
            // One client is bound by its round-trip latency, not by the HSM: no goal there.
            let r = emit::record(
                "hsm_throughput",
                &format!(
                    "{name} ARQC+ARPC, TCP, {clients} client{}",
                    if clients == 1 { "" } else { "s" }
                ),
                "/s",
                rate,
            )
            .peer(PEER_NAME, Some(PEER_PER_SECOND))
            .plot("hsm_clients", &format!("{name} over TCP"), clients as f64);
            if clients > 1 { r.goal_ratio(1.0) } else { r }.emit();
        }
    }
    server.stop().unwrap();
}
