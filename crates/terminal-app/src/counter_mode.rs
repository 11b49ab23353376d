//! Counter mode: the clerk's layout of the terminal app, for a pharmacy or hospital counter.
//!
//! One screen in three columns. On the left the card's verdict at a glance (genuine, in date,
//! not hot-listed, PIN tries left, the holder's masked name and numbers), from the same identity
//! check the kiosk runs ([`Update::Verdict`]). In the middle what the clerk and the cardholder
//! do, one step at a time: the cardholder enters the PIN on the keypad, the clerk types the
//! amount (as on a till: the digits fill from the cents), the card pays it from electronic cash
//! (asking for its own PIN when its CVM says so), and the receipt. On the right today's
//! transactions and the open shift's totals as the ledger has them ([`Update::DayBook`]): the
//! totals the sync agent sends when the shift is closed, which the backend answers balanced or
//! with the differences. Like the kiosk it only reads state and sends [`Request`]s to the
//! session worker; card and ledger work runs on the worker's thread.

use std::sync::mpsc::{Receiver, Sender};

use card_core::secret::Pin;
use egui::{Color32, RichText, Ui, Vec2};
use zeroize::Zeroizing;

use crate::kiosk::screens::{
    Key, centered, clear_targets, clicked, connection_labels, keypad, language_button, masked,
    style,
};
use crate::kiosk::{DemoPanel, Lang, failure_text, fonts, yuan};
use crate::payment::{COUNTER_SALE, MAX_PAYMENT_FEN, PaymentOrder, PaymentReceipt};
use crate::session::{
    CardVerdict, ClosedShift, DayBook, MedicalReceipt, ReaderStatus, Reconciliation, RejectReason,
    Request, Update,
};

const GOOD: Color32 = Color32::from_rgb(20, 120, 50);
const BAD: Color32 = Color32::from_rgb(180, 30, 30);
const TEXT: f32 = 22.0;
const TITLE: f32 = 30.0;
const BUTTON: Vec2 = Vec2::new(420.0, 64.0);
const THIRD: Vec2 = Vec2::new(140.0, 64.0);

/// Where the counter's middle column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No card.
    NoCard,
    /// Reading and checking the card.
    Checking,
    /// Checked and valid: the cardholder enters the PIN.
    Pin,
    /// The card was turned away.
    Rejected(RejectReason),
    /// PIN verified: the clerk enters the amount.
    Amount,
    /// The card is paying.
    Paying,
    /// The card asks for its PIN to pay.
    PaymentPin,
    /// Paid.
    Paid(Box<PaymentReceipt>),
    /// A medical-account debit recorded.
    MedicalRecorded(Box<MedicalReceipt>),
    /// Something went wrong; the text says what.
    Failed(String),
}

impl Step {
    /// A stable name (tests, logs).
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NoCard => "NoCard",
            Self::Checking => "Checking",
            Self::Pin => "Pin",
            Self::Rejected(_) => "Rejected",
            Self::Amount => "Amount",
            Self::Paying => "Paying",
            Self::PaymentPin => "PaymentPin",
            Self::Paid(_) => "Paid",
            Self::MedicalRecorded(_) => "MedicalRecorded",
            Self::Failed(_) => "Failed",
        }
    }
}

/// What the counter shows. Personal data lives in `verdict` (masked already) and the typed
/// digits (zeroized); both go when the card leaves.
#[derive(Debug)]
pub struct CounterState {
    /// The middle column.
    pub step: Step,
    /// Language.
    pub lang: Lang,
    /// The reader.
    pub reader: ReaderStatus,
    /// The card's verdict, once checked.
    pub verdict: Option<CardVerdict>,
    /// PIN digits being typed.
    pub pin: Zeroizing<String>,
    /// Amount digits being typed (fen, filled from the right).
    pub amount: String,
    /// A line under the keypad.
    pub message: Option<String>,
    /// PIN tries left as the card last said.
    pub tries_left: Option<u8>,
    /// Today's transactions and the shift's totals.
    pub day_book: Option<DayBook>,
    /// The terminal reached the backend lately.
    pub online: bool,
    /// Entries waiting to be uploaded.
    pub pending_sync: u64,
    /// The last receipt file written.
    pub receipt_file: Option<std::path::PathBuf>,
    /// What the cardholder's medical account has left offline (`None` inside: no local record)
    /// and as of when, once asked.
    pub medical: Option<(Option<i64>, String)>,
}

