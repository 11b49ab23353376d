//! The PDF file: one page, one embedded font (Type0 / CIDFontType0, Identity-H, a ToUnicode
//! CMap), compressed streams. Written with `pdf-writer`.

use std::collections::HashMap;

use pdf_writer::types::{
    CidFontType, FontFlags, LineCapStyle, SystemInfo, TextRenderingMode, UnicodeCmap,
};
use pdf_writer::{Content, Date, Filter, Finish, Name, Pdf, Rect, Ref, Settings, Str, TextStr};

use super::ReceiptError;
use super::font::{FONT_NAME, Font, subset_cff};
use super::layout::{Item, PAGE_WIDTH, Page};

/// Document information that is not on the page.
pub(super) struct DocInfo<'a> {
    /// `/Title`.
    pub title: &'a str,
    /// `/Lang` of the catalog (BCP 47).
    pub lang: &'a str,
    /// `/CreationDate`, when the receipt says when.
    pub date: Date,
}

/// FNV-1a, for the subset tag and the file identifier (stable across runs and platforms).
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Six capital letters naming the subset ("ABCDEF+Font"), derived from the glyphs in it.
fn subset_tag(gids: &[u16]) -> String {
    let bytes: Vec<u8> = gids.iter().flat_map(|g| g.to_be_bytes()).collect();
    let mut h = fnv1a(FNV_OFFSET, &bytes);
    (0..6)
        .map(|_| {
            let letter = b'A' + u8::try_from(h % 26).unwrap_or(0);
            h /= 26;
            char::from(letter)
        })
        .collect()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 9)
}

/// Write `page` as a PDF 1.7 file.
pub(super) fn write(
    page: &Page,
    font: &Font<'static>,
    info: &DocInfo<'_>,
) -> Result<Vec<u8>, ReceiptError> {
    // CIDs: the glyphs in order of first use get 1, 2, 3, ...; 0 is .notdef.
    let mut cid_of: HashMap<u16, u16> = HashMap::new();
    let mut used: Vec<(u16, char, f32)> = Vec::new();
    for item in &page.items {
        if let Item::Text { glyphs, .. } = item {
            for g in glyphs {
                if g.gid == 0 || cid_of.contains_key(&g.gid) {
                    continue;
                }
                let cid = u16::try_from(used.len() + 1)
                    .map_err(|_| ReceiptError::Font("too many distinct glyphs".into()))?;
                cid_of.insert(g.gid, cid);
                used.push((g.gid, g.ch, g.advance));
            }
        }
    }
    let gids: Vec<u16> = used.iter().map(|&(gid, _, _)| gid).collect();
    let cff = subset_cff(&gids)?;
    let tag = subset_tag(&gids);
    let base_font = format!("{tag}+{FONT_NAME}");
    let type0_name = format!("{base_font}-Identity-H");

    let height = page.height;
    let font_res = Name(b"F1");
    let mut content = Content::with_settings(Settings { pretty: false });
    for item in &page.items {
        match item {
            Item::Text {
                x,
                baseline,
                size,
                bold,
                glyphs,
            } => {
                if glyphs.is_empty() {
                    continue;
                }
                let codes: Vec<u8> = glyphs
                    .iter()
                    .flat_map(|g| cid_of.get(&g.gid).copied().unwrap_or(0).to_be_bytes())
                    .collect();
                content.save_state();
                if *bold {
                    content.set_line_width(size * 0.03);
                }
                content.begin_text();
                if *bold {
                    content.set_text_rendering_mode(TextRenderingMode::FillStroke);
                }
                content.set_font(font_res, *size);
                content.next_line(*x, height - baseline);
                content.show(Str(&codes));
                content.end_text();
                content.restore_state();
            }
            Item::Rule { y, x0, x1 } => {
                content.save_state();
                content.set_line_width(0.6);
                content.set_line_cap(LineCapStyle::ButtCap);
                content.set_dash_pattern([2.0, 1.5], 0.0);
                content.move_to(*x0, height - y);
                content.line_to(*x1, height - y);
                content.stroke();
                content.restore_state();
            }
        }
    }
    let content = deflate(&content.finish().into_vec());

    let mut cmap = UnicodeCmap::new(
        Name(b"Adobe-Identity-UCS"),
        SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"UCS"),
            supplement: 0,
        },
    );
    for (&(_, ch, _), cid) in used.iter().zip(1u16..) {
        cmap.pair(cid, ch);
    }
    let cmap = deflate(&cmap.finish().into_vec());
    let cff = deflate(&cff);

    let catalog_id = Ref::new(1);
    let pages_id = Ref::new(2);
    let page_id = Ref::new(3);
    let content_id = Ref::new(4);
    let type0_id = Ref::new(5);
    let cid_font_id = Ref::new(6);
    let descriptor_id = Ref::new(7);
    let font_file_id = Ref::new(8);
    let cmap_id = Ref::new(9);
    let info_id = Ref::new(10);

    let mut pdf = Pdf::with_settings(Settings { pretty: false });
    pdf.set_version(1, 7);
    pdf.catalog(catalog_id)
        .pages(pages_id)
        .lang(TextStr(info.lang));
    pdf.pages(pages_id).kids([page_id]).count(1);
    {
        let mut p = pdf.page(page_id);
        p.parent(pages_id);
        p.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, height));
        p.contents(content_id);
        p.resources().fonts().pair(font_res, type0_id);
        p.finish();
    }
    pdf.stream(content_id, &content).filter(Filter::FlateDecode);

    pdf.type0_font(type0_id)
        .base_font(Name(type0_name.as_bytes()))
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_font_id)
        .to_unicode(cmap_id);
    {
        let mut cid_font = pdf.cid_font(cid_font_id);
        cid_font
            .subtype(CidFontType::Type0)
            .base_font(Name(base_font.as_bytes()))
            .system_info(SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            })
            .font_descriptor(descriptor_id)
            .default_width(1000.0);
        cid_font
            .widths()
            .consecutive(1, used.iter().map(|&(_, _, advance)| advance));
        cid_font.finish();
    }
    let m = font.metrics();
    let [x0, y0, x1, y1] = m.bbox;
    pdf.font_descriptor(descriptor_id)
        .name(Name(base_font.as_bytes()))
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(x0, y0, x1, y1))
        .italic_angle(0.0)
        .ascent(m.ascent)
        .descent(m.descent)
        .cap_height(m.cap_height)
        .stem_v(80.0)
        .font_file3(font_file_id);
    pdf.stream(font_file_id, &cff)
        .filter(Filter::FlateDecode)
        .pair(Name(b"Subtype"), Name(b"CIDFontType0C"));
    pdf.stream(cmap_id, &cmap).filter(Filter::FlateDecode);

    pdf.document_info(info_id)
        .title(TextStr(info.title))
        .producer(TextStr("sscard terminal-app"))
        .creation_date(info.date);

    let id_a = fnv1a(FNV_OFFSET, &content).to_be_bytes();
    let id_b = fnv1a(fnv1a(FNV_OFFSET, info.title.as_bytes()), &cmap).to_be_bytes();
    let file_id: Vec<u8> = id_a.iter().chain(id_b.iter()).copied().collect();
    pdf.set_file_id((file_id.clone(), file_id));
    Ok(pdf.finish())
}
