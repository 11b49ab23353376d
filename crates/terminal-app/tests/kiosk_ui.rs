//! The kiosk driven by label, as a citizen would, through egui_kittest (AccessKit): the real
//! app, the real session worker on its own thread, the demo's in-process reader with
//! personalised software cards, a real ledger file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};
use terminal_app::failpoint::is_generate_ac;

use common::ui::Rig;
use egui_kittest::kittest::Queryable;
use terminal_app::clock::LocalTime;
use terminal_app::kiosk::{KioskApp, KioskOptions, Lang, Screen};

type Kiosk = Rig<KioskApp>;

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

fn kiosk(lang: Lang, idle: Duration) -> Kiosk {
    kiosk_with(lang, idle, None)
}

fn kiosk_with(
    lang: Lang,
    idle: Duration,
    technician: Option<terminal_app::service_view::TechnicianPin>,
) -> Kiosk {
    Rig::start(
        now,
        |app: &KioskApp| format!("screen {:?}", app.state.screen),
        move |ctx, req_tx, up_rx, panel| {
            let app = KioskApp::new(
                ctx,
                req_tx,
                up_rx,
                Some(panel),
                KioskOptions {
                    lang,
                    idle_timeout: idle,
                },
            );
            match technician {
                Some(pin) => app.with_technician(pin),
                None => app,
            }
        },
    )
}

/// What only the citizen kiosk's tests do.
trait KioskSteps {
    fn type_pin(&mut self, pin: &str);
    fn sign_in_zhangsan(&mut self);
    fn pay_replacement_fee(&mut self);
}

impl KioskSteps for Kiosk {
    fn type_pin(&mut self, pin: &str) {
        self.keys(pin);
        self.click("确认");
    }

    fn sign_in_zhangsan(&mut self) {
        self.wait_for("读卡器就绪");
        self.insert("zhangsan");
        self.wait_for("请输入社保卡密码");
        self.type_pin("123456");
        self.wait_for("张*，您好");
    }

    fn pay_replacement_fee(&mut self) {
        self.click("缴费");
        self.click_containing("社会保障卡补换卡工本费");
        self.wait_for("请确认缴费");
        self.click("确认支付");
    }
}

#[test]
fn citizen_journey_wrong_pin_then_right_information_and_end() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("请插入社保卡");
    k.wait_for("读卡器就绪");
    // Insert through the demo panel, as a demo user would.
    k.click("张三（正常卡，PIN 123456）");
    k.wait_for("请输入社保卡密码");
    assert!(k.shows("还可尝试 3 次"));
    k.type_pin("000000");
    k.wait_for("密码错误，还可尝试 2 次");
    k.type_pin("123456");
    k.wait_for("张*，您好");

    k.click("个人信息");
    k.wait_for("社会保障号码");
    assert!(k.shows("110***********3011"));
    assert!(k.shows("A*******1"));
    assert!(!k.shows("110105198703153011"), "masked by default");
    k.click("显示完整信息");
    k.wait_for("110105198703153011");
    assert!(
        k.harness.query_by_label("张三").is_some(),
        "the name in full"
    );
    k.click("隐藏");
    k.wait_for("110***********3011");
    k.click("返回");

    k.click("参保信息");
    k.wait_for("正常参保");
    assert!(k.shows("156"));
    assert!(k.shows("3256.80"));
    assert!(k.shows("数据截至 2026-11-27 18:00"));
    k.click("返回");

    k.click("结束");
    k.wait_for("请取走您的卡片");
    assert!(
        k.harness.state().state.citizen.is_none(),
        "personal data dropped at the end"
    );
    k.click("取出卡片");
    k.wait_for("请插入社保卡");
}

