//! Throughput of `card_core::crypto` next to OpenSSL's on the same machine, in one run:
//! SM2 sign and verify per second, SM3 and SM4-ECB in MB/s (16 KiB buffers). OpenSSL's figures
//! come from `openssl speed -mr` (machine-readable), run as a subprocess; without the binary
//! the OpenSSL column says so.
//!
//! `cargo bench -p card-core --bench crypto` prints a markdown table. SM2 signing here builds
//! the `sm2` crate's signer for each signature from the zeroizing secret key (the crate's
//! signer does not zeroize), which costs one extra base-point multiplication per signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey};
use card_core::crypto::sm3;
use card_core::crypto::sm4::Sm4Key;

#[path = "../../bench-report/src/emit.rs"]
mod emit;

const RUN: Duration = Duration::from_secs(1);
const BUF: usize = 16 * 1024;

/// Operations per second of `f`, run for about `RUN` after a short warm-up.
fn per_second(mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < RUN / 10 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Output of `openssl speed -seconds 1 -mr ARGS`, or None without OpenSSL.
fn openssl_speed(args: &[&str]) -> Option<String> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "1", "-mr"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `+F7:0:256:CurveSM2:<sign/s>:<verify/s>` from `openssl speed -mr sm2`.
fn openssl_sm2() -> Option<(f64, f64)> {
    let text = openssl_speed(&["sm2"])?;
    let line = text.lines().find(|l| l.starts_with("+F7:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    let sign = fields.get(4)?.parse().ok()?;
    let verify = fields.get(5)?.parse().ok()?;
    Some((sign, verify))
}

/// `+F:<n>:<name>:<bytes/s>` from `openssl speed -mr -bytes 16384 -evp NAME`, in MB/s.
fn openssl_evp_mb_s(name: &str) -> Option<f64> {
    let bytes = BUF.to_string();
    let text = openssl_speed(&["-bytes", &bytes, "-evp", name])?;
    let line = text.lines().find(|l| l.starts_with("+F:"))?;
    let bytes_per_s: f64 = line.rsplit(':').next()?.parse().ok()?;
    Some(bytes_per_s / 1e6)
}

fn openssl_version() -> String {
    Command::new("openssl")
        .arg("version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .into()
        })
        .unwrap_or_else(|| "OpenSSL".into())
}

fn row(name: &str, unit: &str, ours: f64, theirs: Option<f64>) {
    // Goals (issue 3): at least OpenSSL's rate for SM2 and SM3; SM4 has none.
    let r = emit::record("crypto", name, unit, ours).peer(&openssl_version(), theirs);
    if name.starts_with("SM4") {
        r
    } else {
        r.goal_ratio(1.0)
    }
    .emit();
    match theirs {
        Some(t) => println!(
            "| {name} | {ours:.0} {unit} | {t:.0} {unit} | {:.2} |",
            ours / t
        ),
        None => println!("| {name} | {ours:.0} {unit} | not measured (no openssl) | - |"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    let key = Sm2PrivateKey::generate_os().unwrap();
    let public = *key.public_key();
    let message = b"20-byte test message";
    let sig = key.sign(DEFAULT_ID, message).unwrap();

    let sign = per_second(|| {
        black_box(key.sign(DEFAULT_ID, black_box(message)).unwrap());
    });
    let verify = per_second(|| {
        public
            .verify(DEFAULT_ID, black_box(message), black_box(&sig))
            .unwrap();
    });
    let data = vec![0x5au8; BUF];
    let sm3_mb_s = per_second(|| {
        black_box(sm3::digest(black_box(&data)));
    }) * BUF as f64
        / 1e6;
    let sm4 = Sm4Key::new([0x42; 16]);
    let mut buf = vec![0u8; BUF];
    let sm4_mb_s = per_second(|| {
        sm4.encrypt_ecb_in_place(black_box(&mut buf)).unwrap();
    }) * BUF as f64
        / 1e6;

    let ossl_sm2 = openssl_sm2();
    let ossl_sm3 = openssl_evp_mb_s("sm3");
    let ossl_sm4 = openssl_evp_mb_s("sm4-ecb");

    println!();
    println!(
        "| operation | card-core (RustCrypto) | {} | ratio |",
        openssl_version()
    );
    println!("|---|---|---|---|");
    row(
        "SM2 sign (message, ID 1234567812345678)",
        "/s",
        sign,
        ossl_sm2.map(|s| s.0),
    );
    row(
        "SM2 verify (message, ID 1234567812345678)",
        "/s",
        verify,
        ossl_sm2.map(|s| s.1),
    );
    row("SM3, 16 KiB buffers", "MB/s", sm3_mb_s, ossl_sm3);
    row("SM4-ECB, 16 KiB buffers", "MB/s", sm4_mb_s, ossl_sm4);
    println!();
    println!("ratio = card-core / OpenSSL; above 1 is faster here.");
}
