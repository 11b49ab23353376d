#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Hostile cards in-process (issue 9, part 6): card-core's flows run against 张三's genuine
//! software card behind a [`HostileCard`] in each [`HostileMode`] (wrong lengths, `6Cxx` loops,
//! endless `61xx`, junk records, extended-length junk, malformed FCI, wrong status words, junk
//! signatures and cryptograms, an absurd AFL, a log claiming 255 records, a mute card). Every
//! flow ends, in every mode, with the typed error named here (or, where the mode does not touch
//! what the flow reads, with the genuine result), within [`MAX_APDUS`] APDUs and [`MAX_TIME`].
//! The figures are in docs/reliability.md; the same cards through pcscd are in
//! terminal-app's tests/hostile_cardctl.rs.

use std::time::{Duration, Instant};

use card_core::crypto::rsa::YearMonth;
use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::pboc::ec;
use card_core::pboc::oda::CaStore;
use card_core::pboc::online::{OnlineAuthoriser, OnlineRequest, OnlineResponse, OnlineUnavailable};
use card_core::pboc::outcome::{DebitIntent, MemoryJournal};
use card_core::pboc::qpboc::{QpbocHooks, run_qpboc};
use card_core::pboc::recovery::{Recovery, check_debit};
use card_core::pboc::risk::NoHotList;
use card_core::pboc::{
    Amount, Date, Hooks, Outcome, PbocError, TerminalConfig, Time, TransactionParams,
    TransactionRecord, run_contact,
};
use card_core::secret::Pin;
use card_core::ssse::auth::{self, AuthError};
use card_core::ssse::records::RecordError;
use card_core::ssse::{self, ReadStrategy, SsseError};
use card_core::{CardSession, Command, SendError, StatusWord, TransportError};
use firmware_tests::hostile::{HostileCard, HostileMode};
use firmware_tests::pboc::profile::TerminalCaKey;
use firmware_tests::{Profile, SoftCard};

/// Most APDUs a flow sends to a hostile card: the longest is the transaction log of
/// [`HostileMode::Log255`], selection plus GET DATA plus 255 READ RECORDs.
const MAX_APDUS: u64 = 264;
/// Longest a flow may take in-process (a debug build on a loaded machine; the real figures
/// are milliseconds).
const MAX_TIME: Duration = Duration::from_secs(5);

use HostileMode as M;

type Session = CardSession<HostileCard>;

/// Run `flow` on a fresh hostile 张三 (or `image`), check the bounds, return its result.
fn run<T>(mode: HostileMode, flow: impl FnOnce(&mut Session) -> T) -> T {
    run_on(None, mode, flow)
}

fn run_on<T>(
    image: Option<&firmware_tests::image::CardImage>,
    mode: HostileMode,
    flow: impl FnOnce(&mut Session) -> T,
) -> T {
    let card = match image {
        Some(i) => HostileCard::new(SoftCard::in_memory(i.clone()), mode),
        None => HostileCard::fixture("zhangsan", mode).unwrap(),
    };
    let mut s = CardSession::new(card);
    let start = Instant::now();
    let out = flow(&mut s);
    let took = start.elapsed();
    assert!(
        s.exchanges() <= MAX_APDUS,
        "{mode}: {} APDUs exchanged",
        s.exchanges()
    );
    assert!(took <= MAX_TIME, "{mode}: took {took:?}");
    assert_eq!(
        s.exchanges(),
        s.channel().apdus(),
        "{mode}: the session counts what the card received"
    );
    out
}

/// The transport-level modes: the card's answers cannot be APDUs at all. Each ends the first
/// command with its own [`SendError`] after a fixed number of exchanges.
fn transport_failure(mode: HostileMode) -> Option<(SendError, u64)> {
    match mode {
        M::Mute => Some((SendError::Transport(TransportError::CardUnresponsive), 1)),
        M::NoStatus => Some((SendError::MalformedResponse { len: 1 }, 1)),
        M::Empty => Some((SendError::MalformedResponse { len: 0 }, 1)),
        // The command, then two corrected resends.
        M::WrongLeLoop => Some((SendError::WrongLeLoop, 3)),
        // The command, then 64 GET RESPONSEs (SessionOptions::max_get_response).
        M::Endless61 => Some((SendError::EndlessGetResponse { rounds: 64 }, 65)),
        _ => None,
    }
}