#[test]
fn three_wrong_pins_block_the_card_and_the_kiosk_says_where_to_go() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("读卡器就绪");
    k.insert("lisi");
    k.wait_for("请输入社保卡密码");
    k.type_pin("000000");
    k.wait_for("密码错误，还可尝试 2 次");
    k.type_pin("000000");
    k.wait_for("密码错误，还可尝试 1 次");
    k.type_pin("000000");
    k.wait_for("密码已锁定，请到服务窗口解锁");
    assert!(k.harness.state().state.citizen.is_none());
    // The card itself is blocked: the right PIN no longer opens it, here or anywhere.
    let mut s = card_core::CardSession::new(firmware_tests::SoftCard::in_memory(
        firmware_tests::vpcd::lock(&k.card("lisi")).image().clone(),
    ));
    card_core::ssse::select(&mut s).unwrap();
    assert_eq!(card_core::ssse::pin_tries_left(&mut s).unwrap(), Some(0));
    // Taken out and inserted again: refused at once, before any PIN.
    k.slot.remove();
    k.wait_for("请插入社保卡");
    k.insert("lisi");
    k.wait_for("密码已锁定，请到服务窗口解锁");
    assert!(!k.shows("请输入社保卡密码"));
}

#[test]
fn rejected_cards_say_why() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("读卡器就绪");
    for (card, why) in [
        ("wangfang-t0", "此卡已挂失，请到服务窗口办理"),
        ("expired", "此卡已过有效期，请到服务窗口换卡"),
        ("blocked", "密码已锁定，请到服务窗口解锁"),
    ] {
        k.insert(card);
        k.wait_for(why);
        assert!(k.shows("请取出卡片"));
        k.slot.remove();
        k.wait_for("请插入社保卡");
    }
}

#[test]
fn a_damaged_card_and_a_card_without_the_application_are_unreadable() {
    use firmware_tests::fs::{EfBody, NodeKind};
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("读卡器就绪");
    let image = || {
        firmware_tests::Profile::embedded("zhangsan")
            .unwrap()
            .build()
            .unwrap()
    };
    // Damaged: every record of EF05 announces more bytes than it has.
    let mut damaged = image();
    let ssse = damaged.fs.dfs_by_name(&card_core::ssse::AID)[0];
    let ef05 = damaged
        .fs
        .child_by_sfi(ssse, card_core::ssse::SFI_EF05)
        .unwrap();
    let Some(NodeKind::Ef {
        body: EfBody::Linear { records, .. },
        ..
    }) = damaged.fs.node_mut(ef05).map(|n| &mut n.kind)
    else {
        panic!("EF05 is a linear file");
    };
    for r in records.iter_mut() {
        r.truncate(3);
        r[1] = 0x40;
    }
    // Another card altogether: no social-security application to select.
    let mut foreign = image();
    let ssse = foreign.fs.dfs_by_name(&card_core::ssse::AID)[0];
    if let Some(NodeKind::Df { aid, .. }) = foreign.fs.node_mut(ssse).map(|n| &mut n.kind) {
        *aid = None;
    }
    for (name, image) in [("damaged", damaged), ("foreign", foreign)] {
        let card = std::sync::Arc::new(std::sync::Mutex::new(firmware_tests::SoftCard::in_memory(
            image,
        )));
        k.slot.insert(name, card);
        k.wait_for("卡片无法读取，请确认是社保卡并正确插入");
        assert!(k.shows("请取出卡片"), "{name}");
        assert!(k.harness.state().state.citizen.is_none());
        k.slot.remove();
        k.wait_for("请插入社保卡");
    }
}

#[test]
fn a_card_that_is_not_genuine_is_rejected() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("读卡器就绪");
    // 李思's card with another private key: the certificates are right, the key is not.
    let card = k
        .world
        .cards
        .iter()
        .find(|c| c.name == "lisi")
        .unwrap()
        .card
        .clone();
    {
        let mut c = firmware_tests::vpcd::lock(&card);
        let mut image = c.image().clone();
        image.keys.set_sm2_private(
            &card_core::crypto::sm2::Sm2PrivateKey::generate_os()
                .unwrap()
                .expose_bytes()[..],
        );
        *c = firmware_tests::SoftCard::in_memory(image);
    }
    k.slot.insert("lisi", card);
    k.wait_for("卡片未通过真伪验证");
}

