//! The bundled CJK font (Noto Sans CJK SC cut to every Han character GBK encodes plus CJK
//! Extension A; assets/fonts/README.md says how it was made). egui has no CJK font of its own;
//! this one goes after egui's fonts as the fallback for every character they lack, so a name
//! read from a card never shows as empty boxes.

/// The font file.
pub static NOTO_SANS_SC: &[u8] = include_bytes!("../../assets/fonts/NotoSansCJKsc-GBK.otf");

/// Add the CJK font to `ctx` as the fallback of both font families.
pub fn install(ctx: &egui::Context) {
    use egui::epaint::text::{FontInsert, FontPriority, InsertFontFamily};
    ctx.add_font(FontInsert::new(
        "noto-sans-sc",
        egui::FontData::from_static(NOTO_SANS_SC),
        vec![
            InsertFontFamily {
                family: egui::FontFamily::Proportional,
                priority: FontPriority::Lowest,
            },
            InsertFontFamily {
                family: egui::FontFamily::Monospace,
                priority: FontPriority::Lowest,
            },
        ],
    ));
}
