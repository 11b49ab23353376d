//! BER-TLV parsing: card-core's parser (`card_core::tlv`) next to the `iso7816-tlv` crate, in one
//! run, on inputs shaped like what a terminal parses: the FCI of a payment application, a PBOC
//! record template (`70`), a GPO response in format 2 (`77`) and a big nested template (100
//! records in one `E1`, 12 KiB; the tag looked up is in the last one). The inputs are built with
//! card-core's encoder; both parsers must agree on every one before anything is timed.
//!
//! Two operations per input: parse the whole input into an owned tree (`Tlv::parse_all` on
//! both sides), and find one nested tag (card-core's zero-copy `TlvIter::find_deep`; the
//! crate has no borrowed walk, so its way is `Tlv::parse_all` then `find`). Prints ns per
//! operation and the ratio; with `BENCH_JSON=path` also JSON lines (crates/bench-report).
//!
//! Run: `cargo bench -p card-core --bench tlv` (`BENCH_SECONDS`, default 0.3, per sample;
//! three samples per side, alternating).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use card_core::tlv::{Tag, Tlv, TlvIter};

#[path = "../../bench-report/src/emit.rs"]
mod emit;

fn tag(t: u32) -> Tag {
    Tag::try_from_u32(t).unwrap()
}

fn p(t: u32, v: &[u8]) -> Tlv {
    Tlv::primitive(tag(t), v.to_vec())
}

fn c(t: u32, children: Vec<Tlv>) -> Tlv {
    Tlv::constructed(tag(t), children)
}

fn fci() -> Vec<u8> {
    c(
        0x6f,
        vec![
            p(0x84, &[0xa0, 0, 0, 0x03, 0x33, 0x01, 0x01, 0x01]),
            c(
                0xa5,
                vec![
                    p(0x50, b"PBOC DEBIT"),
                    p(0x87, &[0x01]),
                    p(
                        0x9f38,
                        &[
                            0x9f, 0x66, 0x04, 0x9f, 0x02, 0x06, 0x9f, 0x37, 0x04, 0x5f, 0x2a, 0x02,
                        ],
                    ),
                    p(0x5f2d, b"zhen"),
                    p(0x9f11, &[0x01]),
                    c(0xbf0c, vec![p(0x9f4d, &[0x0b, 0x0a])]),
                ],
            ),
        ],
    )
    .to_bytes()
    .unwrap()
}

fn record_template(n: u8) -> Tlv {
    c(
        0x70,
        vec![
            p(
                0x57,
                &[
                    0x62, 0x17, 0, 0, 0x10, 0, 0x12, 0x34, 0x56, 0x7d, 0x30, 0x12, 0x20, 0x10, 0,
                    0, 0, 0, 0x0f,
                ],
            ),
            p(0x5f20, b"ZHANG SAN                 "),
            p(0x5f24, &[0x30, 0x12, 0x31]),
            p(0x5a, &[0x62, 0x17, 0, 0, 0x10, 0, 0x12, 0x34, 0x56, 0x7f]),
            p(0x5f34, &[n]),
            p(0x9f07, &[0xff, 0x00]),
            p(
                0x8e,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x03, 0x1e, 0x03, 0x1f, 0x03],
            ),
            p(0x9f0d, &[0xd8, 0x60, 0x04, 0xa8, 0x00]),
            p(0x9f0e, &[0x00, 0x10, 0x98, 0x00, 0x00]),
            p(0x9f0f, &[0xd8, 0x68, 0x04, 0xf8, 0x00]),
            p(0x5f28, &[0x01, 0x56]),
        ]
        .into_iter()
        // The application version only in the last record: finding it walks them all.
        .chain((n == 99).then(|| p(0x9f08, &[0x00, 0x30])))
        .collect(),
    )
}

fn gpo() -> Vec<u8> {
    c(
        0x77,
        vec![
            p(0x82, &[0x7c, 0x00]),
            p(
                0x94,
                &[
                    0x08, 0x01, 0x01, 0x00, 0x10, 0x01, 0x04, 0x01, 0x18, 0x01, 0x02, 0x00, 0x20,
                    0x01, 0x01, 0x00,
                ],
            ),
            p(0x9f36, &[0x00, 0x2a]),
            p(0x9f26, &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]),
            p(
                0x9f10,
                &[
                    0x07, 0x01, 0x01, 0x03, 0xa0, 0x00, 0x00, 0x01, 0x0a, 0x01, 0, 0, 0, 0, 0,
                    0x12, 0x34, 0x56, 0x78,
                ],
            ),
            p(0x9f4b, &[0x5a; 64]),
        ],
    )
    .to_bytes()
    .unwrap()
}

