//! The receipt's one font: the bundled Noto Sans CJK SC cut, its character map and advances,
//! and the subset that goes into the PDF.
//!
//! The bundled OTF is a CID-keyed CFF font (ROS Adobe-Identity-0) whose charset does *not* map
//! glyph ids to the same CIDs (社 is glyph 17980 but CID 28825). The PDF does not use those
//! CIDs: `subsetter` rewrites the kept glyphs into a fresh CID-keyed CFF whose charset is the
//! identity (new glyph id = CID), so the codes in the content stream are the subset's glyph ids.

use ttf_parser::{Face, GlyphId, RawFace, Tag};

use super::ReceiptError;

/// Noto Sans CJK SC, cut to GBK (assets/fonts/README.md). Same file the kiosk's window uses.
static FONT_DATA: &[u8] = include_bytes!("../../assets/fonts/NotoSansCJKsc-GBK.otf");

/// PostScript name of the bundled font.
pub(super) const FONT_NAME: &str = "NotoSansCJKsc-Regular";

/// What stands in for a character the font lacks (or a control character).
const PLACEHOLDERS: [char; 2] = ['\u{25A1}', '?'];

/// One positioned-to-be glyph: the font's glyph id, the character it shows (for ToUnicode)
/// and its advance in thousandths of an em.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Glyph {
    /// Glyph id in the bundled font.
    pub gid: u16,
    /// The character it stands for.
    pub ch: char,
    /// Advance width, 1/1000 em.
    pub advance: f32,
}

impl Glyph {
    /// A space (a break opportunity, dropped at line ends).
    pub fn is_space(&self) -> bool {
        self.ch == ' '
    }

    /// A line may break after this glyph even before a Latin letter: a space or a hyphen.
    pub fn breaks_after(&self) -> bool {
        matches!(self.ch, ' ' | '-')
    }

    /// A character after or before which a line may break without a space: CJK and other
    /// wide scripts (everything from the CJK radicals up, a deliberately simple rule).
    pub fn breaks_freely(&self) -> bool {
        u32::from(self.ch) >= 0x2E80
    }
}

/// The parsed font.
pub(super) struct Font<'a> {
    face: Face<'a>,
    units_per_em: f32,
    placeholder: Glyph,
    space: Glyph,
    ellipsis: Glyph,
}

/// Metrics for the PDF font descriptor, in thousandths of an em.
#[derive(Debug, Clone, Copy)]
pub(super) struct Metrics {
    pub bbox: [f32; 4],
    pub ascent: f32,
    pub descent: f32,
    pub cap_height: f32,
}

impl Font<'static> {
    /// Parse the bundled font.
    pub fn bundled() -> Result<Self, ReceiptError> {
        Font::parse(FONT_DATA)
    }
}