impl CounterState {
    fn new(lang: Lang) -> Self {
        Self {
            step: Step::NoCard,
            lang,
            reader: ReaderStatus::Missing,
            verdict: None,
            pin: Zeroizing::new(String::new()),
            amount: String::new(),
            message: None,
            tries_left: None,
            day_book: None,
            online: false,
            pending_sync: 0,
            receipt_file: None,
            medical: None,
        }
    }

    /// Forget the card and everything typed.
    fn clear(&mut self) {
        self.step = Step::NoCard;
        self.verdict = None;
        self.pin = Zeroizing::new(String::new());
        self.amount.clear();
        self.message = None;
        self.tries_left = None;
        self.receipt_file = None;
        self.medical = None;
    }

    /// The amount typed, in fen.
    pub fn amount_fen(&self) -> u64 {
        self.amount.parse().unwrap_or(0)
    }
}

/// The counter app.
pub struct CounterApp {
    /// What is shown.
    pub state: CounterState,
    requests: Sender<Request>,
    updates: Receiver<Update>,
    demo: Option<DemoPanel>,
}

impl std::fmt::Debug for CounterApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterApp")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CounterApp {
    /// A counter sending `requests` to a session worker and reading its `updates`.
    pub fn new(
        ctx: &egui::Context,
        requests: Sender<Request>,
        updates: Receiver<Update>,
        demo: Option<DemoPanel>,
        lang: Lang,
    ) -> Self {
        fonts::install(ctx);
        style(ctx);
        let _ = requests.send(Request::DayBook);
        Self {
            state: CounterState::new(lang),
            requests,
            updates,
            demo,
        }
    }

    fn request(&self, r: Request) {
        let _ = self.requests.send(r);
    }

    /// Apply one update from the session.
    pub fn apply(&mut self, u: Update) {
        let s = &mut self.state;
        match u {
            Update::Reader(r) => s.reader = r,
            Update::Sync { online, pending } => {
                s.online = online;
                s.pending_sync = pending;
            }
            Update::Reading => {
                s.clear();
                s.reader = ReaderStatus::CardIn;
                s.step = Step::Checking;
            }
            Update::Verdict(v) => s.verdict = Some(*v),
            Update::Rejected(reason) => s.step = Step::Rejected(reason),
            Update::PinNeeded { tries_left } => {
                s.tries_left = Some(tries_left);
                s.pin = Zeroizing::new(String::new());
                s.step = Step::Pin;
            }
            Update::PinWrong { tries_left } => {
                s.tries_left = Some(tries_left);
                if let Some(v) = s.verdict.as_mut() {
                    v.tries_left = Some(tries_left);
                }
                s.pin = Zeroizing::new(String::new());
                s.message = Some(match s.lang {
                    Lang::Zh => format!("密码错误，还可尝试 {tries_left} 次"),
                    Lang::En => format!("Wrong PIN, {tries_left} tries left"),
                });
            }
            Update::PinBlocked => {
                if let Some(v) = s.verdict.as_mut() {
                    v.tries_left = Some(0);
                }
                s.step = Step::Rejected(RejectReason::PinBlocked);
            }
            Update::SignedIn(_) => {
                // The identity stays masked in the verdict; the counter needs no more.
                s.pin = Zeroizing::new(String::new());
                s.message = None;
                s.amount.clear();
                s.step = Step::Amount;
                self.request(Request::MedicalBalance);
            }
            Update::MedicalBalance {
                available_fen,
                as_of,
            } => s.medical = Some((available_fen, as_of)),
            Update::MedicalRecorded(r) => {
                s.medical = s
                    .medical
                    .take()
                    .map(|(_, as_of)| (Some(r.available_after_fen), as_of));
                s.step = Step::MedicalRecorded(r);
                self.request(Request::DayBook);
            }
            Update::MedicalFailed(why) => {
                s.step = Step::Failed(why);
                self.request(Request::DayBook);
            }
            Update::Paying => s.step = Step::Paying,
            Update::PaymentPinNeeded {
                tries_left,
                previous_wrong,
            } => {
                s.tries_left = tries_left;
                s.pin = Zeroizing::new(String::new());
                let lang = s.lang;
                s.message = previous_wrong.then(|| {
                    lang.t("密码错误，请重新输入", "Wrong PIN, try again")
                        .to_string()
                });
                s.step = Step::PaymentPin;
            }
            Update::Paid { receipt, file } => {
                s.receipt_file = file;
                s.step = Step::Paid(receipt);
                self.request(Request::DayBook);
            }
            Update::PaymentFailed(f) => {
                s.step = Step::Failed(failure_text(s.lang, &f));
                self.request(Request::DayBook);
            }
            Update::DayBook(b) => s.day_book = Some(*b),
            Update::CardRemoved => {
                s.clear();
                s.reader = ReaderStatus::Ready(String::new());
                self.request(Request::DayBook);
            }
            Update::Ended => {
                s.clear();
                self.request(Request::DayBook);
            }
            Update::Error(e) => s.step = Step::Failed(e),
            Update::Settled(_) => {
                self.request(Request::DayBook);
            }
            Update::PinChanged
            | Update::PinChangeFailed(_)
            | Update::PinChangeInDoubt
            | Update::Account(_)
            | Update::AccountFailed(_)
            | Update::Service(_) => {}
        }
    }

    fn draw(&mut self, ui: &mut Ui) {
        let lang = self.state.lang;
        top_bar(self, ui);
        if self.demo.is_some() {
            demo_strip(self, ui);
        }
        egui::CentralPanel::default().show(ui, |ui| {
            // Denser than the kiosk: a clerk reads the verdict at a glance, the touch targets
            // (keypad, buttons) keep their own sizes.
            ui.spacing_mut().item_spacing = Vec2::new(12.0, 8.0);
            ui.spacing_mut().interact_size.y = 30.0;
            ui.columns(3, |cols| {
                let [left, middle, right] = cols else {
                    return;
                };
                card_column(&self.state, left, lang);
                middle.vertical_centered(|ui| action_column(self, ui));
                day_book_column(self, right);
            });
        });
    }
}

