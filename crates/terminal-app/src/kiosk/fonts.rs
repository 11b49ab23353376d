//! The bundled CJK font (Noto Sans CJK SC cut to every Han character GBK encodes, the
//! compatibility ideographs among them, plus CJK Extension A; assets/fonts/README.md says how
//! it was made). egui has no CJK font of its own;
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

#[cfg(test)]
mod tests {
    use egui::FontId;

    /// Every character GBK encodes, decoded: two-byte codes, lead `81`-`FE`, trail `40`-`FE`
    /// except `7F`.
    fn gbk_characters() -> Vec<char> {
        let mut out = Vec::new();
        for lead in 0x81u8..=0xfe {
            for trail in (0x40u8..=0xfe).filter(|t| *t != 0x7f) {
                let pair = [lead, trail];
                let (text, _, bad) = encoding_rs::GBK.decode(&pair);
                if !bad {
                    out.extend(text.chars());
                }
            }
        }
        out
    }

    fn is_han(c: char) -> bool {
        matches!(u32::from(c), 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xf900..=0xfaff)
    }

    #[test]
    fn every_han_character_of_gbk_and_extension_a_and_every_demo_name_has_a_glyph() {
        let ctx = egui::Context::default();
        super::install(&ctx);
        // One pass makes the fonts; its texture upload is not needed here.
        ctx.run_ui(egui::RawInput::default(), |_| {})
            .textures_delta
            .clear();
        let font = FontId::proportional(20.0);
        let gbk_han: Vec<char> = gbk_characters()
            .into_iter()
            .filter(|c| is_han(*c))
            .collect();
        // GBK's Han characters: level 1 and 2 of GB 2312 and the rest GBK adds.
        assert!(gbk_han.len() > 20_000, "{}", gbk_han.len());
        // Extension A as GB 18030 has it (U+4DB6-U+4DBF came with Unicode 13, after).
        let extension_a = (0x3400..=0x4db5).filter_map(char::from_u32);
        // The demo's cardholders, and names with characters people do carry (䶮 is in
        // Extension A, 堃 喆 昇 玥 珺 in GBK).
        let names = "张三李思王芳王五钱七刘䶮陶喆王堃周昇李玥张珺";
        let missing: Vec<char> = ctx.fonts_mut(|f| {
            gbk_han
                .iter()
                .copied()
                .chain(extension_a)
                .chain(names.chars())
                .filter(|c| !f.has_glyph(&font, *c))
                .collect()
        });
        assert!(
            missing.is_empty(),
            "{} characters without a glyph, first {:?}",
            missing.len(),
            missing.iter().take(20).collect::<String>()
        );
        // And the check can fail: a character outside the cut (Extension B) has none.
        assert!(!ctx.fonts_mut(|f| f.has_glyph(&font, '\u{20000}')));
    }
}
