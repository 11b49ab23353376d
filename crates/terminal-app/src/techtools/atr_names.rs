//! Card names for an ATR from pcsc-tools' `smartcard_list.txt`.
//!
//! The file (Debian package `pcsc-tools`, `/usr/share/pcsc/smartcard_list.txt`) is a list of
//! entries: a line with an ATR written as a regular expression over the ATR's text form
//! (upper-case hex bytes separated by single spaces, `3B 02 14 50`), followed by one or more
//! lines that start with a tab and describe the card, and an empty line. Lines starting with
//! `#` are comments. pcsc-tools' `ATR_analysis` matches every ATR line against the whole ATR
//! text, case-insensitively (`$atr =~ m/^$line$/i`), and prints the descriptions of every
//! entry that matches; so does [`AtrList::lookup`].
//!
//! The expressions in the list use only a small part of Perl's syntax: literal hex digits and
//! spaces, `.` for any character, bracket classes (`[0-3]`, `[FE]`), and `*` after `.`. The
//! matcher here knows literals, `.`, bracket classes with ranges and `^` negation, `\`
//! escapes, and the quantifiers `*`, `+` and `?`; an entry with anything else (groups,
//! alternation, counted repetition) is skipped and counted in [`AtrList::skipped`] rather than
//! matched wrongly. Matching is a dynamic programme over (pattern position, text position), so
//! a hostile pattern cannot make it take exponential time.

use std::path::{Path, PathBuf};

/// Where pcsc-tools looks for the list, in its order (`ATR_analysis`: the user's cache copy
/// first, then the system ones). `$XDG_CACHE_HOME` or `~/.cache` comes first.
pub const SYSTEM_LISTS: [&str; 3] = [
    "/usr/local/pcsc/smartcard_list.txt",
    "/usr/share/pcsc/smartcard_list.txt",
    "/usr/local/share/pcsc/smartcard_list.txt",
];

/// Errors reading a list.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AtrListError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One entry of the list: the ATR expression and the card descriptions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AtrEntry {
    /// The ATR line as written in the file.
    pub pattern: String,
    /// The description lines, without their leading tab.
    pub descriptions: Vec<String>,
    /// Line number of the ATR line (1-based).
    pub line: usize,
    #[serde(skip)]
    tokens: Vec<Token>,
}

/// A parsed `smartcard_list.txt`.
#[derive(Debug, Clone, Default)]
pub struct AtrList {
    entries: Vec<AtrEntry>,
    skipped: usize,
}

impl AtrList {
    /// Parse the text of a list. Never fails: lines that are not understood are skipped.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        let mut current: Option<AtrEntry> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if let Some(desc) = line.strip_prefix('\t') {
                if let Some(entry) = current.as_mut() {
                    entry.descriptions.push(desc.trim().to_string());
                }
                continue;
            }
            if let Some(done) = current.take() {
                list.entries.push(done);
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            match compile(line) {
                Some(tokens) => {
                    current = Some(AtrEntry {
                        pattern: line.to_string(),
                        descriptions: Vec::new(),
                        line: i + 1,
                        tokens,
                    });
                }
                None => list.skipped += 1,
            }
        }
        if let Some(done) = current.take() {
            list.entries.push(done);
        }
        list
    }

    /// Read and parse a list file.
    pub fn load(path: &Path) -> Result<Self, AtrListError> {
        let bytes = std::fs::read(path).map_err(|source| AtrListError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The first list that exists where pcsc-tools looks for one.
    pub fn default_path() -> Option<PathBuf> {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".smartcard_list.txt"));
        cache
            .map(|c| c.join("smartcard_list.txt"))
            .into_iter()
            .chain(home)
            .chain(SYSTEM_LISTS.iter().map(PathBuf::from))
            .find(|p| p.is_file())
    }

    /// Every entry whose expression matches the ATR, in file order.
    pub fn lookup(&self, atr: &[u8]) -> Vec<&AtrEntry> {
        let text = atr_text(atr);
        let chars: Vec<char> = text.chars().collect();
        self.entries
            .iter()
            .filter(|e| matches(&e.tokens, &chars))
            .collect()
    }

    /// Number of entries understood.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of ATR lines whose expression uses syntax the matcher does not know.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// The ATR as pcsc-tools writes it: upper-case hex bytes separated by single spaces.
