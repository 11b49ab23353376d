//! The citizen kiosk: egui/eframe screens over the UI-free [`crate::session`].
//!
//! The app keeps a [`UiState`] (which screen, what the citizen typed, what the session reported)
//! and draws it; buttons turn into [`Request`]s for the session worker, whose [`Update`]s come back
//! through a channel and wake the UI with a repaint. Card and ledger work never runs on the UI
//! thread. Chinese is the default language, English one button away; every widget has a text
//! label, so tests click by label through AccessKit. A removed card, the citizen's "end", and the
//! idle timeout all return to the attract screen and drop every personal field.

pub mod fonts;
pub(crate) mod screens;

use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::card_source::DemoSlot;
use crate::demo::DemoCard;
use crate::payment::{CardAccount, PaymentFailure, PaymentOrder, PaymentReceipt, Settled};
use crate::session::{Citizen, ReaderStatus, RejectReason, Request, Update};

pub use fonts::install as install_fonts;

/// Display language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 中文 (default).
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Pick the text for this language.
    pub const fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Self::Zh => zh,
            Self::En => en,
        }
    }
}

/// Which screen is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// "Please insert your card".
    Attract,
    /// Reading and checking the card.
    Reading,
    /// The card was turned away.
    Rejected(RejectReason),
    /// PIN entry.
    Pin,
    /// The menu.
    Home,
    /// Personal information.
    Personal,
    /// Insurance and medical account.
    Insurance,
    /// Change PIN: enter the old one, the new one, the new one again.
    ChangePin(ChangeStage),
    /// The card's electronic cash: balance, limits, transaction log.
    Account,
    /// Choose what to pay.
    PayItems,
    /// Enter the amount of a fee without a fixed amount (index into the fee list).
    PayAmount(usize),
    /// Confirm the payment.
    PayConfirm(PaymentOrder),
    /// Paying: keep the card in.
    Paying,
    /// The card asks for its PIN to pay.
    PaymentPin,
    /// Paid: the receipt.
    Receipt(Box<PaymentReceipt>),
    /// A message with an OK button back to the menu.
    Notice(String),
    /// "Please take your card".
    TakeCard,
    /// The technician PIN, before the service view.
    ServicePin,
    /// The technician's service view: readers, the last exchanges.
    Service,
}

impl Screen {
    /// The screen's name, without its data.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Attract => "Attract",
            Self::Reading => "Reading",
            Self::Rejected(RejectReason::HotListed) => "RejectedHotListed",
            Self::Rejected(RejectReason::Expired(_)) => "RejectedExpired",
            Self::Rejected(RejectReason::PinBlocked) => "RejectedPinBlocked",
            Self::Rejected(RejectReason::NotGenuine(_)) => "RejectedNotGenuine",
            Self::Rejected(RejectReason::Unreadable(_)) => "RejectedUnreadable",
            Self::Pin => "Pin",
            Self::Home => "Home",
            Self::Personal => "Personal",
            Self::Insurance => "Insurance",
            Self::ChangePin(_) => "ChangePin",
            Self::Account => "Account",
            Self::PayItems => "PayItems",
            Self::PayAmount(_) => "PayAmount",
            Self::PayConfirm(_) => "PayConfirm",
            Self::Paying => "Paying",
            Self::PaymentPin => "PaymentPin",
            Self::Receipt(_) => "Receipt",
            Self::Notice(_) => "Notice",
            Self::TakeCard => "TakeCard",
            Self::ServicePin => "ServicePin",
            Self::Service => "Service",
        }
    }
}

/// Steps of a PIN change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeStage {
    /// Current PIN.
    Old,
    /// New PIN.
    New,
    /// New PIN again.
    Confirm,
}

