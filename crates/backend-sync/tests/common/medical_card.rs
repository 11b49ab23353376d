//! Software cards for medical debits: the firmware-tests card OS, its certificate application
//! personalised through an in-memory hsm-sim (CA and issuer keys never leave it), as the demo
//! world and the `personalize` binary do. The card signs INTERNAL AUTHENTICATE with its own SM2
//! key; nothing here signs for it.

use card_core::CardSession;
use card_core::crypto::rsa::YearMonth;
use card_core::crypto::sm2_cert::TrustStore;
use card_core::secret::Pin;
use card_core::ssse::records::Identity;
use card_core::ssse::{self, ReadStrategy};
use firmware_tests::personalize::{self, CardInput, Issuer};
use firmware_tests::{Profile, SoftCard};
use hsm_sim::client::{HsmClient, InProcess};
use hsm_sim::keys::{BlockKey, Secret};
use hsm_sim::{Hsm, KeyType, Lmk, Scheme};

const ZMK: [u8; 16] = [0x5a; 16];

/// A CA and an issuer in their own HSM, issuing cards.
pub struct Issuance {
    /// The CA key as a trust store.
    pub trust: TrustStore,
    /// The same as a trust-store file's text (`RID INDEX MMYY X‖Y`).
    pub trust_text: String,
    client: HsmClient<InProcess>,
    issuer: Issuer,
    zmk: BlockKey,
    issued: u8,
}

impl Issuance {
    /// A CA with key index `ca_index` and its issuer.
    pub fn new(ca_index: u8) -> Self {
        let hsm = std::sync::Arc::new(Hsm::in_memory(Lmk::new(&[0x42; 16]), 4).unwrap());
        hsm.form_key_from_components("ZMKPERSO", KeyType::Zmk, Scheme::Sm4, &[&ZMK])
            .unwrap();
        let mut client = HsmClient::new(InProcess::new(hsm));
        let issuer = personalize::setup_issuer(
            &mut client,
            "CAROOT01",
            ca_index,
            "ISSUER01",
            "62170000",
            YearMonth {
                year: 2035,
                month: 12,
            },
        )
        .unwrap();
        let zmk = BlockKey::new(Scheme::Sm4, &Secret::new(ZMK.to_vec())).unwrap();
        let mut trust = TrustStore::new();
        trust.insert(issuer.ca.clone());
        let trust_text = format!("{}\n", personalize::trust_line(&issuer.ca));
        Self {
            trust,
            trust_text,
            client,
            issuer,
            zmk,
            issued: 0,
        }
    }

    /// Personalise the fixture `profile` with certificates for `pan`, and insert it.
    pub fn card(&mut self, profile: &str, pan: &str) -> MedCard {
        let profile = Profile::embedded(profile).unwrap();
        let mut image = profile.build().unwrap();
        let identity = {
            let mut s = CardSession::new(SoftCard::in_memory(image.clone()));
            ssse::read_identity(&mut s, ReadStrategy::AllRecords).unwrap()
        };
        let statics = ssse::auth::static_data(&identity);
        self.issued += 1;
        let label = format!("ICC{:05}", self.issued);
        personalize::personalize_pki(
            &mut self.client,
            &mut image,
            &self.issuer,
            "ZMKPERSO",
            &self.zmk,
            &CardInput {
                label: &label,
                pan,
                static_data: &statics,
                expiry: YearMonth {
                    year: 2034,
                    month: 12,
                },
                serial: [0, 0, self.issued],
            },
        )
        .unwrap();
        let mut session = CardSession::new(SoftCard::in_memory(image));
        let identity = ssse::read_identity(&mut session, ReadStrategy::AllRecords).unwrap();
        MedCard {
            session,
            identity,
            pan: pan.to_string(),
            pin: profile.pin.value.clone(),
        }
    }
}

/// A personalised card in the reader, its identity read.
pub struct MedCard {
    pub session: CardSession<SoftCard>,
    pub identity: Identity,
    pub pan: String,
    pin: String,
}

impl MedCard {
    /// The cardholder's PIN (the fixture's), verified as the counter does.
    pub fn verify_pin(&mut self) {
        ssse::read_identity(&mut self.session, ReadStrategy::AllRecords).unwrap();
        ssse::verify_pin(&mut self.session, &Pin::new(&self.pin).unwrap()).unwrap();
    }