#[test]
fn send_ends_every_command_with_a_typed_error_or_the_answer() {
    for mode in HostileMode::ALL {
        let select = Command::new(0x00, 0xa4, 0x04, 0x00)
            .with_data(ssse::AID)
            .expect_data();
        let (result, apdus) = run(mode, |s| (s.send(&select), s.exchanges()));
        match transport_failure(mode) {
            Some((err, n)) => {
                assert_eq!(result, Err(err), "{mode}");
                assert_eq!(apdus, n, "{mode}");
            }
            None => {
                let r = result.unwrap_or_else(|e| panic!("{mode}: {e}"));
                assert_eq!(apdus, 1, "{mode}");
                if mode == M::WrongSuccessSw {
                    // 9000 turned into 6283 on the first APDU.
                    assert_eq!(r.sw(), StatusWord::SelectedFileInvalidated);
                } else {
                    assert!(r.is_success(), "{mode}: {}", r.sw());
                }
                if mode == M::ExtendedJunk {
                    // More than a short Le allows is still handed up, as data, not a panic.
                    assert_eq!(r.data().len(), 4096);
                }
            }
        }
    }
}

#[test]
fn identity_read_ends_with_a_typed_error_in_every_mode() {
    let genuine = ssse::read_identity(
        &mut CardSession::new(SoftCard::in_memory(
            Profile::embedded("zhangsan").unwrap().build().unwrap(),
        )),
        ReadStrategy::AllRecords,
    )
    .unwrap();
    for strategy in [ReadStrategy::AllRecords, ReadStrategy::ByTag] {
        for mode in HostileMode::ALL {
            let result = run(mode, |s| ssse::read_identity(s, strategy));
            let why = format!("{mode} {strategy:?}: {result:?}");
            if let Some((err, _)) = transport_failure(mode) {
                assert_eq!(result.unwrap_err(), SsseError::Send(err), "{why}");
                continue;
            }
            match mode {
                // Junk, extended junk and cut records: the records are not TLV.
                M::JunkRecords | M::ExtendedJunk | M::Truncated => assert!(
                    matches!(
                        result,
                        Err(SsseError::Record(RecordError::Tlv { file: "EF05", .. }))
                    ),
                    "{why}"
                ),
                // SELECT answered 6283 instead of 9000.
                M::WrongSuccessSw => assert!(
                    matches!(
                        result,
                        Err(SsseError::ApplicationBlocked(
                            StatusWord::SelectedFileInvalidated
                        ))
                    ),
                    "{why}"
                ),
                // The SSSE flow does not read the FCI, signatures or PBOC files: the genuine
                // identity comes out.
                M::MalformedFci | M::AuthGarbage | M::AbsurdAfl | M::Log255 => {
                    assert_eq!(result.unwrap(), genuine, "{why}");
                }
                _ => unreachable!("{why}"),
            }
        }
    }
}

mod world {
    use std::sync::Arc;

    use card_core::CardSession;
    use card_core::crypto::rsa::YearMonth;
    use card_core::crypto::sm2_cert::TrustStore;
    use card_core::ssse::records::Identity;
    use card_core::ssse::{self, ReadStrategy, auth};
    use firmware_tests::image::CardImage;
    use firmware_tests::personalize::{self, CardInput};
    use firmware_tests::{Profile, SoftCard};
    use hsm_sim::client::{HsmClient, InProcess};
    use hsm_sim::keys::{BlockKey, Secret};
    use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

    const ZMK: &str = "00112233445566778899AABBCCDDEEFF";

