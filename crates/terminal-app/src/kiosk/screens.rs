//! Drawing the screens. Each screen reads [`UiState`] and turns presses into state changes or
//! session requests; nothing here talks to the card.

use card_core::secret::Pin;
use egui::{Align, Color32, Layout, RichText, Ui, Vec2};
use zeroize::Zeroizing;

use super::{ChangeStage, KioskApp, Lang, Screen, yuan};
use crate::payment::{CardAccount, FEE_ITEMS, MAX_PAYMENT_FEN, PaymentOrder, PaymentReceipt};
use crate::session::{ReaderStatus, RejectReason, Request};

const BIG: f32 = 44.0;
const BODY: f32 = 28.0;
const BUTTON: Vec2 = Vec2::new(360.0, 84.0);
const KEY: Vec2 = Vec2::new(140.0, 76.0);
const ACCENT: Color32 = Color32::from_rgb(0, 102, 179);

/// Large, calm defaults for a touch screen: light theme, big text and targets.
pub(crate) fn style(ctx: &egui::Context) {
    ctx.set_theme(egui::Theme::Light);
    ctx.all_styles_mut(|style| {
        style.spacing.button_padding = Vec2::new(24.0, 16.0);
        style.spacing.item_spacing = Vec2::new(16.0, 16.0);
        style.spacing.interact_size = Vec2::new(64.0, 64.0);
        for (text_style, size) in [
            (egui::TextStyle::Heading, BIG),
            (egui::TextStyle::Body, BODY),
            (egui::TextStyle::Button, 30.0),
            (egui::TextStyle::Small, 20.0),
            (egui::TextStyle::Monospace, BODY),
        ] {
            if let Some(font) = style.text_styles.get_mut(&text_style) {
                font.size = size;
            }
        }
    });
}

/// Where the buttons of this frame are, by label, for the screen log (see
/// [`KioskApp::with_screen_log`]): a test driving the real window clicks them there.
#[derive(Clone, Default)]
pub(super) struct Targets(pub Vec<(String, egui::Pos2)>);

fn targets_id() -> egui::Id {
    egui::Id::unique("kiosk-targets")
}

/// Forget the previous frame's buttons.
pub(crate) fn clear_targets(ctx: &egui::Context) {
    ctx.data_mut(|d| d.insert_temp(targets_id(), Targets::default()));
}

/// The buttons drawn this frame.
pub(super) fn targets(ctx: &egui::Context) -> Targets {
    ctx.data(|d| d.get_temp::<Targets>(targets_id()))
        .unwrap_or_default()
}

/// A button's click, remembering where it is under its label.
pub(crate) fn clicked(ui: &Ui, label: &str, response: &egui::Response) -> bool {
    let centre = response.rect.center();
    ui.ctx().data_mut(|d| {
        d.get_temp_mut_or_default::<Targets>(targets_id())
            .0
            .push((label.to_string(), centre))
    });
    response.clicked()
}

fn big_button(ui: &mut Ui, text: &str) -> bool {
    let r = ui.add_sized(BUTTON, egui::Button::new(RichText::new(text).size(30.0)));
    clicked(ui, text, &r)
}

fn primary_button(ui: &mut Ui, text: &str) -> bool {
    let r = ui.add_sized(
        BUTTON,
        egui::Button::new(RichText::new(text).size(30.0).color(Color32::WHITE)).fill(ACCENT),
    );
    clicked(ui, text, &r)
}

/// The whole frame: status bar, demo panel, the current screen.
pub(super) fn draw(app: &mut KioskApp, ui: &mut Ui) {
    status_bar(app, ui);
    if app.demo.is_some() {
        demo_panel(app, ui);
    }
    egui::CentralPanel::default().show(ui, |ui| {
        ui.vertical_centered(|ui| {
            ui.add_space(16.0);
            match app.state.screen.clone() {
                Screen::Attract => attract(app, ui),
                Screen::Reading => reading(app, ui),
                Screen::Rejected(reason) => rejected(app, ui, &reason),
                Screen::Pin => pin(app, ui),
                Screen::Home => home(app, ui),
                Screen::Personal => personal(app, ui),
                Screen::Insurance => insurance(app, ui),
                Screen::ChangePin(stage) => change_pin(app, ui, stage),
                Screen::Account => account(app, ui),
                Screen::PayItems => pay_items(app, ui),
                Screen::PayAmount(item) => pay_amount(app, ui, item),
                Screen::PayConfirm(order) => pay_confirm(app, ui, &order),
                Screen::Paying => paying(app, ui),
                Screen::PaymentPin => payment_pin(app, ui),
                Screen::Receipt(r) => receipt(app, ui, &r),
                Screen::Notice(text) => notice(app, ui, &text),
                Screen::TakeCard => take_card(app, ui),
                Screen::ServicePin => service_pin(app, ui),
                Screen::Service => service(app, ui),
            }
        });
    });
}

fn status_bar(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            let s = &app.state;
            connection_labels(ui, lang, s.online, s.pending_sync, &s.reader, 22.0, true);
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if app.technician.is_some() && app.state.screen == Screen::Attract {
                    let text = lang.t("维护", "Service");
                    let r = ui.button(RichText::new(text).size(18.0).color(Color32::GRAY));
                    if clicked(ui, text, &r) {
                        app.state.digits = Zeroizing::new(String::new());
                        app.state.pin_message = None;
                        app.state.screen = Screen::ServicePin;
                    }
                }
                language_button(ui, &mut app.state.lang, None);
            });
        });
    });
}

