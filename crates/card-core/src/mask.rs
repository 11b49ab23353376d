//! Masking of personal data for screens and logs.
//!
//! The rules follow common Chinese practice for displaying identity data: keep a few leading
//! and trailing characters and replace the rest with `*`, one per hidden character, so the
//! length stays visible but the value does not.

/// Replace all but the first `keep_start` and last `keep_end` characters with `*`.
/// Strings too short to keep anything hidden are fully masked.
pub fn mask_middle(text: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    if n <= keep_start + keep_end {
        return "*".repeat(n);
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i >= n - keep_end {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// A person's name: the first character stays, then one `*` per further character, except that
/// names of three or more characters keep their last one too (`张三` -> `张*`,
/// `欧阳明月` -> `欧**月`).
pub fn mask_name(name: &str) -> String {
    let n = name.chars().count();
    match n {
        0 => String::new(),
        1 => "*".into(),
        2 => mask_middle(name, 1, 0),
        _ => mask_middle(name, 1, 1),
    }
}

/// An 18-character ID number: first 3 and last 4 characters kept.
pub fn mask_id_number(id: &str) -> String {
    mask_middle(id, 3, 4)
}

/// A 9-character social-security card number: first and last character kept.
pub fn mask_card_number(number: &str) -> String {
    mask_middle(number, 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("李小明"), "李*明");
        assert_eq!(mask_name("欧阳明月"), "欧**月");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_id_number("11010519491231002X"), "110***********002X");
        assert_eq!(mask_card_number("A12345678"), "A*******8");
        assert_eq!(mask_middle("ab", 2, 2), "**");
    }
}