#[test]
fn removing_the_card_clears_everything() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.wait_for("读卡器就绪");
    k.insert("lisi");
    k.wait_for("请输入社保卡密码");
    k.type_pin("654321");
    k.wait_for("李*，您好");
    k.click("个人信息");
    k.click("显示完整信息");
    k.wait_for("310115199207082642");
    k.slot.remove();
    k.wait_for("请插入社保卡");
    assert!(!k.shows("310115199207082642"));
    let s = &k.harness.state().state;
    assert!(s.citizen.is_none() && !s.reveal && s.digits.is_empty());
    assert_eq!(s.screen, Screen::Attract);
}

#[test]
fn idle_timeout_returns_to_attract_and_clears() {
    let mut k = kiosk(Lang::Zh, Duration::from_millis(1500));
    k.wait_for("读卡器就绪");
    k.insert("zhangsan");
    k.wait_for("请输入社保卡密码");
    k.type_pin("123456");
    k.wait_for("张*，您好");
    assert!(k.harness.state().state.citizen.is_some());
    // Nobody touches the screen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while k.harness.state().state.screen != Screen::Attract {
        assert!(Instant::now() < deadline, "no timeout");
        std::thread::sleep(Duration::from_millis(100));
        k.harness.step();
    }
    assert!(k.harness.state().state.citizen.is_none());
    assert!(k.shows("请插入社保卡"));
}

#[test]
fn pin_change_and_english() {
    let mut k = kiosk(Lang::En, Duration::from_secs(600));
    k.wait_for("Please insert your social security card");
    k.click("中文");
    k.wait_for("请插入社保卡");
    k.click("English");
    k.wait_for("Reader ready");
    k.insert("zhangsan");
    k.wait_for("Please enter your card PIN");
    for d in "123456".chars() {
        k.click(&d.to_string());
    }
    k.click("OK");
    k.wait_for("Hello, 张*");
    k.click("Change PIN");
    k.wait_for("Enter your current PIN");
    for d in "123456".chars() {
        k.click(&d.to_string());
    }
    k.click("OK");
    k.wait_for("Enter the new PIN");
    for d in "246810".chars() {
        k.click(&d.to_string());
    }
    k.click("OK");
    k.wait_for("Enter the new PIN again");
    for d in "246811".chars() {
        k.click(&d.to_string());
    }
    k.click("OK");
    k.wait_for("The two new PINs differ");
    for pin in ["246810", "246810"] {
        for d in pin.chars() {
            k.click(&d.to_string());
        }
        k.click("OK");
    }
    k.wait_for("PIN changed");
    // The card now has the new PIN.
    let card = k
        .world
        .cards
        .iter()
        .find(|c| c.name == "zhangsan")
        .unwrap()
        .card
        .clone();
    let mut s = card_core::CardSession::new(firmware_tests::SoftCard::in_memory(
        firmware_tests::vpcd::lock(&card).image().clone(),
    ));
    card_core::ssse::select(&mut s).unwrap();
    card_core::ssse::verify_pin(&mut s, &card_core::secret::Pin::new("246810").unwrap()).unwrap();
}

