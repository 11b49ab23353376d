//! A kiosk-family app (the citizen kiosk or the counter) under egui_kittest, as the UI tests
//! drive it: the real app, the real session worker on its own thread, the demo's in-process
//! reader with the demo world's personalised software cards, a real ledger file in a temporary
//! directory. Set `KIOSK_TRACE=1` to see the session's updates on standard error. Also used by
//! `benches/kiosk.rs`.

#![allow(dead_code)]

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use terminal_app::card_source::{DemoSlot, DemoSource};
use terminal_app::clock::LocalTime;
use terminal_app::demo::DemoWorld;
use terminal_app::kiosk::DemoPanel;
use terminal_app::session::{Request, Update, Worker};

/// The app, its reader and its world.
pub struct Rig<A: 'static> {
    pub harness: Harness<'static, A>,
    pub slot: DemoSlot,
    pub world: DemoWorld,
    /// What a failed wait prints of the app's state.
    describe: fn(&A) -> String,
    _dir: tempfile::TempDir,
}

impl<A: eframe::App + 'static> Rig<A> {
    /// Build the demo world, start the worker with the clock `now`, and the app from `make`
    /// (the egui context, the worker's channels and the demo panel) in a 1366×800 light window.
    pub fn start(
        now: fn() -> LocalTime,
        describe: fn(&A) -> String,
        make: impl FnOnce(&egui::Context, Sender<Request>, Receiver<Update>, DemoPanel) -> A + 'static,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let world = DemoWorld::build(dir.path()).unwrap();
        Self::start_on(world, dir, now, describe, make)
    }

    /// The same on a world built elsewhere (by `demo::backend::Backend::start`, say) whose
    /// files are in `dir`; receipts go to `dir/receipts`.
    pub fn start_on(
        world: DemoWorld,
        dir: tempfile::TempDir,
        now: fn() -> LocalTime,
        describe: fn(&A) -> String,
        make: impl FnOnce(&egui::Context, Sender<Request>, Receiver<Update>, DemoPanel) -> A + 'static,
    ) -> Self {
        let slot = DemoSlot::default();
        let (req_tx, req_rx) = mpsc::channel();
        let (up_tx, up_rx) = mpsc::channel::<Update>();
        let (log_tx, log_rx) = mpsc::channel::<Update>();
        std::thread::spawn(move || {
            while let Ok(u) = log_rx.recv() {
                if std::env::var_os("KIOSK_TRACE").is_some() {
                    eprintln!(
                        "update: {}",
                        match &u {
                            // Personal data: never printed.
                            Update::SignedIn(_) => "SignedIn".to_string(),
                            u => format!("{u:?}"),
                        }
                    );
                }
                if up_tx.send(u).is_err() {
                    break;
                }
            }
        });
        Worker::new(
            Box::new(DemoSource::new(slot.clone())),
            req_rx,
            log_tx,
            Box::new(|| {}),
            world.worker_config(Box::new(now), Some(dir.path().join("receipts"))),
        )
        .spawn()
        .unwrap();
        let panel = DemoPanel {
            slot: slot.clone(),
            cards: world.cards.clone(),
        };
        let harness = Harness::builder()
            .with_size(egui::vec2(1366.0, 800.0))
            .with_theme(egui::Theme::Light)
            .build_eframe(move |cc| make(&cc.egui_ctx, req_tx, up_rx, panel));
        Self {
            harness,
            slot,
            world,
            describe,
            _dir: dir,
        }
    }

    /// Step the UI until `label` is shown (the session answers from its own thread), at most
    /// 15 s.
    pub fn wait_for(&mut self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.harness.step();
            if self.shows(label) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{label:?} never appeared; {}",
                (self.describe)(self.harness.state())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a widget whose label contains `label` is shown.
    pub fn shows(&self, label: &str) -> bool {
        self.harness
            .query_all_by_label_contains(label)
            .next()
            .is_some()
    }

    /// Click the widget labelled `label`.
    pub fn click(&mut self, label: &str) {
        self.harness.get_by_label(label).click();
        self.harness.step();
        self.harness.step();
    }

    /// Click the widget whose label contains `part` (labels with amounts in them).
    pub fn click_containing(&mut self, part: &str) {
        self.harness.get_by_label_contains(part).click();
        self.harness.step();
        self.harness.step();
    }

    /// Click each digit of `digits` on the keypad.
    pub fn keys(&mut self, digits: &str) {
        for d in digits.chars() {
            self.click(&d.to_string());
        }
    }

    /// Insert the demo card `name` into the reader.
    pub fn insert(&mut self, name: &str) {
        let card = self.card(name);
        self.slot.insert(name, card);
    }

    /// The demo card `name`.
    pub fn card(&self, name: &str) -> firmware_tests::SharedCard {
        self.world
            .cards
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .card
            .clone()
    }

    /// The card's electronic cash balance, read straight from the card.
    pub fn balance(&self, name: &str) -> u64 {
        let card = self.card(name);
        let c = firmware_tests::vpcd::lock(&card);
        c.image()
            .pboc
            .as_ref()
            .and_then(|p| p.ec.as_ref())
            .map(|e| e.balance)
            .unwrap()
    }

    /// The kiosk's ledger.
    pub fn ledger(&self) -> backend_sync::ledger::Ledger {
        (self.world.ledger_opener())().unwrap()
    }

    /// With `SSCARD_SCREENSHOTS=DIR`, save the screen as DIR/NAME.png (docs/images).
    pub fn screenshot(&mut self, name: &str) {
        if let Some(dir) = std::env::var_os("SSCARD_SCREENSHOTS") {
            for _ in 0..3 {
                self.harness.step();
            }
            let image = self.harness.render().unwrap();
            image
                .save(std::path::Path::new(&dir).join(format!("{name}.png")))
                .unwrap();
        }
    }
}
