//! backend-sync's parser of outside bytes: every sync message type and the signature headers.
//! Any input is either refused with an error or parsed; a parsed message serializes and parses
//! back to itself; nothing panics.

#![no_main]

use backend_sync::signing::RequestAuth;
use backend_sync::wire::{
    self, BatchCloseRequest, BatchCloseResponse, CardholderPage, ErrorBody, HotListDelta, Message,
    ParameterSet, RegisterRequest, RegisterResponse, SignedEnvelope, UploadRequest,
    UploadResponse,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: Message + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(v) = wire::parse::<T>(body, wire::MAX_BODY_BYTES) {
        let text = wire::encode(&v);
        let again = wire::parse::<T>(&text, usize::MAX).expect("a serialized message parses");
        assert_eq!(v, again);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 12 {
        0 => round_trip::<UploadRequest>(body),
        1 => round_trip::<UploadResponse>(body),
        2 => round_trip::<SignedEnvelope>(body),
        3 => round_trip::<HotListDelta>(body),
        4 => round_trip::<ParameterSet>(body),
        5 => round_trip::<CardholderPage>(body),
        6 => round_trip::<BatchCloseRequest>(body),
        7 => round_trip::<BatchCloseResponse>(body),
        8 => round_trip::<RegisterRequest>(body),
        9 => round_trip::<RegisterResponse>(body),
        10 => round_trip::<ErrorBody>(body),
        _ => {
            let text = String::from_utf8_lossy(body);
            let mut parts = text.split('\n');
            let _ = RequestAuth::from_headers(parts.next(), parts.next(), parts.next(), parts.next());
            let _ = backend_sync::mac_data::parse(body);
        }
    }
});