pub fn atr_text(atr: &[u8]) -> String {
    atr.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// One character, compared case-insensitively.
    Char(char),
    /// `.`
    Any,
    /// `[...]`: ranges (a single character is a range of one), negated or not.
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    One,
    /// `*`
    Star,
    /// `+`
    Plus,
    /// `?`
    Optional,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    atom: Atom,
    repeat: Repeat,
}

impl Atom {
    fn accepts(&self, c: char) -> bool {
        let c = c.to_ascii_uppercase();
        match self {
            Self::Char(x) => x.to_ascii_uppercase() == c,
            Self::Any => true,
            Self::Class { ranges, negated } => {
                let inside = ranges.iter().any(|&(lo, hi)| {
                    let (lo, hi) = (lo.to_ascii_uppercase(), hi.to_ascii_uppercase());
                    (lo..=hi).contains(&c)
                });
                inside != *negated
            }
        }
    }
}

/// Compile an expression, or `None` if it uses syntax outside the subset.
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let mut out: Vec<Token> = Vec::new();
    let mut chars = pattern.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        let atom = match c {
            '.' => Atom::Any,
            '\\' => Atom::Char(chars.next()?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = chars.next()?;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' { chars.next()? } else { c };
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.peek() {
                            Some(&']') | None => {
                                ranges.push((lo, lo));
                                ranges.push(('-', '-'));
                            }
                            Some(_) => {
                                let hi = chars.next()?;
                                if hi < lo {
                                    return None;
                                }
                                ranges.push((lo, hi));
                            }
                        }
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                Atom::Class { ranges, negated }
            }
            '*' | '+' | '?' => {
                let last = out.last_mut()?;
                if last.repeat != Repeat::One {
                    return None;
                }
                last.repeat = match c {
                    '*' => Repeat::Star,
                    '+' => Repeat::Plus,
                    _ => Repeat::Optional,
                };
                continue;
            }
            '(' | ')' | '|' | '{' | '}' | '^' | '$' => return None,
            c => Atom::Char(c),
        };
        out.push(Token {
            atom,
            repeat: Repeat::One,
        });
    }
    Some(out)
}