/// The citizen pulls the card as CHANGE PIN goes out (`after_card`: after the card ran it).
/// The kiosk cannot tell which PIN the card holds, so it says so on the attract screen; the
/// card holds the new PIN exactly when it got the command, and the next insert signs in with
/// the PIN the notice says to try.
fn pulled_during_pin_change(after_card: bool) {
    fn is_change_pin(command: &[u8]) -> bool {
        matches!(command, [0x80, 0x5e, ..])
    }
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.sign_in_zhangsan();
    k.click("修改密码");
    k.wait_for("请输入原密码");
    k.type_pin("123456");
    k.wait_for("请输入新密码");
    k.type_pin("246810");
    k.wait_for("请再次输入新密码");
    k.slot.pull_on(is_change_pin, after_card);
    k.type_pin("246810");
    k.wait_for("请插入社保卡");
    let holds_new = {
        let card = k.card("zhangsan");
        let image = firmware_tests::vpcd::lock(&card).image().clone();
        image
            .pin
            .matches(&card_core::secret::Pin::new("246810").unwrap().to_bcd())
    };
    assert_eq!(holds_new, after_card);
    assert!(
        k.shows("新密码可能已生效"),
        "the notice stays on the attract screen"
    );
    assert!(k.harness.state().state.citizen.is_none());
    // Next insert: the new PIN first, then the old one, as the notice says.
    k.insert("zhangsan");
    k.wait_for("请输入社保卡密码");
    assert!(!k.shows("新密码可能已生效"), "cleared by the next card");
    k.type_pin("246810");
    if !after_card {
        k.wait_for("密码错误");
        k.type_pin("123456");
    }
    k.wait_for("您好");
}

#[test]
fn card_pulled_after_change_pin_ran_leaves_the_new_pin_and_a_notice() {
    pulled_during_pin_change(true);
}

#[test]
fn card_pulled_as_change_pin_went_out_leaves_the_old_pin_and_a_notice() {
    pulled_during_pin_change(false);
}

/// Render a screen and compare with the committed snapshot (tests/snapshots/NAME.png). egui draws
/// a placeholder box for a glyph the fonts lack, which would differ from the reviewed picture;
/// the font's coverage itself is the unit test in `src/kiosk/fonts.rs`.
fn snap(k: &mut Kiosk, name: &str) {
    for _ in 0..3 {
        k.harness.step();
    }
    k.harness.snapshot(name);
}

#[test]
fn snapshots_of_the_main_screens_in_chinese() {
    snapshots(Lang::Zh);
}

#[test]
fn snapshots_of_the_main_screens_in_english() {
    snapshots(Lang::En);
}

fn snapshots(lang: Lang) {
    {
        let tag = match lang {
            Lang::Zh => "zh",
            Lang::En => "en",
        };
        let mut k = kiosk(lang, Duration::from_secs(600));
        let ok = match lang {
            Lang::Zh => "确认",
            Lang::En => "OK",
        };
        k.wait_for(match lang {
            Lang::Zh => "读卡器就绪",
            Lang::En => "Reader ready",
        });
        snap(&mut k, &format!("attract_{tag}"));
        k.insert("zhangsan");
        k.wait_for(match lang {
            Lang::Zh => "请输入社保卡密码",
            Lang::En => "Please enter your card PIN",
        });
        for d in "12".chars() {
            k.click(&d.to_string());
        }
        snap(&mut k, &format!("pin_{tag}"));
        for d in "3456".chars() {
            k.click(&d.to_string());
        }
        k.click(ok);
        k.wait_for(match lang {
            Lang::Zh => "张*，您好",
            Lang::En => "Hello, 张*",
        });
        snap(&mut k, &format!("home_{tag}"));
        k.click(match lang {
            Lang::Zh => "个人信息",
            Lang::En => "Personal information",
        });
        k.wait_for("110***********3011");
        snap(&mut k, &format!("personal_masked_{tag}"));
        k.click(match lang {
            Lang::Zh => "返回",
            Lang::En => "Back",
        });
        k.click(match lang {
            Lang::Zh => "参保信息",
            Lang::En => "Insurance",
        });
        k.wait_for("2026-11-27 18:00");
        snap(&mut k, &format!("insurance_{tag}"));
        k.click(match lang {
            Lang::Zh => "返回",
            Lang::En => "Back",
        });
        k.click(match lang {
            Lang::Zh => "电子现金",
            Lang::En => "Electronic cash",
        });
        k.wait_for("500.00");
        snap(&mut k, &format!("account_{tag}"));
        k.click(match lang {
            Lang::Zh => "缴费",
            Lang::En => "Pay a fee",
        });
        k.wait_for("20.00");
        snap(&mut k, &format!("pay_items_{tag}"));
        k.click_containing(match lang {
            Lang::Zh => "社会保障卡补换卡工本费",
            Lang::En => "Card replacement fee",
        });
        k.wait_for(match lang {
            Lang::Zh => "请确认缴费",
            Lang::En => "Please confirm",
        });
        snap(&mut k, &format!("pay_confirm_{tag}"));
        k.click(match lang {
            Lang::Zh => "确认支付",
            Lang::En => "Pay",
        });
        k.wait_for(match lang {
            Lang::Zh => "请输入卡片密码以完成支付",
            Lang::En => "Enter the card PIN to pay",
        });
        for d in "123456".chars() {
            k.click(&d.to_string());
        }
        k.click(ok);
        k.wait_for(match lang {
            Lang::Zh => "缴费成功",
            Lang::En => "Payment complete",
        });
        snap(&mut k, &format!("receipt_{tag}"));
        k.slot.remove();
        k.wait_for(match lang {
            Lang::Zh => "请插入社保卡",
            Lang::En => "Please insert",
        });
        k.insert("wangfang-t0");
        k.wait_for(match lang {
            Lang::Zh => "此卡已挂失",
            Lang::En => "This card has been reported lost",
        });
        snap(&mut k, &format!("rejected_hotlisted_{tag}"));
    }
}

