//! The payment receipt PDF, checked with the real poppler tools: `pdfinfo` (it parses, one
//! page, 80 mm wide), `pdffonts` (the font is embedded, subset, with a ToUnicode map),
//! `pdftotext` (the text comes back, in Chinese and English), `pdftoppm` (it renders to
//! something that is not blank). `SSCARD_SCREENSHOTS=<dir>` keeps the rendered Chinese
//! receipt as `<dir>/receipt-zh.png`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use terminal_app::receipt::{
    Lang, PaymentMethod, Receipt, ReceiptError, mask_pan, render, render_pdf, write_pdf,
};

const FULL_PAN: &str = "6230580000000013";
const MASKED_PAN: &str = "623058******0013";
const TITLE_ZH: &str = "社会保障卡自助缴费凭证";
const ITEM: &str = "城乡居民医疗保险 2027年度个人缴费";
const TC: [u8; 8] = [0x8E, 0x1F, 0x52, 0xA7, 0x3C, 0x09, 0xD4, 0x66];
const TC_HEX: &str = "8E1F52A73C09D466";

fn sample(lang: Lang) -> Receipt {
    Receipt {
        lang,
        merchant: "某市社会保险事业管理局 自助终端".into(),
        terminal_id: "KIOSK-0001".into(),
        year: 2027,
        month: 3,
        day: 15,
        hour: 10,
        minute: 42,
        second: 7,
        item: ITEM.into(),
        amount_fen: 12_000,
        method: PaymentMethod::ElectronicCash,
        masked_pan: MASKED_PAN.into(),
        transaction_no: 20_270_315_001,
        atc: 0x0013,
        tc: Some(TC),
        balance_after_fen: Some(38_000),
    }
}

