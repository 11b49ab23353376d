//! Lines on the receipt: wrapping, cutting, placing. All lengths in PDF points, `y` measured
//! downwards from the top of the page (the PDF writer flips it).

use super::font::{Font, Glyph};

/// 80 mm thermal paper.
pub(super) const PAGE_WIDTH: f32 = 80.0 * 72.0 / 25.4;
/// Left and right margin: an 80 mm printer prints 72 mm.
const MARGIN_X: f32 = 4.0 * 72.0 / 25.4;
/// Top and bottom margin.
const MARGIN_Y: f32 = 6.0 * 72.0 / 25.4;
/// Width available to text.
const TEXT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;
/// Line height as a multiple of the font size.
const LEADING: f32 = 1.4;
/// Baseline below the top of a line box, as a multiple of the font size (the font's ascent
/// 0.88 plus half the extra leading).
const BASELINE: f32 = 0.88 + (LEADING - 1.12) / 2.0;
/// At most this many characters of one field are laid out; the rest is cut.
const MAX_FIELD_CHARS: usize = 400;
/// At most this many lines per field; more is cut with "…".
const MAX_FIELD_LINES: usize = 6;
/// Space kept between a label and a value on the same line, in ems.
const LABEL_GAP_EM: f32 = 1.0;

/// Font sizes.
pub(super) const TITLE_SIZE: f32 = 12.0;
pub(super) const BODY_SIZE: f32 = 9.0;
pub(super) const AMOUNT_SIZE: f32 = 11.0;
pub(super) const SMALL_SIZE: f32 = 8.0;

/// A thing on the page.
#[derive(Debug, Clone)]
pub(super) enum Item {
    /// A line of text.
    Text {
        /// Left edge of the first glyph.
        x: f32,
        /// Baseline, from the top.
        baseline: f32,
        /// Font size.
        size: f32,
        /// Drawn heavier (fill and stroke).
        bold: bool,
        /// The glyphs.
        glyphs: Vec<Glyph>,
    },
    /// A dashed rule across the text width.
    Rule {
        /// From the top.
        y: f32,
        /// Left end.
        x0: f32,
        /// Right end.
        x1: f32,
    },
}

/// A laid-out page.
#[derive(Debug, Clone)]
pub(super) struct Page {
    /// Height in points (width is [`PAGE_WIDTH`]).
    pub height: f32,
    /// What is on it.
    pub items: Vec<Item>,
    /// Characters replaced by the placeholder.
    pub missing: usize,
    /// Fields cut because they were too long.
    pub truncated: usize,
}

/// Horizontal placement of a block of lines.
#[derive(Debug, Clone, Copy)]
pub(super) enum Align {
    Left,
    Center,
    Right,
}

/// Builds a [`Page`] from the top down.
pub(super) struct Layout<'f> {
    font: &'f Font<'static>,
    y: f32,
    page: Page,
}

fn width(glyphs: &[Glyph], size: f32) -> f32 {
    glyphs.iter().map(|g| g.advance).sum::<f32>() * size / 1000.0
}

fn trim_end_spaces(line: &mut Vec<Glyph>) {
    while line.last().is_some_and(Glyph::is_space) {
        line.pop();
    }
}

