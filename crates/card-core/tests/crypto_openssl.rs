//! Interoperability of `card_core::crypto` with OpenSSL 3 (the `openssl` binary; Debian 12
//! ships 3.0 with SM2, SM3 and SM4). Each test runs OpenSSL as a subprocess on files in a
//! temporary directory and compares, or lets each side verify or decrypt what the other made.
//!
//! OpenSSL's default SM2 distinguishing identifier is empty, PBOC's is "1234567812345678": the
//! command lines pass `-pkeyopt distid:1234567812345678` (pkeyutl) or `-sigopt` (dgst).
//! `pkeyutl -rawin -digest sm3` signs a message (Z and SM3 inside OpenSSL); without `-rawin` it
//! signs its 32-byte input as the digest `e`.
//!
//! The tests fail, not skip, when `openssl` is missing: `apt-get install openssl`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use card_core::crypto::kdf::{
    CardAlgorithm, CardKey, application_cryptogram, arpc, arpc_sm4_full_block, derive_card_key,
    derive_session_key, diversification_input,
};
use card_core::crypto::sm2::{
    DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey, Sm2Signature, ciphertext_der_to_raw,
    ciphertext_raw_to_der,
};
use card_core::crypto::sm4::{Sm4Key, Sm4MacRule};
use card_core::crypto::tdes::{TdesKey, set_odd_parity};
use card_core::crypto::{block, os_rng, sm3};

const DISTID: &str = "distid:1234567812345678";

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Run openssl and return its standard output; fail the test with its error output.
fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

// --- SM3 ---

#[test]
fn sm3_matches_openssl_dgst() {
    for len in [0usize, 1, 55, 56, 63, 64, 65, 1000, 4096] {
        let data = sample(len);
        let theirs = openssl(&["dgst", "-sm3", "-binary"], &data);
        assert_eq!(sm3::digest(&data).to_vec(), theirs, "length {len}");
    }
}

#[test]
fn hmac_sm3_matches_openssl() {
    // OpenSSL refuses an empty HMAC key; the unit tests cover that case against RFC 2104.
    for key_len in [1usize, 16, 64, 65, 100] {
        let key: Vec<u8> = (0..key_len).map(|i| (i as u8) ^ 0x5c).collect();
        let data = sample(77);
        let hexkey = format!("hexkey:{}", hex::encode(&key));
        let theirs = openssl(
            &[
                "dgst", "-sm3", "-mac", "HMAC", "-macopt", &hexkey, "-binary",
            ],
            &data,
        );
        assert_eq!(sm3::hmac_sm3(&key, &data).to_vec(), theirs, "key {key_len}");
    }
}

// --- SM4 ---

fn sm4_openssl(
    mode: &str,
    key: &[u8; 16],
    iv: Option<&[u8; 16]>,
    decrypt: bool,
    data: &[u8],
) -> Vec<u8> {
    let k = hex::encode(key);
    let mut args = vec!["enc", mode, "-nopad", "-K", &k];
    let iv_hex;
    if let Some(iv) = iv {
        iv_hex = hex::encode(iv);
        args.extend(["-iv", &iv_hex]);
    }
    if decrypt {
        args.push("-d");
    }
    openssl(&args, data)
}

#[test]
fn sm4_ecb_and_cbc_match_openssl_enc() {
    let key = Sm4Key::new(*b"0123456789abcdef");
    let raw = *key.expose_bytes();
    let iv = [0xa5u8; 16];
    for blocks in [1usize, 2, 7] {
        let data = sample(16 * blocks);
        let ecb = key.encrypt_ecb(&data).unwrap();
        assert_eq!(ecb, sm4_openssl("-sm4-ecb", &raw, None, false, &data));
        assert_eq!(key.decrypt_ecb(&ecb).unwrap(), data);
        assert_eq!(sm4_openssl("-sm4-ecb", &raw, None, true, &ecb), data);

        let cbc = key.encrypt_cbc(&iv, &data).unwrap();
        assert_eq!(cbc, sm4_openssl("-sm4-cbc", &raw, Some(&iv), false, &data));
        assert_eq!(sm4_openssl("-sm4-cbc", &raw, Some(&iv), true, &cbc), data);
        assert_eq!(key.decrypt_cbc(&iv, &cbc).unwrap(), data);
    }
}

// --- SM4 PBOC derivation recomputed independently with OpenSSL ---

/// JR/T 0025.17 §8.1.4, §8.1.3, §8.1.2, §6.2 with OpenSSL as the block cipher and the glue
/// (Y, XOR, padding, truncation) written out here from the clause text.
struct Reference {
    mk: [u8; 16],
    sk: [u8; 16],
    ac_part17: [u8; 8],
    ac_part7: [u8; 8],
    arpc_full: [u8; 16],
}

