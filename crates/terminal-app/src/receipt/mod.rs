//! The kiosk's payment receipt as a PDF: after a citizen pays a fee from the electronic cash on
//! their card, the kiosk writes this file for its 80 mm thermal printer (and keeps it as the
//! citizen's proof of payment). A [`Receipt`] is plain data filled in by the caller (no clock,
//! no card access here); [`render_pdf`] lays it out on one page 80 mm wide and as tall as the
//! text, in Chinese or English, with the bundled Noto Sans CJK SC embedded as a subset (so the
//! text is real, selectable and extractable, and the file is tens of kilobytes), and
//! [`write_pdf`] stores it atomically. Nothing in here panics on odd input: overlong text is
//! wrapped and then cut with "…", characters the font lacks print as "□" and are counted.
//!
//! docs/receipt.md describes the page and the font embedding.

#![deny(clippy::indexing_slicing)]

mod font;
mod layout;
mod pdf;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::kiosk::Lang;

use layout::{AMOUNT_SIZE, Align, BODY_SIZE, Layout, SMALL_SIZE, TITLE_SIZE};

/// How the fee was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    /// The card's PBOC electronic cash (电子现金).
    ElectronicCash,
    /// Anything else, printed as given.
    Other(String),
}

impl PaymentMethod {
    fn text(&self, lang: Lang) -> &str {
        match self {
            Self::ElectronicCash => lang.t("电子现金", "Electronic cash"),
            Self::Other(s) => s,
        }
    }
}

/// What a payment receipt says. Plain data: the caller fills in every field, including the
/// time (local time of the kiosk, printed as given).
///
/// `Debug` masks the card number again (first 6 and last 4 at most), so a full PAN passed by
/// mistake does not reach a log; [`render_pdf`] does the same.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Language of the labels.
    pub lang: Lang,
    /// Who was paid, printed under the title, e.g. "某市社会保险事业管理局 自助终端".
    pub merchant: String,
    /// The kiosk's terminal id.
    pub terminal_id: String,
    /// Year of the payment (local time).
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
    /// What was paid for, e.g. "城乡居民医疗保险 2027年度个人缴费".
    pub item: String,
    /// Amount paid, in fen (分).
    pub amount_fen: u64,
    /// How it was paid.
    pub method: PaymentMethod,
    /// The card number, already masked by the caller, e.g. "623058******0013".
    pub masked_pan: String,
    /// The terminal's transaction sequence number (the ledger's).
    pub transaction_no: u64,
    /// The card's application transaction counter (tag 9F36), printed as 4 hex digits.
    pub atc: u16,
    /// The transaction certificate from the card, printed in hex; `None` when the card's
    /// answer did not reach the terminal (printed as "—").
    pub tc: Option<[u8; 8]>,
    /// Electronic cash balance after the payment, in fen, when known ("—" otherwise).
    pub balance_after_fen: Option<u64>,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("lang", &self.lang)
            .field("merchant", &self.merchant)
            .field("terminal_id", &self.terminal_id)
            .field("time", &self.time_text())
            .field("item", &self.item)
            .field("amount_fen", &self.amount_fen)
            .field("method", &self.method)
            .field("masked_pan", &mask_pan(&self.masked_pan))
            .field("transaction_no", &self.transaction_no)
            .field("atc", &self.atc)
            .field("tc", &self.tc.map(hex::encode_upper))
            .field("balance_after_fen", &self.balance_after_fen)
            .finish()
    }
}

