//! Every host command, in-process and over real TCP, with its error paths; known-answer checks
//! against the published 3DES derivation vectors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey, Sm2Signature};
use card_core::crypto::sm4::{Sm4Key, Sm4MacRule};
use card_core::crypto::tdes::TdesKey;
use hsm_sim::client::{ArqcRequest, BlockingClient, HsmClient, InProcess, KqMode};
use hsm_sim::server::BackgroundServer;
use hsm_sim::{ClientError, ErrorCode, Hsm, KeyType, Lmk, Scheme};

const LMK: &str = "00112233445566778899AABBCCDDEEFF";
/// ZMK components (3DES).
const ZMK_A: &str = "0123456789ABCDEF0123456789ABCDEF";
const ZMK_B: &str = "1111111111111111FFFFFFFFFFFFFFFF";
/// The issuer master key of the published EMV vectors (KCV 08D7).
const IMK: &str = "0123456789ABCDEFFEDCBA9876543210";
const IMK_SM4: &str = "00112233445566778899AABBCCDDEEFF";
const ZAK: &str = "89ABCDEF0123456776543210FEDCBA98";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn zmk_clear() -> TdesKey {
    let a = h(ZMK_A);
    let b = h(ZMK_B);
    let mut k: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
    card_core::crypto::tdes::set_odd_parity(&mut k);
    TdesKey::from_slice(&k).unwrap()
}

/// An HSM with a ZMK, a 3DES and an SM4 MK-AC, and a ZAK, formed from components.
fn hsm() -> Arc<Hsm> {
    let hsm = Hsm::in_memory(Lmk::from_hex(LMK).unwrap(), 4).unwrap();
    let kcv = hsm
        .form_key_from_components(
            "ZMK00001",
            KeyType::Zmk,
            Scheme::Tdes,
            &[&h(ZMK_A), &h(ZMK_B)],
        )
        .unwrap();
    assert_eq!(kcv, zmk_clear().kcv());
    let kcv = hsm
        .form_key_from_components("IMKAC001", KeyType::MkAc, Scheme::Tdes, &[&h(IMK)])
        .unwrap();
    assert_eq!(
        hex::encode_upper(&kcv[..2]),
        "08D7",
        "published KCV of the EMV test IMK"
    );
    hsm.form_key_from_components("IMKSM401", KeyType::MkAc, Scheme::Sm4, &[&h(IMK_SM4)])
        .unwrap();
    hsm.form_key_from_components("ZAK00001", KeyType::Zak, Scheme::Tdes, &[&h(ZAK)])
        .unwrap();
    Arc::new(hsm)
}

fn client(hsm: &Arc<Hsm>) -> HsmClient<InProcess> {
    HsmClient::new(InProcess::new(Arc::clone(hsm)))
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Hsm(code)) => code,
        other => panic!("expected an HSM error code, got {other:?}"),
    }
}

#[test]
fn derive_card_key_matches_published_vector() {
    let hsm = hsm();
    let mut c = client(&hsm);
    let (ct, kcv) = c
        .derive_card_key("IMKAC001", "ZMK00001", "12345678901234567", "45")
        .unwrap();
    let clear = zmk_clear().decrypt_ecb(&ct).unwrap();
    assert_eq!(
        hex::encode_upper(&clear),
        "946DC1A8C78A624519BC4645CB073737"
    );
    assert_eq!(hex::encode_upper(&kcv[..2]), "FF08");
    // Only master keys derive; a ZAK may not.
    assert_eq!(
        refused(c.derive_card_key("ZAK00001", "ZMK00001", "12345678901234567", "45")),
        ErrorCode::UsageNotPermitted
    );
    assert_eq!(
        refused(c.derive_card_key("NOSUCHKY", "ZMK00001", "1234567890123", "00")),
        ErrorCode::KeyNotFound
    );
    assert_eq!(
        refused(c.derive_card_key("IMKAC001", "ZMK00001", "12345", "00")),
        ErrorCode::InvalidInput
    );
}