/// What the UI shows; everything personal lives in `citizen` and the PIN buffers, and goes
/// when the session ends.
#[derive(Debug)]
pub struct UiState {
    /// Current screen.
    pub screen: Screen,
    /// Language.
    pub lang: Lang,
    /// Reader as the status bar shows it.
    pub reader: ReaderStatus,
    /// The signed-in citizen.
    pub citizen: Option<Box<Citizen>>,
    /// Show personal data unmasked (the citizen pressed "show").
    pub reveal: bool,
    /// Digits typed on the keypad.
    pub digits: Zeroizing<String>,
    /// PIN tries left, as the card last said.
    pub tries_left: Option<u8>,
    /// A line under the keypad (wrong PIN, mismatch...).
    pub pin_message: Option<String>,
    /// Old and new PIN during a change.
    pub change_old: Zeroizing<String>,
    /// New PIN during a change.
    pub change_new: Zeroizing<String>,
    /// Waiting for the session.
    pub busy: bool,
    /// Whether the terminal reached the backend recently.
    pub online: bool,
    /// Ledger entries waiting to be uploaded.
    pub pending_sync: u64,
    /// The card's electronic cash, once read.
    pub account: Option<CardAccount>,
    /// Payments settled at this insert (a card pulled during an earlier payment): shown on
    /// the PIN and menu screens until the session ends.
    pub settled: Option<String>,
    /// A payment the card was pulled during: shown on the attract screen until the next card.
    pub in_doubt: Option<String>,
    /// The receipt file of the last payment, if one was written.
    pub receipt_file: Option<std::path::PathBuf>,
    /// The technician's service view, while it is shown.
    pub service: Option<crate::service_view::ServiceView>,
    /// Wrong technician PINs in a row.
    pub service_failures: u8,
    /// Service mode locked after three wrong technician PINs, until then.
    pub service_locked_until: Option<Instant>,
}

impl UiState {
    fn new(lang: Lang) -> Self {
        Self {
            screen: Screen::Attract,
            lang,
            reader: ReaderStatus::Missing,
            citizen: None,
            reveal: false,
            digits: Zeroizing::new(String::new()),
            tries_left: None,
            pin_message: None,
            change_old: Zeroizing::new(String::new()),
            change_new: Zeroizing::new(String::new()),
            busy: false,
            online: false,
            pending_sync: 0,
            account: None,
            settled: None,
            in_doubt: None,
            receipt_file: None,
            service: None,
            service_failures: 0,
            service_locked_until: None,
        }
    }

    /// Forget everything personal and go back to the attract screen.
    pub fn clear(&mut self) {
        self.citizen = None;
        self.reveal = false;
        self.digits = Zeroizing::new(String::new());
        self.change_old = Zeroizing::new(String::new());
        self.change_new = Zeroizing::new(String::new());
        self.tries_left = None;
        self.pin_message = None;
        self.busy = false;
        self.account = None;
        self.receipt_file = None;
        self.settled = None;
        self.service = None;
        self.screen = Screen::Attract;
    }
}

/// The demo panel: cards to insert into the in-process slot.
#[derive(Debug)]
pub struct DemoPanel {
    /// The slot.
    pub slot: DemoSlot,
    /// The cards.
    pub cards: Vec<DemoCard>,
}

/// Options of the kiosk app.
#[derive(Debug, Clone)]
pub struct KioskOptions {
    /// Start language.
    pub lang: Lang,
    /// Idle time after which a session ends.
    pub idle_timeout: Duration,
}