    /// 张三's card with its PKI application personalised through an in-memory hsm-sim, the
    /// trust store with its CA, and the identity a genuine read gives.
    pub fn issued() -> (CardImage, TrustStore, Identity) {
        let lmk = Lmk::from_hex("0F1E2D3C4B5A69788796A5B4C3D2E1F0").unwrap();
        let hsm = Arc::new(Hsm::in_memory(lmk, 4).unwrap());
        let zmk = hex::decode(ZMK).unwrap();
        hsm.form_key_from_components("ZMKPERSO", KeyType::Zmk, Scheme::Sm4, &[&zmk])
            .unwrap();
        let mut client = HsmClient::new(InProcess::new(hsm));
        let expiry = YearMonth {
            year: 2035,
            month: 12,
        };
        let issuer = personalize::setup_issuer(
            &mut client,
            "CAROOT01",
            0x01,
            "ISSUER01",
            "62170000",
            expiry,
        )
        .unwrap();
        let mut trust = TrustStore::new();
        trust.insert(issuer.ca.clone());
        let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(zmk)).unwrap();
        let mut image = Profile::embedded("zhangsan").unwrap().build().unwrap();
        let mut s = CardSession::new(SoftCard::in_memory(image.clone()));
        let identity = ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap();
        let statics = auth::static_data(&identity);
        personalize::personalize_pki(
            &mut client,
            &mut image,
            &issuer,
            "ZMKPERSO",
            &zmk,
            &CardInput {
                label: "ICC00001",
                pan: "6217000010001234567",
                static_data: &statics,
                expiry: YearMonth {
                    year: 2034,
                    month: 1,
                },
                serial: [0, 0, 1],
            },
        )
        .unwrap();
        (image, trust, identity)
    }
}

#[test]
fn card_authentication_ends_with_a_typed_error_in_every_mode() {
    let (image, trust, identity) = world::issued();
    let today = YearMonth {
        year: 2026,
        month: 11,
    };
    for mode in HostileMode::ALL {
        let result = run_on(Some(&image), mode, |s| {
            auth::authenticate_card(s, &trust, &identity, &[7u8; 16], today)
        });
        let why = format!("{mode}: {result:?}");
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(result.unwrap_err(), AuthError::Send(err), "{why}");
            continue;
        }
        match mode {
            // READ BINARY of the authentication data: junk or cut TLV.
            M::JunkRecords | M::ExtendedJunk | M::Truncated => {
                assert!(matches!(result, Err(AuthError::Malformed(_))), "{why}")
            }
            M::WrongSuccessSw => assert!(
                matches!(
                    result,
                    Err(AuthError::NotPersonalised(
                        StatusWord::SelectedFileInvalidated
                    ))
                ),
                "{why}"
            ),
            // The chain is genuine, the signature over the challenge is junk.
            M::AuthGarbage => assert!(
                matches!(
                    result,
                    Err(AuthError::BadSignature(
                        card_core::crypto::sm2_cert::Sm2CertError::SignatureMismatch { .. }
                    ))
                ),
                "{why}"
            ),
            // Not touched by the mode: the genuine card authenticates.
            M::MalformedFci | M::AbsurdAfl | M::Log255 => {
                assert_eq!(result.unwrap().ca_index, 1, "{why}");
            }
            _ => unreachable!("{why}"),
        }
    }
}

#[test]
fn pin_status_and_verify_end_with_a_typed_error_in_every_mode() {
    for mode in HostileMode::ALL {
        let (tries, verified) = run(mode, |s| {
            if let Err(e) = ssse::select(s) {
                return (Err(e.clone()), Err(e));
            }
            let tries = ssse::pin_tries_left(s);
            (tries, ssse::verify_pin(s, &Pin::new("123456").unwrap()))
        });
        let why = format!("{mode}: {tries:?} {verified:?}");
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(tries, Err(SsseError::Send(err.clone())), "{why}");
            assert_eq!(verified, Err(SsseError::Send(err)), "{why}");
            continue;
        }
        match mode {
            M::WrongSuccessSw => assert!(
                matches!(tries, Err(SsseError::ApplicationBlocked(_))),
                "{why}"
            ),
            // Status words pass through untouched in the other modes.
            _ => {
                assert_eq!(tries, Ok(Some(3)), "{why}");
                assert_eq!(verified, Ok(()), "{why}");
            }
        }
    }
}

struct Pad;

impl PinPad for Pad {
    fn request_pin(&mut self, _prompt: PinPrompt) -> PinEntry {
        PinEntry::Pin(Pin::new("123456").unwrap())
    }
}

struct Offline;