fn reference_sm4(
    imk: &[u8; 16],
    pan: &str,
    psn: &str,
    atc: u16,
    data: &[u8],
    arc: [u8; 2],
) -> Reference {
    let x = format!("{pan}{psn}");
    let x = if x.len() >= 16 {
        x[x.len() - 16..].to_string()
    } else {
        format!("{x:0>16}")
    };
    let y = hex::decode(&x).unwrap();
    let mut block_in = y.clone();
    block_in.extend(y.iter().map(|b| !b));
    let mk: [u8; 16] = sm4_openssl("-sm4-ecb", imk, None, false, &block_in)
        .try_into()
        .unwrap();

    let mut atc_in = vec![0u8; 6];
    atc_in.extend(atc.to_be_bytes());
    atc_in.extend([0u8; 6]);
    atc_in.extend((atc ^ 0xffff).to_be_bytes());
    let sk: [u8; 16] = sm4_openssl("-sm4-ecb", &mk, None, false, &atc_in)
        .try_into()
        .unwrap();

    let mut padded = data.to_vec();
    padded.push(0x80);
    while !padded.len().is_multiple_of(16) {
        padded.push(0);
    }
    let cbc = sm4_openssl("-sm4-cbc", &sk, Some(&[0; 16]), false, &padded);
    let hk = &cbc[cbc.len() - 16..];
    let ac_part17: [u8; 8] = hk[..8].try_into().unwrap();
    let ac_part7: [u8; 8] = std::array::from_fn(|i| hk[i] ^ hk[i + 8]);

    let mut d = ac_part17.to_vec();
    d[0] ^= arc[0];
    d[1] ^= arc[1];
    d.extend([0u8; 8]);
    let arpc_full: [u8; 16] = sm4_openssl("-sm4-ecb", &sk, None, false, &d)
        .try_into()
        .unwrap();
    Reference {
        mk,
        sk,
        ac_part17,
        ac_part7,
        arpc_full,
    }
}

#[test]
fn sm4_pboc_derivation_agrees_with_openssl_reference() {
    let cases: [(&str, &str, &str, u16, &str); 4] = [
        // Also the constants of crypto_kat.rs.
        (
            "0123456789ABCDEFFEDCBA9876543210",
            "6228480402564890018",
            "01",
            0x001c,
            "0000000010000000000000000710000000000007101302050030901B6A3C0000",
        ),
        (
            "00112233445566778899AABBCCDDEEFF",
            "6222021234567890",
            "00",
            0x0001,
            "00",
        ),
        (
            "FEDCBA98765432100123456789ABCDEF",
            "123456789012",
            "07",
            0xffff,
            "000000001000000000000000015600000000000156250101003C00112233",
        ),
        (
            "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF",
            "6212341234123412345",
            "99",
            0x8000,
            "0102030405060708090A0B0C0D0E0F",
        ),
    ];
    for (imk_hex, pan, psn, atc, data_hex) in cases {
        let imk_bytes: [u8; 16] = hex::decode(imk_hex).unwrap().try_into().unwrap();
        let data = hex::decode(data_hex).unwrap();
        let arc = *b"00";
        let reference = reference_sm4(&imk_bytes, pan, psn, atc, &data, arc);

        let imk = CardKey::new(CardAlgorithm::Sm4, imk_bytes);
        let mk = derive_card_key(&imk, pan, Some(psn)).unwrap();
        assert_eq!(mk.expose_bytes(), &reference.mk, "MK for {pan}");
        let sk = derive_session_key(&mk, atc);
        assert_eq!(sk.expose_bytes(), &reference.sk, "SK for {pan}");
        let ac17 = application_cryptogram(&sk, &data, Sm4MacRule::Part17LeftBytes);
        let ac7 = application_cryptogram(&sk, &data, Sm4MacRule::Part7XorHalves);
        assert_eq!(ac17, reference.ac_part17, "AC (JR/T 0025.17) for {pan}");
        assert_eq!(ac7, reference.ac_part7, "AC (JR/T 0025.7) for {pan}");
        assert_eq!(
            arpc(&sk, &ac17, &arc),
            reference.arpc_full[..8],
            "ARPC for {pan}"
        );
        let CardKey::Sm4(sk_sm4) = &sk else { panic!() };
        assert_eq!(
            arpc_sm4_full_block(sk_sm4, &ac17, &arc),
            reference.arpc_full
        );
    }
}