#[test]
fn maintenance_key_answers_the_cards_challenge_and_never_leaves() {
    use card_core::ssse::update::{
        MaintenanceAuthority, SoftwareAuthority, derive_maintenance_key, external_auth_cryptogram,
    };
    use hsm_sim::client::HsmAuthority;
    let hsm = hsm();
    let master = h("73736361726420746573742D6D61696E");
    hsm.form_key_from_components("MNT00001", KeyType::MkMnt, Scheme::Sm4, &[&master])
        .unwrap();
    hsm.form_key_from_components("MNTTDES1", KeyType::MkMnt, Scheme::Tdes, &[&h(IMK)])
        .unwrap();
    let mut c = client(&hsm);
    let card_id: [u8; 16] = h("110105D1560000050000000000000001").try_into().unwrap();
    let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
    // KE: the same cryptogram as card-core's software authority with the master in clear.
    let from_hsm = c
        .external_auth_cryptogram("MNT00001", &card_id, &challenge)
        .unwrap();
    let mut soft = SoftwareAuthority::new(Sm4Key::from_slice(&master).unwrap());
    assert_eq!(
        *from_hsm,
        *soft.cryptogram(&card_id, &challenge).unwrap(),
        "KE = SM4(K_card)[challenge || 80 00..]"
    );
    // Through the authority card-core's update flow takes.
    let mut authority = HsmAuthority::new(&mut c, "MNT00001");
    assert_eq!(
        *authority.cryptogram(&card_id, &challenge).unwrap(),
        *from_hsm
    );
    assert!(matches!(
        authority.cryptogram(&card_id[..8], &challenge),
        Err(card_core::ssse::update::UpdateError::CardId { len: 8 })
    ));
    // KF: the card's own key for personalisation, under the ZMK, with its check value.
    let (ct, kcv) = c
        .derive_maintenance_key("MNT00001", "ZMK00001", &card_id)
        .unwrap();
    let clear = zmk_clear().decrypt_ecb(&ct).unwrap();
    let expected = derive_maintenance_key(&Sm4Key::from_slice(&master).unwrap(), &card_id).unwrap();
    assert_eq!(clear.as_slice(), expected.expose_bytes());
    assert_eq!(kcv, expected.kcv());
    assert_eq!(external_auth_cryptogram(&expected, &challenge), *from_hsm);
    // The master itself never leaves; only SM4 masters serve; other key types may not.
    assert_eq!(
        refused(c.export_key(KeyType::MkMnt, "ZMK00001", "MNT00001")),
        ErrorCode::NotAuthorised
    );
    assert_eq!(
        refused(c.external_auth_cryptogram("MNTTDES1", &card_id, &challenge)),
        ErrorCode::SchemeNotPermitted
    );
    assert_eq!(
        refused(c.external_auth_cryptogram("IMKSM401", &card_id, &challenge)),
        ErrorCode::UsageNotPermitted
    );
    assert_eq!(
        refused(c.derive_maintenance_key("IMKSM401", "ZMK00001", &card_id)),
        ErrorCode::UsageNotPermitted
    );
}

fn arqc_case(alg: CardAlgorithm, imk_hex: &str, atc: u16, data: &[u8]) -> ([u8; 8], [u8; 8]) {
    let imk = CardKey::from_slice(alg, &h(imk_hex)).unwrap();
    let card = kdf::derive_card_key(&imk, "6217000010001234567", Some("01")).unwrap();
    let sk = kdf::derive_session_key(&card, atc);
    let arqc = kdf::application_cryptogram(&sk, data, Sm4MacRule::default());
    (arqc, kdf::arpc(&sk, &arqc, b"00"))
}

