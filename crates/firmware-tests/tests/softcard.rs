//! The software card in-process: every status word for every wrong request, the SSSE flows of
//! card-core against it, PIN counters that survive power loss and reopening, torn writes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::CardSession;
use card_core::secret::Pin;
use card_core::ssse::{self, ReadStrategy, SsseError};
use firmware_tests::image::CardImage;
use firmware_tests::storage::{FileStorage, MemoryStorage, Storage};
use firmware_tests::{Profile, SoftCard};

fn image(name: &str) -> CardImage {
    Profile::embedded(name).unwrap().build().unwrap()
}

fn card(name: &str) -> SoftCard {
    SoftCard::in_memory(image(name))
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// Send raw hex, return (data, sw).
fn send(card: &mut SoftCard, apdu: &str) -> (Vec<u8>, u16) {
    let mut r = card.process(&hex(apdu));
    let sw2 = r.pop().unwrap();
    let sw1 = r.pop().unwrap();
    (r, u16::from_be_bytes([sw1, sw2]))
}

const SELECT_SSSE: &str = "00A404000F 7378312E73682EC9E7BBE1B1A3D5CF 00";

#[test]
fn status_words_for_wrong_requests() {
    let mut c = card("zhangsan");
    // Unknown instruction, wrong class, logical channel.
    assert_eq!(send(&mut c, "00 CA 0000 00").1, 0x6D00);
    assert_eq!(send(&mut c, "80 A4 0400 00").1, 0x6E00);
    assert_eq!(send(&mut c, "FF A4 0400 00").1, 0x6E00);
    assert_eq!(send(&mut c, "01 A4 0400 00").1, 0x6881);
    // A command chain (CLA b5): not taken, said so.
    assert_eq!(send(&mut c, "10 A4 0400 00").1, 0x6884);
    // Malformed lengths.
    assert_eq!(send(&mut c, "00 A4 04 00 05 7378").1, 0x6700);
    assert_eq!(send(&mut c, "00 A4").1, 0x6700);
    // SELECT: unknown AID, bad P1/P2, FID of wrong length.
    assert_eq!(send(&mut c, "00A4040005A00000000000").1, 0x6A82);
    assert_eq!(send(&mut c, "00A4070000").1, 0x6A86);
    assert_eq!(send(&mut c, "00A4040800").1, 0x6A86);
    assert_eq!(send(&mut c, "00A40000 03 3F0000").1, 0x6700);
    // READ RECORD before any EF is selected, with SFI 0.
    assert_eq!(send(&mut c, "00B2010400").1, 0x6986);
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    // Unknown SFI, unknown record, unknown tag, record 0, reserved mode.
    assert_eq!(send(&mut c, "00B2013C00").1, 0x6A82);
    assert_eq!(send(&mut c, "00B2632C00").1, 0x6A83);
    assert_eq!(send(&mut c, "00B2772800").1, 0x6A83);
    assert_eq!(send(&mut c, "00B2002C00").1, 0x6A86);
    assert_eq!(send(&mut c, "00B2012F00").1, 0x6A86);
    // READ RECORD without Le.
    assert_eq!(send(&mut c, "00B2012C").1, 0x6700);
    // Wrong Le: 6C with the record length, then the exact Le works.
    let (_, sw) = send(&mut c, "00B2072805");
    assert_eq!(sw, 0x6C0B);
    let (data, sw) = send(&mut c, "00B207280B");
    assert_eq!(sw, 0x9000);
    assert_eq!(&data[..2], &[0x07, 0x09]);
    // READ BINARY on a record file, UPDATE on a file nobody may write.
    assert_eq!(send(&mut c, "00B0850000").1, 0x6981);
    assert_eq!(send(&mut c, "00DC01 2C 03 010100").1, 0x6982);
    // DF04's records need the PIN.
    assert_eq!(send(&mut c, "00A4040006D15600000503 00").1, 0x9000);
    assert_eq!(send(&mut c, "00B2012D00").1, 0x6982);
    // GET CHALLENGE: bad P1P2, bad length, good.
    assert_eq!(send(&mut c, "0084010008").1, 0x6A86);
    assert_eq!(send(&mut c, "0084000005").1, 0x6700);
    let (ch, sw) = send(&mut c, "0084000008");
    assert_eq!((ch.len(), sw), (8, 0x9000));
    // GET RESPONSE with nothing pending.
    assert_eq!(send(&mut c, "00C0000010").1, 0x6985);
    // VERIFY: wrong P2 (unknown reference), too short a PIN block.
    assert_eq!(send(&mut c, "0020000103123456").1, 0x6A88);
    assert_eq!(send(&mut c, "002000000112").1, 0x6700);
}

#[test]
fn transparent_file_reads() {
    let mut c = card("zhangsan");
    // EF.GDO by SFI 2 in the MF: 5A 08 serial.
    let (data, sw) = send(&mut c, "00B0820000");
    assert_eq!(sw, 0x9000);
    assert_eq!(data, hex("5A08 0000000000000001"));
    // Offset into the current EF, exact Le, too long Le, offset past the end.
    assert_eq!(send(&mut c, "00B0000204").0, hex("00000000"));
    assert_eq!(send(&mut c, "00B0000220").1, 0x6C08);
    assert_eq!(send(&mut c, "00B0001000").1, 0x6B00);
    // Select by FID from the MF, then read.
    assert_eq!(send(&mut c, "00A4000C022F02").1, 0x9000);
    assert_eq!(send(&mut c, "00B0000002").0, hex("5A08"));
}

#[test]
fn identity_read_through_card_core() {
    let mut s = CardSession::new(card("zhangsan"));
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert_eq!(s.exchanges(), 3, "select and one READ RECORD per file");
    assert_eq!(id.holder.name.reveal(), "张三");
    assert_eq!(id.holder.ssn.reveal(), "110105198703153011");
    assert_eq!(id.card.card_number.reveal(), "A00000011");
    assert!(id.holder.inconsistencies().is_empty());

    let mut s = CardSession::new(card("zhangsan"));
    let by_tag = ssse::read_identity(&mut s, ReadStrategy::ByTag).unwrap();
    assert_eq!(by_tag, id);
    assert_eq!(
        s.exchanges(),
        1 + 7 + 6 + 1,
        "select, 7 + 6 fields, optional name extension"
    );
}

#[test]
fn t0_card_uses_61xx_and_6cxx() {
    let mut c = card("wangfang-t0");
    // Case 4 SELECT: 61xx, then GET RESPONSE with a wrong Le draws 6Cxx.
    let (data, sw) = send(&mut c, SELECT_SSSE);
    assert!(data.is_empty());
    assert_eq!(sw >> 8, 0x61);
    let len = sw & 0xff;
    assert_eq!(send(&mut c, "00C0000000").1, 0x6C00 | len);
    let (fci, sw) = send(&mut c, &format!("00C00000{len:02X}"));
    assert_eq!(sw, 0x9000);
    assert_eq!(fci[0], 0x6F);
    // No all-records mode on this card.
    assert_eq!(send(&mut c, "00B2012D00").1, 0x6A86);
    // Case 2 with Le=00 draws 6C with the exact length.
    assert_eq!(send(&mut c, "00B2083000").1 >> 8, 0x6C);

    // card-core handles all of it: same identity as a T=1 card would give.
    let mut s = CardSession::new(card("wangfang-t0"));
    let id = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
    assert_eq!(id.holder.name.reveal(), "王芳");
    assert!(
        s.exchanges() > 20,
        "GET RESPONSE and re-sends happened: {}",
        s.exchanges()
    );
}

#[test]
fn long_responses_continue_with_get_response() {
    // Make EF05 hold more than 256 bytes so an all-records read needs 61xx.
    let mut p = Profile::demo_zhangsan();
    for tag in 0x24..0x2c {
        p.medical.push(firmware_tests::profile::RecordSpec {
            tag,
            text: Some("x".repeat(40)),
            gbk: None,
            hex: None,
        });
    }
    let mut s = CardSession::new(SoftCard::in_memory(p.build().unwrap()));
    ssse::select(&mut s).unwrap();
    ssse::verify_pin(&mut s, &Pin::new("123456").unwrap()).unwrap();
    let records = ssse::read_medical_basic(&mut s).unwrap();
    assert_eq!(records.len(), 12);
    assert_eq!(records.get(0x2b).unwrap(), "x".repeat(40).as_bytes());
}

#[test]
fn pin_wrong_twice_then_right_then_blocked() {
    let mut s = CardSession::new(card("zhangsan"));
    ssse::select(&mut s).unwrap();
    let right = Pin::new("123456").unwrap();
    let wrong = Pin::new("000000").unwrap();
    assert_eq!(ssse::pin_tries_left(&mut s), Ok(Some(3)));
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 2 })
    );
    assert_eq!(
        ssse::verify_pin(&mut s, &wrong),
        Err(SsseError::WrongPin { tries_left: 1 })
    );
    assert_eq!(ssse::verify_pin(&mut s, &right), Ok(()));
    assert_eq!(ssse::pin_tries_left(&mut s), Ok(None), "verified");
    // Reading DF04 now works.
    let med = ssse::read_medical_basic(&mut s).unwrap();
    assert_eq!(med.get(0x22), Some(&b"1"[..]));
    // Three wrong: blocked, and the right PIN no longer helps.
    for left in [2, 1] {
        assert_eq!(
            ssse::verify_pin(&mut s, &wrong),
            Err(SsseError::WrongPin { tries_left: left })
        );
    }
    assert_eq!(ssse::verify_pin(&mut s, &wrong), Err(SsseError::PinBlocked));
    assert_eq!(ssse::verify_pin(&mut s, &right), Err(SsseError::PinBlocked));
    assert_eq!(ssse::pin_tries_left(&mut s), Ok(Some(0)));
}