impl eframe::App for CounterApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok(u) = self.updates.try_recv() {
            self.apply(u);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        clear_targets(ui.ctx());
        self.draw(ui);
    }
}

impl Drop for CounterApp {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
    }
}

fn button(ui: &mut Ui, text: &str) -> bool {
    let r = ui.add_sized(BUTTON, egui::Button::new(RichText::new(text).size(26.0)));
    clicked(ui, text, &r)
}

fn third_button(ui: &mut Ui, text: &str) -> bool {
    let r = ui.add_sized(THIRD, egui::Button::new(RichText::new(text).size(18.0)));
    clicked(ui, text, &r)
}

fn signed_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}", yuan(fen.unsigned_abs()))
}

fn medical_recorded(app: &mut CounterApp, ui: &mut Ui, r: &MedicalReceipt) {
    let lang = app.state.lang;
    ui.label(
        RichText::new(lang.t("医保记账成功", "Medical debit recorded"))
            .size(40.0)
            .strong()
            .color(GOOD),
    );
    egui::Grid::new("medical")
        .spacing(Vec2::new(18.0, 8.0))
        .show(ui, |ui| {
            let rows = [
                (lang.t("金额", "Amount"), format!("¥{}", yuan(r.amount_fen))),
                (lang.t("流水号", "Transaction no."), format!("{:08}", r.seq)),
                (
                    lang.t("账户可用余额", "Account left"),
                    format!("¥{}", signed_yuan(r.available_after_fen)),
                ),
            ];
            for (name, value) in rows {
                ui.label(RichText::new(name).size(TEXT).color(Color32::GRAY));
                ui.label(RichText::new(value).size(TEXT));
                ui.end_row();
            }
        });
    ui.label(
        RichText::new(lang.t(
            "卡片已签名确认，联网后上传医保结算",
            "Signed by the card; uploaded for settlement when online",
        ))
        .size(18.0),
    );
    if button(ui, lang.t("下一位", "Next customer")) {
        app.request(Request::End);
    }
}