#[test]
fn arqc_verification_and_arpc_for_3des_and_sm4() {
    let hsm = hsm();
    let mut c = client(&hsm);
    let data =
        h("000000001000000000000000015600000000000156251128000012345678580000041E0302A000000000");
    for (label, alg, imk) in [
        ("IMKAC001", CardAlgorithm::Tdes, IMK),
        ("IMKSM401", CardAlgorithm::Sm4, IMK_SM4),
    ] {
        let (arqc, arpc) = arqc_case(alg, imk, 0x0041, &data);
        let q = ArqcRequest {
            mk_ac: label,
            pan: "6217000010001234567",
            psn: "01",
            atc: 0x0041,
            data: &data,
            arqc,
            arc: *b"00",
        };
        assert_eq!(c.verify_arqc(&q).unwrap(), arpc, "{label}");
        c.check_cryptogram(&q).unwrap();
        // Mode 2: the ARPC without the check, even for a wrong ARQC.
        assert_eq!(c.generate_arpc(&q).unwrap(), arpc, "{label}");
        let mut wrong = q.clone();
        wrong.arqc[0] ^= 1;
        assert_ne!(c.generate_arpc(&wrong).unwrap(), arpc);
        assert_eq!(
            refused(c.check_cryptogram(&wrong)),
            ErrorCode::VerificationFailure
        );
        // One bit off in the ARQC, the data, or the ATC: verification failure.
        let mut bad = q.clone();
        bad.arqc[7] ^= 1;
        assert_eq!(refused(c.verify_arqc(&bad)), ErrorCode::VerificationFailure);
        let mut other = data.clone();
        other[3] ^= 0x10;
        assert_eq!(
            refused(c.verify_arqc(&ArqcRequest {
                data: &other,
                ..q.clone()
            })),
            ErrorCode::VerificationFailure
        );
        assert_eq!(
            refused(c.verify_arqc(&ArqcRequest {
                atc: 0x0042,
                ..q.clone()
            })),
            ErrorCode::VerificationFailure
        );
    }
    // A ZMK is not an MK-AC.
    let q = ArqcRequest {
        mk_ac: "ZMK00001",
        pan: "6217000010001234567",
        psn: "01",
        atc: 1,
        data: &data,
        arqc: [0; 8],
        arc: *b"00",
    };
    assert_eq!(refused(c.verify_arqc(&q)), ErrorCode::UsageNotPermitted);
}

#[test]
fn macs() {
    let hsm = hsm();
    let mut c = client(&hsm);
    let data = b"04DA9F790A000000010000".to_vec();
    let mac = c.generate_mac("ZAK00001", &data).unwrap();
    assert_eq!(
        mac,
        TdesKey::from_slice(&h(ZAK))
            .unwrap()
            .with_odd_parity()
            .retail_mac(&data)
    );
    assert!(c.verify_mac("ZAK00001", &data, mac).unwrap());
    let mut wrong = mac;
    wrong[0] ^= 0x80;
    assert!(!c.verify_mac("ZAK00001", &data, wrong).unwrap());
    assert_eq!(
        refused(c.generate_mac("IMKAC001", &data)),
        ErrorCode::UsageNotPermitted
    );
    // An SM4 ZAK uses the PBOC SM4 MAC.
    c.generate_key(KeyType::Zak, Scheme::Sm4, "ZAKSM401")
        .unwrap();
    let (ct, _) = c.export_key(KeyType::Zak, "ZMK00001", "ZAKSM401").unwrap();
    let clear = zmk_clear().decrypt_ecb(&ct).unwrap();
    let sm4 = Sm4Key::from_slice(&clear).unwrap();
    assert_eq!(
        c.generate_mac("ZAKSM401", &data).unwrap(),
        sm4.pboc_mac(&data, Sm4MacRule::default())
    );
}