#[test]
fn change_pin_and_its_errors() {
    let mut s = CardSession::new(card("lisi"));
    ssse::select(&mut s).unwrap();
    let old = Pin::new("654321").unwrap();
    let new = Pin::new("24681357").unwrap();
    assert_eq!(
        ssse::change_pin(&mut s, &Pin::new("111111").unwrap(), &new),
        Err(SsseError::WrongPin { tries_left: 2 })
    );
    assert_eq!(ssse::change_pin(&mut s, &old, &new), Ok(()));
    assert_eq!(
        ssse::verify_pin(&mut s, &old),
        Err(SsseError::WrongPin { tries_left: 2 })
    );
    assert_eq!(ssse::verify_pin(&mut s, &new), Ok(()));
    // No separator, or a new PIN that is not BCD: 6A80.
    let c = s.channel_mut();
    assert_eq!(send(c, "805E0100 03 654321").1, 0x6A80);
    assert_eq!(send(c, "805E0100 07 654321 FF ABCDEF").1, 0x6A80);
    assert_eq!(send(c, "805E0200 07 654321 FF 123456").1, 0x6A86);
}

#[test]
fn pin_counter_survives_reset_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zhangsan.json");
    {
        let mut c = SoftCard::open(image("zhangsan"), Box::new(FileStorage::new(&path))).unwrap();
        assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
        assert_eq!(send(&mut c, "0020000003000000").1, 0x63C2);
        // A reset forgets that the PIN was verified, not the counter.
        c.reset();
        assert_eq!(send(&mut c, "00200000").1, 0x63C2);
    }
    // A new process opens the same file: the counter is still 2.
    let mut c = SoftCard::open(image("zhangsan"), Box::new(FileStorage::new(&path))).unwrap();
    assert_eq!(send(&mut c, "00200000").1, 0x63C2);
    assert_eq!(send(&mut c, "0020000003123456").1, 0x9000);
    drop(c);
    let mut c = SoftCard::open(image("zhangsan"), Box::new(FileStorage::new(&path))).unwrap();
    assert_eq!(send(&mut c, "00200000").1, 0x63C3);
}