fn top_bar(app: &mut CounterApp, ui: &mut Ui) {
    let lang = app.state.lang;
    egui::Panel::top("counter-top").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(lang.t("柜台核验与收费", "Counter: card check and payment"))
                    .size(TITLE),
            );
            ui.separator();
            let s = &app.state;
            connection_labels(ui, lang, s.online, s.pending_sync, &s.reader, TEXT, false);
            language_button(ui, &mut app.state.lang, Some(TEXT));
        });
    });
}

fn demo_strip(app: &mut CounterApp, ui: &mut Ui) {
    let lang = app.state.lang;
    let Some(demo) = app.demo.as_ref() else {
        return;
    };
    let slot = demo.slot.clone();
    let cards = demo.cards.clone();
    egui::Panel::bottom("counter-demo").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(lang.t("演示卡片：", "Demo cards:")).size(18.0));
            let inserted = slot.inserted();
            for card in &cards {
                let label = match lang {
                    Lang::Zh => card.label_zh,
                    Lang::En => card.label_en,
                };
                let is_in = inserted.as_deref() == Some(card.name);
                let r = ui.add(egui::Button::selectable(
                    is_in,
                    RichText::new(label).size(16.0),
                ));
                if clicked(ui, label, &r) && !is_in {
                    slot.insert(card.name, card.card.clone());
                }
            }
            let remove = lang.t("取出卡片", "Remove card");
            let r = ui.button(RichText::new(remove).size(16.0));
            if clicked(ui, remove, &r) {
                slot.remove();
            }
        });
    });
}

fn check_line(ui: &mut Ui, name: &str, ok: Option<bool>, lang: Lang) {
    ui.label(RichText::new(name).size(TEXT));
    let (text, colour) = match ok {
        Some(true) => (lang.t("√ 通过", "√ pass"), GOOD),
        Some(false) => (lang.t("× 未通过", "× fail"), BAD),
        None => (lang.t("— 未检查", "— not checked"), Color32::GRAY),
    };
    ui.label(RichText::new(text).size(TEXT).color(colour));
    ui.end_row();
}

fn card_column(s: &CounterState, ui: &mut Ui, lang: Lang) {
    ui.label(RichText::new(lang.t("卡片核验", "Card check")).size(TITLE));
    let Some(v) = &s.verdict else {
        let text = match s.step {
            Step::Checking => lang.t("正在核验…", "Checking…"),
            _ => lang.t("请持卡人插卡", "Ask for the card"),
        };
        ui.label(RichText::new(text).size(TEXT).color(Color32::GRAY));
        return;
    };
    let (headline, colour) = if v.valid() {
        (lang.t("有效卡", "VALID CARD"), GOOD)
    } else {
        (lang.t("无效卡", "NOT VALID"), BAD)
    };
    ui.label(RichText::new(headline).size(40.0).strong().color(colour));
    egui::Grid::new("verdict")
        .spacing(Vec2::new(18.0, 8.0))
        .show(ui, |ui| {
            for (name, value) in [
                (lang.t("姓名", "Name"), v.name.as_str()),
                (
                    lang.t("社会保障号码", "Social security no."),
                    v.ssn.as_str(),
                ),
                (lang.t("卡号", "Card no."), v.card_number.as_str()),
                (lang.t("有效期至", "Valid until"), v.expiry.as_str()),
            ] {
                ui.label(RichText::new(name).size(TEXT).color(Color32::GRAY));
                ui.label(RichText::new(value).size(TEXT));
                ui.end_row();
            }
            check_line(
                ui,
                lang.t("真卡（证书与签名）", "Genuine (certificate, signature)"),
                v.genuine,
                lang,
            );
            check_line(ui, lang.t("在有效期内", "In date"), v.in_date, lang);
            check_line(
                ui,
                lang.t("未挂失", "Not reported lost"),
                v.not_hot_listed,
                lang,
            );
            ui.label(RichText::new(lang.t("密码剩余次数", "PIN tries left")).size(TEXT));
            let tries = v.tries_left.map_or_else(
                || "—".to_string(),
                |n| match lang {
                    Lang::Zh => format!("{n} 次"),
                    Lang::En => format!("{n} left"),
                },
            );
            let colour = match v.tries_left {
                Some(0) => BAD,
                Some(1) => Color32::from_rgb(200, 120, 0),
                _ => Color32::BLACK,
            };
            ui.label(RichText::new(tries).size(TEXT).color(colour));
            ui.end_row();
        });
}