impl OnlineAuthoriser for Offline {
    fn authorise(&mut self, _r: &OnlineRequest<'_>) -> Result<OnlineResponse, OnlineUnavailable> {
        Err(OnlineUnavailable("offline kiosk".into()))
    }
}

fn ca() -> CaStore {
    let p = Profile::embedded("zhangsan").unwrap();
    let mut ca = CaStore::new();
    match p.pboc.as_ref().unwrap().ca_key().unwrap() {
        TerminalCaKey::Sm2(k) => ca.add_sm2(k),
        TerminalCaKey::Rsa(k) => ca.add_rsa(k),
    }
    ca
}

fn params() -> TransactionParams {
    TransactionParams::purchase(
        Amount::new(100).unwrap(),
        Date::new(2026, 3, 15).unwrap(),
        Time::new(10, 20, 30).unwrap(),
        [1, 2, 3, 4],
    )
}

fn contact(s: &mut Session) -> TransactionRecord {
    run_contact(
        s,
        &TerminalConfig::kiosk(),
        &ca(),
        params(),
        &mut Hooks {
            pin_pad: &mut Pad,
            hot_list: &NoHotList,
            online: &mut Offline,
            journal: &mut MemoryJournal::default(),
        },
    )
}

fn qpboc(s: &mut Session) -> TransactionRecord {
    run_qpboc(
        s,
        &TerminalConfig::kiosk(),
        &ca(),
        params(),
        &mut QpbocHooks {
            hot_list: &NoHotList,
            online: &mut Offline,
            journal: &mut MemoryJournal::default(),
        },
    )
}

/// What a PBOC flow makes of the modes that corrupt what every flow reads first (selection).
fn selection_error(mode: HostileMode, e: &PbocError) -> bool {
    match mode {
        // The PSE and the AID list both answer garbage: nothing to select.
        M::ExtendedJunk | M::Truncated | M::MalformedFci | M::WrongSuccessSw => {
            matches!(e, PbocError::NoApplication)
        }
        _ => false,
    }
}

#[test]
fn contact_purchase_ends_with_a_typed_outcome_in_every_mode() {
    for mode in HostileMode::ALL {
        let record = run(mode, contact);
        let why = format!("{mode}: {:?}", record.outcome);
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(
                record.outcome,
                Outcome::Aborted(PbocError::Send(err)),
                "{why}"
            );
            continue;
        }
        match (&record.outcome, mode) {
            (Outcome::Aborted(e), _) if selection_error(mode, e) => {}
            // The first AFL record is 255 junk bytes.
            (
                Outcome::Aborted(PbocError::NotRecordTemplate { sfi: 1, record: 1 }),
                M::JunkRecords,
            ) => {}
            // The junk signature fails CDA: a TVR bit, and the terminal declines.
            (Outcome::DeclinedOffline, M::AuthGarbage) => {}
            // 62 files × 255 records refused before the first READ RECORD.
            (
                Outcome::Aborted(PbocError::AflTooLong {
                    records: 15_810,
                    limit: 128,
                }),
                M::AbsurdAfl,
            ) => {}
            // The purchase does not read the log: the genuine card approves.
            (Outcome::ApprovedOffline, M::Log255) => {}
            _ => panic!("{why}"),
        }
    }
}

#[test]
fn qpboc_purchase_ends_with_a_typed_outcome_in_every_mode() {
    for mode in HostileMode::ALL {
        let record = run(mode, qpboc);
        let why = format!("{mode}: {:?}", record.outcome);
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(
                record.outcome,
                Outcome::Aborted(PbocError::Send(err)),
                "{why}"
            );
            continue;
        }
        match (&record.outcome, mode) {
            // qPBOC selects through the PPSE, whose FCI is junk, cut or malformed.
            (
                Outcome::Aborted(PbocError::Tlv { what: "FCI", .. }),
                M::ExtendedJunk | M::Truncated | M::MalformedFci,
            ) => {}
            (
                Outcome::Aborted(PbocError::Status {
                    command: "SELECT PPSE",
                    ..
                }),
                M::WrongSuccessSw,
            ) => {}
            (Outcome::Aborted(PbocError::NotRecordTemplate { .. }), M::JunkRecords) => {}
            // fDDA over a junk signature fails: declined.
            (Outcome::DeclinedOffline, M::AuthGarbage) => {}
            // A format 1 GPO answer where qPBOC needs format 2.
            (Outcome::Aborted(PbocError::Malformed { .. }), M::AbsurdAfl) => {}
            (Outcome::ApprovedOffline, M::Log255) => {}
            _ => panic!("{why}"),
        }
    }
}