impl Default for KioskOptions {
    fn default() -> Self {
        Self {
            lang: Lang::Zh,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The kiosk.
pub struct KioskApp {
    /// What is shown.
    pub state: UiState,
    requests: Sender<Request>,
    updates: Receiver<Update>,
    demo: Option<DemoPanel>,
    idle_timeout: Duration,
    last_input: Instant,
    screen_log: Option<std::fs::File>,
    logged: Option<(&'static str, Vec<(String, egui::Pos2)>)>,
    technician: Option<crate::service_view::TechnicianPin>,
}

impl std::fmt::Debug for KioskApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskApp")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl KioskApp {
    /// A kiosk sending `requests` to a session worker and reading its `updates`.
    pub fn new(
        ctx: &egui::Context,
        requests: Sender<Request>,
        updates: Receiver<Update>,
        demo: Option<DemoPanel>,
        options: KioskOptions,
    ) -> Self {
        fonts::install(ctx);
        screens::style(ctx);
        Self {
            state: UiState::new(options.lang),
            requests,
            updates,
            demo,
            idle_timeout: options.idle_timeout,
            last_input: Instant::now(),
            screen_log: None,
            logged: None,
            technician: None,
        }
    }

    /// Offer the technician's service mode (a small "维护" button on the attract screen's
    /// status bar), behind `pin`. Without it there is no service mode.
    pub fn with_technician(mut self, pin: crate::service_view::TechnicianPin) -> Self {
        self.technician = Some(pin);
        self
    }

    /// Append each screen shown to `file`, so a test driving a real window can follow the
    /// journey and find its buttons: a line `screen NAME` (names like `Pin`, `Home`), one line
    /// `target X Y LABEL` per button (centre in physical pixels, label as shown: button labels
    /// only, never personal data), then `end`. A block is written whenever the screen or its
    /// buttons change.
    pub fn with_screen_log(mut self, file: std::fs::File) -> Self {
        self.screen_log = Some(file);
        self
    }

    fn request(&mut self, r: Request) {
        self.state.busy = true;
        let _ = self.requests.send(r);
    }

    /// Apply one update from the session.
    pub fn apply(&mut self, u: Update) {
        let s = &mut self.state;
        s.busy = false;
        if matches!(s.screen, Screen::Service | Screen::ServicePin) {
            // A technician inserts a card to check it: the citizen's screens stay away until
            // the service mode is left (which ends the card's session).
            match u {
                Update::Reader(r) => s.reader = r,
                Update::Reading => s.reader = ReaderStatus::CardIn,
                Update::CardRemoved => s.reader = ReaderStatus::Ready(String::new()),
                Update::Service(view) if s.screen == Screen::Service => s.service = Some(*view),
                Update::Sync { online, pending } => {
                    s.online = online;
                    s.pending_sync = pending;
                }
                _ => {}
            }
            return;
        }
        match u {
            Update::Reader(r) => s.reader = r,
            Update::Sync { online, pending } => {
                s.online = online;
                s.pending_sync = pending;
            }
            Update::Reading => {
                s.clear();
                s.in_doubt = None;
                s.reader = ReaderStatus::CardIn;
                s.screen = Screen::Reading;
            }
            Update::Rejected(reason) => s.screen = Screen::Rejected(reason),
            // The counter's views; the kiosk shows the same facts on its own screens.
            Update::Verdict(_)
            | Update::DayBook(_)
            | Update::MedicalBalance { .. }
            | Update::MedicalRecorded(_)
            | Update::MedicalFailed(_) => {}
            Update::Service(view) => {
                if matches!(s.screen, Screen::Service) {
                    s.service = Some(*view);
                }
            }
            Update::PinNeeded { tries_left } => {
                s.tries_left = Some(tries_left);
                s.digits = Zeroizing::new(String::new());
                s.screen = Screen::Pin;
            }
            Update::PinWrong { tries_left } => {
                s.tries_left = Some(tries_left);
                s.digits = Zeroizing::new(String::new());
                s.pin_message = Some(match s.lang {
                    Lang::Zh => format!("密码错误，还可尝试 {tries_left} 次"),
                    Lang::En => format!("Wrong PIN, {tries_left} tries left"),
                });
                if matches!(s.screen, Screen::ChangePin(_)) {
                    s.screen = Screen::ChangePin(ChangeStage::Old);
                }
            }
            Update::PinBlocked => {
                s.citizen = None;
                s.screen = Screen::Rejected(RejectReason::PinBlocked);
            }
            Update::SignedIn(c) => {
                s.citizen = Some(c);
                s.digits = Zeroizing::new(String::new());
                s.pin_message = None;
                s.screen = Screen::Home;
            }
            Update::PinChanged => {
                s.change_old = Zeroizing::new(String::new());
                s.change_new = Zeroizing::new(String::new());
                s.screen = Screen::Notice(s.lang.t("密码已修改", "PIN changed").to_string());
            }
            Update::PinChangeFailed(why) => s.screen = Screen::Notice(why),
            Update::PinChangeInDoubt => {
                s.change_old = Zeroizing::new(String::new());
                s.change_new = Zeroizing::new(String::new());
                let text = s
                    .lang
                    .t(
                        "修改密码未能确认完成，新密码可能已生效：请先输入新密码，不对再输入原密码",
                        "The PIN change could not be confirmed and the new PIN may be in effect: \
                         try the new PIN first, then the old one",
                    )
                    .to_string();
                // Kept on the attract screen if the card is gone, like a payment in doubt.
                s.in_doubt = Some(text.clone());
                s.screen = Screen::Notice(text);
            }
            Update::CardRemoved => {
                s.clear();
                s.reader = ReaderStatus::Ready(String::new());
            }
            Update::Ended => {
                let lang = s.lang;
                let reader = s.reader.clone();
                s.clear();
                s.lang = lang;
                s.reader = reader;
                s.screen = Screen::TakeCard;
            }
            Update::Error(e) => s.screen = Screen::Notice(e),
            Update::Settled(list) => s.settled = Some(settled_text(s.lang, &list)),
            Update::Account(a) => {
                s.account = Some(a);
                s.screen = Screen::Account;
            }
            Update::AccountFailed(f) => s.screen = Screen::Notice(failure_text(s.lang, &f)),
            Update::Paying => {
                s.busy = true;
                s.screen = Screen::Paying;
            }
            Update::PaymentPinNeeded {
                tries_left,
                previous_wrong,
            } => {
                s.tries_left = tries_left;
                s.digits = Zeroizing::new(String::new());
                let lang = s.lang;
                s.pin_message = previous_wrong.then(|| {
                    lang.t("密码错误，请重新输入", "Wrong PIN, try again")
                        .to_string()
                });
                s.screen = Screen::PaymentPin;
            }
            Update::Paid { receipt, file } => {
                s.account = None;
                s.receipt_file = file;
                s.screen = Screen::Receipt(receipt);
            }
            Update::PaymentFailed(f) => {
                if let PaymentFailure::InDoubt { .. } = f {
                    s.in_doubt = Some(failure_text(s.lang, &f));
                }
                s.screen = Screen::Notice(failure_text(s.lang, &f));
            }
        }
    }

    /// Drain the session's updates and enforce the idle timeout. Called before each frame.
    pub fn tick(&mut self, ctx: &egui::Context) {
        while let Ok(u) = self.updates.try_recv() {
            self.apply(u);
        }
        let active = ctx.input(|i| !i.events.is_empty() || i.pointer.any_down());
        if active {
            self.last_input = Instant::now();
        }
        let idle_screen = matches!(self.state.screen, Screen::Attract | Screen::Reading);
        if !idle_screen && self.last_input.elapsed() >= self.idle_timeout {
            let _ = self.requests.send(Request::End);
            self.state.clear();
        }
        if !idle_screen {
            // Wake up again to check the timeout without input.
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        if self.screen_log.is_some() {
            screens::clear_targets(ctx);
        }
    }

    /// Write the screen log block for the frame just drawn, if anything changed.
    fn log_screen(&mut self, ctx: &egui::Context, name: &'static str) {
        if self.state.screen.name() != name {
            // A button switched screens while this one was drawn: log the new one next frame.
            ctx.request_repaint();
        }
        let Some(f) = self.screen_log.as_mut() else {
            return;
        };
        let targets = screens::targets(ctx).0;
        if self
            .logged
            .as_ref()
            .is_some_and(|(n, t)| *n == name && *t == targets)
        {
            return;
        }
        use std::io::Write;
        let ppp = ctx.pixels_per_point();
        let mut block = format!("screen {name}\n");
        for (label, p) in &targets {
            block.push_str(&format!(
                "target {} {} {label}\n",
                (p.x * ppp).round(),
                (p.y * ppp).round()
            ));
        }
        block.push_str("end\n");
        let _ = f.write_all(block.as_bytes());
        let _ = f.flush();
        self.logged = Some((name, targets));
    }
}

impl eframe::App for KioskApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.tick(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let drawn = self.state.screen.name();
        screens::draw(self, ui);
        let ctx = ui.ctx().clone();
        self.log_screen(&ctx, drawn);
    }
}

impl Drop for KioskApp {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
    }
}

/// Yuan with two decimals.
pub fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// What the citizen is told about payments settled at this insert.
pub fn settled_text(lang: Lang, list: &[Settled]) -> String {
    list.iter()
        .map(|s| match (lang, s) {
            (Lang::Zh, Settled::Completed { amount_fen, seq }) => {
                format!("上次未完成的缴费 ¥{}（流水号 {seq}）已从卡内扣款，缴费成功", yuan(*amount_fen))
            }
            (Lang::En, Settled::Completed { amount_fen, seq }) => format!(
                "Your interrupted payment of CNY {} (no. {seq}) went through",
                yuan(*amount_fen)
            ),
            (Lang::Zh, Settled::NotDone { amount_fen, seq }) => {
                format!("上次未完成的缴费 ¥{}（流水号 {seq}）未扣款，可重新缴费", yuan(*amount_fen))
            }
            (Lang::En, Settled::NotDone { amount_fen, seq }) => format!(
                "Your interrupted payment of CNY {} (no. {seq}) was not taken; you may pay again",
                yuan(*amount_fen)
            ),
            (Lang::Zh, Settled::Unclear { amount_fen, seq }) => format!(
                "上次未完成的缴费 ¥{}（流水号 {seq}）需人工核实，请到服务窗口",
                yuan(*amount_fen)
            ),
            (Lang::En, Settled::Unclear { amount_fen, seq }) => format!(
                "Your interrupted payment of CNY {} (no. {seq}) needs checking at a service counter",
                yuan(*amount_fen)
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the citizen is told when a payment or an account query fails.
pub fn failure_text(lang: Lang, f: &PaymentFailure) -> String {
    match (lang, f) {
        (Lang::Zh, PaymentFailure::NoPaymentApplication) => "此卡未开通金融功能（电子现金）".into(),
        (Lang::En, PaymentFailure::NoPaymentApplication) => {
            "This card has no payment (electronic cash) application".into()
        }
        (Lang::Zh, PaymentFailure::InsufficientBalance { balance_fen }) => {
            format!("电子现金余额不足（余额 ¥{}）", yuan(*balance_fen))
        }
        (Lang::En, PaymentFailure::InsufficientBalance { balance_fen }) => format!(
            "Not enough electronic cash (balance CNY {})",
            yuan(*balance_fen)
        ),
        (Lang::Zh, PaymentFailure::OverLimit { limit_fen }) => {
            format!("超过单笔限额 ¥{}", yuan(*limit_fen))
        }
        (Lang::En, PaymentFailure::OverLimit { limit_fen }) => {
            format!("Above the limit of CNY {} per payment", yuan(*limit_fen))
        }
        (Lang::Zh, PaymentFailure::HotListed) => "此卡已挂失，不能支付".into(),
        (Lang::En, PaymentFailure::HotListed) => "This card has been reported lost".into(),
        (Lang::Zh, PaymentFailure::Declined) => "卡片拒绝了本次支付，未扣款".into(),
        (Lang::En, PaymentFailure::Declined) => "The card declined; nothing was taken".into(),
        (Lang::Zh, PaymentFailure::PinNotVerified) => "未验证密码，支付已取消".into(),
        (Lang::En, PaymentFailure::PinNotVerified) => {
            "The PIN was not verified; payment cancelled".into()
        }
        (Lang::Zh, PaymentFailure::InDoubt { seq }) => format!(
            "支付过程中卡片被拔出（流水号 {seq}）。请重新插入同一张卡以确认结果，不会重复扣款"
        ),
        (Lang::En, PaymentFailure::InDoubt { seq }) => format!(
            "The card was removed during payment (no. {seq}). Insert the same card again to \
             settle it; you will not be charged twice"
        ),
        (Lang::Zh, PaymentFailure::CardRemoved) => "卡片已拔出，未扣款".into(),
        (Lang::En, PaymentFailure::CardRemoved) => "The card was removed; nothing was taken".into(),
        (Lang::Zh, PaymentFailure::LedgerUnavailable(_)) => {
            "终端记账故障，暂停缴费，未扣款，请到服务窗口".into()
        }
        (Lang::En, PaymentFailure::LedgerUnavailable(_)) => {
            "The terminal cannot record payments now; nothing was taken".into()
        }
        (Lang::Zh, PaymentFailure::Error(_)) => "操作失败，请到服务窗口".into(),
        (Lang::En, PaymentFailure::Error(_)) => {
            "That did not work; please ask at a service counter".into()
        }
    }
}