fn reject_text(lang: Lang, r: &RejectReason) -> String {
    match (lang, r) {
        (Lang::Zh, RejectReason::Unreadable(_)) => "卡片无法读取".into(),
        (Lang::En, RejectReason::Unreadable(_)) => "The card cannot be read".into(),
        (Lang::Zh, RejectReason::NotGenuine(_)) => "卡片未通过真伪验证，请勿受理".into(),
        (Lang::En, RejectReason::NotGenuine(_)) => "Not a genuine card: do not accept it".into(),
        (Lang::Zh, RejectReason::HotListed) => "此卡已挂失，请勿受理".into(),
        (Lang::En, RejectReason::HotListed) => "Reported lost: do not accept it".into(),
        (Lang::Zh, RejectReason::Expired(d)) => format!("此卡已于 {d} 过期"),
        (Lang::En, RejectReason::Expired(d)) => format!("Expired on {d}"),
        (Lang::Zh, RejectReason::PinBlocked) => "密码已锁定，请持卡人到经办机构解锁".into(),
        (Lang::En, RejectReason::PinBlocked) => {
            "PIN blocked: the holder must have it unblocked at the card office".into()
        }
    }
}

fn pin_entry(app: &mut CounterApp, ui: &mut Ui, title: &str, payment: bool) {
    let lang = app.state.lang;
    ui.label(RichText::new(title).size(TITLE));
    if let Some(t) = app.state.tries_left {
        ui.label(
            RichText::new(match lang {
                Lang::Zh => format!("还可尝试 {t} 次"),
                Lang::En => format!("{t} tries left"),
            })
            .size(TEXT),
        );
    }
    ui.label(RichText::new(masked(&app.state.pin)).size(48.0).monospace());
    if let Some(m) = &app.state.message {
        ui.label(RichText::new(m).size(TEXT).color(BAD));
    }
    for key in keypad(ui, lang) {
        match key {
            Key::Digit(d) if app.state.pin.len() < Pin::MAX_LEN => app.state.pin.push(d),
            Key::Digit(_) => {}
            Key::Clear => app.state.pin = Zeroizing::new(String::new()),
            Key::Ok => {
                if let Ok(p) = Pin::new(&app.state.pin) {
                    app.state.pin = Zeroizing::new(String::new());
                    app.state.message = None;
                    if payment {
                        app.state.step = Step::Paying;
                        app.request(Request::PaymentPin(p));
                    } else {
                        app.request(Request::VerifyPin(p));
                    }
                    break;
                }
                app.state.message = Some(
                    lang.t("密码为 4 至 12 位数字", "A PIN has 4 to 12 digits")
                        .into(),
                );
            }
        }
    }
    ui.add_space(8.0);
    let cancel = if payment {
        lang.t("取消支付", "Cancel payment")
    } else {
        lang.t("结束", "Finish")
    };
    if button(ui, cancel) {
        app.state.pin = Zeroizing::new(String::new());
        app.request(if payment {
            Request::CancelPayment
        } else {
            Request::End
        });
    }
}

