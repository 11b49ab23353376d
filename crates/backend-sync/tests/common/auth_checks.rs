//! The server's request authentication, on either database.

use backend_sync::signing::{self, sign_request, sign_request_with_nonce};
use backend_sync::wire::{self, ErrorBody, ErrorCode, UploadRequest};

use super::*;

/// Requests with a forged signature, a replayed nonce, a stale timestamp or from an unknown
/// terminal are refused with their own codes, and nothing of them is booked (the nonce store is
/// the database's, so this runs on SQLite and PostgreSQL).
pub fn forged_replayed_stale_and_unknown_requests_are_refused(backend: Backend) {
    let env = Env::new(backend);
    let server = env.start_server(0, &[]);
    let term = Term::new("KIOSK-3");
    term.register(&env, &server.url, "110100");
    term.pay(1, 4);
    let l = term.open_ledger();
    let body = wire::encode(&UploadRequest {
        entries: l.pending_upload(10).unwrap(),
    });
    let rt = rt();
    let http = reqwest::Client::new();
    let key = term.signing_key();
    let now = backend_sync::clock::unix_now();
    let send = |h: &signing::SignedHeaders, body: Vec<u8>| {
        let mut req = http.post(format!("{}/v1/entries", server.url));
        for (k, v) in h.pairs() {
            req = req.header(k, v);
        }
        let r = rt.block_on(req.body(body).send()).unwrap();
        let status = r.status().as_u16();
        (status, error_code_or_ok(&rt.block_on(r.bytes()).unwrap()))
    };
    fn error_code_or_ok(b: &[u8]) -> Option<ErrorCode> {
        wire::parse::<ErrorBody>(b, usize::MAX)
            .ok()
            .map(|e| e.error)
    }
    // Body changed after signing.
    let h = sign_request(&key, &term.id, "POST", "/v1/entries", now, &body).unwrap();
    let mut forged = body.clone();
    let at = forged.len() - 3;
    forged[at] = b' ';
    assert_eq!(send(&h, forged), (401, Some(ErrorCode::BadSignature)));
    // Signed by another key.
    let other = card_core::crypto::sm2::Sm2PrivateKey::generate_os().unwrap();
    let h2 = sign_request(&other, &term.id, "POST", "/v1/entries", now, &body).unwrap();
    assert_eq!(
        send(&h2, body.clone()),
        (401, Some(ErrorCode::BadSignature))
    );
    // Signed for another path.
    let h3 = sign_request(&key, &term.id, "POST", "/v1/batches/close", now, &body).unwrap();
    assert_eq!(
        send(&h3, body.clone()),
        (401, Some(ErrorCode::BadSignature))
    );
    // Unknown terminal.
    let h4 = sign_request(
        &key,
        &"NOBODY".parse().unwrap(),
        "POST",
        "/v1/entries",
        now,
        &body,
    )
    .unwrap();
    assert_eq!(
        send(&h4, body.clone()),
        (401, Some(ErrorCode::UnknownTerminal))
    );
    // Stale: ten minutes old and ten minutes ahead.
    for skew in [-600, 600] {
        let h5 = sign_request(&key, &term.id, "POST", "/v1/entries", now + skew, &body).unwrap();
        assert_eq!(
            send(&h5, body.clone()),
            (401, Some(ErrorCode::StaleTimestamp))
        );
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM entries"),
        0,
        "nothing booked by refused requests"
    );
    // The genuine request books; the same bytes again are a replay.
    let nonce = rand16();
    let h6 =
        sign_request_with_nonce(&key, &term.id, "POST", "/v1/entries", now, &nonce, &body).unwrap();
    assert_eq!(send(&h6, body.clone()).0, 200);
    assert_eq!(
        send(&h6, body.clone()),
        (409, Some(ErrorCode::ReplayedNonce))
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 1);
}