#[test]
fn pay_a_fee_from_electronic_cash_with_receipt_and_exactly_the_ledger_entries() {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.sign_in_zhangsan();
    k.click("电子现金");
    k.wait_for("余额（元）");
    assert!(k.shows("500.00"), "balance before");
    assert!(k.shows("暂无交易记录"));
    k.click("返回");

    // A fixed fee: the card asks for its PIN (its CVM list), then the receipt.
    k.pay_replacement_fee();
    k.wait_for("请输入卡片密码以完成支付");
    k.type_pin("123456");
    k.wait_for("缴费成功");
    assert!(k.shows("20.00"));
    assert!(k.shows("00000001"), "transaction number");
    assert!(
        k.shows("623058*********0013") || k.shows("623058"),
        "masked PAN"
    );
    assert!(k.shows("480.00"), "balance after");
    assert!(k.shows("凭条已打印"));
    let file = k.harness.state().state.receipt_file.clone().unwrap();
    let pdf = std::fs::read(&file).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "the receipt file is a PDF");
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils, scripts/gui-env.sh install)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("20.00"), "amount on the receipt: {text}");
    assert!(text.contains("补换卡"), "item on the receipt: {text}");
    assert!(text.contains("0013"), "masked PAN on the receipt: {text}");
    assert!(
        !text.contains("6230580000000000013"),
        "no full PAN on the receipt"
    );
    assert_eq!(k.balance("zhangsan"), 48_000);

    // An amount the citizen types.
    k.click("返回首页");
    k.click("缴费");
    k.click_containing("其他缴费");
    k.wait_for("请输入金额（元）");
    for d in "15".chars() {
        k.click(&d.to_string());
    }
    k.click("确认");
    k.wait_for("请确认缴费");
    assert!(k.shows("15.00"));
    k.click("确认支付");
    k.wait_for("请输入卡片密码以完成支付");
    k.type_pin("123456");
    k.wait_for("缴费成功");
    assert_eq!(k.balance("zhangsan"), 46_500);

    // More than the card holds: refused before the card is asked to pay.
    k.click("返回首页");
    k.click("缴费");
    k.click_containing("其他缴费");
    for d in "900".chars() {
        k.click(&d.to_string());
    }
    k.click("确认");
    k.click("确认支付");
    k.wait_for("电子现金余额不足");
    assert_eq!(k.balance("zhangsan"), 46_500);

    // The card's log and the ledger say the same.
    k.click("确定");
    k.click("电子现金");
    k.wait_for("465.00");
    assert!(k.shows("消费"));
    let entries = k.ledger().entries().unwrap();
    assert_eq!(entries.len(), 2, "exactly the two payments: {entries:?}");
    for (e, fen) in entries.iter().zip([2_000u64, 1_500]) {
        assert_eq!(e.amount_fen, fen);
        assert_eq!(e.state, backend_sync::entry::EntryState::ApprovedOffline);
        let card = e.card.as_ref().unwrap();
        assert_eq!(
            card.cryptogram_type(),
            backend_sync::entry::CryptogramType::Tc
        );
        assert!(!e.pan_masked.contains("6230580000000000013"));
    }
    // The status bar: no sync agent has ever answered, so offline, with both payments
    // waiting to go up (the worker reads the ledger every 2 s).
    k.wait_for("待上传 2 笔");
    assert!(k.shows("离线"));
    assert!(!k.shows("联网"));
}

