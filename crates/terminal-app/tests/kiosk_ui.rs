//! The kiosk driven by label, as a citizen would, through egui_kittest (AccessKit): the real
//! app, the real session worker on its own thread, the demo's in-process reader with
//! personalised software cards, a real ledger file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use terminal_app::card_source::{DemoSlot, DemoSource};
use terminal_app::demo::DemoWorld;
use terminal_app::kiosk::{DemoPanel, KioskApp, KioskOptions, Lang, Screen};
use terminal_app::session::{Worker, WorkerConfig};

struct Kiosk {
    harness: Harness<'static, KioskApp>,
    slot: DemoSlot,
    world: DemoWorld,
    _dir: tempfile::TempDir,
}

fn today() -> card_core::ssse::Date {
    card_core::ssse::Date::new(2026, 11, 28).unwrap()
}

fn kiosk(lang: Lang, idle: Duration) -> Kiosk {
    let dir = tempfile::tempdir().unwrap();
    let world = DemoWorld::build(dir.path()).unwrap();
    let slot = DemoSlot::default();
    let (req_tx, req_rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel::<terminal_app::session::Update>();
    let (log_tx, log_rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(u) = log_rx.recv() {
            if std::env::var_os("KIOSK_TRACE").is_some() {
                eprintln!(
                    "update: {}",
                    match &u {
                        terminal_app::session::Update::SignedIn(_) => "SignedIn".to_string(),
                        u => format!("{u:?}"),
                    }
                );
            }
            if up_tx.send(u).is_err() {
                break;
            }
        }
    });
    let up_tx = log_tx;
    let worker = Worker::new(
        Box::new(DemoSource::new(slot.clone())),
        req_rx,
        up_tx,
        Box::new(|| {}),
        WorkerConfig {
            trust: world.trust.clone(),
            ledger: Some(world.ledger_path.clone()),
            open_ledger: Some(world.ledger_opener()),
            today: Box::new(today),
        },
    );
    worker.spawn().unwrap();
    let panel = DemoPanel {
        slot: slot.clone(),
        cards: world.cards.clone(),
    };
    let harness = Harness::builder()
        .with_size(egui::vec2(1366.0, 800.0))
        .with_theme(egui::Theme::Light)
        .build_eframe(move |cc| {
            KioskApp::new(
                &cc.egui_ctx,
                req_tx,
                up_rx,
                Some(panel),
                KioskOptions {
                    lang,
                    idle_timeout: idle,
                },
            )
        });
    Kiosk {
        harness,
        slot,
        world,
        _dir: dir,
    }
}

impl Kiosk {
    /// Step the UI until `label` is shown (the session answers from its own thread).
    fn wait_for(&mut self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.harness.step();
            if self.harness.query_by_label_contains(label).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{label:?} never appeared; screen {:?}",
                self.harness.state().state.screen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn click(&mut self, label: &str) {
        self.harness.get_by_label(label).click();
        self.harness.step();
        self.harness.step();
    }

    fn type_pin(&mut self, pin: &str) {
        for d in pin.chars() {
            self.click(&d.to_string());
        }
        self.click("确认");
    }

    fn insert(&mut self, name: &str) {
        let card = self
            .world
            .cards
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .card
            .clone();
        self.slot.insert(name, card);
    }

    fn shows(&self, label: &str) -> bool {
        self.harness.query_by_label_contains(label).is_some()
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

/// Render a screen and compare with the committed snapshot (tests/snapshots/NAME.png). A glyph
/// missing from the fonts fails the render, so these also guard against tofu in Chinese.
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