/// Whether `tokens` match all of `text`: `ok[i][j]` says whether tokens `i..` match
/// `text[j..]`, filled from the end.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    let width = text.len() + 1;
    let mut ok = vec![false; (tokens.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    if let Some(end) = ok.get_mut(at(tokens.len(), text.len())) {
        *end = true;
    }
    for (i, token) in tokens.iter().enumerate().rev() {
        for j in (0..=text.len()).rev() {
            let here = text.get(j).is_some_and(|&c| token.atom.accepts(c));
            let get = |i: usize, j: usize| ok.get(at(i, j)).copied().unwrap_or(false);
            let value = match token.repeat {
                Repeat::One => here && get(i + 1, j + 1),
                Repeat::Optional => get(i + 1, j) || (here && get(i + 1, j + 1)),
                // Zero times, or once and then the same token again.
                Repeat::Star => get(i + 1, j) || (here && get(i, j + 1)),
                Repeat::Plus => here && (get(i + 1, j + 1) || get(i, j + 1)),
            };
            if let Some(cell) = ok.get_mut(at(i, j)) {
                *cell = value;
            }
        }
    }
    ok.get(at(0, 0)).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "# comment\n\
        \n\
        3B 02 14 50\n\
        \tSchlumberger Multiflex 3k\n\
        \n\
        3B 02 14 5.\n\
        \tAny 3B 02 14 5x\n\
        \tsecond line\n\
        \n\
        3B 39 19 00 53 4F 4D 41 44 53 33 30 3[1,3]\n\
        \tclass with comma\n\
        \n\
        3B EF 00 FF 81 31 42 45 .* 38\n\
        \tstar\n\
        \n\
        3B (02|03)\n\
        \tgroup: not understood\n\
        \n\
        3b 6f 00 00 80 5a .. 0[1-5] 82 90 00\n\
        \tlower case, range\n";

    #[test]
    fn entries_and_descriptions() {
        let list = AtrList::parse(LIST);
        assert_eq!(list.len(), 5);
        assert_eq!(list.skipped(), 1);
        let found = list.lookup(&[0x3b, 0x02, 0x14, 0x50]);
        let names: Vec<&str> = found
            .iter()
            .flat_map(|e| e.descriptions.iter().map(String::as_str))
            .collect();
        assert_eq!(
            names,
            [
                "Schlumberger Multiflex 3k",
                "Any 3B 02 14 5x",
                "second line"
            ]
        );
        assert_eq!(found[0].line, 3);
        assert_eq!(list.lookup(&[0x3b, 0x02, 0x14, 0x5f]).len(), 1);
        assert!(list.lookup(&[0x3b, 0x02, 0x14, 0x50, 0x11]).is_empty());
    }

    #[test]
    fn classes_ranges_and_star() {
        let list = AtrList::parse(LIST);
        let multi = |tail: u8| {
            let mut atr = vec![
                0x3b, 0x39, 0x19, 0x00, 0x53, 0x4f, 0x4d, 0x41, 0x44, 0x53, 0x33, 0x30,
            ];
            atr.push(tail);
            list.lookup(&atr).len()
        };
        assert_eq!(multi(0x31), 1);
        assert_eq!(multi(0x33), 1);
        assert_eq!(multi(0x32), 0);
        let star = |middle: &[u8]| {
            let mut atr = vec![0x3b, 0xef, 0x00, 0xff, 0x81, 0x31, 0x42, 0x45];
            atr.extend_from_slice(middle);
            atr.push(0x38);
            list.lookup(&atr).len()
        };
        assert_eq!(star(&[]), 0, "needs the space before 38");
        assert_eq!(star(&[0x11]), 1);
        assert_eq!(star(&[0x11, 0x22, 0x33]), 1);
        let ranged = |b: u8| list.lookup(&[0x3b, 0x6f, 0, 0, 0x80, 0x5a, 0xaa, b, 0x82, 0x90, 0]);
        assert_eq!(ranged(0x03).len(), 1);
        assert_eq!(ranged(0x06).len(), 0);
    }

    #[test]
    fn compile_subset() {
        assert!(compile("3B [^0] .?").is_some());
        assert!(compile("3B [12").is_none());
        assert!(compile("* 3B").is_none());
        assert!(compile("3B .**").is_none());
        assert!(compile("3B .{2}").is_none());
        assert!(compile("3B [9-0]").is_none());
        let t = compile("[^0]").unwrap();
        assert!(matches(&t, &['1']) && !matches(&t, &['0']));
        let plus = compile("A+B").unwrap();
        assert!(matches(&plus, &['A', 'A', 'B']) && !matches(&plus, &['B']));
    }

    #[test]
    fn the_installed_list_parses_when_present() {
        // pcsc-tools' own list: every entry understood, and a well-known ATR named.
        let Some(path) = SYSTEM_LISTS.iter().map(Path::new).find(|p| p.is_file()) else {
            return;
        };
        let list = AtrList::load(path).unwrap();
        assert!(list.len() > 1000, "{}", list.len());
        assert_eq!(list.skipped(), 0);
        let found = list.lookup(&[0x3b, 0x02, 0x14, 0x50]);
        assert!(
            found
                .iter()
                .any(|e| e.descriptions.iter().any(|d| d.contains("Multiflex 3k"))),
            "{found:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pattern in "[ -~\\t]{0,40}", atr in proptest::collection::vec(0u8.., 0..33)) {
            let list = AtrList::parse(&format!("{pattern}\n\tx\n"));
            let _ = list.lookup(&atr);
        }
    }
}
