//! A fixed number of `KQ` (ARQC verification + ARPC) commands in process, for a profiler: the
//! count of instructions per command does not wander with the machine's load as a rate does.
//!
//! ```sh
//! cargo build --release -p hsm-sim --example kq_profile
//! perf stat -e instructions:u target/release/examples/kq_profile 3DES 20000
//! perf record -g target/release/examples/kq_profile SM4 20000
//! ```
//!
//! docs/benchmarks.md ("Profile of the slowest ratio") has what it showed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::sm4::Sm4MacRule;
use hsm_sim::client::{ArqcRequest, HsmClient, InProcess};
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

const PAN: &str = "6217000010001234567";

fn main() {
    let mut args = std::env::args().skip(1);
    let alg_name = args.next().unwrap_or_else(|| "SM4".into());
    let n: u16 = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let (alg, scheme, imk) = match alg_name.as_str() {
        "3DES" => (
            CardAlgorithm::Tdes,
            Scheme::Tdes,
            "0123456789ABCDEFFEDCBA9876543210",
        ),
        _ => (
            CardAlgorithm::Sm4,
            Scheme::Sm4,
            "00112233445566778899AABBCCDDEEFF",
        ),
    };
    let imk = hex::decode(imk).unwrap();
    let hsm = Hsm::in_memory(
        Lmk::from_hex("00112233445566778899AABBCCDDEEFF").unwrap(),
        4,
    )
    .unwrap();
    hsm.form_key_from_components("IMKAC001", KeyType::MkAc, scheme, &[&imk])
        .unwrap();
    let card =
        kdf::derive_card_key(&CardKey::from_slice(alg, &imk).unwrap(), PAN, Some("01")).unwrap();
    let data = hex::decode("000000001000000000000000015600000000000156251128000012345678").unwrap();
    // The cryptograms are made before the measured loop starts.
    let arqcs: Vec<[u8; 8]> = (0..n)
        .map(|atc| {
            kdf::application_cryptogram(
                &kdf::derive_session_key(&card, atc),
                &data,
                Sm4MacRule::default(),
            )
        })
        .collect();
    let mut c = HsmClient::new(InProcess::new(Arc::new(hsm)));
    let started = std::time::Instant::now();
    for (atc, arqc) in (0..n).zip(&arqcs) {
        c.verify_arqc(&ArqcRequest {
            mk_ac: "IMKAC001",
            pan: PAN,
            psn: "01",
            atc,
            data: &data,
            arqc: *arqc,
            arc: *b"00",
        })
        .unwrap();
    }
    let t = started.elapsed();
    println!(
        "{alg_name}: {n} KQ in {:.3} s, {:.0}/s",
        t.as_secs_f64(),
        f64::from(n) / t.as_secs_f64()
    );
}