fn big() -> Vec<u8> {
    c(0xe1, (0..100u8).map(record_template).collect())
        .to_bytes()
        .unwrap()
}

/// Nanoseconds per call of `f`, three samples of `secs` each, alternating with `g`; returns
/// (ns of f, ns of g).
fn alternate(secs: f64, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    let run = |h: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs_f64(secs) {
            for _ in 0..64 {
                h();
            }
            n += 64;
        }
        (n, start.elapsed())
    };
    let (mut nf, mut tf, mut ng, mut tg) = (0u64, Duration::ZERO, 0u64, Duration::ZERO);
    run(&mut f);
    run(&mut g);
    for _ in 0..3 {
        let (n, t) = run(&mut f);
        nf += n;
        tf += t;
        let (n, t) = run(&mut g);
        ng += n;
        tg += t;
    }
    (
        tf.as_secs_f64() * 1e9 / nf as f64,
        tg.as_secs_f64() * 1e9 / ng as f64,
    )
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.3);
    let inputs: [(&str, Vec<u8>, u32); 4] = [
        ("FCI of the payment application (6F)", fci(), 0x9f4d),
        (
            "PBOC record template (70)",
            record_template(1).to_bytes().unwrap(),
            0x5f28,
        ),
        ("GPO response, format 2 (77)", gpo(), 0x9f4b),
        ("100 records in one template (E1)", big(), 0x9f08),
    ];
    println!(
        "BER-TLV parsing: card-core against the iso7816-tlv crate ({secs} s × 3 samples per side)"
    );
    println!();
    println!("| input | bytes | operation | card-core ns | iso7816-tlv ns | ratio |");
    println!("|---|---:|---|---:|---:|---:|");
    for (name, bytes, find) in &inputs {
        // Both parsers read the same tree.
        let ours = Tlv::parse_all(bytes).unwrap();
        let theirs = iso7816_tlv::ber::Tlv::parse_all(bytes);
        assert_eq!(ours.len(), theirs.len(), "{name}");
        assert_eq!(ours.len(), 1, "{name}");
        // (Not the re-encoding: iso7816-tlv writes a length of 127 in the long form, `81 7F`.)
        match theirs[0].value() {
            iso7816_tlv::ber::Value::Constructed(v) => {
                assert_eq!(v.len(), ours[0].children().len(), "{name}");
            }
            other => panic!("{name}: iso7816-tlv read {other:?}"),
        }
        let want = TlvIter::new(bytes)
            .find_deep(tag(*find))
            .unwrap()
            .expect("tag present")
            .value;
        let their_tag = iso7816_tlv::ber::Tag::try_from(*find as u64).unwrap();
        match theirs[0].find(&their_tag).map(|t| t.value()) {
            Some(iso7816_tlv::ber::Value::Primitive(v)) => assert_eq!(v.as_slice(), want),
            other => panic!("{name}: iso7816-tlv found {other:?}"),
        }

        let (a, b) = alternate(
            secs,
            || {
                black_box(Tlv::parse_all(black_box(bytes)).unwrap());
            },
            || {
                black_box(iso7816_tlv::ber::Tlv::parse_all(black_box(bytes)));
            },
        );
        let (fa, fb) = alternate(
            secs,
            || {
                black_box(
                    TlvIter::new(black_box(bytes))
                        .find_deep(tag(*find))
                        .unwrap(),
                );
            },
            || {
                let all = iso7816_tlv::ber::Tlv::parse_all(black_box(bytes));
                black_box(all.iter().find_map(|t| t.find(&their_tag)).is_some());
            },
        );
        for (op, ours_ns, peer_ns) in [
            ("parse into a tree", a, b),
            (&*format!("find {:X} (ours zero-copy)", find), fa, fb),
        ] {
            println!(
                "| {name} | {} | {op} | {ours_ns:.0} | {peer_ns:.0} | {:.3} |",
                bytes.len(),
                ours_ns / peer_ns
            );
            emit::record(
                "tlv",
                &format!("{name}, {} bytes: {op} (ns)", bytes.len()),
                "ns",
                ours_ns,
            )
            .peer("iso7816-tlv 0.4", Some(peer_ns))
            .lower_is_better()
            .emit();
        }
    }
    println!();
    println!("ratio = card-core / iso7816-tlv (time); below 1 is faster here.");
}