/// Break `glyphs` into lines no wider than `max` (a single glyph wider than `max` gets a line
/// of its own). Lines break after spaces and around CJK characters; a word longer than a line
/// is broken anywhere, and a hyphenated one after its hyphens. Spaces at the ends of lines are
/// dropped.
pub(super) fn wrap(glyphs: &[Glyph], size: f32, max: f32) -> Vec<Vec<Glyph>> {
    let mut lines: Vec<Vec<Glyph>> = Vec::new();
    let mut cur: Vec<Glyph> = Vec::new();
    // Index in `cur` where a new line may start.
    let mut break_at: Option<usize> = None;
    for &g in glyphs {
        let w = g.advance * size / 1000.0;
        if g.is_space() {
            if cur.is_empty() && !lines.is_empty() {
                // No leading spaces on continuation lines.
                continue;
            }
            if !cur.is_empty() && width(&cur, size) + w > max {
                // A space that does not fit ends the line.
                let mut line = std::mem::take(&mut cur);
                trim_end_spaces(&mut line);
                lines.push(line);
                break_at = None;
                continue;
            }
            cur.push(g);
            continue;
        }
        if let Some(prev) = cur.last()
            && (g.breaks_freely() || prev.breaks_after() || prev.breaks_freely())
        {
            break_at = Some(cur.len());
        }
        while !cur.is_empty() && width(&cur, size) + w > max {
            // Break at the last opportunity inside the line, or (none there, or the
            // opportunity is right before `g`) after the whole line.
            let mut line = match break_at.take().filter(|&b| b > 0 && b < cur.len()) {
                Some(b) => {
                    // `cur[b]` is not a space: breaks are recorded before non-spaces only.
                    let rest = cur.split_off(b);
                    std::mem::replace(&mut cur, rest)
                }
                None => std::mem::take(&mut cur),
            };
            trim_end_spaces(&mut line);
            lines.push(line);
        }
        cur.push(g);
    }
    trim_end_spaces(&mut cur);
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

impl<'f> Layout<'f> {
    /// An empty page.
    pub fn new(font: &'f Font<'static>) -> Self {
        Layout {
            font,
            y: MARGIN_Y,
            page: Page {
                height: 0.0,
                items: Vec::new(),
                missing: 0,
                truncated: 0,
            },
        }
    }

    /// Shape a piece of text, cutting it at [`MAX_FIELD_CHARS`].
    fn shape(&mut self, text: &str) -> (Vec<Glyph>, bool) {
        let mut cut = false;
        let text = match text.char_indices().nth(MAX_FIELD_CHARS) {
            Some((i, _)) => {
                cut = true;
                text.get(..i).unwrap_or(text)
            }
            None => text,
        };
        let mut glyphs = self.font.shape(text, &mut self.page.missing);
        if cut {
            glyphs.push(self.font.ellipsis());
        }
        (glyphs, cut)
    }

    /// Wrap to `max`, keeping at most [`MAX_FIELD_LINES`] lines; the last kept line ends in
    /// "…" when lines were dropped. Counts a cut field once.
    fn lines(&mut self, glyphs: &[Glyph], size: f32, max: f32, cut: bool) -> Vec<Vec<Glyph>> {
        let mut lines = wrap(glyphs, size, max);
        let mut truncated = cut;
        if lines.len() > MAX_FIELD_LINES {
            lines.truncate(MAX_FIELD_LINES);
            truncated = true;
            let ellipsis = self.font.ellipsis();
            if let Some(last) = lines.last_mut() {
                while !last.is_empty() && width(last, size) + ellipsis.advance * size / 1000.0 > max
                {
                    last.pop();
                }
                trim_end_spaces(last);
                last.push(ellipsis);
            }
        }
        if truncated {
            self.page.truncated = self.page.truncated.saturating_add(1);
        }
        lines
    }

    fn place(&mut self, line: Vec<Glyph>, size: f32, bold: bool, align: Align, indent: f32) {
        let w = width(&line, size);
        let x = match align {
            Align::Left => MARGIN_X + indent,
            Align::Center => MARGIN_X + ((TEXT_WIDTH - w) / 2.0).max(0.0),
            Align::Right => MARGIN_X + (TEXT_WIDTH - w).max(0.0),
        };
        self.page.items.push(Item::Text {
            x,
            baseline: self.y + size * BASELINE,
            size,
            bold,
            glyphs: line,
        });
    }

    /// A paragraph of text, wrapped to the text width.
    pub fn paragraph(&mut self, text: &str, size: f32, bold: bool, align: Align) {
        let (glyphs, cut) = self.shape(text);
        for line in self.lines(&glyphs, size, TEXT_WIDTH, cut) {
            self.place(line, size, bold, align, 0.0);
            self.y += size * LEADING;
        }
    }

    /// A label on the left and its value on the right of the same line when both fit;
    /// otherwise the label on a line of its own and the value wrapped below, indented.
    pub fn field(&mut self, label: &str, value: &str, size: f32, bold: bool) {
        let (label, label_cut) = self.shape(label);
        let (value, value_cut) = self.shape(value);
        let label_w = width(&label, size);
        let value_w = width(&value, size);
        let label_lines = self.lines(&label, size, TEXT_WIDTH, label_cut);
        let one_line = label_lines.len() == 1
            && !value_cut
            && label_w + LABEL_GAP_EM * size + value_w <= TEXT_WIDTH;
        if one_line {
            for line in label_lines {
                self.place(line, size, bold, Align::Left, 0.0);
            }
            self.place(value, size, bold, Align::Right, 0.0);
            self.y += size * LEADING;
            return;
        }
        for line in label_lines {
            self.place(line, size, bold, Align::Left, 0.0);
            self.y += size * LEADING;
        }
        let indent = size;
        for line in self.lines(&value, size, TEXT_WIDTH - indent, value_cut) {
            self.place(line, size, bold, Align::Left, indent);
            self.y += size * LEADING;
        }
    }

    /// Vertical space.
    pub fn space(&mut self, points: f32) {
        self.y += points;
    }

    /// A dashed rule with a little space around it.
    pub fn rule(&mut self) {
        self.y += 3.0;
        self.page.items.push(Item::Rule {
            y: self.y,
            x0: MARGIN_X,
            x1: PAGE_WIDTH - MARGIN_X,
        });
        self.y += 4.0;
    }

    /// The finished page, as tall as its content.
    pub fn finish(mut self) -> Page {
        self.page.height = self.y + MARGIN_Y;
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Vec<Glyph>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.iter().map(|g| g.ch).collect())
            .collect()
    }

    #[test]
    fn wraps_latin_at_spaces_and_cjk_anywhere() {
        let font = Font::bundled().unwrap();
        let mut missing = 0;
        let latin = font.shape("Please keep this receipt", &mut missing);
        let lines = wrap(&latin, 10.0, 70.0);
        assert!(lines.len() >= 2, "{:?}", text(&lines));
        for line in text(&lines) {
            assert!(!line.starts_with(' ') && !line.ends_with(' '), "{line:?}");
        }
        assert_eq!(text(&lines).join(" "), "Please keep this receipt");

        let cjk = font.shape("城乡居民医疗保险个人缴费", &mut missing);
        let lines = wrap(&cjk, 10.0, 45.0);
        assert_eq!(
            text(&lines),
            ["城乡居民", "医疗保险", "个人缴费"].map(String::from)
        );
    }

    #[test]
    fn breaks_overlong_words_and_keeps_empty_text_one_line() {
        let font = Font::bundled().unwrap();
        let mut missing = 0;
        let word = font.shape(&"W".repeat(100), &mut missing);
        let lines = wrap(&word, 10.0, 50.0);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| width(l, 10.0) <= 50.0));
        assert_eq!(wrap(&[], 10.0, 50.0).len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn wrapped_lines_fit_and_keep_every_visible_character(
            text in "[ a-zA-Z0-9\u{4e00}-\u{4fff}]{0,200}",
            max in 20.0f32..200.0,
        ) {
            let font = Font::bundled().unwrap();
            let mut missing = 0;
            let glyphs = font.shape(&text, &mut missing);
            let lines = wrap(&glyphs, 9.0, max);
            for line in &lines {
                proptest::prop_assert!(line.len() == 1 || width(line, 9.0) <= max + 1e-3);
            }
            let kept: String = text.chars().filter(|c| *c != ' ').collect();
            let out: String = lines.iter().flatten().map(|g| g.ch).filter(|c| *c != ' ').collect();
            proptest::prop_assert_eq!(kept, out);
        }
    }

    #[test]
    fn long_fields_are_cut_with_an_ellipsis() {
        let font = Font::bundled().unwrap();
        let mut layout = Layout::new(&font);
        layout.field("项目", &"医".repeat(1000), BODY_SIZE, false);
        let page = layout.finish();
        assert_eq!(page.truncated, 1);
        let lines = page
            .items
            .iter()
            .filter(|i| matches!(i, Item::Text { .. }))
            .count();
        assert_eq!(lines, 1 + MAX_FIELD_LINES);
        let Some(Item::Text { glyphs, .. }) = page.items.last() else {
            panic!("no text")
        };
        assert_eq!(glyphs.last().unwrap().ch, '\u{2026}');
    }
}