impl Receipt {
    fn time_text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Why a receipt could not be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The bundled font could not be read or cut to a subset (a broken build, not bad input).
    #[error("receipt font: {0}")]
    Font(String),
    /// The path given to [`write_pdf`] does not name a file.
    #[error("receipt path {0:?} does not name a file")]
    Path(PathBuf),
    /// Writing the file failed.
    #[error("writing the receipt {path:?}: {source}")]
    Io {
        /// The file (or its temporary sibling) being written.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A rendered receipt with what had to be changed to print it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedReceipt {
    /// The PDF file.
    pub pdf: Vec<u8>,
    /// Characters the font lacks (or control characters), printed as "□".
    pub missing_chars: usize,
    /// Fields (or labels) too long to print whole, cut with "…".
    pub truncated_fields: usize,
    /// Page height in millimetres (the width is 80 mm).
    pub height_mm: f32,
}

/// Mask a card number for printing: keep at most the first 6 (only when it has 13 characters
/// or more) and the last 4 (when it has 8 or more) characters, and replace every other
/// character with `*`. An already masked number such as "623058******0013" comes back as it
/// was.
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    let head = if n >= 13 { 6 } else { 0 };
    let tail = if n >= 8 { 4 } else { 0 };
    pan.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= n.saturating_sub(tail) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// Fen as yuan with two decimals: 12000 → "¥120.00".
fn yuan(fen: u64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}

/// Render the receipt and report what had to be replaced or cut.
pub fn render(r: &Receipt) -> Result<RenderedReceipt, ReceiptError> {
    let lang = r.lang;
    let t = |zh, en| lang.t(zh, en);
    let font = font::Font::bundled()?;
    let mut l = Layout::new(&font);

    let title = t(
        "社会保障卡自助缴费凭证",
        "Social Security Card Self-Service Payment Receipt",
    );
    l.paragraph(title, TITLE_SIZE, true, Align::Center);
    l.space(2.0);
    l.paragraph(&r.merchant, BODY_SIZE, false, Align::Center);
    l.rule();

    let none = "\u{2014}";
    let time = r.time_text();
    let atc = format!("{:04X}", r.atc);
    let tc = r.tc.map_or_else(|| none.to_owned(), hex::encode_upper);
    let txn = r.transaction_no.to_string();
    let pan = mask_pan(&r.masked_pan);
    let fields: [(&str, &str); 8] = [
        (t("终端编号", "Terminal ID"), &r.terminal_id),
        (t("交易时间", "Date/time"), &time),
        (t("缴费项目", "Item"), &r.item),
        (t("支付方式", "Payment method"), r.method.text(lang)),
        (t("卡号", "Card number"), &pan),
        (t("交易流水号", "Transaction no."), &txn),
        (t("应用交易计数器(ATC)", "ATC"), &atc),
        (t("交易证书(TC)", "TC"), &tc),
    ];
    for (label, value) in fields {
        l.field(label, value, BODY_SIZE, false);
    }
    l.rule();
    l.field(
        t("缴费金额", "Amount"),
        &yuan(r.amount_fen),
        AMOUNT_SIZE,
        true,
    );
    let balance = r.balance_after_fen.map_or_else(|| none.to_owned(), yuan);
    l.field(
        t("电子现金余额", "EC balance after"),
        &balance,
        BODY_SIZE,
        false,
    );
    l.rule();
    l.space(2.0);
    l.paragraph(
        t("请妥善保管此凭证", "Please keep this receipt"),
        SMALL_SIZE,
        false,
        Align::Center,
    );
    let page = l.finish();

    let date = pdf_writer::Date::new(r.year)
        .month(r.month)
        .day(r.day)
        .hour(r.hour)
        .minute(r.minute)
        .second(r.second);
    let info = pdf::DocInfo {
        title,
        lang: t("zh-CN", "en"),
        date,
    };
    let bytes = pdf::write(&page, &font, &info)?;
    Ok(RenderedReceipt {
        pdf: bytes,
        missing_chars: page.missing,
        truncated_fields: page.truncated,
        height_mm: page.height * 25.4 / 72.0,
    })
}

/// Render the receipt as a one-page PDF 1.7, 80 mm wide.
pub fn render_pdf(r: &Receipt) -> Result<Vec<u8>, ReceiptError> {
    render(r).map(|rendered| rendered.pdf)
}

/// Render the receipt and store it at `path` atomically: a temporary file in the same
/// directory, flushed to disk, renamed over `path`, then the directory synced. A crash leaves
/// either the old file or the new one, never half a receipt.
pub fn write_pdf(r: &Receipt, path: &Path) -> Result<(), ReceiptError> {
    let bytes = render_pdf(r)?;
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReceiptError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| ReceiptError::Path(path.to_path_buf()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReceiptError::Io { path: p, source }
    };
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_card_numbers() {
        assert_eq!(mask_pan("6230580000000013"), "623058******0013");
        assert_eq!(mask_pan("623058******0013"), "623058******0013");
        assert_eq!(mask_pan("12345678"), "****5678");
        assert_eq!(mask_pan("1234"), "****");
        assert_eq!(mask_pan(""), "");
    }

    #[test]
    fn formats_yuan() {
        assert_eq!(yuan(12000), "¥120.00");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(u64::MAX), "¥184467440737095516.15");
    }
}