#[test]
fn verification_state_is_lost_on_reset() {
    let mut c = card("zhangsan");
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    assert_eq!(send(&mut c, "0020000003123456").1, 0x9000);
    assert_eq!(send(&mut c, "00A4040006D15600000503 00").1, 0x9000);
    assert_eq!(send(&mut c, "00B2012D00").1, 0x9000);
    c.reset();
    assert_eq!(send(&mut c, "00A4040006D15600000503 00").1, 0x9000);
    assert_eq!(send(&mut c, "00B2012D00").1, 0x6982);
}

/// A storage that tears the n-th commit and lets the test look at it afterwards.
struct Shared(std::sync::Arc<std::sync::Mutex<MemoryStorage>>);
impl Storage for Shared {
    fn load(&mut self) -> Result<Option<CardImage>, firmware_tests::storage::StorageError> {
        self.0.lock().unwrap().load()
    }
    fn commit(&mut self, image: &CardImage) -> Result<(), firmware_tests::storage::StorageError> {
        self.0.lock().unwrap().commit(image)
    }
}

#[test]
fn torn_pin_writes_never_give_a_free_try() {
    // Tear the first commit of a wrong VERIFY (the counter decrement): the card answers 6581
    // and the counter is as before; nothing was compared.
    let store = std::sync::Arc::new(std::sync::Mutex::new(MemoryStorage::new()));
    let mut c = SoftCard::open(image("zhangsan"), Box::new(Shared(store.clone()))).unwrap();
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    store.lock().unwrap().tear_at(1);
    assert_eq!(send(&mut c, "0020000003000000").1, 0x6581);
    assert_eq!(send(&mut c, "00200000").1, 0x63C3);
    // Tear the second commit of a right VERIFY (the counter restore): the try was counted
    // but the PIN is not verified; a reset shows the decremented counter.
    store.lock().unwrap().tear_at(2);
    assert_eq!(send(&mut c, "0020000003123456").1, 0x6581);
    c.reset();
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    assert_eq!(send(&mut c, "00200000").1, 0x63C2);
}

