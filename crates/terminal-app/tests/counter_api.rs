//! The counter API through a real HTTP client (reqwest) against the server on 127.0.0.1: the
//! card thread with the demo's in-process reader and personalised software cards, a real
//! SQLite ledger in a temporary directory, and a PIN pad that types the PIN as the cardholder
//! would. The PIN never appears in a request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use terminal_app::failpoint::is_generate_ac;

use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::secret::Pin;
use serde_json::{Value, json};
use terminal_app::card_source::{DemoSlot, DemoSource};
use terminal_app::clock::LocalTime;
use terminal_app::counter::{self, ApiToken, CounterConfig, CounterService, ServeError};
use terminal_app::demo::DemoWorld;

const TOKEN: &str = "test-token-0123456789abcdef0123456789abcdef";

fn now() -> LocalTime {
    LocalTime {
        year: 2026,
        month: 11,
        day: 28,
        hour: 10,
        minute: 30,
        second: 0,
    }
}

/// The cardholder at the terminal's PIN pad: types the PINs queued, in order; with none queued
/// the pad is cancelled. Records each prompt's tries.
#[derive(Clone, Default)]
struct Cardholder {
    pins: Arc<Mutex<VecDeque<&'static str>>>,
    prompts: Arc<Mutex<Vec<Option<u8>>>>,
}

impl Cardholder {
    fn will_type(&self, pin: &'static str) {
        self.pins.lock().unwrap().push_back(pin);
    }
}

impl PinPad for Cardholder {
    fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry {
        self.prompts.lock().unwrap().push(prompt.tries_left);
        match self.pins.lock().unwrap().pop_front() {
            Some(p) => PinEntry::Pin(Pin::new(p).unwrap()),
            None => PinEntry::Unavailable,
        }
    }
}

struct Counter {
    base: String,
    http: reqwest::Client,
    slot: DemoSlot,
    world: DemoWorld,
    cardholder: Cardholder,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A counter API on 127.0.0.1 (an ephemeral port) over the demo world; `peer` makes the server
/// see every connection as coming from that address.
async fn start_with(peer: Option<SocketAddr>) -> Counter {
    let dir = tempfile::tempdir().unwrap();
    let world = DemoWorld::build(dir.path()).unwrap();
    let slot = DemoSlot::default();
    let cardholder = Cardholder::default();
    let config = CounterConfig::from_worker(world.worker_config(Box::new(now), None)).unwrap();
    let service = Arc::new(
        CounterService::start(
            Box::new(DemoSource::new(slot.clone())),
            Box::new(cardholder.clone()),
            config,
        )
        .unwrap(),
    );
    let listener = counter::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let token = ApiToken::new(TOKEN).unwrap();
    match peer {
        None => {
            tokio::spawn(counter::serve(listener, service, token, shutdown));
        }
        Some(peer) => {
            let app = counter::router(service, token)
                .layer(axum::extract::connect_info::MockConnectInfo(peer));
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            });
        }
    }
    let c = Counter {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        slot,
        world,
        cardholder,
        stop: Some(stop),
        _dir: dir,
    };
    if peer.is_none() {
        c.wait_state("no_card", Some("ready")).await;
    }
    c
}

async fn start() -> Counter {
    start_with(None).await
}

/// A server that sees every connection as coming from `peer` (it cannot even report its
/// status to the test, so no waiting for the reader).
async fn start_refused(peer: SocketAddr) -> Counter {
    start_with(Some(peer)).await
}