    pub fn ssn(&self) -> &str {
        self.identity.holder.ssn.reveal()
    }

    pub fn card_no(&self) -> &str {
        self.identity.card.card_number.reveal()
    }

    pub fn name(&self) -> &str {
        self.identity.holder.name.reveal()
    }
}

// ---------------------------------------------------------------------------------------------
// A counter with a server: records, signing, scenarios shared by SQLite and PostgreSQL
// ---------------------------------------------------------------------------------------------

use std::path::PathBuf;

use backend_sync::entry::{
    CNY, EntryKind, EntryState, IdempotencyId, TerminalId, TxnTime, UploadEntry,
};
use backend_sync::ledger::{LedgerError, MedicalRecorded, NewMedicalDebit};
use backend_sync::medical::{self, Attested};
use backend_sync::server::db::Val;
use backend_sync::wire::{EntryStatus, RejectReason};

use super::{Backend, Env, Server, Term};

/// The time of the counter's debits in these tests.
pub const MED_TIME: &str = "20250301101500";
/// The `as_of` of the cardholder records.
pub const AS_OF: &str = "20250101000000";

/// The card signs a medical debit of `amount` for `terminal` under `id`, after its PIN: what
/// the counter does with the card in the reader.
pub fn sign(
    card: &mut MedCard,
    trust: &TrustStore,
    terminal: &TerminalId,
    id: IdempotencyId,
    amount: u64,
) -> Attested {
    sign_at(
        card,
        trust,
        terminal,
        id,
        amount,
        &MED_TIME.parse().unwrap(),
    )
}

/// [`sign`] at the transaction time `time`.
pub fn sign_at(
    card: &mut MedCard,
    trust: &TrustStore,
    terminal: &TerminalId,
    id: IdempotencyId,
    amount: u64,
    time: &TxnTime,
) -> Attested {
    card.verify_pin();
    let time = time.clone();
    let c = medical::challenge(
        terminal,
        &id,
        amount,
        CNY,
        &time,
        &card.identity.card.card_number,
    );
    medical::attest(
        &mut card.session,
        trust,
        &card.identity,
        &c,
        medical::txn_month(&time),
    )
    .unwrap()
}

/// Sign and record a medical debit in the terminal's ledger.
pub fn record(
    term: &Term,
    card: &mut MedCard,
    trust: &TrustStore,
    amount: u64,
) -> Result<MedicalRecorded, LedgerError> {
    let id = IdempotencyId::generate().unwrap();
    let a = sign(card, trust, &term.id, id, amount);
    let mut l = term.open_ledger();
    l.record_medical_debit(&NewMedicalDebit {
        idempotency_id: id,
        amount_fen: amount,
        currency: CNY,
        txn_time: MED_TIME.parse().unwrap(),
        pan: a.pan,
        medical: a.medical,
    })
}

/// A medical debit signed by the card, built by hand as the agent would upload it (not in any
/// ledger).
pub fn hand_entry(
    terminal: &TerminalId,
    seq: u64,
    card: &mut MedCard,
    trust: &TrustStore,
    amount: u64,
) -> UploadEntry {
    hand_entry_at(
        terminal,
        seq,
        card,
        trust,
        amount,
        &MED_TIME.parse().unwrap(),
    )
}

/// [`hand_entry`] at the transaction time `time`.
pub fn hand_entry_at(
    terminal: &TerminalId,
    seq: u64,
    card: &mut MedCard,
    trust: &TrustStore,
    amount: u64,
    time: &TxnTime,
) -> UploadEntry {
    let id = IdempotencyId::generate().unwrap();
    let a = sign_at(card, trust, terminal, id, amount, time);
    UploadEntry {
        terminal_id: terminal.clone(),
        seq,
        idempotency_id: id,
        batch_no: 99,
        kind: EntryKind::MedicalDebit,
        state: EntryState::Recorded,
        amount_fen: amount,
        currency: CNY,
        pan_masked: a.pan.masked(),
        pan: a.pan,
        psn: "00".parse().unwrap(),
        txn_time: time.clone(),
        card: None,
        recovered: None,
        medical: Some(a.medical),
    }
}

