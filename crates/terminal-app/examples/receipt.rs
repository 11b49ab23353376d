//! Render a sample payment receipt and say how big it is and how long it took.
//!
//! ```sh
//! cargo run --release -p terminal-app --example receipt -- receipt.pdf [en]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use terminal_app::receipt::{Lang, PaymentMethod, Receipt, render, write_pdf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "receipt.pdf".into()));
    let lang = match args.next().as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    };
    let receipt = Receipt {
        lang,
        merchant: "某市社会保险事业管理局 自助终端".into(),
        terminal_id: "KIOSK-0001".into(),
        year: 2027,
        month: 3,
        day: 15,
        hour: 10,
        minute: 42,
        second: 7,
        item: "城乡居民医疗保险 2027年度个人缴费".into(),
        amount_fen: 12_000,
        method: PaymentMethod::ElectronicCash,
        masked_pan: "623058******0013".into(),
        transaction_no: 1024,
        atc: 0x0013,
        tc: Some([0x8E, 0x1F, 0x52, 0xA7, 0x3C, 0x09, 0xD4, 0x66]),
        balance_after_fen: Some(38_000),
    };
    // Every render parses the font and cuts a fresh subset; time a few.
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let start = Instant::now();
        let rendered = render(&receipt)?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        size = rendered.pdf.len();
    }
    times.sort_by(f64::total_cmp);
    write_pdf(&receipt, &path)?;
    println!(
        "{}: {size} bytes; render {:.2} ms median, {:.2} ms best of {}",
        path.display(),
        times.get(times.len() / 2).copied().unwrap_or_default(),
        times.first().copied().unwrap_or_default(),
        times.len()
    );
    Ok(())
}
