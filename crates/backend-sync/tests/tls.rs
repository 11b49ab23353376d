//! TLS with rustls between agent and server: a test CA and server certificate made with rcgen;
//! the agent trusts only the CA it is given, so a server with another CA's certificate, or an
//! agent given no CA, never gets through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA and a server certificate for 127.0.0.1 and localhost; (ca.pem, cert.pem, key.pem).
fn make_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_pem = dir.join(format!("{name}-ca.pem"));
    let cert_pem = dir.join(format!("{name}-cert.pem"));
    let key_pem = dir.join(format!("{name}-key.pem"));
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    (ca_pem, cert_pem, key_pem)
}

#[test]
fn agent_and_server_talk_over_tls_and_only_with_the_right_ca() {
    let env = Env::new(Backend::Sqlite);
    let (ca, cert, key) = make_pki(env.dir.path(), "good");
    let (other_ca, _, _) = make_pki(env.dir.path(), "other");
    let server = Server::start(&env, 0, &[], Some((&cert, &key)));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let term = Term::new("KIOSK-TLS");
    let token = env.add_terminal("KIOSK-TLS", "110100");
    let ca_arg = ca.to_str().unwrap();
    let (code, out, err) = term.run_agent(
        "register",
        &server.url,
        &["--token", &token, "--ca", ca_arg],
    );
    assert_eq!(code, 0, "{out} {err}");
    let expected = term.pay(20, 300);
    let (code, out, err) = term.run_agent("once", &server.url, &["--ca", ca_arg, "--close-batch"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("batch 1: balanced"), "{out}");
    assert_exactly_once(&env, &term, &expected);

    // Another CA, or none: the handshake fails every time and the agent gives up.
    term.pay(1, 301);
    for extra in [vec!["--ca", other_ca.to_str().unwrap()], vec![]] {
        let mut args = extra.clone();
        args.extend(["--max-attempts", "2"]);
        let (code, _, err) = term.run_agent("once", &server.url, &args);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("gave up"), "{err}");
    }
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 20);
    // Plain HTTP to the TLS port is no way in either.
    let plain = server.url.replace("https://", "http://");
    let (code, _, _) = term.run_agent("once", &plain, &["--max-attempts", "2"]);
    assert_eq!(code, 2);
    assert_eq!(env.count("SELECT COUNT(*) FROM entries"), 20);
}