impl<'a> Font<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, ReceiptError> {
        let face = Face::parse(data, 0)
            .map_err(|e| ReceiptError::Font(format!("cannot parse the bundled font: {e}")))?;
        let units_per_em = f32::from(face.units_per_em().max(1));
        let mut font = Font {
            face,
            units_per_em,
            placeholder: Glyph {
                gid: 0,
                ch: '?',
                advance: 500.0,
            },
            space: Glyph {
                gid: 0,
                ch: ' ',
                advance: 250.0,
            },
            ellipsis: Glyph {
                gid: 0,
                ch: '.',
                advance: 250.0,
            },
        };
        if let Some(g) = PLACEHOLDERS.iter().find_map(|&c| font.lookup(c)) {
            font.placeholder = g;
        } else {
            font.placeholder.advance = font.advance(0);
        }
        if let Some(g) = font.lookup(' ') {
            font.space = g;
        }
        if let Some(g) = font.lookup('\u{2026}').or_else(|| font.lookup('.')) {
            font.ellipsis = g;
        }
        Ok(font)
    }

    fn advance(&self, gid: u16) -> f32 {
        self.face
            .glyph_hor_advance(GlyphId(gid))
            .map_or(1000.0, |a| f32::from(a) * 1000.0 / self.units_per_em)
    }

    fn lookup(&self, ch: char) -> Option<Glyph> {
        match self.face.glyph_index(ch) {
            Some(GlyphId(gid)) if gid != 0 => Some(Glyph {
                gid,
                ch,
                advance: self.advance(gid),
            }),
            _ => None,
        }
    }

    /// The glyph for "…", used to mark cut text.
    pub fn ellipsis(&self) -> Glyph {
        self.ellipsis
    }

    /// Map `text` to glyphs. Tabs and line breaks become spaces; control characters and
    /// characters the font lacks become the placeholder (□) and are counted in `missing`.
    pub fn shape(&self, text: &str, missing: &mut usize) -> Vec<Glyph> {
        text.chars()
            .map(|ch| {
                if ch.is_whitespace() && ch.is_control() {
                    return self.space;
                }
                match (!ch.is_control()).then(|| self.lookup(ch)).flatten() {
                    Some(g) => g,
                    None => {
                        *missing = missing.saturating_add(1);
                        self.placeholder
                    }
                }
            })
            .collect()
    }

    /// Descriptor metrics.
    pub fn metrics(&self) -> Metrics {
        let scale = 1000.0 / self.units_per_em;
        let b = self.face.global_bounding_box();
        let ascent = f32::from(self.face.ascender()) * scale;
        Metrics {
            bbox: [
                f32::from(b.x_min) * scale,
                f32::from(b.y_min) * scale,
                f32::from(b.x_max) * scale,
                f32::from(b.y_max) * scale,
            ],
            ascent,
            descent: f32::from(self.face.descender()) * scale,
            cap_height: self
                .face
                .capital_height()
                .map_or(ascent * 0.8, |c| f32::from(c) * scale),
        }
    }
}

/// Cut the bundled font to `gids` (in the order given: the n-th gid becomes CID n + 1, CID 0
/// is `.notdef`) and return the bare CFF table of the subset, the `FontFile3 /CIDFontType0C`
/// of the PDF.
pub(super) fn subset_cff(gids: &[u16]) -> Result<Vec<u8>, ReceiptError> {
    let mut remapper = subsetter::GlyphRemapper::new();
    for &gid in gids {
        remapper.remap(gid);
    }
    let otf = subsetter::subset(FONT_DATA, 0, &remapper)
        .map_err(|e| ReceiptError::Font(format!("cannot subset the bundled font: {e}")))?;
    let raw = RawFace::parse(&otf, 0)
        .map_err(|e| ReceiptError::Font(format!("cannot read the font subset: {e}")))?;
    raw.table(Tag::from_bytes(b"CFF "))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| ReceiptError::Font("the font subset has no CFF table".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_font_maps_chinese_and_latin() {
        let font = Font::bundled().unwrap();
        let mut missing = 0;
        let glyphs = font.shape("社保 A¥1", &mut missing);
        assert_eq!(missing, 0);
        assert_eq!(glyphs.len(), 6);
        assert!(glyphs.iter().all(|g| g.gid != 0));
        // CJK ideographs are one em wide.
        assert!((glyphs[0].advance - 1000.0).abs() < 0.5);
    }

    #[test]
    fn missing_and_control_characters_become_the_placeholder() {
        let font = Font::bundled().unwrap();
        let mut missing = 0;
        // U+1F600 (emoji) and U+0007 (bell) are not in the font; tab becomes a space.
        let glyphs = font.shape("a\u{1F600}\u{7}\tb", &mut missing);
        assert_eq!(missing, 2);
        assert_eq!(glyphs[1].ch, '\u{25A1}');
        assert_eq!(glyphs[2].ch, '\u{25A1}');
        assert_eq!(glyphs[3].ch, ' ');
    }

    #[test]
    fn subset_is_small_and_cid_keyed() {
        let font = Font::bundled().unwrap();
        let mut missing = 0;
        let gids: Vec<u16> = font
            .shape("社会保障卡", &mut missing)
            .iter()
            .map(|g| g.gid)
            .collect();
        let cff = subset_cff(&gids).unwrap();
        assert!(cff.len() < 20_000, "{} bytes", cff.len());
        // CFF header: major version 1.
        assert_eq!(cff[0], 1);
    }
}