fn amount_entry(app: &mut CounterApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(
        RichText::new(lang.t(
            "密码已验证 · 请输入收费金额（元）",
            "PIN verified · Enter the amount (CNY)",
        ))
        .size(TEXT)
        .color(GOOD),
    );
    ui.label(
        RichText::new(format!("¥ {}", yuan(app.state.amount_fen())))
            .size(44.0)
            .monospace(),
    );
    if let Some(m) = &app.state.message {
        ui.label(RichText::new(m).size(TEXT).color(BAD));
    }
    for key in keypad(ui, lang) {
        match key {
            Key::Digit(d) => {
                if app.state.amount.len() < 8 && !(app.state.amount.is_empty() && d == '0') {
                    app.state.amount.push(d);
                }
            }
            Key::Clear => app.state.amount.clear(),
            Key::Ok => {}
        }
    }
    let amount = app.state.amount_fen();
    let mut debit = false;
    let mut medical = false;
    let mut finish = false;
    centered(ui, 3.0 * THIRD.x + 24.0, |ui| {
        ui.horizontal(|ui| {
            debit = third_button(ui, lang.t("电子现金扣款", "Electronic cash"));
            medical = third_button(ui, lang.t("医保个人账户", "Medical account"));
            finish = third_button(ui, lang.t("结束", "Finish"));
        });
    });
    if let Some((available, as_of)) = &app.state.medical {
        let text = match (lang, available) {
            (Lang::Zh, Some(f)) => format!("医保个人账户可用 ¥{}（截至 {as_of}）", signed_yuan(*f)),
            (Lang::En, Some(f)) => {
                format!(
                    "Medical account: CNY {} left (as of {as_of})",
                    signed_yuan(*f)
                )
            }
            (Lang::Zh, None) => "本机无此参保人记录，不能医保记账".to_string(),
            (Lang::En, None) => "No local record of this cardholder: no medical debit".to_string(),
        };
        ui.label(RichText::new(text).size(18.0).color(Color32::GRAY));
    }
    if medical {
        let left = app.state.medical.as_ref().and_then(|(a, _)| *a);
        if amount == 0 {
            app.state.message = Some(lang.t("请输入金额", "Enter an amount").into());
        } else if left.is_none() {
            app.state.message = Some(
                lang.t("本机无此参保人记录", "No local record of this cardholder")
                    .into(),
            );
        } else if left.is_some_and(|l| i64::try_from(amount).map_or(true, |a| a > l)) {
            app.state.message = Some(
                lang.t(
                    "超过医保个人账户可用余额",
                    "More than the medical account has left",
                )
                .into(),
            );
        } else {
            app.state.message = None;
            app.state.step = Step::Paying;
            app.request(Request::MedicalDebit { amount_fen: amount });
        }
    }
    if debit {
        if amount == 0 {
            app.state.message = Some(lang.t("请输入金额", "Enter an amount").into());
        } else if amount > MAX_PAYMENT_FEN {
            app.state.message = Some(match lang {
                Lang::Zh => format!("单笔不超过 ¥{}", yuan(MAX_PAYMENT_FEN)),
                Lang::En => format!("At most CNY {} at a time", yuan(MAX_PAYMENT_FEN)),
            });
        } else {
            app.state.message = None;
            app.state.step = Step::Paying;
            app.request(Request::Pay(PaymentOrder {
                item: COUNTER_SALE,
                amount_fen: amount,
                english: lang == Lang::En,
            }));
        }
    }
    if finish {
        app.request(Request::End);
    }
}

fn paid(app: &mut CounterApp, ui: &mut Ui, r: &PaymentReceipt) {
    let lang = app.state.lang;
    ui.label(
        RichText::new(lang.t("扣款成功", "Paid"))
            .size(40.0)
            .strong()
            .color(GOOD),
    );
    egui::Grid::new("paid")
        .spacing(Vec2::new(18.0, 8.0))
        .show(ui, |ui| {
            let rows = [
                (lang.t("金额", "Amount"), format!("¥{}", yuan(r.amount_fen))),
                (lang.t("流水号", "Transaction no."), format!("{:08}", r.seq)),
                (lang.t("卡号", "Card no."), r.pan_masked.clone()),
                (
                    lang.t("卡内余额", "Balance after"),
                    r.balance_after_fen
                        .map_or_else(|| "—".to_string(), |b| format!("¥{}", yuan(b))),
                ),
            ];
            for (name, value) in rows {
                ui.label(RichText::new(name).size(TEXT).color(Color32::GRAY));
                ui.label(RichText::new(value).size(TEXT));
                ui.end_row();
            }
        });
    let printed = if app.state.receipt_file.is_some() {
        lang.t("凭条已打印", "Receipt printed")
    } else {
        lang.t("凭条未打印", "No receipt printed")
    };
    ui.label(RichText::new(printed).size(TEXT));
    if button(ui, lang.t("下一位", "Next customer")) {
        app.request(Request::End);
    }
}