/// Online or offline, entries waiting to sync, the reader's state: the status the kiosk and
/// the counter both show, in text of `size`, with separators between them if asked.
pub(crate) fn connection_labels(
    ui: &mut Ui,
    lang: Lang,
    online: bool,
    pending_sync: u64,
    reader: &ReaderStatus,
    size: f32,
    separators: bool,
) {
    let net = if online {
        lang.t("联网", "Online")
    } else {
        lang.t("离线", "Offline")
    };
    ui.label(RichText::new(net).size(size));
    if separators {
        ui.separator();
    }
    ui.label(
        RichText::new(match lang {
            Lang::Zh => format!("待上传 {pending_sync} 笔"),
            Lang::En => format!("{pending_sync} waiting to sync"),
        })
        .size(size),
    );
    if separators {
        ui.separator();
    }
    let reader = match reader {
        ReaderStatus::Missing => lang.t("读卡器未连接", "No reader"),
        ReaderStatus::Ready(_) => lang.t("读卡器就绪", "Reader ready"),
        ReaderStatus::CardIn => lang.t("已插卡", "Card in"),
    };
    ui.label(RichText::new(reader).size(size));
}

/// The button that switches between Chinese and English, labelled in the other language;
/// text of `size`, or the default.
pub(crate) fn language_button(ui: &mut Ui, lang: &mut Lang, size: Option<f32>) {
    let other = match lang {
        Lang::Zh => "English",
        Lang::En => "中文",
    };
    let r = match size {
        Some(size) => ui.button(RichText::new(other).size(size)),
        None => ui.button(other),
    };
    if clicked(ui, other, &r) {
        *lang = match lang {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        };
    }
}

fn demo_panel(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    let Some(demo) = app.demo.as_ref() else {
        return;
    };
    let slot = demo.slot.clone();
    let cards = demo.cards.clone();
    egui::Panel::right("demo").exact_size(360.0).show(ui, |ui| {
        ui.heading(RichText::new(lang.t("演示卡片", "Demo cards")).size(26.0));
        ui.label(
            RichText::new(lang.t("点选插入读卡器", "Tap to insert into the reader")).size(18.0),
        );
        let inserted = slot.inserted();
        for card in &cards {
            let label = match lang {
                Lang::Zh => card.label_zh,
                Lang::En => card.label_en,
            };
            let is_in = inserted.as_deref() == Some(card.name);
            let text = RichText::new(label).size(20.0);
            let r = ui.add_sized(
                Vec2::new(330.0, 56.0),
                egui::Button::selectable(is_in, text),
            );
            if clicked(ui, label, &r) && !is_in {
                slot.insert(card.name, card.card.clone());
            }
        }
        ui.add_space(12.0);
        let remove = lang.t("取出卡片", "Remove card");
        let r = ui.add_sized(
            Vec2::new(330.0, 56.0),
            egui::Button::new(RichText::new(remove).size(22.0)),
        );
        if clicked(ui, remove, &r) {
            slot.remove();
        }
    });
}

fn attract(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.add_space(120.0);
    ui.label(
        RichText::new(lang.t("社会保障卡自助服务", "Social Security Card Self-Service"))
            .size(36.0)
            .color(ACCENT),
    );
    ui.add_space(40.0);
    ui.label(
        RichText::new(lang.t("请插入社保卡", "Please insert your social security card"))
            .size(64.0)
            .strong(),
    );
    ui.add_space(24.0);
    ui.label(
        RichText::new(lang.t("芯片朝上，插入读卡器", "Chip facing up, into the reader")).size(BODY),
    );
    if let Some(text) = app.state.in_doubt.as_deref() {
        ui.add_space(40.0);
        banner(ui, Some(text));
    }
}

/// A framed message about payments (settled or in doubt).
fn banner(ui: &mut Ui, text: Option<&str>) {
    let Some(text) = text else {
        return;
    };
    egui::Frame::new()
        .fill(Color32::from_rgb(255, 244, 214))
        .stroke(egui::Stroke::new(2.0, Color32::from_rgb(214, 158, 46)))
        .corner_radius(8.0)
        .inner_margin(16.0)
        .show(ui, |ui| {
            ui.set_max_width(860.0);
            ui.label(RichText::new(text).size(24.0));
        });
}

fn reading(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.add_space(160.0);
    ui.label(
        RichText::new(lang.t("正在读卡，请稍候…", "Reading your card, please wait…")).size(BIG),
    );
    ui.add_space(24.0);
    ui.spinner();
}