/// The citizen pulls the card at the GENERATE AC: `after_card` the card has debited and its
/// answer is lost, otherwise the command never reached it. The kiosk says the payment is in
/// doubt; at the next insert it settles it from the card's log: once, and rightly.
fn pulled_during_payment(after_card: bool) {
    let mut k = kiosk(Lang::Zh, Duration::from_secs(600));
    k.sign_in_zhangsan();
    k.pay_replacement_fee();
    k.wait_for("请输入卡片密码以完成支付");
    k.slot.pull_on(is_generate_ac, after_card);
    k.type_pin("123456");
    k.wait_for("支付过程中卡片被拔出");
    assert!(
        k.shows("请插入社保卡"),
        "back to attract, the warning shown"
    );
    assert!(k.harness.state().state.citizen.is_none());
    let entries = k.ledger().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].state, backend_sync::entry::EntryState::Unknown);
    let debited = k.balance("zhangsan") == 48_000;
    assert_eq!(
        debited, after_card,
        "the card debited only if it got the command"
    );

    k.insert("zhangsan");
    let settled = if after_card {
        "已从卡内扣款，缴费成功"
    } else {
        "未扣款，可重新缴费"
    };
    k.wait_for(settled);
    assert!(k.shows("请输入社保卡密码"));
    let entries = k.ledger().entries().unwrap();
    assert_eq!(entries.len(), 1, "settled, not booked again");
    assert_eq!(
        entries[0].state,
        if after_card {
            backend_sync::entry::EntryState::Recovered
        } else {
            backend_sync::entry::EntryState::Voided
        }
    );
    // A second insert finds nothing left to settle.
    k.slot.remove();
    k.wait_for("请插入社保卡");
    k.insert("zhangsan");
    k.wait_for("请输入社保卡密码");
    assert!(!k.shows(settled));
}

#[test]
fn card_pulled_after_the_debit_is_recovered_at_the_next_insert() {
    pulled_during_payment(true);
}

#[test]
fn card_pulled_before_the_debit_is_voided_at_the_next_insert() {
    pulled_during_payment(false);
}