/// Cardholder CSV for `cards` with their medical balances, region 110100.
pub fn cardholder_csv(cards: &[(&MedCard, i64)]) -> String {
    let with: Vec<(&MedCard, i64, &str)> = cards.iter().map(|(c, b)| (*c, *b, "active")).collect();
    cardholder_csv_with(&with)
}

/// [`cardholder_csv`] with each cardholder's insurance status.
pub fn cardholder_csv_with(cards: &[(&MedCard, i64, &str)]) -> String {
    let mut csv = String::from(
        "ssn,name,card_no,region,insurance_status,contribution_months,medical_balance_fen,as_of\n",
    );
    for (c, balance, status) in cards {
        csv.push_str(&format!(
            "{},{},{},110100,{status},120,{balance},{AS_OF}\n",
            c.ssn(),
            c.name(),
            c.card_no()
        ));
    }
    csv
}

/// A server with an SSSE trust store and cardholder records, and a registered counter that has
/// downloaded them.
pub struct MedWorld {
    pub env: Env,
    pub server: Server,
    pub term: Term,
    pub trust_file: PathBuf,
}

impl MedWorld {
    pub fn new(
        backend: Backend,
        terminal: &str,
        iss: &Issuance,
        cards: &[(&MedCard, i64)],
    ) -> Self {
        let env = Env::new(backend);
        let trust_file = env.dir.path().join("ssse-trust.txt");
        std::fs::write(&trust_file, &iss.trust_text).unwrap();
        let w = Self {
            server: Server::start_with(
                &env,
                0,
                &[],
                None,
                &["--ssse-trust", trust_file.to_str().unwrap()],
            ),
            env,
            term: Term::new(terminal),
            trust_file,
        };
        w.import(cards);
        w.term.register(&w.env, &w.server.url, "110100");
        w.sync(&[]);
        assert_eq!(
            w.term.open_ledger().cardholder_count().unwrap(),
            cards.len() as u64
        );
        w
    }

    /// Import (or replace) cardholder records on the server.
    pub fn import(&self, cards: &[(&MedCard, i64)]) {
        let with: Vec<(&MedCard, i64, &str)> =
            cards.iter().map(|(c, b)| (*c, *b, "active")).collect();
        self.import_with(&with);
    }

    /// [`MedWorld::import`] with each cardholder's insurance status.
    pub fn import_with(&self, cards: &[(&MedCard, i64, &str)]) {
        let path = self
            .env
            .dir
            .path()
            .join(format!("holders-{}.csv", super::rand16()[0]));
        std::fs::write(&path, cardholder_csv_with(cards)).unwrap();
        self.env
            .admin(&["import-cardholders", "--csv", path.to_str().unwrap()]);
    }

    /// `sync-agent once`; its standard output.
    pub fn sync(&self, extra: &[&str]) -> String {
        let (code, out, err) = self.term.run_agent("once", &self.server.url, extra);
        assert_eq!(code, 0, "{out} {err}");
        out
    }

    /// (status, reason) of the server's rows of this terminal's medical debits, by seq.
    pub fn medical_rows(&self) -> Vec<(i64, String, Option<String>)> {
        self.env
            .query(
                "SELECT seq, status, reason FROM entries WHERE terminal_id = $1
                   AND kind = 'medical_debit' ORDER BY seq",
                vec![Val::Text(self.term.id.to_string())],
            )
            .iter()
            .map(|r| {
                (
                    r.int(0).unwrap(),
                    r.text(1).unwrap(),
                    r.opt_text(2).unwrap(),
                )
            })
            .collect()
    }
}

/// Upload `cases` twice in one request each: the first time each is booked (`None`) or
/// rejected with its reason, the second time a booked one is a duplicate and a rejected one
/// gets the same rejection (stored).
fn upload_twice_expecting(w: &MedWorld, cases: &[(UploadEntry, Option<RejectReason>)]) {
    let entries: Vec<UploadEntry> = cases.iter().map(|(e, _)| e.clone()).collect();
    for round in 0..2 {
        let resp = w.term.upload(&w.server.url, entries.clone());
        assert_eq!(resp.results.len(), cases.len());
        for ((e, want), got) in cases.iter().zip(&resp.results) {
            assert_eq!(got.seq, e.seq);
            match want {
                None if round == 0 => assert_eq!(got.status, EntryStatus::Booked, "seq {}", e.seq),
                None => assert_eq!(got.status, EntryStatus::Duplicate, "seq {}", e.seq),
                Some(reason) => {
                    assert_eq!(
                        got.status,
                        EntryStatus::Rejected,
                        "seq {} round {round}",
                        e.seq
                    );
                    assert_eq!(got.reason, Some(*reason), "seq {} round {round}", e.seq);
                }
            }
        }
    }
}