#[test]
fn tdes_card_key_agrees_with_openssl_des_ede() {
    let imk = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ];
    for (pan, psn) in [
        ("12345678901234567", "45"),
        ("4761739001010010", "01"),
        ("5413", "00"),
    ] {
        let y = diversification_input(pan, Some(psn)).unwrap();
        let mut input = y.to_vec();
        input.extend(y.iter().map(|b| !b));
        let k = hex::encode(imk);
        let mut expected = openssl(&["enc", "-des-ede-ecb", "-nopad", "-K", &k], &input);
        set_odd_parity(&mut expected);
        let mk = derive_card_key(&CardKey::new(CardAlgorithm::Tdes, imk), pan, Some(psn)).unwrap();
        assert_eq!(mk.expose_bytes().to_vec(), expected, "{pan}");
    }
    // The retail MAC's final 3DES step equals OpenSSL's 2-key EDE on one block.
    let key = TdesKey::new(imk);
    let block = [0x42u8; 8];
    let k = hex::encode(imk);
    assert_eq!(
        key.encrypt_block(&block).to_vec(),
        openssl(&["enc", "-des-ede-ecb", "-nopad", "-K", &k], &block)
    );
    let padded = block::pad_method2(b"retail", 8);
    assert_eq!(
        key.encrypt_cbc(&[0; 8], &padded).unwrap(),
        openssl(
            &[
                "enc",
                "-des-ede-cbc",
                "-nopad",
                "-K",
                &k,
                "-iv",
                "0000000000000000"
            ],
            &padded
        )
    );
}

// --- SM2 ---

/// An SM2 key made by OpenSSL: its PEM private key file, its DER public key.
fn openssl_key(dir: &Path) -> (PathBuf, Vec<u8>) {
    let pem = dir.join("openssl-key.pem");
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            s(&pem),
        ],
        b"",
    );
    let spki = openssl(&["pkey", "-in", s(&pem), "-pubout", "-outform", "DER"], b"");
    (pem, spki)
}

#[test]
fn sm2_signature_made_here_verifies_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let key = Sm2PrivateKey::generate(&mut os_rng()).unwrap();
    let pub_der = write(
        dir.path(),
        "pub.der",
        &key.public_key().to_spki_der().unwrap(),
    );
    let message = b"PBOC signed static data, or any message".to_vec();
    let msg = write(dir.path(), "msg.bin", &message);
    for (name, sig) in [
        ("deterministic", key.sign(DEFAULT_ID, &message).unwrap()),
        (
            "randomized",
            key.sign_with_rng(&mut os_rng(), DEFAULT_ID, &message)
                .unwrap(),
        ),
    ] {
        let sig_file = write(dir.path(), "sig.der", &sig.to_der());
        openssl(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                s(&pub_der),
                "-keyform",
                "DER",
                "-rawin",
                "-digest",
                "sm3",
                "-pkeyopt",
                DISTID,
                "-in",
                s(&msg),
                "-sigfile",
                s(&sig_file),
            ],
            b"",
        );
        openssl(
            &[
                "dgst",
                "-sm3",
                "-verify",
                s(&pub_der),
                "-keyform",
                "DER",
                "-sigopt",
                DISTID,
                "-signature",
                s(&sig_file),
                s(&msg),
            ],
            b"",
        );
        // With OpenSSL's default (empty) identifier it must fail: the ID is really used.
        let wrong = run(
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                s(&pub_der),
                "-keyform",
                "DER",
                "-rawin",
                "-digest",
                "sm3",
                "-in",
                s(&msg),
                "-sigfile",
                s(&sig_file),
            ],
            b"",
        );
        assert!(
            !wrong.status.success(),
            "{name}: verified with the empty ID"
        );
    }
}

#[test]
fn sm2_signature_made_by_openssl_verifies_here() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, spki) = openssl_key(dir.path());
    let public = Sm2PublicKey::from_spki_der(&spki).unwrap();
    let message = sample(300);
    let msg = write(dir.path(), "msg.bin", &message);
    let sig_file = dir.path().join("sig.der");
    openssl(
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&pem),
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            DISTID,
            "-in",
            s(&msg),
            "-out",
            s(&sig_file),
        ],
        b"",
    );
    let sig = Sm2Signature::from_der(&std::fs::read(&sig_file).unwrap()).unwrap();
    public.verify(DEFAULT_ID, &message, &sig).unwrap();
    // The raw r‖s form carries the same signature.
    let raw = Sm2Signature::from_bytes(&sig.to_bytes()).unwrap();
    public.verify(DEFAULT_ID, &message, &raw).unwrap();
    assert!(public.verify(b"", &message, &sig).is_err());
}