#[test]
fn service_mode_behind_the_technician_pin_shows_readers_and_exchanges_without_data() {
    let pin = terminal_app::service_view::TechnicianPin::from_pin("2468");
    let mut k = kiosk_with(Lang::Zh, Duration::from_secs(600), Some(pin));
    k.sign_in_zhangsan();
    k.click("结束");
    k.wait_for("请取走您的卡片");
    assert!(
        !k.shows("维护"),
        "no service button during a citizen's session"
    );
    k.click("取出卡片");
    k.wait_for("请插入社保卡");

    // A wrong technician PIN, then the right one.
    k.click("维护");
    k.wait_for("技术人员密码");
    k.type_pin("1111");
    k.wait_for("密码错误");
    k.type_pin("2468");
    k.wait_for("维护模式");
    k.wait_for("demo in-process reader: empty");
    // The citizen's exchanges: the VERIFY and the identity reads, headers only.
    assert!(k.shows("00 20 00 00"), "the VERIFY header");
    assert!(k.shows("00 B2"), "READ RECORD headers");
    assert!(k.shows("9000"));
    // (The demo panel beside it names the demo PINs; the service view itself must not.)
    let view = k.harness.state().state.service.clone().unwrap();
    assert!(view.trace.len() > 10, "{view:?}");
    for line in view.readers.iter().chain(&view.trace) {
        for secret in ["123456", "313233343536", "D5C5C8FD", "110105198703153011"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
    for secret in ["313233343536", "D5C5C8FD", "110105198703153011"] {
        assert!(
            k.harness
                .query_all_by_label_contains(secret)
                .next()
                .is_none(),
            "{secret} on the service screen"
        );
    }
    k.click("退出维护");
    k.wait_for("请插入社保卡");
    assert!(k.harness.state().state.service.is_none());

    // A card checked in service mode: the conformance suite, read-only, no citizen screens.
    k.click("维护");
    k.type_pin("2468");
    k.wait_for("维护模式");
    let atc_before = {
        let c = k.card("zhangsan");
        let c = firmware_tests::vpcd::lock(&c);
        c.image().pboc.as_ref().map(|p| p.atc)
    };
    k.insert("zhangsan");
    k.wait_for("已插卡");
    k.click("检测卡片");
    k.wait_for("卡片检测：");
    assert_eq!(
        k.harness.state().state.screen,
        Screen::Service,
        "no PIN screen"
    );
    let checks = k
        .harness
        .state()
        .state
        .service
        .clone()
        .unwrap()
        .checks
        .unwrap();
    assert!(checks.len() > 15, "{checks:?}");
    assert!(
        checks.iter().all(|c| c.verdict != "fail"),
        "a good card passes: {checks:?}"
    );
    assert!(checks.iter().any(|c| c.id.starts_with("iso.")));
    assert!(checks.iter().any(|c| c.id.starts_with("pboc.")));
    let atc_after = {
        let c = k.card("zhangsan");
        let c = firmware_tests::vpcd::lock(&c);
        c.image().pboc.as_ref().map(|p| p.atc)
    };
    assert_eq!(atc_before, atc_after, "the checks count no transaction");
    k.click("退出维护");
    k.wait_for("请取走您的卡片");
    k.slot.remove();
    k.wait_for("请插入社保卡");

    // An expired card fails its dates check.
    k.click("维护");
    k.type_pin("2468");
    k.wait_for("维护模式");
    k.insert("expired");
    k.wait_for("已插卡");
    k.click("检测卡片");
    k.wait_for("卡片检测：");
    let checks = k
        .harness
        .state()
        .state
        .service
        .clone()
        .unwrap()
        .checks
        .unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c.verdict == "fail" && c.id.contains("date")),
        "{checks:?}"
    );
}

#[test]
fn three_wrong_technician_pins_lock_the_service_mode() {
    let pin = terminal_app::service_view::TechnicianPin::from_pin("2468");
    let mut k = kiosk_with(Lang::Zh, Duration::from_secs(600), Some(pin));
    k.wait_for("读卡器就绪");
    k.click("维护");
    for _ in 0..3 {
        k.type_pin("0000");
    }
    k.wait_for("维护模式已锁定 5 分钟");
    assert!(
        k.harness.query_by_label("确认").is_none(),
        "no keypad while locked"
    );
    k.click("返回");
    k.click("维护");
    k.wait_for("维护模式已锁定");
    assert_ne!(k.harness.state().state.screen, Screen::Service);
}