/// The server rejects, and books nothing for: a forged card signature, a signature moved to
/// another amount (the challenge no longer names the entry, or names it but the card signed
/// another), another card's certificate under this cardholder's identity, a CA the server does
/// not trust (another index, or the same index with another key), a cardholder it has no record
/// of, and an amount beyond its own medical balance. Each rejection is stored: a resend gets the
/// same answer.
pub fn bad_medical_debits_are_rejected_and_nothing_booked(backend: Backend) {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let mut li = iss.card("lisi", "6217000010000002");
    let mut other_index = Issuance::new(2);
    let mut stranger = other_index.card("wangfang-t0", "6217000010000003");
    let mut same_index = Issuance::new(1);
    let mut impostor = same_index.card("zhangsan", "6217000010000001");
    let w = MedWorld::new(backend, "COUNTER-B", &iss, &[(&zhang, 3_000)]);
    let t = w.term.id.clone();
    let trust = iss.trust.clone();

    let good = hand_entry(&t, 1, &mut zhang, &trust, 1_000);
    let mut forged = hand_entry(&t, 2, &mut zhang, &trust, 1_000);
    if let Some(m) = forged.medical.as_mut() {
        let mut b = m.attestation.signed_dynamic_data.as_bytes().to_vec();
        let last = b.len() - 1;
        b[last] ^= 0x01;
        m.attestation.signed_dynamic_data = medical::EvidenceBytes::new(b).unwrap();
    }
    // Signed for 500, uploaded as 400: the signed challenge does not name the entry.
    let mut moved = hand_entry(&t, 3, &mut zhang, &trust, 500);
    moved.amount_fen = 400;
    // The same, with the challenge recomputed for 400: the card never signed it.
    let mut moved_rebound = hand_entry(&t, 4, &mut zhang, &trust, 500);
    moved_rebound.amount_fen = 400;
    if let Some(m) = moved_rebound.medical.as_mut() {
        m.attestation.challenge.0 = medical::challenge(
            &t,
            &moved_rebound.idempotency_id,
            400,
            CNY,
            &moved_rebound.txn_time,
            &m.card_no,
        );
    }
    // Li's card signs a debit of Zhang's account (Zhang's card number bound, Zhang's identity
    // claimed): Li's certificate does not authenticate Zhang's card number and ID number.
    let mut foreign = hand_entry(&t, 5, &mut li, &trust, 700);
    if let Some(m) = foreign.medical.as_mut() {
        m.card_no = zhang.identity.card.card_number.clone();
        m.ssn = zhang.identity.holder.ssn.clone();
        m.attestation.challenge.0 = medical::challenge(
            &t,
            &foreign.idempotency_id,
            700,
            CNY,
            &foreign.txn_time,
            &m.card_no,
        );
    }
    let foreign_resigned = {
        // Li's card made to sign that very challenge: the signature is Li's card's, still.
        let id = IdempotencyId::generate().unwrap();
        let c = medical::challenge(
            &t,
            &id,
            700,
            CNY,
            &MED_TIME.parse().unwrap(),
            &zhang.identity.card.card_number,
        );
        li.verify_pin();
        let a = medical::attest(
            &mut li.session,
            &trust,
            &li.identity,
            &c,
            medical::txn_month(&MED_TIME.parse().unwrap()),
        )
        .unwrap();
        let mut e = good.clone();
        e.seq = 6;
        e.idempotency_id = id;
        e.amount_fen = 700;
        e.pan = a.pan.clone();
        e.pan_masked = a.pan.masked();
        let mut m = a.medical;
        m.card_no = zhang.identity.card.card_number.clone();
        m.ssn = zhang.identity.holder.ssn.clone();
        e.medical = Some(m);
        e
    };
    let untrusted_index = hand_entry(&t, 7, &mut stranger, &other_index.trust, 300);
    let untrusted_key = hand_entry(&t, 8, &mut impostor, &same_index.trust, 300);
    let no_record = hand_entry(&t, 9, &mut li, &trust, 300);
    let too_much = hand_entry(&t, 10, &mut zhang, &trust, 2_001);
    let mut card_result = hand_entry(&t, 11, &mut zhang, &trust, 100);
    card_result.state = EntryState::ApprovedOffline;

    let cases: Vec<(UploadEntry, Option<RejectReason>)> = vec![
        (good, None),
        (forged, Some(RejectReason::CardSignatureInvalid)),
        (moved, Some(RejectReason::DataMismatch)),
        (moved_rebound, Some(RejectReason::CardSignatureInvalid)),
        (foreign, Some(RejectReason::CertificateInvalid)),
        (foreign_resigned, Some(RejectReason::CertificateInvalid)),
        (untrusted_index, Some(RejectReason::UnknownCa)),
        (untrusted_key, Some(RejectReason::CertificateInvalid)),
        (no_record, Some(RejectReason::UnknownCardholder)),
        // 1 000 of 3 000 booked just before, in the same request.
        (too_much, Some(RejectReason::MedicalOverdraft)),
        (card_result, Some(RejectReason::StateInconsistent)),
    ];
    upload_twice_expecting(&w, &cases);
    let rows = w.medical_rows();
    let booked: Vec<i64> = rows
        .iter()
        .filter(|(_, s, _)| s == "booked")
        .map(|(seq, _, _)| *seq)
        .collect();
    assert_eq!(booked, vec![1], "{rows:?}");
    // Only the genuine debit counts against the account: 2 000 of 3 000 left, exactly.
    let exact = hand_entry(&t, 12, &mut zhang, &trust, 2_000);
    let resp = w.term.upload(&w.server.url, vec![exact]);
    assert_eq!(resp.results[0].status, EntryStatus::Booked);
    let over = hand_entry(&t, 13, &mut zhang, &trust, 1);
    let resp = w.term.upload(&w.server.url, vec![over]);
    assert_eq!(resp.results[0].reason, Some(RejectReason::MedicalOverdraft));
    assert_eq!(
        w.env.count(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM entries
             WHERE kind = 'medical_debit' AND status = 'booked'"
        ),
        3_000
    );
    // Nothing personal in the server's log.
    let log = w.server.stderr();
    for secret in [zhang.ssn(), zhang.card_no(), zhang.pan.as_str(), li.ssn()] {
        assert!(!log.contains(secret), "server log holds a personal value");
    }
}