fn action_column(app: &mut CounterApp, ui: &mut Ui) {
    let lang = app.state.lang;
    match app.state.step.clone() {
        Step::NoCard => {
            ui.add_space(120.0);
            ui.label(RichText::new(lang.t("请插入社保卡", "Insert the card")).size(TITLE));
        }
        Step::Checking => {
            ui.add_space(120.0);
            ui.label(
                RichText::new(lang.t("正在核验，请勿拔卡", "Checking: keep the card in"))
                    .size(TITLE),
            );
        }
        Step::Pin => pin_entry(
            app,
            ui,
            lang.t("请持卡人输入密码", "Cardholder: enter your PIN"),
            false,
        ),
        Step::Rejected(r) => {
            ui.add_space(80.0);
            ui.label(RichText::new(reject_text(lang, &r)).size(TITLE).color(BAD));
            ui.add_space(16.0);
            if button(ui, lang.t("结束", "Finish")) {
                app.request(Request::End);
            }
        }
        Step::Amount => amount_entry(app, ui),
        Step::Paying => {
            ui.add_space(120.0);
            ui.label(
                RichText::new(lang.t("正在扣款，请勿拔卡", "Paying: keep the card in")).size(TITLE),
            );
        }
        Step::PaymentPin => pin_entry(
            app,
            ui,
            lang.t(
                "请持卡人输入卡片密码以完成支付",
                "Cardholder: enter the card PIN to pay",
            ),
            true,
        ),
        Step::Paid(r) => paid(app, ui, &r),
        Step::MedicalRecorded(r) => medical_recorded(app, ui, &r),
        Step::Failed(text) => {
            ui.add_space(80.0);
            ui.label(RichText::new(text).size(TITLE).color(BAD));
            ui.add_space(16.0);
            if button(ui, lang.t("返回", "Back")) {
                app.state.message = None;
                app.state.step = if app.state.verdict.as_ref().is_some_and(CardVerdict::valid)
                    && app.state.reader == ReaderStatus::CardIn
                {
                    Step::Amount
                } else {
                    Step::NoCard
                };
            }
        }
    }
}

fn state_text(lang: Lang, state: &str) -> &'static str {
    match (lang, state) {
        (Lang::Zh, "approved_offline") => "成功",
        (Lang::Zh, "recovered") => "成功（卡日志）",
        (Lang::Zh, "declined") => "拒绝",
        (Lang::Zh, "voided") => "未扣款",
        (Lang::Zh, "unknown" | "intent") => "待确认",
        (Lang::Zh, "recorded") => "医保记账",
        (Lang::Zh, _) => "其他",
        (Lang::En, "approved_offline") => "paid",
        (Lang::En, "recovered") => "paid (card log)",
        (Lang::En, "declined") => "declined",
        (Lang::En, "voided") => "not taken",
        (Lang::En, "unknown" | "intent") => "in doubt",
        (Lang::En, "recorded") => "medical",
        (Lang::En, _) => "other",
    }
}