#[test]
fn records_can_be_updated_after_external_authentication() {
    use card_core::crypto::sm4::Sm4Key;
    use card_core::ssse::update::{derive_maintenance_key, external_auth_cryptogram};
    let mut c = card("zhangsan");
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    // EF06 update needs the maintenance key; the cardholder's PIN does not open it.
    assert_eq!(send(&mut c, "00DC0334 03 0A0132").1, 0x6982);
    assert_eq!(send(&mut c, "0020000003123456").1, 0x9000);
    assert_eq!(send(&mut c, "00DC0334 03 0A0132").1, 0x6982);
    let profile = Profile::embedded("zhangsan").unwrap();
    let master = Sm4Key::from_slice(&hex(profile.maintenance_master.as_ref().unwrap())).unwrap();
    let key = derive_maintenance_key(&master, &hex(&profile.card.card_id)).unwrap();
    // Wrong key id, wrong length, then a good cryptogram over the card's challenge.
    assert_eq!(
        send(&mut c, &format!("00820002 10 {}", "00".repeat(16))).1,
        0x6A88
    );
    assert_eq!(send(&mut c, "00820001 08 0000000000000000").1, 0x6700);
    let (challenge, sw) = send(&mut c, "0084000008");
    assert_eq!(sw, 0x9000);
    let crypt = external_auth_cryptogram(&key, &challenge.try_into().unwrap());
    assert_eq!(
        send(&mut c, &format!("00820001 10 {}", hex::encode(crypt))).1,
        0x9000
    );
    assert_eq!(send(&mut c, "00DC0334 03 0A0132").1, 0x9000);
    // The challenge was good for one try only, and a failed try closes the file again.
    assert_eq!(
        send(&mut c, &format!("00820001 10 {}", hex::encode(crypt))).1,
        0x6985
    );
    assert_eq!(send(&mut c, "00DC0334 03 0A0132").1, 0x6982);
    let (challenge, _) = send(&mut c, "0084000008");
    let crypt = external_auth_cryptogram(&key, &challenge.try_into().unwrap());
    assert_eq!(
        send(&mut c, &format!("00820001 10 {}", hex::encode(crypt))).1,
        0x9000
    );
    assert_eq!(send(&mut c, "00B20A3000").0, hex("0A0132"));
    // Too long a record.
    let long = format!("00DC0334 41 0A3F{}", "00".repeat(63));
    assert_eq!(send(&mut c, &long).1, 0x6700);
    // Cyclic EF08 in DF04: appended records come back newest first.
    assert_eq!(send(&mut c, "00A4040006D15600000503 00").1, 0x9000);
    for i in 1..=12u8 {
        assert_eq!(send(&mut c, &format!("00E20040 03 3001{i:02X}")).1, 0x9000);
    }
    assert_eq!(send(&mut c, "00B2014400").0, hex("30010C"));
    assert_eq!(send(&mut c, "00B20A4400").0, hex("300103"));
    assert_eq!(send(&mut c, "00B20B4400").1, 0x6A83);
}

