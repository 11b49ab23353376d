//! reader-driver's GemPC Twin serial layer on arbitrary line bytes: the frame parser never
//! panics and never yields a frame longer than a GemPC Twin carries; every frame it yields
//! has a zero XOR, encodes back to the very bytes it came from and parses again to itself;
//! the CCID response parser, the T=1 block parser and the T=0 TPDU mapping take any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use reader_driver::serial::frame::{self, Decoder, HEADER_LEN, Item, MAX_MESSAGE};
use reader_driver::serial::{ccid, t1, tpdu};

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new();
    for item in d.feed(data) {
        if let Ok(Item::Frame(m)) = item {
            assert!(m.len() >= HEADER_LEN && m.len() <= MAX_MESSAGE);
            let f = frame::encode(&m).expect("a decoded message encodes");
            assert_eq!(frame::lrc(&f), 0);
            let mut again = Decoder::new();
            assert_eq!(again.feed(&f), vec![Ok(Item::Frame(m.clone()))]);
            if let Ok(r) = ccid::Response::parse(&m) {
                assert_eq!(r.data.len() + HEADER_LEN, m.len());
            }
        }
    }
    let _ = ccid::Response::parse(data);
    if let Ok(t1::Block::I { data: inf, .. }) = t1::decode(data) {
        assert_eq!(inf.len() + 4, data.len());
    }
    if let Ok(t) = tpdu::t0_tpdu(data) {
        assert!(t.len() >= 5 && t.len() <= data.len() + 1);
    }
});