/// What the counter checked offline against its own copies, the server checks again against
/// its own: a debit with a card reported lost before the transaction's time is rejected
/// `card_hot_listed` (one made before the report is booked, and one made after the card was
/// unblocked too), a debit of a cardholder whose insurance the server holds as suspended is
/// rejected `insurance_inactive`. Nothing rejected counts against the account; a resend gets
/// the same answer.
pub fn stale_counter_copies_are_checked_again_by_the_server(backend: Backend) {
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let mut li = iss.card("lisi", "6217000010000002");
    let w = MedWorld::new(backend, "COUNTER-H", &iss, &[(&zhang, 5_000), (&li, 5_000)]);
    w.import_with(&[(&zhang, 5_000, "active"), (&li, 5_000, "suspended")]);
    let t = w.term.id.clone();
    let trust = iss.trust.clone();
    // The terminal's clock: China Standard Time.
    let cst_in = |secs: i64| TxnTime::from_unix(backend_sync::clock::unix_now() + 8 * 3600 + secs);

    let before_report = hand_entry(&t, 1, &mut zhang, &trust, 1_000);
    w.env
        .admin(&["report-lost", "--pan", &zhang.pan, "--reason", "lost"]);
    let after_report = hand_entry_at(&t, 2, &mut zhang, &trust, 700, &cst_in(120));
    let suspended = hand_entry(&t, 3, &mut li, &trust, 300);
    let cases = [
        (before_report, None),
        (after_report, Some(RejectReason::CardHotListed)),
        (suspended, Some(RejectReason::InsuranceInactive)),
    ];
    upload_twice_expecting(&w, &cases);
    // Unblocked: a debit made afterwards is booked again.
    w.env.admin(&["unblock", "--pan", &zhang.pan]);
    let after_unblock = hand_entry_at(&t, 4, &mut zhang, &trust, 500, &cst_in(240));
    let resp = w.term.upload(&w.server.url, vec![after_unblock]);
    assert_eq!(resp.results[0].status, EntryStatus::Booked);
    assert_eq!(
        w.medical_rows(),
        vec![
            (1, "booked".to_string(), None),
            (
                2,
                "rejected".to_string(),
                Some("card_hot_listed".to_string())
            ),
            (
                3,
                "rejected".to_string(),
                Some("insurance_inactive".to_string())
            ),
            (4, "booked".to_string(), None),
        ]
    );
    assert_eq!(
        w.env.count(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM entries
             WHERE kind = 'medical_debit' AND status = 'booked'"
        ),
        1_500
    );
}