#[test]
fn balance_inquiry_ends_with_a_typed_error_in_every_mode() {
    for mode in HostileMode::ALL {
        let result = run(mode, |s| {
            ec::balance_inquiry(s, &TerminalConfig::kiosk()).map(|(_, b)| b.balance)
        });
        let why = format!("{mode}: {result:?}");
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(result, Err(PbocError::Send(err)), "{why}");
            continue;
        }
        match result {
            Err(e) if selection_error(mode, &e) => {}
            // The balance is read by GET DATA, which these modes leave alone (the junk PSE
            // records make selection fall back to the AID list).
            Ok(b)
                if matches!(
                    mode,
                    M::JunkRecords | M::AuthGarbage | M::AbsurdAfl | M::Log255
                ) =>
            {
                assert_eq!(b, Amount::new(50_000).unwrap(), "{why}");
            }
            _ => panic!("{why}"),
        }
    }
}

#[test]
fn transaction_log_ends_with_a_typed_error_or_at_255_records() {
    for mode in HostileMode::ALL {
        let result = run(mode, |s| {
            let app = ec::select_application(s, &TerminalConfig::kiosk())?;
            let entry = app.fci.log_entry.ok_or(PbocError::NoApplication)?;
            Ok::<_, PbocError>((entry.records, ec::read_transaction_log(s, entry)?))
        });
        let why = format!("{mode}: {:?}", result.as_ref().map(|(n, l)| (n, l.len())));
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(result.unwrap_err(), PbocError::Send(err), "{why}");
            continue;
        }
        match (result, mode) {
            (Err(e), _) if selection_error(mode, &e) => {}
            // Records that are junk, or empty templates, do not have the format's length.
            (
                Err(PbocError::Malformed {
                    what: "log record", ..
                }),
                M::JunkRecords | M::AbsurdAfl,
            ) => {}
            // The new card's log is empty.
            (Ok((10, log)), M::AuthGarbage) => assert!(log.is_empty(), "{why}"),
            // 255 records claimed and answered: read, and no more.
            (Ok((255, log)), M::Log255) => {
                assert_eq!(log.len(), 255, "{why}");
                assert_eq!(log[0].atc(), Some(299));
            }
            _ => panic!("{why}"),
        }
    }
}

#[test]
fn recovery_check_ends_with_a_typed_answer_in_every_mode() {
    for mode in HostileMode::ALL {
        let result = run(mode, |s| {
            let app = ec::select_application(s, &TerminalConfig::kiosk())?;
            let intent = DebitIntent {
                aid: app.aid.clone(),
                pan: None,
                psn: None,
                atc_before: Some(0),
                amount: Amount::new(100).unwrap(),
                currency: [0x01, 0x56],
                date: Date::new(2026, 3, 15).unwrap(),
                time: Time::new(10, 20, 30).unwrap(),
                ec_balance_before: Some(Amount::new(50_000).unwrap()),
            };
            check_debit(s, &app, &intent)
        });
        let why = format!("{mode}: {result:?}");
        if let Some((err, _)) = transport_failure(mode) {
            assert_eq!(result, Err(PbocError::Send(err)), "{why}");
            continue;
        }
        match (result, mode) {
            (Err(e), _) if selection_error(mode, &e) => {}
            // The log cannot be read: the intent stays pending (the reason is recovery.rs's
            // business; that it is not a settlement is this test's).
            (Ok(Recovery::Unclear(_)), M::JunkRecords | M::AbsurdAfl) => {}
            // Nothing happened on the card.
            (Ok(Recovery::NotDone), M::AuthGarbage) => {}
            // 255 records that all look like the debit, none of them the card's: not a
            // settlement either way.
            (Ok(Recovery::Unclear(_)), M::Log255) => {}
            _ => panic!("{why}"),
        }
    }
}