fn rejected(app: &mut KioskApp, ui: &mut Ui, reason: &RejectReason) {
    let lang = app.state.lang;
    ui.add_space(100.0);
    ui.label(
        RichText::new(lang.t("无法使用此卡", "This card cannot be used"))
            .size(BIG)
            .color(Color32::from_rgb(180, 30, 30)),
    );
    ui.add_space(24.0);
    let why = match reason {
        RejectReason::Unreadable(_) => lang.t(
            "卡片无法读取，请确认是社保卡并正确插入",
            "The card cannot be read: is it a social security card, inserted the right way?",
        ),
        RejectReason::NotGenuine(_) => lang.t(
            "卡片未通过真伪验证",
            "The card did not pass the authenticity check",
        ),
        RejectReason::HotListed => lang.t(
            "此卡已挂失，请到服务窗口办理",
            "This card has been reported lost; please go to a service counter",
        ),
        RejectReason::Expired(_) => lang.t(
            "此卡已过有效期，请到服务窗口换卡",
            "This card has expired; please renew it at a service counter",
        ),
        RejectReason::PinBlocked => lang.t(
            "密码已锁定，请到服务窗口解锁",
            "The PIN is blocked; please have it unblocked at a service counter",
        ),
    };
    ui.label(RichText::new(why).size(BODY));
    if let RejectReason::Expired(date) = reason {
        ui.label(RichText::new(format!("{} {date}", lang.t("有效期至", "Valid until"))).size(BODY));
    }
    ui.add_space(40.0);
    ui.label(RichText::new(lang.t("请取出卡片", "Please take your card")).size(BIG));
}

/// The keypad; returns the pressed key's meaning.
pub(crate) enum Key {
    Digit(char),
    Clear,
    Ok,
}

/// Keys typed on a physical keyboard (digits, Enter, Backspace/Escape), so the PIN pad also
/// works from a keyboard or an accessibility device.
fn typed(ui: &Ui) -> Vec<Key> {
    ui.input(|i| {
        let mut keys = Vec::new();
        for e in &i.events {
            match e {
                egui::Event::Text(t) => {
                    keys.extend(t.chars().filter(char::is_ascii_digit).map(Key::Digit))
                }
                egui::Event::Key {
                    key, pressed: true, ..
                } => match key {
                    egui::Key::Enter => keys.push(Key::Ok),
                    egui::Key::Backspace | egui::Key::Escape => keys.push(Key::Clear),
                    _ => {}
                },
                _ => {}
            }
        }
        keys
    })
}

pub(crate) fn keypad(ui: &mut Ui, lang: Lang) -> Vec<Key> {
    let mut pressed = typed(ui);
    let rows: [[&str; 3]; 4] = [
        ["1", "2", "3"],
        ["4", "5", "6"],
        ["7", "8", "9"],
        ["", "0", ""],
    ];
    centered(ui, 3.0 * KEY.x + 2.0 * 12.0, |ui| {
        egui::Grid::new("keypad")
            .spacing(Vec2::new(12.0, 12.0))
            .show(ui, |ui| {
                for (r, row) in rows.iter().enumerate() {
                    for (c, k) in row.iter().enumerate() {
                        let (text, key) = match (r, c, *k) {
                            (3, 0, _) => (lang.t("清除", "Clear"), Some(Key::Clear)),
                            (3, 2, _) => (lang.t("确认", "OK"), Some(Key::Ok)),
                            (_, _, d) => (d, d.chars().next().map(Key::Digit)),
                        };
                        let button = egui::Button::new(RichText::new(text).size(40.0));
                        let r = ui.add_sized(KEY, button);
                        if clicked(ui, text, &r) {
                            pressed.extend(key);
                        }
                    }
                    ui.end_row();
                }
            });
    });
    pressed
}

/// Tries left, the digits typed as dots, and the message under them (wrong PIN...).
fn pin_status(app: &KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    if let Some(t) = app.state.tries_left {
        ui.label(
            RichText::new(match lang {
                Lang::Zh => format!("还可尝试 {t} 次"),
                Lang::En => format!("{t} tries left"),
            })
            .size(22.0),
        );
    }
    ui.label(
        RichText::new(masked(&app.state.digits))
            .size(56.0)
            .monospace(),
    );
    if let Some(m) = &app.state.pin_message {
        ui.label(
            RichText::new(m)
                .size(BODY)
                .color(Color32::from_rgb(180, 30, 30)),
        );
    }
}

pub(crate) fn masked(digits: &str) -> String {
    let n = digits.chars().count();
    let shown: String = "●".repeat(n);
    let empty: String = "○".repeat(6usize.saturating_sub(n));
    format!("{shown}{empty}")
}

fn pin(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    banner(ui, app.state.settled.as_deref());
    ui.label(RichText::new(lang.t("请输入社保卡密码", "Please enter your card PIN")).size(BIG));
    pin_status(app, ui);
    for key in keypad(ui, lang) {
        match key {
            Key::Digit(d) if app.state.digits.len() < Pin::MAX_LEN => app.state.digits.push(d),
            Key::Clear => app.state.digits = Zeroizing::new(String::new()),
            Key::Ok if !app.state.busy => match Pin::new(&app.state.digits) {
                Ok(p) => {
                    app.state.digits = Zeroizing::new(String::new());
                    app.state.pin_message = None;
                    app.request(Request::VerifyPin(p));
                }
                Err(_) => {
                    app.state.pin_message = Some(
                        lang.t("密码为 4 至 12 位数字", "A PIN has 4 to 12 digits")
                            .into(),
                    );
                }
            },
            _ => {}
        }
    }
    ui.add_space(16.0);
    if big_button(ui, lang.t("退出", "Cancel")) {
        app.request(Request::End);
    }
}

