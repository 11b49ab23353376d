//! hsm-sim's host-command parser: any message bytes are answered, never with a panic; the
//! answer echoes the header, carries the response code of the command (or `ZZ` for a frame
//! that could not be split), a known error code, and no fields unless the code is `00`.

#![no_main]

use std::sync::{Arc, OnceLock};

use hsm_sim::client::{HsmClient, InProcess};
use hsm_sim::frame::{parse_response, response_code};
use hsm_sim::{ErrorCode, Hsm, KeyType, Lmk, Scheme};
use libfuzzer_sys::fuzz_target;

fn hsm() -> &'static Arc<Hsm> {
    static HSM: OnceLock<Arc<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let lmk = Lmk::from_hex("00112233445566778899AABBCCDDEEFF").expect("LMK");
        let hsm = Arc::new(Hsm::in_memory(lmk, 4).expect("HSM"));
        let imk = [0x11u8; 16];
        hsm.form_key_from_components("IMKAC001", KeyType::MkAc, Scheme::Tdes, &[&imk]).expect("IMK");
        hsm.form_key_from_components("ZMK00001", KeyType::Zmk, Scheme::Sm4, &[&imk]).expect("ZMK");
        hsm.form_key_from_components("ZAK00001", KeyType::Zak, Scheme::Sm4, &[&imk]).expect("ZAK");
        hsm.form_key_from_components("MNTMK001", KeyType::MkMnt, Scheme::Sm4, &[&imk]).expect("MNT");
        let mut c = HsmClient::new(InProcess::new(Arc::clone(&hsm)));
        c.generate_key(KeyType::Sm2Ca, Scheme::Sm2, "CAROOT01").expect("CA");
        hsm
    })
}

fuzz_target!(|data: &[u8]| {
    // Commands that write the key store or the audit log are not fuzzed (the log would grow
    // without bound); the frame and field parsers of every other command are.
    if matches!(data.get(4..6), Some(b"A0" | b"A6" | b"A8" | b"KD" | b"KF" | b"K3")) {
        return;
    }
    let response = hsm().execute(data);
    let parsed = parse_response(&response, 4).expect("every answer parses");
    if data.len() >= 6 && data[..6].iter().all(|b| (0x20..0x7f).contains(b)) {
        assert_eq!(parsed.header, &data[..4]);
        assert_eq!(parsed.code, response_code([data[4], data[5]]));
    } else {
        assert_eq!(&parsed.code, b"ZZ");
    }
    if parsed.error != ErrorCode::Ok {
        assert!(parsed.body.is_empty());
    }
});