/// The closed shift before this one, with the server's reconciliation: what the clerk checks
/// at the start of a shift.
fn previous_shift_text(lang: Lang, p: &ClosedShift) -> (String, Color32) {
    let totals = format!("{} / ¥{}", p.approved.0, yuan(p.approved.1));
    let head = match lang {
        Lang::Zh => format!("上一班次（第 {} 批）：{totals}，", p.shift),
        Lang::En => format!("Previous shift (batch {}): {totals}, ", p.shift),
    };
    let (verdict, colour) = match p.reconciliation {
        Reconciliation::Waiting => (
            lang.t("等待上传对账", "waiting for the server").to_string(),
            Color32::GRAY,
        ),
        Reconciliation::Balanced => (
            lang.t("服务器对账：平衡", "server: balanced").to_string(),
            Color32::from_rgb(30, 120, 60),
        ),
        Reconciliation::Unbalanced { server } => {
            let booked = format!("{} / ¥{}", server.0, yuan(server.1));
            let text = match lang {
                Lang::Zh => format!("服务器对账不平：服务器 {booked}"),
                Lang::En => format!("server: unbalanced, it booked {booked}"),
            };
            (text, Color32::from_rgb(180, 40, 40))
        }
    };
    (head + &verdict, colour)
}

fn day_book_column(app: &mut CounterApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("今日交易", "Today's transactions")).size(TITLE));
    let Some(book) = app.state.day_book.clone() else {
        ui.label(RichText::new(lang.t("正在读取…", "Reading…")).size(TEXT));
        return;
    };
    egui::ScrollArea::vertical()
        .max_height((ui.available_height() - 260.0).max(120.0))
        .show(ui, |ui| {
            egui::Grid::new("day")
                .striped(true)
                .spacing(Vec2::new(12.0, 4.0))
                .show(ui, |ui| {
                    if book.lines.is_empty() {
                        ui.label(
                            RichText::new(lang.t("今日暂无交易", "None yet today"))
                                .size(18.0)
                                .color(Color32::GRAY),
                        );
                        ui.end_row();
                    }
                    for l in book.lines.iter().rev() {
                        ui.label(RichText::new(&l.time).size(18.0));
                        ui.label(RichText::new(format!("{:08}", l.seq)).size(18.0));
                        ui.label(RichText::new(format!("¥{}", yuan(l.amount_fen))).size(18.0));
                        ui.label(RichText::new(state_text(lang, l.state)).size(18.0));
                        ui.end_row();
                    }
                });
        });
    ui.separator();
    ui.label(
        RichText::new(match lang {
            Lang::Zh => format!("本班次（第 {} 批）", book.shift),
            Lang::En => format!("This shift (batch {})", book.shift),
        })
        .size(TEXT),
    );
    centered(ui, 420.0, |ui| {
        egui::Grid::new("shift")
            .spacing(Vec2::new(18.0, 4.0))
            .show(ui, |ui| {
                let rows = [
                    (
                        lang.t("成功", "Paid"),
                        format!("{} / ¥{}", book.approved.0, yuan(book.approved.1)),
                    ),
                    (
                        lang.t("卡日志补记", "From the card's log"),
                        format!("{} / ¥{}", book.recovered.0, yuan(book.recovered.1)),
                    ),
                    (
                        lang.t("医保记账", "Medical account"),
                        format!("{} / ¥{}", book.medical.0, yuan(book.medical.1)),
                    ),
                    (
                        lang.t("待确认", "In doubt"),
                        match lang {
                            Lang::Zh => format!("{} 笔", book.in_doubt),
                            Lang::En => format!("{} entries", book.in_doubt),
                        },
                    ),
                ];
                for (name, value) in rows {
                    ui.label(RichText::new(name).size(18.0).color(Color32::GRAY));
                    ui.label(RichText::new(value).size(18.0));
                    ui.end_row();
                }
            });
    });
    if let Some(previous) = &book.previous {
        let (text, colour) = previous_shift_text(lang, previous);
        ui.label(RichText::new(text).size(18.0).color(colour));
    }
    ui.horizontal(|ui| {
        let refresh = lang.t("刷新", "Refresh");
        let r = ui.button(RichText::new(refresh).size(20.0));
        if clicked(ui, refresh, &r) {
            app.request(Request::DayBook);
        }
        let close = lang.t("交班结算", "Close shift");
        let r = ui.button(RichText::new(close).size(20.0));
        if clicked(ui, close, &r) {
            app.request(Request::CloseShift);
        }
    });
}