fn home(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    let name = app
        .state
        .citizen
        .as_ref()
        .map(|c| c.identity.holder.name.to_string())
        .unwrap_or_default();
    ui.label(
        RichText::new(match lang {
            Lang::Zh => format!("{name}，您好"),
            Lang::En => format!("Hello, {name}"),
        })
        .size(BIG),
    );
    banner(ui, app.state.settled.as_deref());
    ui.add_space(24.0);
    centered(ui, 2.0 * BUTTON.x + 32.0, |ui| {
        egui::Grid::new("menu")
            .spacing(Vec2::new(32.0, 24.0))
            .show(ui, |ui| {
                if big_button(ui, lang.t("个人信息", "Personal information")) {
                    app.state.reveal = false;
                    app.state.screen = Screen::Personal;
                }
                if big_button(ui, lang.t("参保信息", "Insurance")) {
                    app.state.screen = Screen::Insurance;
                }
                ui.end_row();
                if big_button(ui, lang.t("电子现金", "Electronic cash")) && !app.state.busy {
                    app.request(Request::ShowAccount);
                }
                if big_button(ui, lang.t("缴费", "Pay a fee")) {
                    app.state.screen = Screen::PayItems;
                }
                ui.end_row();
                if big_button(ui, lang.t("修改密码", "Change PIN")) {
                    app.state.digits = Zeroizing::new(String::new());
                    app.state.pin_message = None;
                    app.state.screen = Screen::ChangePin(ChangeStage::Old);
                }
                if primary_button(ui, lang.t("结束", "Finish")) {
                    app.request(Request::End);
                }
                ui.end_row();
            });
    });
}

fn field(ui: &mut Ui, name: &str, value: &str) {
    ui.label(RichText::new(name).size(BODY).color(Color32::GRAY));
    ui.label(RichText::new(value).size(BODY).strong());
    ui.end_row();
}

fn back_button(app: &mut KioskApp, ui: &mut Ui) {
    if big_button(ui, app.state.lang.t("返回", "Back")) {
        app.state.reveal = false;
        app.state.screen = Screen::Home;
    }
}

/// A row of buttons, centred.
fn button_row(ui: &mut Ui, count: usize, add: impl FnOnce(&mut Ui)) {
    let width = count as f32 * BUTTON.x + (count.saturating_sub(1)) as f32 * 16.0;
    ui.add_space(16.0);
    ui.allocate_ui_with_layout(
        Vec2::new(width, BUTTON.y),
        Layout::left_to_right(Align::Center),
        add,
    );
}

fn personal(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("个人信息", "Personal information")).size(BIG));
    let reveal = app.state.reveal;
    if let Some(c) = app.state.citizen.as_ref() {
        let id = &c.identity;
        let show = |clear: &str, masked: String| if reveal { clear.to_string() } else { masked };
        centered(ui, 700.0, |ui| {
            egui::Grid::new("personal")
                .spacing(Vec2::new(40.0, 12.0))
                .show(ui, |ui| {
                    field(
                        ui,
                        lang.t("姓名", "Name"),
                        &show(id.holder.name.reveal(), id.holder.name.to_string()),
                    );
                    field(
                        ui,
                        lang.t("社会保障号码", "Social security number"),
                        &show(id.holder.ssn.reveal(), id.holder.ssn.to_string()),
                    );
                    field(
                        ui,
                        lang.t("社保卡号", "Card number"),
                        &show(
                            id.card.card_number.reveal(),
                            id.card.card_number.to_string(),
                        ),
                    );
                    let gender = match lang {
                        Lang::Zh => id.holder.gender.label_zh().to_string(),
                        Lang::En => id.holder.gender.to_string(),
                    };
                    field(ui, lang.t("性别", "Gender"), &gender);
                    field(
                        ui,
                        lang.t("发卡日期", "Issued"),
                        &id.card.issue_date.to_string(),
                    );
                    field(
                        ui,
                        lang.t("有效期至", "Valid until"),
                        &id.card.expiry_date.to_string(),
                    );
                });
        });
    }
    let toggle = if reveal {
        lang.t("隐藏", "Hide")
    } else {
        lang.t("显示完整信息", "Show in full")
    };
    button_row(ui, 2, |ui| {
        if big_button(ui, toggle) {
            app.state.reveal = !reveal;
        }
        back_button(app, ui);
    });
}

fn signed_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}", yuan(fen.unsigned_abs()))
}

fn insurance(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("参保信息", "Insurance")).size(BIG));
    match app.state.citizen.as_ref().and_then(|c| c.insurance.clone()) {
        Some(i) => {
            let status = match (lang, i.status.as_str()) {
                (Lang::Zh, "active") => "正常参保",
                (Lang::Zh, "suspended") => "暂停参保",
                (Lang::Zh, "terminated") => "终止参保",
                (_, s) => match s {
                    "active" => "Active",
                    "suspended" => "Suspended",
                    "terminated" => "Terminated",
                    _ => "—",
                },
            };
            centered(ui, 700.0, |ui| {
                egui::Grid::new("insurance")
                    .spacing(Vec2::new(40.0, 12.0))
                    .show(ui, |ui| {
                        field(ui, lang.t("参保状态", "Status"), status);
                        field(
                            ui,
                            lang.t("累计缴费月数", "Months of contributions"),
                            &i.contribution_months.to_string(),
                        );
                        field(
                            ui,
                            lang.t("医保个人账户余额（元）", "Medical account balance (CNY)"),
                            &signed_yuan(i.medical_balance_fen),
                        );
                    });
            });
            ui.add_space(8.0);
            ui.label(
                RichText::new(match lang {
                    Lang::Zh => format!("数据截至 {}", i.as_of),
                    Lang::En => format!("As of {}", i.as_of),
                })
                .size(22.0)
                .color(Color32::GRAY),
            );
        }
        None => {
            ui.label(
                RichText::new(lang.t(
                    "本机暂无您的参保记录，请到服务窗口查询",
                    "This terminal has no record for you; please ask at a service counter",
                ))
                .size(BODY),
            );
        }
    }
    button_row(ui, 1, |ui| back_button(app, ui));
}