#[test]
fn generate_export_import() {
    let hsm = hsm();
    let mut c = client(&hsm);
    let g = c
        .generate_key(KeyType::Zak, Scheme::Tdes, "ZAK00002")
        .unwrap();
    assert!(g.public.is_none());
    let (ct, kcv) = c.export_key(KeyType::Zak, "ZMK00001", "ZAK00002").unwrap();
    assert_eq!(kcv, g.kcv);
    let clear = zmk_clear().decrypt_ecb(&ct).unwrap();
    let key = TdesKey::from_slice(&clear).unwrap();
    assert!(key.has_odd_parity(), "generated 3DES keys have odd parity");
    assert_eq!(key.kcv(), kcv);
    // Import it back under another label; a wrong KCV is refused.
    assert_eq!(
        c.import_key(KeyType::Zak, Scheme::Tdes, "ZMK00001", &ct, kcv, "ZAK00003")
            .unwrap(),
        kcv
    );
    assert_eq!(
        refused(c.import_key(
            KeyType::Zak,
            Scheme::Tdes,
            "ZMK00001",
            &ct,
            [0, 0, 0],
            "ZAK00004"
        )),
        ErrorCode::SourceKeyParity
    );
    // Same label twice.
    assert_eq!(
        refused(c.generate_key(KeyType::Zak, Scheme::Tdes, "ZAK00002")),
        ErrorCode::KeyExists
    );
    // Master keys and ZMKs never leave; a wrong type is refused.
    assert_eq!(
        refused(c.export_key(KeyType::MkAc, "ZMK00001", "IMKAC001")),
        ErrorCode::NotAuthorised
    );
    assert_eq!(
        refused(c.export_key(KeyType::Zmk, "ZMK00001", "ZMK00001")),
        ErrorCode::NotAuthorised
    );
    assert_eq!(
        refused(c.export_key(KeyType::Zak, "ZMK00001", "IMKAC001")),
        ErrorCode::KeyTypeNotPermitted
    );
    // Only a ZMK wraps.
    assert_eq!(
        refused(c.export_key(KeyType::Zak, "ZAK00001", "ZAK00002")),
        ErrorCode::UsageNotPermitted
    );
    // Scheme must fit the type.
    assert_eq!(
        refused(c.generate_key(KeyType::MkAc, Scheme::Sm2, "BADKEY01")),
        ErrorCode::SchemeNotPermitted
    );
    assert_eq!(
        refused(c.generate_key(KeyType::Sm2Ca, Scheme::Sm4, "BADKEY02")),
        ErrorCode::SchemeNotPermitted
    );
}

#[test]
fn sm2_key_pairs_and_certificate_signing() {
    let hsm = hsm();
    let mut c = client(&hsm);
    let ca = c
        .generate_key(KeyType::Sm2Ca, Scheme::Sm2, "CAROOT01")
        .unwrap();
    let issuer = c
        .generate_key(KeyType::Sm2Issuer, Scheme::Sm2, "ISSUER01")
        .unwrap();
    let ca_pub = ca.public.unwrap();
    assert_eq!(c.public_key("CAROOT01").unwrap(), (KeyType::Sm2Ca, ca_pub));
    // The CA signs an issuer certificate (format 12, JR/T 0025.17 表1): the signature verifies.
    let mut cert = vec![
        0x12, 0x62, 0x17, 0x00, 0xff, 0x12, 0x30, 0x00, 0x00, 0x01, 0x04, 0x00, 0x11, 0x40,
    ];
    cert.extend_from_slice(&issuer.public.unwrap());
    let sig = c.sign_certificate("CAROOT01", &cert).unwrap();
    let pk = Sm2PublicKey::from_xy(&ca_pub).unwrap();
    pk.verify(DEFAULT_ID, &cert, &Sm2Signature::from_bytes(&sig).unwrap())
        .unwrap();
    // The CA may not sign ICC certificates, the issuer may not sign issuer certificates.
    let mut icc = cert.clone();
    icc[0] = 0x14;
    assert_eq!(
        refused(c.sign_certificate("CAROOT01", &icc)),
        ErrorCode::UsageNotPermitted
    );
    assert_eq!(
        refused(c.sign_certificate("ISSUER01", &cert)),
        ErrorCode::UsageNotPermitted
    );
    c.sign_certificate("ISSUER01", &icc).unwrap();
    // Anything that is not a certificate is refused: no general-purpose signing oracle.
    assert_eq!(
        refused(c.sign_certificate("CAROOT01", b"\x99arbitrary")),
        ErrorCode::InvalidInput
    );
    // A card key pair leaves the HSM under a ZMK only, for personalisation.
    let card = c
        .generate_key(KeyType::Sm2Icc, Scheme::Sm2, "ICC00001")
        .unwrap();
    let (ct, _) = c
        .export_key(KeyType::Sm2Icc, "ZMK00001", "ICC00001")
        .unwrap();
    let d = zmk_clear().decrypt_ecb(&ct).unwrap();
    let sk = Sm2PrivateKey::from_bytes(&d).unwrap();
    assert_eq!(sk.public_key().to_xy(), card.public.unwrap());
    // The CA's private key never leaves.
    assert_eq!(
        refused(c.export_key(KeyType::Sm2Ca, "ZMK00001", "CAROOT01")),
        ErrorCode::NotAuthorised
    );
    assert_eq!(
        refused(c.public_key("ZMK00001")),
        ErrorCode::SchemeNotPermitted
    );
}