/// Two counters, each with the cardholder's record of 5 000 fen, each record 3 000 offline (each
/// is right to: it knows only its own debits). They upload to two server instances on one
/// database. The first instance is held inside its booking transaction: the second one's
/// booking waits for it (the cardholder row is locked), so it cannot spend the balance the first
/// is spending. The first instance is then killed (its transaction rolls back): the second books,
/// and the first counter's debit, resent to a fresh instance, is refused as an overdraft of the
/// server's balance. The account is never overdrawn.
pub fn two_counters_racing_for_one_balance_book_one(backend: Backend) {
    use std::time::{Duration, Instant};
    let mut iss = Issuance::new(1);
    let mut zhang = iss.card("zhangsan", "6217000010000001");
    let w = MedWorld::new(backend, "COUNTER-R1", &iss, &[(&zhang, 5_000)]);
    let trust_arg = ["--ssse-trust", w.trust_file.to_str().unwrap()];
    let second = Server::start_with(&w.env, 0, &[], None, &trust_arg);
    let t2 = Term::new("COUNTER-R2");
    t2.register(&w.env, &second.url, "110100");
    let (code, out, err) = t2.run_agent("once", &second.url, &[]);
    assert_eq!(code, 0, "{out} {err}");
    let r1 = record(&w.term, &mut zhang, &iss.trust, 3_000).unwrap();
    let r2 = record(&t2, &mut zhang, &iss.trust, 3_000).unwrap();

    let port = super::free_port();
    let mut held = Server::start_with(
        &w.env,
        port,
        &[(backend_sync::pause::ENV, "in_txn:1")],
        None,
        &trust_arg,
    );
    let spawn = |t: &Term, url: &str| {
        let mut args = vec!["once".to_string()];
        args.extend(t.conn_args(url));
        args.extend(["--max-attempts", "100"].map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        t.agent(&refs)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&w.term, &held.url);
    assert_eq!(
        held.wait_paused(Duration::from_secs(60)).as_deref(),
        Some("in_txn"),
        "{}",
        held.stderr()
    );
    let mut other = spawn(&t2, &second.url);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1_500) {
        assert!(
            other.try_wait().unwrap().is_none(),
            "the second booking did not wait for the first transaction"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        w.env
            .count("SELECT COUNT(*) FROM entries WHERE kind = 'medical_debit'"),
        0
    );
    held.kill9();
    let out = other.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("booked 1"), "{text}");
    // The first counter's agent keeps retrying; a fresh instance on the same port answers it.
    std::thread::sleep(Duration::from_millis(200));
    let back = Server::start_with(&w.env, port, &[], None, &trust_arg);
    let out = first.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("rejected 1"), "{text}");
    drop(back);
    let rows = w.env.query(
        "SELECT terminal_id, status, reason FROM entries WHERE kind = 'medical_debit'
         ORDER BY terminal_id",
        vec![],
    );
    let got: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.text(0).unwrap(),
                r.text(1).unwrap(),
                r.opt_text(2).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "COUNTER-R1".to_string(),
                "rejected".to_string(),
                Some("medical_overdraft".to_string())
            ),
            ("COUNTER-R2".to_string(), "booked".to_string(), None),
        ]
    );
    assert_eq!(
        w.term
            .open_ledger()
            .upload_state(r1.entry.seq)
            .unwrap()
            .unwrap(),
        (
            backend_sync::ledger::UploadState::Rejected,
            Some("medical_overdraft".into())
        )
    );
    assert_eq!(
        t2.open_ledger()
            .upload_state(r2.entry.seq)
            .unwrap()
            .unwrap()
            .0,
        backend_sync::ledger::UploadState::Booked
    );
}