fn change_pin(app: &mut KioskApp, ui: &mut Ui, stage: ChangeStage) {
    let lang = app.state.lang;
    let title = match stage {
        ChangeStage::Old => lang.t("请输入原密码", "Enter your current PIN"),
        ChangeStage::New => lang.t("请输入新密码", "Enter the new PIN"),
        ChangeStage::Confirm => lang.t("请再次输入新密码", "Enter the new PIN again"),
    };
    ui.label(RichText::new(title).size(BIG));
    ui.label(
        RichText::new(masked(&app.state.digits))
            .size(56.0)
            .monospace(),
    );
    if let Some(m) = &app.state.pin_message {
        ui.label(
            RichText::new(m)
                .size(BODY)
                .color(Color32::from_rgb(180, 30, 30)),
        );
    }
    for key in keypad(ui, lang) {
        // A key may move to the next stage: later keys of the same frame belong to it.
        let stage = match &app.state.screen {
            Screen::ChangePin(st) => *st,
            _ => break,
        };
        change_pin_key(app, stage, key);
    }
    ui.add_space(16.0);
    if big_button(ui, lang.t("取消", "Cancel")) {
        app.state.change_old = Zeroizing::new(String::new());
        app.state.change_new = Zeroizing::new(String::new());
        app.state.digits = Zeroizing::new(String::new());
        app.state.pin_message = None;
        app.state.screen = Screen::Home;
    }
}

fn change_pin_key(app: &mut KioskApp, stage: ChangeStage, key: Key) {
    let lang = app.state.lang;
    match key {
        Key::Digit(d) if app.state.digits.len() < Pin::MAX_LEN => app.state.digits.push(d),
        Key::Clear => app.state.digits = Zeroizing::new(String::new()),
        Key::Ok if !app.state.busy => {
            let typed = std::mem::replace(&mut app.state.digits, Zeroizing::new(String::new()));
            if Pin::new(&typed).is_err() {
                app.state.pin_message = Some(
                    lang.t("密码为 4 至 12 位数字", "A PIN has 4 to 12 digits")
                        .into(),
                );
                return;
            }
            app.state.pin_message = None;
            match stage {
                ChangeStage::Old => {
                    app.state.change_old = typed;
                    app.state.screen = Screen::ChangePin(ChangeStage::New);
                }
                ChangeStage::New => {
                    app.state.change_new = typed;
                    app.state.screen = Screen::ChangePin(ChangeStage::Confirm);
                }
                ChangeStage::Confirm => {
                    if *typed != *app.state.change_new {
                        app.state.pin_message = Some(
                            lang.t("两次输入的新密码不一致", "The two new PINs differ")
                                .into(),
                        );
                        app.state.screen = Screen::ChangePin(ChangeStage::New);
                        return;
                    }
                    if let (Ok(old), Ok(new)) = (Pin::new(&app.state.change_old), Pin::new(&typed))
                    {
                        app.request(Request::ChangePin { old, new });
                    }
                }
            }
        }
        _ => {}
    }
}

fn account(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("电子现金", "Electronic cash")).size(BIG));
    let Some(a) = app.state.account.clone() else {
        ui.label(RichText::new(lang.t("正在读取…", "Reading…")).size(BODY));
        return;
    };
    account_summary(ui, lang, &a);
    ui.add_space(8.0);
    ui.label(RichText::new(lang.t("最近交易", "Recent transactions")).size(BODY));
    if a.log.is_empty() {
        ui.label(
            RichText::new(lang.t("暂无交易记录", "No transactions yet"))
                .size(22.0)
                .color(Color32::GRAY),
        );
    }
    // The whole log (a card keeps ten records), scrolled by touch when it does not fit, so the
    // buttons below always stay on the screen.
    let log_height = (ui.available_height() - 120.0).max(80.0);
    centered(ui, 760.0, |ui| {
        egui::ScrollArea::vertical()
            .max_height(log_height)
            .auto_shrink([false, true])
            .show(ui, |ui| log_grid(ui, lang, &a));
    });
    button_row(ui, 2, |ui| {
        if big_button(ui, lang.t("缴费", "Pay a fee")) {
            app.state.screen = Screen::PayItems;
        }
        back_button(app, ui);
    });
}