/// Run a poppler tool; a missing tool fails the test and says how to install it.
fn run(tool: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{tool}` ({e}): the receipt tests need poppler-utils; \
             install it with `scripts/gui-env.sh install`"
        )
    });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // poppler reports what it had to repair ("Syntax Error", "Syntax Warning") on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Error") && !stderr.contains("Warning"),
        "{tool} {args:?}: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_temp(dir: &Path, name: &str, r: &Receipt) -> PathBuf {
    let path = dir.join(name);
    write_pdf(r, &path).unwrap();
    path
}

fn pdfinfo(path: &Path) -> String {
    run("pdfinfo", &[path.as_os_str()])
}

fn text(path: &Path) -> String {
    run("pdftotext", &[path.as_os_str(), std::ffi::OsStr::new("-")])
}

/// Page size in points from `pdfinfo` ("Page size:       226.772 x 381.9 pts").
fn page_size(info: &str) -> (f64, f64) {
    let line = info
        .lines()
        .find(|l| l.starts_with("Page size:"))
        .unwrap_or_else(|| panic!("no page size in {info}"));
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn chinese_receipt_parses_as_one_80mm_page_with_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "receipt-zh.pdf", &sample(Lang::Zh));

    let info = pdfinfo(&path);
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().eq(["Pages:", "1"])),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().eq(["PDF", "version:", "1.7"])),
        "{info}"
    );
    assert!(
        info.contains(TITLE_ZH),
        "title in the document info: {info}"
    );
    let (w, h) = page_size(&info);
    let mm = w * 25.4 / 72.0;
    assert!((mm - 80.0).abs() < 0.1, "width {mm} mm");
    assert!(h > w * 0.5 && h < 14_400.0, "height {h} pt");

    let fonts = run("pdffonts", &[path.as_os_str()]);
    let font_line = fonts
        .lines()
        .find(|l| l.contains("NotoSansCJKsc"))
        .unwrap_or_else(|| panic!("no embedded Noto font: {fonts}"));
    assert!(font_line.contains("CID Type 0C"), "{font_line}");
    assert!(font_line.contains("Identity-H"), "{font_line}");
    // emb, sub, uni
    assert!(font_line.contains("yes yes yes"), "{font_line}");

    let text = text(&path);
    for wanted in [
        TITLE_ZH,
        "某市社会保险事业管理局 自助终端",
        ITEM,
        "¥120.00",
        "¥380.00",
        MASKED_PAN,
        "20270315001",
        TC_HEX,
        "KIOSK-0001",
        "2027-03-15 10:42:07",
        "电子现金",
        "交易流水号",
        "请妥善保管此凭证",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in the text:\n{text}");
    }
    assert!(!text.contains(FULL_PAN));

    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"%PDF-1.7"));
    assert!(bytes.ends_with(b"%%EOF"));
    assert!(
        bytes.len() < 64 * 1024,
        "a receipt with a font subset is tens of KB, not {} bytes",
        bytes.len()
    );
}

#[test]
fn english_receipt_has_english_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "receipt-en.pdf", &sample(Lang::En));
    let text = text(&path);
    for wanted in [
        "Payment Receipt",
        "Terminal ID",
        "Date/time",
        "Item",
        "Payment method",
        "Electronic cash",
        "Card number",
        "Transaction no.",
        "Amount",
        "EC balance after",
        "Please keep this receipt",
        ITEM,
        "120.00",
        MASKED_PAN,
        TC_HEX,
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in the text:\n{text}");
    }
    assert!(!text.contains("缴费金额"), "{text}");
}

#[test]
fn full_card_number_never_leaves_the_receipt() {
    // The caller is to pass a masked number; a full one passed by mistake is masked too.
    let mut r = sample(Lang::Zh);
    r.masked_pan = FULL_PAN.into();
    let debug = format!("{r:?}");
    assert!(!debug.contains(FULL_PAN), "{debug}");
    assert!(debug.contains(MASKED_PAN), "{debug}");
    assert_eq!(mask_pan(FULL_PAN), MASKED_PAN);

    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "r.pdf", &r);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !bytes
            .windows(FULL_PAN.len())
            .any(|w| w == FULL_PAN.as_bytes())
    );
    let text = text(&path);
    assert!(!text.contains(FULL_PAN), "{text}");
    assert!(text.contains(MASKED_PAN), "{text}");

    let good = sample(Lang::Zh);
    let debug = format!("{good:?}");
    assert!(!debug.contains(FULL_PAN), "{debug}");
    let bytes = render_pdf(&good).unwrap();
    assert!(
        !bytes
            .windows(FULL_PAN.len())
            .any(|w| w == FULL_PAN.as_bytes())
    );
}

#[test]
fn renders_to_a_picture_that_is_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "receipt-zh.pdf", &sample(Lang::Zh));
    let prefix = dir.path().join("page");
    run(
        "pdftoppm",
        &[
            "-png".as_ref(),
            "-r".as_ref(),
            "150".as_ref(),
            "-singlefile".as_ref(),
            path.as_os_str(),
            prefix.as_os_str(),
        ],
    );
    let png = dir.path().join("page.png");
    let img = image::open(&png).unwrap().to_luma8();
    // 80 mm at 150 dpi.
    assert!((i64::from(img.width()) - 472).abs() <= 1, "{}", img.width());
    let dark = img.pixels().filter(|p| p.0[0] < 96).count();
    let total = img.pixels().count();
    assert!(
        dark > total / 100,
        "only {dark} of {total} pixels are dark: the text did not render"
    );
    // The page is mostly paper.
    assert!(dark < total / 3, "{dark} of {total} pixels are dark");

    if let Some(out) = std::env::var_os("SSCARD_SCREENSHOTS") {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(&png, out.join("receipt-zh.png")).unwrap();
    }
}

#[test]
fn missing_characters_become_a_visible_placeholder() {
    let mut r = sample(Lang::Zh);
    // U+1F600 and U+20000 (CJK Extension B) are not in the GBK cut of the font.
    r.item = "缴费\u{1F600}项目\u{20000}".into();
    let rendered = render(&r).unwrap();
    assert_eq!(rendered.missing_chars, 2);
    assert_eq!(rendered.truncated_fields, 0);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &rendered.pdf).unwrap();
    pdfinfo(&path);
    let text = text(&path);
    assert!(text.contains("缴费□项目□"), "{text}");
}

#[test]
fn long_text_is_wrapped_and_cut_on_one_page() {
    let mut r = sample(Lang::En);
    r.item = "城乡居民医疗保险".repeat(200);
    r.merchant = "A very long merchant name ".repeat(4);
    let rendered = render(&r).unwrap();
    assert_eq!(rendered.truncated_fields, 1);
    assert!(rendered.height_mm < 200.0, "{} mm", rendered.height_mm);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &rendered.pdf).unwrap();
    let info = pdfinfo(&path);
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().eq(["Pages:", "1"])),
        "{info}"
    );
    let text = text(&path);
    assert!(text.contains('…'), "{text}");
    assert!(text.contains("merchant name"), "{text}");
    // Still everything after the long field.
    assert!(text.contains("Please keep this receipt"), "{text}");
}

#[test]
fn write_pdf_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receipt.pdf");
    std::fs::write(&path, b"old").unwrap();
    write_pdf(&sample(Lang::Zh), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes,
        render_pdf(&sample(Lang::Zh)).unwrap(),
        "rendering is deterministic"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["receipt.pdf"]);

    assert!(matches!(
        write_pdf(&sample(Lang::Zh), &dir.path().join("..")),
        Err(ReceiptError::Path(_))
    ));
    let missing_dir = dir.path().join("no-such-dir").join("r.pdf");
    assert!(matches!(
        write_pdf(&sample(Lang::Zh), &missing_dir),
        Err(ReceiptError::Io { .. })
    ));
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,300}",
        proptest::collection::vec(any::<char>(), 0..600).prop_map(String::from_iter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_a_pdf(
        merchant in any_text(),
        terminal_id in any_text(),
        item in any_text(),
        pan in any_text(),
        method in any_text(),
        english in any::<bool>(),
        numbers in any::<(u16, u8, u8, u8, u8, u8)>(),
        amounts in any::<(u64, Option<u64>, u64, u16, Option<[u8; 8]>)>(),
    ) {
        let (year, month, day, hour, minute, second) = numbers;
        let (amount_fen, balance_after_fen, transaction_no, atc, tc) = amounts;
        let r = Receipt {
            lang: if english { Lang::En } else { Lang::Zh },
            merchant,
            terminal_id,
            year, month, day, hour, minute, second,
            item,
            amount_fen,
            method: PaymentMethod::Other(method),
            masked_pan: pan,
            transaction_no,
            atc,
            tc,
            balance_after_fen,
        };
        let pdf = render_pdf(&r).unwrap();
        prop_assert!(pdf.starts_with(b"%PDF-"));
        prop_assert!(pdf.ends_with(b"%%EOF"));
        // And poppler reads it without complaint, text and all.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pdf");
        std::fs::write(&path, &pdf).unwrap();
        let info = pdfinfo(&path);
        prop_assert!(info.lines().any(|l| l.split_whitespace().eq(["Pages:", "1"])), "{}", info);
        text(&path);
        let _ = format!("{r:?}");
    }
}