#[test]
fn diagnostics_report_the_lmk_check_value() {
    let hsm = hsm();
    let d = client(&hsm).diagnostics().unwrap();
    assert_eq!(d.lmk_check, Lmk::from_hex(LMK).unwrap().check_value());
    // SM4 of a zero block under the LMK, first 8 bytes (checked against OpenSSL in the unit
    // tests of card-core's SM4).
    assert_eq!(
        d.lmk_check[..],
        Sm4Key::from_slice(&h(LMK)).unwrap().encrypt_block(&[0; 16])[..8]
    );
    assert!(d.version.starts_with("sscard-hsm-sim "));
}

fn raw_reply(c: &mut BlockingClient, message: &[u8]) -> String {
    String::from_utf8_lossy(&c.raw(message).unwrap()).into_owned()
}

#[test]
fn malformed_input_over_tcp_gets_error_codes_and_the_server_keeps_serving() {
    let hsm = hsm();
    let server = BackgroundServer::start(Arc::clone(&hsm), "127.0.0.1:0", 2).unwrap();
    let mut c = BlockingClient::connect(server.addr(), 4).unwrap();
    // Too short for header and command.
    assert_eq!(raw_reply(&mut c, b"HEA"), "HEA ZZ80");
    assert_eq!(raw_reply(&mut c, b"HEADA"), "HEADZZ80");
    // Header not printable.
    assert_eq!(raw_reply(&mut c, b"HE\x01DNC"), "HE\x01DZZ51");
    // Unknown command.
    assert_eq!(raw_reply(&mut c, b"HEADXX"), "HEADXY68");
    // Bad key type, bad scheme, bad label, bad hex, truncated, trailing bytes.
    assert_eq!(raw_reply(&mut c, b"HEADA0999UKEY00001"), "HEADA104");
    assert_eq!(raw_reply(&mut c, b"HEADA0008QKEY00001"), "HEADA105");
    assert_eq!(raw_reply(&mut c, b"HEADA0008Ukey00001"), "HEADA115");
    assert_eq!(raw_reply(&mut c, b"HEADM6ZAK000010002ZZZZ"), "HEADM715");
    assert_eq!(raw_reply(&mut c, b"HEADM6ZAK000010004AB"), "HEADM780");
    assert_eq!(raw_reply(&mut c, b"HEADNCextra"), "HEADND80");
    assert_eq!(raw_reply(&mut c, b"HEADK7NOSUCHK1"), "HEADK8K1");
    // An oversized frame: the server drains it and answers 80.
    let big = vec![b'A'; 40_000];
    assert_eq!(raw_reply(&mut c, &big), "    ZZ80");
    // Still serving on the same connection.
    let mut typed = HsmClient::new(c);
    assert_eq!(
        typed.diagnostics().unwrap().lmk_check,
        Lmk::from_hex(LMK).unwrap().check_value()
    );
    // And a connection that drops mid-frame does not disturb others.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.write_all(&[0x00, 0x40, b'H', b'E']).unwrap();
    }
    assert!(typed.diagnostics().is_ok());
    assert_eq!(
        hsm.stats()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed),
        11
    );
    server.stop().unwrap();
}