fn log_grid(ui: &mut Ui, lang: Lang, a: &CardAccount) {
    {
        egui::Grid::new("log")
            .spacing(Vec2::new(36.0, 6.0))
            .striped(true)
            .show(ui, |ui| {
                for line in &a.log {
                    let kind = match (lang, line.transaction_type) {
                        (Lang::Zh, Some(0x00)) => "消费",
                        (Lang::Zh, Some(0x60 | 0x62 | 0x63)) => "圈存",
                        (Lang::Zh, Some(0x20)) => "退货",
                        (Lang::Zh, _) => "其他",
                        (Lang::En, Some(0x00)) => "Purchase",
                        (Lang::En, Some(0x60 | 0x62 | 0x63)) => "Load",
                        (Lang::En, Some(0x20)) => "Refund",
                        (Lang::En, _) => "Other",
                    };
                    let when = format!("{} {}", line.date, line.time.clone().unwrap_or_default());
                    ui.label(RichText::new(when).size(22.0));
                    ui.label(RichText::new(kind).size(22.0));
                    ui.label(RichText::new(format!("¥{}", yuan(line.amount_fen))).size(22.0));
                    ui.end_row();
                }
            });
    }
}

fn account_summary(ui: &mut Ui, lang: Lang, a: &CardAccount) {
    centered(ui, 700.0, |ui| {
        egui::Grid::new("ec")
            .spacing(Vec2::new(40.0, 10.0))
            .show(ui, |ui| {
                field(
                    ui,
                    lang.t("余额（元）", "Balance (CNY)"),
                    &yuan(a.balance_fen),
                );
                if let Some(l) = a.balance_limit_fen {
                    field(
                        ui,
                        lang.t("余额上限（元）", "Balance limit (CNY)"),
                        &yuan(l),
                    );
                }
                if let Some(l) = a.single_limit_fen {
                    field(
                        ui,
                        lang.t("单笔限额（元）", "Limit per payment (CNY)"),
                        &yuan(l),
                    );
                }
            });
    });
}

fn fee_name(lang: Lang, item: usize) -> &'static str {
    FEE_ITEMS.get(item).map_or("", |f| lang.t(f.zh, f.en))
}

fn pay_items(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("请选择缴费项目", "Choose what to pay")).size(BIG));
    ui.add_space(8.0);
    for (i, fee) in FEE_ITEMS.iter().enumerate().filter(|(_, f)| f.at_kiosk) {
        let name = lang.t(fee.zh, fee.en);
        let text = match fee.amount_fen {
            Some(f) => format!("{name}    ¥{}", yuan(f)),
            None => name.to_string(),
        };
        let r = ui.add_sized(
            Vec2::new(760.0, 72.0),
            egui::Button::new(RichText::new(&text).size(28.0)),
        );
        if clicked(ui, &text, &r) {
            app.state.digits = Zeroizing::new(String::new());
            app.state.pin_message = None;
            app.state.screen = match fee.amount_fen {
                Some(amount_fen) => Screen::PayConfirm(PaymentOrder {
                    item: i,
                    amount_fen,
                    english: lang == Lang::En,
                }),
                None => Screen::PayAmount(i),
            };
        }
    }
    button_row(ui, 1, |ui| back_button(app, ui));
}

fn pay_amount(app: &mut KioskApp, ui: &mut Ui, item: usize) {
    let lang = app.state.lang;
    ui.label(RichText::new(fee_name(lang, item)).size(BODY));
    ui.label(RichText::new(lang.t("请输入金额（元）", "Enter the amount (CNY)")).size(BIG));
    let shown = if app.state.digits.is_empty() {
        "0".to_string()
    } else {
        app.state.digits.to_string()
    };
    ui.label(RichText::new(format!("¥ {shown}")).size(52.0).monospace());
    if let Some(m) = &app.state.pin_message {
        ui.label(
            RichText::new(m)
                .size(24.0)
                .color(Color32::from_rgb(180, 30, 30)),
        );
    }
    for key in keypad(ui, lang) {
        match key {
            Key::Digit(d) if app.state.digits.len() < 4 => {
                if !(app.state.digits.is_empty() && d == '0') {
                    app.state.digits.push(d);
                }
            }
            Key::Digit(_) => {}
            Key::Clear => app.state.digits = Zeroizing::new(String::new()),
            Key::Ok => {
                let fen = app.state.digits.parse::<u64>().unwrap_or(0) * 100;
                if fen == 0 || fen > MAX_PAYMENT_FEN {
                    app.state.pin_message = Some(match lang {
                        Lang::Zh => format!("金额须在 1 至 {} 元之间", MAX_PAYMENT_FEN / 100),
                        Lang::En => {
                            format!("The amount must be 1 to {} CNY", MAX_PAYMENT_FEN / 100)
                        }
                    });
                } else {
                    app.state.pin_message = None;
                    app.state.digits = Zeroizing::new(String::new());
                    app.state.screen = Screen::PayConfirm(PaymentOrder {
                        item,
                        amount_fen: fen,
                        english: lang == Lang::En,
                    });
                    break;
                }
            }
        }
    }
    ui.add_space(12.0);
    if big_button(ui, lang.t("取消", "Cancel")) {
        app.state.digits = Zeroizing::new(String::new());
        app.state.pin_message = None;
        app.state.screen = Screen::PayItems;
    }
}

