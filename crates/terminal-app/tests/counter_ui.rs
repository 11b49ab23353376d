//! Counter mode driven by label through egui_kittest, as a pharmacy clerk and the cardholder
//! would: the real `CounterApp`, the real session worker on its own thread, the demo's
//! in-process reader with personalised software cards, a real ledger file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use backend_sync::entry::EntryState;
use common::ui::Rig;
use egui_kittest::kittest::Queryable;
use terminal_app::clock::LocalTime;
use terminal_app::counter_mode::{CounterApp, Step};
use terminal_app::kiosk::Lang;

type Counter = Rig<CounterApp>;

fn now() -> LocalTime {
    LocalTime {
        year: 2026,
        month: 11,
        day: 28,
        hour: 14,
        minute: 5,
        second: 0,
    }
}

fn counter(lang: Lang) -> Counter {
    Rig::start(
        now,
        |app: &CounterApp| format!("state {:?}", app.state),
        move |ctx, req_tx, up_rx, panel| CounterApp::new(ctx, req_tx, up_rx, Some(panel), lang),
    )
}

#[test]
fn clerk_checks_the_card_the_holder_enters_the_pin_and_pays_and_the_shift_adds_up() {
    let mut k = counter(Lang::Zh);
    k.wait_for("读卡器就绪");
    k.wait_for("今日暂无交易");
    k.click("张三（正常卡，PIN 123456）");

    // The verdict at a glance, masked.
    k.wait_for("有效卡");
    assert!(k.shows("张*"));
    assert!(k.shows("110***********3011"));
    assert!(!k.shows("110105198703153011"), "masked");
    assert!(k.shows("2034-01-14"), "valid until");
    assert_eq!(
        k.harness.query_all_by_label_contains("√ 通过").count(),
        3,
        "genuine, in date, not lost"
    );
    let v = k.harness.state().state.verdict.clone().unwrap();
    assert!(v.valid());
    assert_eq!(v.tries_left, Some(3));

    // The cardholder types a wrong PIN, then the right one.
    k.wait_for("请持卡人输入密码");
    k.keys("000000");
    k.click("确认");
    k.wait_for("密码错误，还可尝试 2 次");
    assert_eq!(
        k.harness.state().state.verdict.as_ref().unwrap().tries_left,
        Some(2),
        "the verdict follows the card's counter"
    );
    k.keys("123456");
    k.click("确认");
    k.wait_for("请输入收费金额（元）");

    // 15.50 typed as on a till; the card asks for its own PIN, then pays.
    k.keys("1550");
    k.wait_for("¥ 15.50");
    k.click("电子现金扣款");
    k.wait_for("请持卡人输入卡片密码以完成支付");
    k.keys("123456");
    k.click("确认");
    k.wait_for("扣款成功");
    assert!(k.shows("¥15.50"));
    assert!(k.shows("00000001"), "transaction number");
    assert!(k.shows("凭条已打印"));
    assert_eq!(k.balance("zhangsan"), 50_000 - 1_550);

    // Today's list and the shift's totals are the ledger's.
    k.wait_for("1 / ¥15.50");
    k.screenshot("counter-paid");
    let l = k.ledger();
    let shift = l.current_batch().unwrap();
    let (totals, seqs) = l.batch_totals(shift).unwrap();
    assert_eq!((totals.debit_count, totals.debit_amount), (1, 1_550));
    assert_eq!(seqs, vec![1]);
    let entries = l.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].state, EntryState::ApprovedOffline);
    let book = k.harness.state().state.day_book.clone().unwrap();
    assert_eq!(book.lines.len(), 1);
    assert_eq!(book.lines[0].time, "14:05:00");
    assert_eq!(book.approved, (1, 1_550));
    assert!(k.shows("成功"));

    // The next customer; then the shift is closed and a new one starts at zero.
    k.click("下一位");
    k.wait_for("请插入社保卡");
    assert!(
        k.harness.state().state.verdict.is_none(),
        "the card's data dropped"
    );
    k.click("交班结算");
    k.wait_for(&format!("本班次（第 {} 批）", shift + 1));
    k.wait_for("0 / ¥0.00");
    assert_eq!(k.ledger().current_batch().unwrap(), shift + 1);
    assert!(
        k.shows("14:05:00"),
        "today's list keeps the closed shift's sale"
    );
}

#[test]
fn a_lost_an_expired_and_a_blocked_card_are_refused_with_the_failed_check() {
    let mut k = counter(Lang::Zh);
    k.wait_for("读卡器就绪");
    for (card, why, failed) in [
        (
            "wangfang-t0",
            "此卡已挂失，请勿受理",
            Some("not_hot_listed"),
        ),
        ("expired", "此卡已于", Some("in_date")),
        ("blocked", "密码已锁定", None),
    ] {
        k.insert(card);
        k.wait_for(why);
        assert!(k.shows("无效卡"), "{card}: the headline");
        let v = k.harness.state().state.verdict.clone().unwrap();
        assert!(!v.valid());
        match failed {
            Some("not_hot_listed") => {
                assert_eq!(v.not_hot_listed, Some(false));
                assert_eq!(v.genuine, Some(true));
            }
            Some("in_date") => {
                assert_eq!(v.in_date, Some(false));
                assert_eq!(v.not_hot_listed, None, "not reached");
            }
            _ => assert_eq!(v.tries_left, Some(0)),
        }
        assert!(k.shows("× 未通过") || v.tries_left == Some(0));
        assert!(
            !matches!(k.harness.state().state.step, Step::Pin | Step::Amount),
            "{card}: no PIN, no payment"
        );
        k.slot.remove();
        k.wait_for("请插入社保卡");
    }
    assert_eq!(k.ledger().entries().unwrap().len(), 0, "nothing booked");
}