impl Counter {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status {status}: not JSON ({e}): {text:?}"));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(TOKEN))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    async fn debit(&self, reference: &str, amount_fen: u64, item: &str) -> (u16, Value) {
        self.post(
            "/v1/debits",
            &json!({"reference": reference, "amount_fen": amount_fen, "item": item}),
        )
        .await
    }

    fn insert(&self, name: &str) {
        let card = self.card(name);
        self.slot.insert(name, card);
    }

    fn card(&self, name: &str) -> firmware_tests::SharedCard {
        self.world
            .cards
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .card
            .clone()
    }

    /// Wait until `GET /v1/card` shows `state` (and the reader `reader`).
    async fn wait_state(&self, state: &str, reader: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.get("/v1/card").await;
            assert_eq!(status, 200, "{body}");
            if body["state"] == state && reader.is_none_or(|r| body["reader"] == r) {
                return body;
            }
            assert!(Instant::now() < deadline, "never {state}: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Insert `name` and wait for the identity check's verdict.
    async fn insert_checked(&self, name: &str) -> Value {
        self.insert(name);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, body) = self.get("/v1/card").await;
            if body["state"] == "ready" || body["state"] == "rejected" {
                return body;
            }
            assert!(Instant::now() < deadline, "never checked: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn verified(&self, name: &str, pin: &'static str) {
        self.insert_checked(name).await;
        self.cardholder.will_type(pin);
        let (status, body) = self.post("/v1/verify", &json!({})).await;
        assert_eq!(
            (status, &body["result"]),
            (200, &json!("verified")),
            "{body}"
        );
    }

    /// The card's electronic-cash balance, read straight from the card.
    fn balance(&self, name: &str) -> u64 {
        let card = self.card(name);
        let image = firmware_tests::vpcd::lock(&card).image().clone();
        image
            .pboc
            .as_ref()
            .and_then(|p| p.ec.as_ref())
            .map(|e| e.balance)
            .unwrap()
    }

    fn ledger_entries(&self) -> Vec<backend_sync::ledger::LedgerEntry> {
        (self.world.ledger_opener())().unwrap().entries().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_masked_identity_and_verdict_and_no_card_without_one() {
    let c = start().await;
    let empty = c.wait_state("no_card", Some("ready")).await;
    assert_eq!(empty["present"], false);
    assert_eq!(empty["holder"], Value::Null);

    let body = c.insert_checked("zhangsan").await;
    assert_eq!(body["state"], "ready", "{body}");
    assert_eq!(body["present"], true);
    assert_eq!(body["verdict"]["status"], "valid");
    assert_eq!(body["verdict"]["genuine"], true);
    assert_eq!(body["verdict"]["in_date"], true);
    assert_eq!(body["verdict"]["not_hot_listed"], true);
    assert_eq!(body["pin_tries_left"], 3);
    assert_eq!(body["holder"]["name"], "张*");
    assert_eq!(body["holder"]["ssn"], "110***********3011");
    assert_eq!(body["holder"]["card_number"], "A*******1");
    assert_eq!(body["holder"]["expiry"], "2034-01-14");
    let text = body.to_string();
    assert!(!text.contains("张三"), "the name is masked: {text}");
    assert!(!text.contains("110105198703153011"), "the SSN is masked");

    // A card reported lost: turned away, with why.
    c.slot.remove();
    c.wait_state("no_card", None).await;
    let lost = c.insert_checked("wangfang-t0").await;
    assert_eq!(lost["state"], "rejected", "{lost}");
    assert_eq!(lost["verdict"]["status"], "hot_listed");
    assert_eq!(lost["verdict"]["genuine"], true);
    assert_eq!(lost["verdict"]["not_hot_listed"], false);
    let (status, body) = c.post("/v1/verify", &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "card_rejected");
    assert!(
        c.cardholder.prompts.lock().unwrap().is_empty(),
        "no PIN asked"
    );

    // An expired card.
    c.slot.remove();
    c.wait_state("no_card", None).await;
    let expired = c.insert_checked("expired").await;
    assert_eq!(expired["verdict"]["status"], "expired", "{expired}");
    assert_eq!(expired["verdict"]["in_date"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_asks_the_cardholder_on_the_pin_pad_wrong_then_right() {
    let c = start().await;
    c.insert_checked("zhangsan").await;

    c.cardholder.will_type("111111");
    let (status, body) = c.post("/v1/verify", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"result": "wrong_pin", "tries_left": 2}));
    assert_eq!(c.get("/v1/card").await.1["pin_tries_left"], 2);

    c.cardholder.will_type("123456");
    // No body at all is a request too.
    let (status, body) = c
        .send(c.http.post(c.url("/v1/verify")).bearer_auth(TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"result": "verified", "tries_left": null}));
    let card = c.get("/v1/card").await.1;
    assert_eq!(card["state"], "verified", "{card}");
    assert_eq!(
        card["pin_tries_left"],
        Value::Null,
        "a verified card hides its counter"
    );
    // Asking again does not bother the cardholder.
    let (status, body) = c.post("/v1/verify", &json!({})).await;
    assert_eq!((status, &body["result"]), (200, &json!("verified")));
    // The pad was told the tries the card allowed each time.
    assert_eq!(
        *c.cardholder.prompts.lock().unwrap(),
        vec![Some(3), Some(2)]
    );

    // Nothing typed (the cardholder walks away): a clear error, the card stays verified.
    c.slot.remove();
    c.wait_state("no_card", None).await;
    c.insert_checked("lisi").await;
    let (status, body) = c.post("/v1/verify", &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "pin_entry_cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_debit_with_the_same_reference_debits_once() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    let before = c.balance("zhangsan");
    assert_eq!(before, 50_000);

    // The card asks for its own PIN to pay: the cardholder types it on the pad again.
    c.cardholder.will_type("123456");
    let (status, first) = c.debit("POS-7/0001", 2_500, "阿莫西林胶囊 0.25g×24").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["state"], "approved");
    assert_eq!(first["reference"], "POS-7/0001");
    assert_eq!(first["amount_fen"], 2_500);
    assert_eq!(first["item"], "阿莫西林胶囊 0.25g×24");
    assert_eq!(first["replayed"], false);
    assert_eq!(first["balance_after_fen"], 47_500);
    assert_eq!(first["time"], "2026-11-28 10:30:00");
    assert_eq!(first["tc"].as_str().unwrap().len(), 16, "{first}");
    let pan = first["pan_masked"].as_str().unwrap();
    assert!(pan.contains('*'), "masked PAN: {pan}");
    assert_eq!(c.balance("zhangsan"), 47_500);

    // The till did not get the answer and sends the same request again: the first result,
    // nothing debited, and the PIN pad is not asked.
    let prompts = c.cardholder.prompts.lock().unwrap().len();
    let (status, again) = c.debit("POS-7/0001", 2_500, "阿莫西林胶囊 0.25g×24").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    for field in [
        "seq",
        "state",
        "amount_fen",
        "tc",
        "atc",
        "pan_masked",
        "time",
    ] {
        assert_eq!(again[field], first[field], "{field}");
    }
    assert_eq!(c.balance("zhangsan"), 47_500, "debited once");
    assert_eq!(c.ledger_entries().len(), 1, "one ledger entry");
    assert_eq!(c.cardholder.prompts.lock().unwrap().len(), prompts);

    // Even with the card gone the reference answers from the ledger.
    c.slot.remove();
    c.wait_state("no_card", None).await;
    let (status, third) = c.debit("POS-7/0001", 2_500, "阿莫西林胶囊 0.25g×24").await;
    assert_eq!((status, &third["seq"]), (200, &first["seq"]), "{third}");
    let (status, looked_up) = c.get("/v1/debits/POS-7%2F0001").await;
    assert_eq!(status, 200, "{looked_up}");
    assert_eq!(looked_up["state"], "approved");
    assert_eq!(
        looked_up["item"],
        Value::Null,
        "the item is not kept in the ledger"
    );
    let (status, body) = c.get("/v1/debits/POS-7-9999").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_reference"))
    );
    assert_eq!(c.ledger_entries().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_reference_with_another_amount_or_item_is_a_conflict() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    c.cardholder.will_type("123456");
    let (status, first) = c.debit("R-1", 1_000, "挂号费").await;
    assert_eq!(status, 201, "{first}");
    for (amount, item) in [(1_100, "挂号费"), (1_000, "诊查费")] {
        let (status, body) = c.debit("R-1", amount, item).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "reference_conflict");
    }
    assert_eq!(c.balance("zhangsan"), 49_000, "debited once");
    assert_eq!(c.ledger_entries().len(), 1);

    // A new reference is a new debit.
    c.cardholder.will_type("123456");
    let (status, second) = c.debit("R-2", 1_000, "挂号费").await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["seq"], first["seq"]);
    assert_eq!(c.balance("zhangsan"), 48_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_card_unverified_and_short_of_money_are_clear_errors_that_debit_nothing() {
    let c = start().await;
    let (status, body) = c.post("/v1/verify", &json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("no_card")),
        "{body}"
    );
    let (status, body) = c.debit("N-1", 100, "x").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("no_card")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no card"),
        "{body}"
    );

    c.insert_checked("zhangsan").await;
    let (status, body) = c.debit("N-1", 100, "x").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_verified")),
        "{body}"
    );

    c.cardholder.will_type("123456");
    c.post("/v1/verify", &json!({})).await;
    let (status, body) = c.debit("N-2", 90_000, "x").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (402, &json!("insufficient_balance")),
        "{body}"
    );
    // Nothing reached the ledger, so the reference is still free.
    assert!(c.ledger_entries().is_empty());
    c.cardholder.will_type("123456");
    let (status, body) = c.debit("N-2", 100, "x").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(c.balance("zhangsan"), 49_900);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_token_is_refused_and_debits_nothing() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    let body = json!({"reference": "T-1", "amount_fen": 100, "item": "x"}).to_string();
    let attempts = [
        (c.http.get(c.url("/v1/card")), "missing_token"),
        (
            c.http.get(c.url("/v1/card")).bearer_auth("wrong-token"),
            "invalid_token",
        ),
        (
            c.http
                .get(c.url("/v1/card"))
                .bearer_auth(&TOKEN[..TOKEN.len() - 1]),
            "invalid_token",
        ),
        (
            c.http.get(c.url("/v1/card")).basic_auth("pos", Some(TOKEN)),
            "missing_token",
        ),
        (
            c.http
                .post(c.url("/v1/debits"))
                .header("content-type", "application/json")
                .body(body.clone()),
            "missing_token",
        ),
        (
            c.http
                .post(c.url("/v1/debits"))
                .bearer_auth("x".repeat(44))
                .header("content-type", "application/json")
                .body(body),
            "invalid_token",
        ),
    ];
    for (req, code) in attempts {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        assert!(
            resp.headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
            "WWW-Authenticate: Bearer"
        );
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    assert_eq!(c.balance("zhangsan"), 50_000);
    assert!(c.ledger_entries().is_empty());
    assert_eq!(
        c.cardholder.prompts.lock().unwrap().len(),
        1,
        "only the verify"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_address_is_refused_at_bind_and_a_non_local_peer_or_host_per_request() {
    for addr in ["0.0.0.0:7311", "192.0.2.10:7311", "[::]:7311", "10.1.2.3:0"] {
        let parsed: SocketAddr = addr.parse().unwrap();
        let err = counter::bind(parsed).await.unwrap_err();
        assert!(matches!(err, ServeError::NotLoopback(_)), "{addr}: {err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(matches!(
            counter::parse_listen(addr),
            Err(ServeError::NotLoopback(_))
        ));
    }
    for addr in [
        "127.0.0.1:7311",
        "[::1]:7311",
        "localhost:7311",
        "127.8.9.10:1",
    ] {
        assert!(
            counter::parse_listen(addr).unwrap().ip().is_loopback(),
            "{addr}"
        );
    }
    assert!(matches!(
        counter::parse_listen("counter.example:7311"),
        Err(ServeError::BadAddress(_))
    ));

    // A connection that does not come from this machine is refused before the token is looked
    // at (the server sees every peer as 192.0.2.7 here).
    let c = start_refused("192.0.2.7:40000".parse().unwrap()).await;
    let (status, body) = c.get("/v1/card").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("not_local")));

    // A Host header naming another machine (DNS rebinding) is refused too.
    let c = start().await;
    let (status, body) = c
        .send(
            c.http
                .get(c.url("/v1/card"))
                .bearer_auth(TOKEN)
                .header("host", "pos.example:7311"),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("not_local")));
    let (status, _) = c
        .send(
            c.http
                .get(c.url("/v1/card"))
                .bearer_auth(TOKEN)
                .header("host", "localhost:7311"),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_wrong_types_oversized_bodies_and_wrong_media_types_are_refused() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    let raw = |body: &str| {
        c.http
            .post(c.url("/v1/debits"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (raw("{\"reference\": \"M-1\", "), 400, "malformed_json"),
        (raw("not json"), 400, "malformed_json"),
        (raw(""), 400, "malformed_json"),
        (
            raw(r#"{"reference": "M-1", "amount_fen": "100", "item": "x"}"#),
            422,
            "invalid_request",
        ),
        (
            raw(r#"{"reference": "M-1", "amount_fen": -5, "item": "x"}"#),
            422,
            "invalid_request",
        ),
        (
            raw(r#"{"reference": "M-1", "item": "x"}"#),
            422,
            "invalid_request",
        ),
        (
            raw(r#"{"reference": "M-1", "amount_fen": 100, "item": "x", "pin": "123456"}"#),
            422,
            "invalid_request",
        ),
        (raw("[1, 2]"), 422, "invalid_request"),
        (
            raw(r#"{"reference": "M 1", "amount_fen": 100, "item": "x"}"#),
            422,
            "invalid_request",
        ),
        (
            raw(r#"{"reference": "M-1", "amount_fen": 0, "item": "x"}"#),
            422,
            "invalid_request",
        ),
        (
            raw(r#"{"reference": "M-1", "amount_fen": 100, "item": ""}"#),
            422,
            "invalid_request",
        ),
        (
            raw(&format!(
                r#"{{"reference": "M-1", "amount_fen": 100, "item": "{}"}}"#,
                "x".repeat(5_000)
            )),
            413,
            "body_too_large",
        ),
        (
            c.http
                .post(c.url("/v1/debits"))
                .bearer_auth(TOKEN)
                .header("content-type", "text/plain")
                .body(r#"{"reference": "M-1", "amount_fen": 100, "item": "x"}"#),
            415,
            "unsupported_media_type",
        ),
        (
            c.http
                .post(c.url("/v1/verify"))
                .bearer_auth(TOKEN)
                .body("{oops"),
            400,
            "malformed_json",
        ),
        (
            c.http
                .get(c.url("/v1/debits?date=2026-13-01"))
                .bearer_auth(TOKEN),
            422,
            "invalid_request",
        ),
        (
            c.http.get(c.url("/v1/nothing")).bearer_auth(TOKEN),
            404,
            "not_found",
        ),
        (
            c.http.delete(c.url("/v1/card")).bearer_auth(TOKEN),
            405,
            "method_not_allowed",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let (got, body) = c.send(req).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "case {i}: {body}"
        );
    }
    assert_eq!(c.balance("zhangsan"), 50_000);
    assert!(c.ledger_entries().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_transaction_list_shows_the_days_debits_with_their_references() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    for (r, fen) in [("L-1", 1_000u64), ("L-2", 2_345)] {
        c.cardholder.will_type("123456");
        let (status, body) = c.debit(r, fen, "药品").await;
        assert_eq!(status, 201, "{body}");
    }
    for path in ["/v1/debits", "/v1/debits?date=2026-11-28"] {
        let (status, list) = c.get(path).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["date"], "2026-11-28");
        assert_eq!(list["taken_count"], 2);
        assert_eq!(list["taken_fen"], 3_345);
        let lines = list["debits"].as_array().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reference"], "L-1");
        assert_eq!(lines[1]["reference"], "L-2");
        assert_eq!(lines[1]["amount_fen"], 2_345);
        assert_eq!(lines[1]["state"], "approved");
        assert_eq!(lines[1]["kind"], "ec_purchase");
        assert_eq!(lines[1]["time"], "10:30:00");
    }
    let (status, other_day) = c.get("/v1/debits?date=2026-11-27").await;
    assert_eq!(status, 200);
    assert_eq!(other_day["debits"], json!([]));
    assert_eq!(other_day["taken_fen"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_pulled_during_the_debit_is_in_doubt_then_settled_and_never_debited_twice() {
    let c = start().await;
    c.verified("zhangsan", "123456").await;
    // The card debits, then is pulled before its answer reaches the terminal.
    c.slot.pull_on(is_generate_ac, true);
    c.cardholder.will_type("123456");
    let (status, body) = c.debit("D-1", 3_000, "药品").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "in_doubt");
    assert_eq!(c.balance("zhangsan"), 47_000, "the card did debit");
    c.wait_state("no_card", None).await;

    // The till retries: still in doubt, nothing new.
    let (status, again) = c.debit("D-1", 3_000, "药品").await;
    assert_eq!(
        (status, &again["state"]),
        (202, &json!("in_doubt")),
        "{again}"
    );
    assert_eq!(again["seq"], body["seq"]);

    // The card comes back: the terminal settles the entry from the card's log.
    c.insert_checked("zhangsan").await;
    let (status, settled) = c.debit("D-1", 3_000, "药品").await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["state"], "recovered");
    assert_eq!(settled["replayed"], true);
    assert_eq!(c.balance("zhangsan"), 47_000, "debited once");
    assert_eq!(c.ledger_entries().len(), 1);
}

#[test]
fn the_counter_binary_creates_its_token_file_refuses_other_addresses_and_answers_with_the_token() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let exe = env!("CARGO_BIN_EXE_counter");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("auth/counter-api.token");

    let out = std::process::Command::new(exe)
        .args(["--listen", "0.0.0.0:7311", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert!(!token_file.exists());

    let mut child = std::process::Command::new(exe)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--demo-card",
            "zhangsan",
            "--state-dir",
        ])
        .arg(dir.path())
        .arg("--token-file")
        .arg(&token_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    assert!(!line.contains(&token), "the token is not printed");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let resp = http
                .get(format!("{url}/v1/card"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
            if body["state"] == "ready" {
                assert_eq!(body["holder"]["name"], "张*");
                break;
            }
            assert!(Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resp = http.get(format!("{url}/v1/card")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    });
    drop(child);

    // A token file others can read is refused.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path())
        .arg("--token-file")
        .arg(&token_file)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