fn pay_confirm(app: &mut KioskApp, ui: &mut Ui, order: &PaymentOrder) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("请确认缴费", "Please confirm")).size(BIG));
    ui.add_space(12.0);
    centered(ui, 760.0, |ui| {
        egui::Grid::new("confirm")
            .spacing(Vec2::new(40.0, 14.0))
            .show(ui, |ui| {
                field(ui, lang.t("缴费项目", "Item"), fee_name(lang, order.item));
                field(
                    ui,
                    lang.t("金额（元）", "Amount (CNY)"),
                    &yuan(order.amount_fen),
                );
                field(
                    ui,
                    lang.t("支付方式", "Paid with"),
                    lang.t("社保卡电子现金", "Card's electronic cash"),
                );
            });
    });
    ui.add_space(8.0);
    ui.label(
        RichText::new(lang.t(
            "支付过程中请勿拔卡",
            "Keep the card in until the payment is done",
        ))
        .size(24.0)
        .color(Color32::GRAY),
    );
    button_row(ui, 2, |ui| {
        if primary_button(ui, lang.t("确认支付", "Pay")) && !app.state.busy {
            let mut order = order.clone();
            order.english = lang == Lang::En;
            app.request(Request::Pay(order));
        }
        if big_button(ui, lang.t("取消", "Cancel")) {
            app.state.screen = Screen::Home;
        }
    });
}

fn paying(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.add_space(160.0);
    ui.label(
        RichText::new(lang.t("正在支付，请勿拔卡", "Paying: keep the card in"))
            .size(56.0)
            .strong(),
    );
    ui.add_space(24.0);
    ui.spinner();
}

fn payment_pin(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(
        RichText::new(lang.t("请输入卡片密码以完成支付", "Enter the card PIN to pay")).size(BIG),
    );
    pin_status(app, ui);
    for key in keypad(ui, lang) {
        match key {
            Key::Digit(d) if app.state.digits.len() < Pin::MAX_LEN => app.state.digits.push(d),
            Key::Clear => app.state.digits = Zeroizing::new(String::new()),
            Key::Ok => {
                if let Ok(p) = Pin::new(&app.state.digits) {
                    app.state.digits = Zeroizing::new(String::new());
                    app.state.pin_message = None;
                    app.state.screen = Screen::Paying;
                    app.request(Request::PaymentPin(p));
                    break;
                }
            }
            Key::Digit(_) => {}
        }
    }
    ui.add_space(12.0);
    if big_button(ui, lang.t("取消支付", "Cancel payment")) {
        app.state.digits = Zeroizing::new(String::new());
        app.state.screen = Screen::Paying;
        app.request(Request::CancelPayment);
    }
}

fn receipt(app: &mut KioskApp, ui: &mut Ui, r: &PaymentReceipt) {
    let lang = app.state.lang;
    ui.label(
        RichText::new(lang.t("缴费成功", "Payment complete"))
            .size(BIG)
            .color(Color32::from_rgb(20, 120, 60)),
    );
    centered(ui, 760.0, |ui| {
        egui::Grid::new("receipt")
            .spacing(Vec2::new(40.0, 8.0))
            .show(ui, |ui| {
                field(ui, lang.t("缴费项目", "Item"), lang.t(r.item.zh, r.item.en));
                field(
                    ui,
                    lang.t("金额（元）", "Amount (CNY)"),
                    &yuan(r.amount_fen),
                );
                field(
                    ui,
                    lang.t("交易流水号", "Transaction no."),
                    &format!("{:08}", r.seq),
                );
                field(ui, lang.t("卡号", "Card"), &r.pan_masked);
                field(ui, lang.t("交易时间", "Time"), &r.time.display());
                if let Some(b) = r.balance_after_fen {
                    field(
                        ui,
                        lang.t("电子现金余额（元）", "Balance now (CNY)"),
                        &yuan(b),
                    );
                }
            });
    });
    let printed = if app.state.receipt_file.is_some() {
        lang.t("凭条已打印，请取走", "Your receipt has been printed")
    } else {
        lang.t(
            "凭条打印失败，请截图或到窗口补打",
            "The receipt could not be printed; ask at a counter for a copy",
        )
    };
    ui.label(RichText::new(printed).size(22.0).color(Color32::GRAY));
    button_row(ui, 2, |ui| {
        if big_button(ui, lang.t("返回首页", "Menu")) {
            app.state.screen = Screen::Home;
        }
        if primary_button(ui, lang.t("结束", "Finish")) {
            app.request(Request::End);
        }
    });
}

fn notice(app: &mut KioskApp, ui: &mut Ui, text: &str) {
    ui.add_space(120.0);
    ui.label(RichText::new(text).size(BIG));
    ui.add_space(40.0);
    let back_to = if app.state.citizen.is_some() {
        Screen::Home
    } else {
        Screen::Attract
    };
    if primary_button(ui, app.state.lang.t("确定", "OK")) {
        app.state.screen = back_to;
    }
}

fn take_card(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.add_space(160.0);
    ui.label(
        RichText::new(lang.t("请取走您的卡片", "Please take your card"))
            .size(64.0)
            .strong(),
    );
    ui.add_space(24.0);
    ui.label(RichText::new(lang.t("感谢使用", "Thank you")).size(BODY));
}

/// Lay `add` out in a column of `width`, centred in the available width.
pub(crate) fn centered<R>(ui: &mut Ui, width: f32, add: impl FnOnce(&mut Ui) -> R) -> R {
    ui.horizontal(|ui| {
        ui.add_space(((ui.available_width() - width) / 2.0).max(0.0));
        ui.vertical(add).inner
    })
    .inner
}