#[test]
fn internal_authenticate_signs_the_terminal_challenge() {
    use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2Signature};
    let key = Sm2PrivateKey::generate_os().unwrap();
    let mut img = image("zhangsan");
    // Unpersonalised: no key, 6985.
    let mut c = SoftCard::in_memory(img.clone());
    assert_eq!(
        send(&mut c, "00A404000C 53532E434552542E41444631 00").1,
        0x9000
    );
    assert_eq!(
        send(&mut c, "0088000010 00112233445566778899AABBCCDDEEFF 00").1,
        0x6985
    );
    img.keys.set_sm2_private(&key.expose_bytes()[..]);
    let mut c = SoftCard::in_memory(img);
    // Outside the PKI application: 6985.
    assert_eq!(send(&mut c, SELECT_SSSE).1, 0x9000);
    assert_eq!(
        send(&mut c, "0088000010 00112233445566778899AABBCCDDEEFF 00").1,
        0x6985
    );
    assert_eq!(
        send(&mut c, "00A404000C 53532E434552542E41444631 00").1,
        0x9000
    );
    assert_eq!(send(&mut c, "0088000002 0011 00").1, 0x6700);
    assert_eq!(
        send(&mut c, "0088010010 00112233445566778899AABBCCDDEEFF 00").1,
        0x6A86
    );
    let challenge = hex("00112233445566778899AABBCCDDEEFF");
    let (r, sw) = send(&mut c, "0088000010 00112233445566778899AABBCCDDEEFF 00");
    assert_eq!(sw, 0x9000);
    // 77 { 9F4B { 15 09 08 <8-byte number> r||s } }
    let tlv = card_core::tlv::Tlv::parse(&r).unwrap();
    let sdad = tlv
        .find(card_core::tlv::Tag::new(0x9f4b))
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    assert_eq!(&sdad[..3], &[0x15, 0x09, 0x08]);
    assert_eq!(sdad.len(), 3 + 8 + 64);
    let mut signed = sdad[..11].to_vec();
    signed.extend_from_slice(&challenge);
    let sig = Sm2Signature::from_bytes(&sdad[11..]).unwrap();
    key.public_key().verify(DEFAULT_ID, &signed, &sig).unwrap();
    // A fresh ICC dynamic number each time.
    let (r2, _) = send(&mut c, "0088000010 00112233445566778899AABBCCDDEEFF 00");
    assert_ne!(r2[6..14], r[6..14]);
}
