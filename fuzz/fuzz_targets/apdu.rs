//! Command and response APDUs: whatever parses encodes again and parses back to the same
//! value; the encoding is canonical.

#![no_main]

use card_core::apdu::{Command, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        let bytes = cmd.to_bytes().expect("a parsed command encodes");
        let again = Command::parse(&bytes).expect("the encoding parses");
        assert_eq!(again, cmd);
        assert_eq!(
            again.to_bytes().as_ref(),
            Ok(&bytes),
            "encoding is canonical"
        );

        assert_eq!(bytes[..4], data[..4], "header kept");
        assert_eq!(cmd.case().is_extended(), cmd.needs_extended());
        match cmd.to_short_bytes() {
            Ok(short) => assert_eq!(short, bytes),
            Err(_) => assert!(cmd.needs_extended()),
        }
        // The encoder picks the short form whenever it can, so it reproduces the input exactly
        // unless the input used the extended form for lengths that did not need it.
        let input_extended = data.len() > 5 && data[4] == 0;
        assert!(bytes.len() <= data.len());
        assert_eq!(
            bytes == data,
            !input_extended || cmd.needs_extended(),
            "input {data:02X?} re-encoded as {bytes:02X?}"
        );
    }

    match Response::from_bytes(data) {
        Ok(resp) => {
            assert_eq!(resp.to_bytes(), data);
            assert_eq!(resp.data(), &data[..data.len() - 2]);
            assert_eq!(resp.sw().to_bytes(), data[data.len() - 2..]);
            assert_eq!(Response::from_vec(data.to_vec()).as_ref(), Ok(&resp));
        }
        Err(_) => assert!(data.len() < 2),
    }
});