fn service_pin(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("技术人员密码", "Technician PIN")).size(BIG));
    let locked = app
        .state
        .service_locked_until
        .is_some_and(|t| std::time::Instant::now() < t);
    if locked {
        ui.label(
            RichText::new(lang.t(
                "密码错误次数过多，维护模式已锁定 5 分钟",
                "Too many wrong PINs: service mode is locked for 5 minutes",
            ))
            .size(BODY)
            .color(Color32::from_rgb(180, 30, 30)),
        );
    } else {
        ui.label(
            RichText::new(masked(&app.state.digits))
                .size(56.0)
                .monospace(),
        );
        if let Some(m) = &app.state.pin_message {
            ui.label(
                RichText::new(m)
                    .size(BODY)
                    .color(Color32::from_rgb(180, 30, 30)),
            );
        }
        for key in keypad(ui, lang) {
            match key {
                Key::Digit(d) if app.state.digits.len() < Pin::MAX_LEN => {
                    app.state.digits.push(d);
                }
                Key::Digit(_) => {}
                Key::Clear => app.state.digits = Zeroizing::new(String::new()),
                Key::Ok => {
                    let ok = app
                        .technician
                        .as_ref()
                        .is_some_and(|p| p.matches(&app.state.digits));
                    app.state.digits = Zeroizing::new(String::new());
                    if ok {
                        app.state.service_failures = 0;
                        app.state.pin_message = None;
                        app.state.screen = Screen::Service;
                        app.request(Request::Service);
                    } else {
                        app.state.service_failures = app.state.service_failures.saturating_add(1);
                        if app.state.service_failures >= 3 {
                            app.state.service_failures = 0;
                            app.state.service_locked_until = Some(
                                std::time::Instant::now() + std::time::Duration::from_secs(300),
                            );
                        }
                        app.state.pin_message = Some(lang.t("密码错误", "Wrong PIN").into());
                    }
                    break;
                }
            }
        }
    }
    ui.add_space(12.0);
    if big_button(ui, lang.t("返回", "Back")) {
        app.state.digits = Zeroizing::new(String::new());
        app.state.pin_message = None;
        app.state.screen = Screen::Attract;
    }
}

fn service(app: &mut KioskApp, ui: &mut Ui) {
    let lang = app.state.lang;
    ui.label(RichText::new(lang.t("维护模式", "Service mode")).size(BIG));
    let Some(view) = app.state.service.clone() else {
        ui.label(RichText::new(lang.t("正在读取…", "Reading…")).size(BODY));
        return;
    };
    ui.with_layout(Layout::top_down(Align::Min), |ui| {
        ui.label(
            RichText::new(lang.t("读卡器", "Readers"))
                .size(BODY)
                .strong(),
        );
        for r in &view.readers {
            ui.label(RichText::new(r).size(20.0).monospace());
        }
        if let Some(checks) = &view.checks {
            ui.add_space(8.0);
            let fails = checks.iter().filter(|c| c.verdict == "fail").count();
            let warns = checks.iter().filter(|c| c.verdict == "warn").count();
            ui.label(
                RichText::new(match lang {
                    Lang::Zh => format!(
                        "卡片检测：{} 项，{fails} 项未通过，{warns} 项警告",
                        checks.len()
                    ),
                    Lang::En => format!(
                        "Card checks: {}, {fails} failed, {warns} warnings",
                        checks.len()
                    ),
                })
                .size(BODY)
                .strong(),
            );
            egui::ScrollArea::vertical()
                .id_salt("checks")
                .max_height(220.0)
                .show(ui, |ui| {
                    for c in checks {
                        let colour = match c.verdict.as_str() {
                            "fail" => Color32::from_rgb(180, 30, 30),
                            "warn" => Color32::from_rgb(200, 120, 0),
                            "pass" => Color32::from_rgb(20, 120, 50),
                            _ => Color32::GRAY,
                        };
                        ui.label(
                            RichText::new(format!(
                                "{:<4} {:<22} {}",
                                c.verdict.to_uppercase(),
                                c.id,
                                c.reason
                            ))
                            .size(16.0)
                            .monospace()
                            .color(colour),
                        );
                    }
                });
        }
        ui.add_space(8.0);
        ui.label(
            RichText::new(lang.t(
                "最近的卡片指令（只显示指令头、长度与状态字）",
                "Last card exchanges (headers, lengths and status words only)",
            ))
            .size(BODY)
            .strong(),
        );
        egui::ScrollArea::vertical()
            .id_salt("trace")
            .max_height((ui.available_height() - 120.0).max(80.0))
            .stick_to_bottom(true)
            .show(ui, |ui| {
                if view.trace.is_empty() {
                    ui.label(RichText::new(lang.t("暂无", "None yet")).size(18.0));
                }
                for line in &view.trace {
                    ui.label(RichText::new(line).size(16.0).monospace());
                }
            });
    });
    button_row(ui, 3, |ui| {
        if big_button(ui, lang.t("检测卡片", "Check the card")) {
            app.request(Request::ServiceChecks);
        }
        if big_button(ui, lang.t("刷新", "Refresh")) {
            app.request(Request::Service);
        }
        if big_button(ui, lang.t("退出维护", "Leave service mode")) {
            app.state.service = None;
            app.state.screen = Screen::Attract;
            // A card checked here has a session waiting for a PIN: end it.
            if app.state.reader == ReaderStatus::CardIn {
                app.request(Request::End);
            }
        }
    });
}