#[test]
fn sm2_prehash_interop_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, spki) = openssl_key(dir.path());
    let public = Sm2PublicKey::from_spki_der(&spki).unwrap();
    let e = sm3::digest(b"the card signs e");
    let e_file = write(dir.path(), "e.bin", &e);

    // OpenSSL signs e as a digest; verify_prehash accepts it.
    let sig_file = dir.path().join("esig.der");
    openssl(
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&pem),
            "-in",
            s(&e_file),
            "-out",
            s(&sig_file),
        ],
        b"",
    );
    let sig = Sm2Signature::from_der(&std::fs::read(&sig_file).unwrap()).unwrap();
    public.verify_prehash(&e, &sig).unwrap();

    // sign_prehash here; OpenSSL verifies it as a digest signature.
    let key = Sm2PrivateKey::generate_os().unwrap();
    let pub_der = write(
        dir.path(),
        "pub.der",
        &key.public_key().to_spki_der().unwrap(),
    );
    let ours = key.sign_prehash(&e).unwrap();
    let ours_file = write(dir.path(), "ours.der", &ours.to_der());
    openssl(
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            s(&pub_der),
            "-keyform",
            "DER",
            "-in",
            s(&e_file),
            "-sigfile",
            s(&ours_file),
        ],
        b"",
    );
}

#[test]
fn sm2_private_keys_cross_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, spki) = openssl_key(dir.path());
    let sec1 = openssl(&["pkey", "-in", s(&pem), "-outform", "DER"], b"");
    let pkcs8 = openssl(
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            s(&pem),
            "-outform",
            "DER",
        ],
        b"",
    );
    let from_sec1 = Sm2PrivateKey::from_der(&sec1).unwrap();
    let from_pkcs8 = Sm2PrivateKey::from_der(&pkcs8).unwrap();
    let public = Sm2PublicKey::from_spki_der(&spki).unwrap();
    assert_eq!(from_sec1.public_key(), &public);
    assert_eq!(from_pkcs8.public_key(), &public);
    assert_eq!(public.to_spki_der().unwrap(), spki);

    // Our PKCS#8 export is read by OpenSSL and gives the same public key.
    let ours = Sm2PrivateKey::generate_os().unwrap();
    let der = write(dir.path(), "ours.p8", &ours.to_pkcs8_der().unwrap());
    let their_spki = openssl(
        &[
            "pkey",
            "-inform",
            "DER",
            "-in",
            s(&der),
            "-pubout",
            "-outform",
            "DER",
        ],
        b"",
    );
    assert_eq!(
        Sm2PublicKey::from_spki_der(&their_spki).unwrap(),
        *ours.public_key()
    );
}

#[test]
fn sm2_ciphertext_from_openssl_decrypts_here() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, _) = openssl_key(dir.path());
    let sec1 = openssl(&["pkey", "-in", s(&pem), "-outform", "DER"], b"");
    let key = Sm2PrivateKey::from_der(&sec1).unwrap();
    for len in [1usize, 31, 32, 33, 200] {
        let message = sample(len);
        let msg = write(dir.path(), "msg.bin", &message);
        let ct = openssl(
            &["pkeyutl", "-encrypt", "-inkey", s(&pem), "-in", s(&msg)],
            b"",
        );
        assert_eq!(*key.decrypt_der(&ct).unwrap(), message, "length {len}");
        let raw = ciphertext_der_to_raw(&ct).unwrap();
        assert_eq!(raw.len(), 65 + 32 + len);
        assert_eq!(*key.decrypt(&raw).unwrap(), message);
    }
}

#[test]
fn sm2_ciphertext_made_here_decrypts_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, spki) = openssl_key(dir.path());
    let public = Sm2PublicKey::from_spki_der(&spki).unwrap();
    for len in [1usize, 32, 100] {
        let message = sample(len);
        let der = public.encrypt_der(&mut os_rng(), &message).unwrap();
        let ct = write(dir.path(), "ct.der", &der);
        let plain = openssl(
            &["pkeyutl", "-decrypt", "-inkey", s(&pem), "-in", s(&ct)],
            b"",
        );
        assert_eq!(plain, message, "DER, length {len}");

        let raw = public.encrypt(&mut os_rng(), &message).unwrap();
        let ct = write(
            dir.path(),
            "ct-raw.der",
            &ciphertext_raw_to_der(&raw).unwrap(),
        );
        let plain = openssl(
            &["pkeyutl", "-decrypt", "-inkey", s(&pem), "-in", s(&ct)],
            b"",
        );
        assert_eq!(plain, message, "raw C1C3C2, length {len}");
    }
}