#[test]
fn many_concurrent_clients_over_tcp() {
    let hsm = hsm();
    let server = BackgroundServer::start(Arc::clone(&hsm), "127.0.0.1:0", 2).unwrap();
    let data = h("0000000010000000000000000156000000000001562511280000123456780000041E0302");
    let threads: Vec<_> = (0..16u16)
        .map(|t| {
            let addr = server.addr();
            let data = data.clone();
            std::thread::spawn(move || {
                let mut c = HsmClient::new(BlockingClient::connect(addr, 4).unwrap());
                for i in 0..100u16 {
                    let atc = t * 1000 + i;
                    let (arqc, arpc) = arqc_case(CardAlgorithm::Sm4, IMK_SM4, atc, &data);
                    let q = ArqcRequest {
                        mk_ac: "IMKSM401",
                        pan: "6217000010001234567",
                        psn: "01",
                        atc,
                        data: &data,
                        arqc,
                        arc: *b"00",
                    };
                    assert_eq!(c.verify_arqc(&q).unwrap(), arpc);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    server.stop().unwrap();
}

#[test]
fn async_client() {
    let hsm = hsm();
    let server = BackgroundServer::start(Arc::clone(&hsm), "127.0.0.1:0", 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = h("00000000100000");
    let (arqc, arpc) = arqc_case(CardAlgorithm::Tdes, IMK, 7, &data);
    rt.block_on(async {
        let mut c = hsm_sim::AsyncClient::connect(server.addr(), 4)
            .await
            .unwrap();
        assert!(c.diagnostics().await.unwrap().version.contains("hsm-sim"));
        let q = ArqcRequest {
            mk_ac: "IMKAC001",
            pan: "6217000010001234567",
            psn: "01",
            atc: 7,
            data: &data,
            arqc,
            arc: *b"00",
        };
        assert_eq!(c.verify_arqc(&q).await.unwrap(), arpc);
        let t = std::time::Duration::from_secs(5);
        c.check_cryptogram(&q, t).await.unwrap();
        let mut bad = q.clone();
        bad.atc = 8;
        assert!(matches!(
            c.check_cryptogram(&bad, t).await,
            Err(ClientError::Hsm(ErrorCode::VerificationFailure))
        ));
        // A refusal leaves the connection usable.
        assert!(!c.is_broken());
        c.check_cryptogram(&q, t).await.unwrap();
    });
}

#[test]
fn kq_body_is_the_documented_layout() {
    let data = h("0102");
    let q = ArqcRequest {
        mk_ac: "IMKAC001",
        pan: "6217000010001234567",
        psn: "01",
        atc: 0x1f,
        data: &data,
        arqc: [0xab; 8],
        arc: *b"00",
    };
    let expected = "0IMKAC00119621700001000123456701001F00020102;ABABABABABABABAB3030";
    assert_eq!(q.body(KqMode::Verify).as_slice(), expected.as_bytes());
    assert_eq!(q.body(KqMode::VerifyAndArpc)[0], b'1');
    assert_eq!(q.body(KqMode::ArpcOnly)[0], b'2');
    // The same body the typed client sends is accepted by the HSM.
    let hsm = hsm();
    let mut raw = InProcess::new(Arc::clone(&hsm));
    let reply = hsm_sim::client::Call::call(&mut raw, *b"KQ", &q.body(KqMode::ArpcOnly)).unwrap();
    assert_eq!(reply.error, ErrorCode::Ok);
    // Debug shows neither the PAN nor the data.
    let shown = format!("{q:?}");
    assert!(!shown.contains("6217000010001234567"), "{shown}");
    assert!(!shown.contains("0102"), "{shown}");
}

#[test]
fn async_check_times_out_and_the_connection_is_abandoned() {
    // A peer that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(stream);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = hsm_sim::AsyncClient::connect(addr, 4).await.unwrap();
        let data = h("00");
        let q = ArqcRequest {
            mk_ac: "IMKAC001",
            pan: "6217000010001234567",
            psn: "01",
            atc: 1,
            data: &data,
            arqc: [0; 8],
            arc: *b"00",
        };
        let t = std::time::Duration::from_millis(100);
        assert!(matches!(
            c.check_cryptogram(&q, t).await,
            Err(ClientError::Timeout(d)) if d == t
        ));
        assert!(c.is_broken());
        assert!(matches!(
            c.check_cryptogram(&q, t).await,
            Err(ClientError::Io(_))
        ));
    });
    hold.join().unwrap();
}