#[test]
fn counter_in_english_refuses_an_amount_over_the_limit_and_over_the_balance() {
    let mut k = counter(Lang::En);
    k.wait_for("Reader ready");
    k.insert("lisi");
    k.wait_for("VALID CARD");
    k.keys("654321");
    k.click("OK");
    k.wait_for("Enter the amount (CNY)");
    k.keys("100001");
    k.click("Electronic cash");
    k.wait_for("At most CNY 1000.00 at a time");
    k.click("Clear");
    k.keys("90000");
    k.click("Electronic cash");
    k.wait_for("Not enough electronic cash");
    assert_eq!(
        k.ledger().entries().unwrap().len(),
        0,
        "refused before the card"
    );
    k.screenshot("counter-en-refused");
}

#[test]
fn a_medical_account_debit_is_signed_by_the_card_and_recorded_once_without_touching_the_purse() {
    let mut k = counter(Lang::Zh);
    k.wait_for("读卡器就绪");
    k.insert("zhangsan");
    k.wait_for("有效卡");
    k.keys("123456");
    k.click("确认");
    k.wait_for("医保个人账户可用 ¥3256.80（截至 2026-11-27 18:00）");

    // More than the account has left: refused before the card is asked.
    k.keys("400000");
    k.click("医保个人账户");
    k.wait_for("超过医保个人账户可用余额");
    assert_eq!(k.ledger().entries().unwrap().len(), 0);

    k.click("清除");
    k.keys("5000");
    k.click("医保个人账户");
    k.wait_for("医保记账成功");
    assert!(k.shows("¥50.00"));
    assert!(k.shows("¥3206.80"), "left after");
    assert_eq!(
        k.balance("zhangsan"),
        50_000,
        "the card's purse is not touched"
    );

    let l = k.ledger();
    let entries = l.entries().unwrap();
    assert_eq!(entries.len(), 1, "recorded once");
    assert_eq!(entries[0].kind.as_str(), "medical_debit");
    assert_eq!(entries[0].state.as_str(), "recorded");
    assert_eq!(entries[0].amount_fen, 5_000);
    let (medical, _) = l.batch_medical(l.current_batch().unwrap()).unwrap();
    assert_eq!((medical.count, medical.amount), (1, 5_000));
    let (card_money, _) = l.batch_totals(l.current_batch().unwrap()).unwrap();
    assert_eq!(
        card_money.debit_count, 0,
        "counted apart from the card's money"
    );
    k.wait_for("1 / ¥50.00");
    assert!(k.shows("医保记账"));
    k.screenshot("counter-medical");
}

/// The counter against a real central-server, hsm-sim and sync-agent (`demo::backend`, as
/// `counter --with-backend` runs them, the cards personalised through that HSM): two sales,
/// the shift closed, and the sync agent's batch close answered by the server. The counter then
/// shows the closed shift with the server's reconciliation, and the server booked exactly what
/// the screen and the ledger counted.
#[test]
fn a_closed_shift_is_reconciled_by_the_server_and_the_counter_shows_it() {
    use terminal_app::demo::backend::{Backend, BackendConfig};
    let dir = tempfile::tempdir().unwrap();
    let (backend, world) = Backend::start(&BackendConfig {
        state_dir: dir.path().to_path_buf(),
        bin_dir: common::kiosk_bin::backend_bins(),
    })
    .unwrap();
    // The real clock: the server checks each transaction's time.
    let mut k = Counter::start_on(
        world,
        dir,
        || LocalTime::now_cst().unwrap(),
        |app: &CounterApp| format!("state {:?}", app.state),
        |ctx, req_tx, up_rx, panel| CounterApp::new(ctx, req_tx, up_rx, Some(panel), Lang::Zh),
    );
    k.wait_for("读卡器就绪");
    let shift = k.ledger().current_batch().unwrap();
    for (amount, shown) in [("1550", "¥ 15.50"), ("400", "¥ 4.00")] {
        k.click("张三（正常卡，PIN 123456）");
        k.wait_for("请持卡人输入密码");
        k.keys("123456");
        k.click("确认");
        k.wait_for("请输入收费金额（元）");
        k.keys(amount);
        k.wait_for(shown);
        k.click("电子现金扣款");
        k.wait_for("请持卡人输入卡片密码以完成支付");
        k.keys("123456");
        k.click("确认");
        k.wait_for("扣款成功");
        k.click("下一位");
        k.wait_for("请插入社保卡");
        // The customer takes the card back.
        k.slot.remove();
    }
    k.wait_for("2 / ¥19.50");
    k.click("交班结算");
    k.wait_for(&format!("上一班次（第 {shift} 批）：2 / ¥19.50，"));
    // The sync agent (every 2 s) uploads the entries and closes the batch; the clerk refreshes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let balanced = format!("上一班次（第 {shift} 批）：2 / ¥19.50，服务器对账：平衡");
    while !k.shows(&balanced) {
        assert!(
            std::time::Instant::now() < deadline,
            "not reconciled: {:?}",
            k.ledger().batch(shift).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
        k.click("刷新");
        k.harness.step();
    }
    // The status bar (the kiosk's too): the agent has synced, nothing is waiting.
    k.wait_for("联网");
    k.wait_for("待上传 0 笔");
    assert!(!k.shows("离线"));
    let info = k.ledger().batch(shift).unwrap().unwrap();
    assert_eq!(info.state, "balanced");
    let result = info.result.unwrap();
    assert!(result.balanced);
    assert_eq!(
        (result.server.debit_count, result.server.debit_amount),
        (2, 1_950),
        "the server booked what the counter showed"
    );
    assert_eq!(result.server, result.terminal);
    assert!(result.missing_on_server.is_empty() && result.unknown_to_terminal.is_empty());
    drop(k);
    drop(backend);
}
