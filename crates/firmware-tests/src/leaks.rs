//! Finding secrets in clear in what the stack leaves behind: logs, traces, ledgers, crash
//! output (issue 9, part 5). The `leak-scan` binary runs this after the test suite
//! (scripts/test.sh); docs/reliability.md says which files that covers.
//!
//! The secrets are the project's own test and demo material, which is what the tests put into
//! the stack: every fixture card's PINs, ID number, card number, PAN, names and PBOC key
//! material (from the embedded profiles), and the demo's keys ([`DEMO_SECRETS`]). Each secret
//! is looked for in the forms it travels in:
//!
//! - text (UTF-8), hex of its bytes (upper or lower case, with or without a space between
//!   bytes), and for names GBK bytes, their hex and `\uXXXX` escapes;
//! - PINs: the digits as a token shortly after the word "PIN" (or 密码), a VERIFY or CHANGE PIN
//!   command with the PIN in its data (hex or bytes), the PBOC plaintext PIN block, and the key
//!   the PKI application derives from the PIN (`SM3(BCD(PIN))[..16]`);
//! - PANs: the digits (which are also the hex of the BCD), and the BCD bytes;
//! - keys: hex and raw bytes (and text for keys made of text).
//!
//! A finding names the file, the byte offset, the kind of secret, which secret (by fixture and
//! field) and the form; never the secret itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use card_core::secret::Pin;

use crate::Profile;

/// What kind of secret was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A PIN: the digits next to the word PIN.
    Pin,
    /// A PIN inside a command APDU, a PIN block, or a key derived from a PIN.
    PinApdu,
    /// A full 18-character ID number (social-security number).
    IdNumber,
    /// A full social-security card number.
    CardNumber,
    /// A full payment card number.
    Pan,
    /// A cardholder's name.
    Name,
    /// Key material.
    Key,
}

impl Kind {
    /// The kind's name in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pin => "PIN",
            Self::PinApdu => "PIN in an APDU",
            Self::IdNumber => "ID number",
            Self::CardNumber => "card number",
            Self::Pan => "PAN",
            Self::Name => "name",
            Self::Key => "key",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Key material of the demo and the test set-ups, as `(label, bytes)`. Kept in step with the
/// sources by terminal-app's tests/leak_scan_artifacts.rs.
pub const DEMO_SECRETS: [(&str, &[u8]); 5] = [
    // terminal-app src/demo.rs: the ledger's field key, the personalisation ZMK, the LMK.
    ("demo ledger field key", b"sscard-demo-key!"),
    ("demo ZMK", &[0x5a; 16]),
    ("demo LMK", &[0x42; 16]),
    // firmware-tests tests (issuance, hostile): the personalisation ZMK and the HSM's LMK.
    (
        "test ZMK",
        &[
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ],
    ),
    (
        "test LMK",
        &[
            0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
            0xe1, 0xf0,
        ],
    ),
];

/// The demo's technician PIN (terminal-app src/bin/kiosk.rs, service mode).
pub const DEMO_TECHNICIAN_PIN: &str = "2468";

#[derive(Debug, Clone)]
struct Needle {
    kind: Kind,
    label: String,
    form: &'static str,
    /// Only a finding as a standalone digit run after the word PIN.
    pin_token: bool,
}

/// The secrets to look for, compiled for one pass over each file.
pub struct Catalogue {
    patterns: Vec<Vec<u8>>,
    needles: Vec<Needle>,
    matcher: Option<AhoCorasick>,
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The patterns are the secrets: only their number is shown.
        f.debug_struct("Catalogue")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

/// One secret found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// Byte offset in the file.
    pub offset: usize,
    /// What kind of secret.
    pub kind: Kind,
    /// Which secret: fixture and field.
    pub label: String,
    /// In which form.
    pub form: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} ({}, {})",
            self.path.display(),
            self.offset,
            self.kind,
            self.label,
            self.form
        )
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

fn hex_spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn bcd_digits(digits: &str) -> Option<Vec<u8>> {
    let mut text = digits.to_string();
    if text.len() % 2 == 1 {
        text.push('F');
    }
    hex::decode(text).ok()
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::empty()
    }
}

impl Catalogue {
    /// A catalogue with no secrets.
    pub const fn empty() -> Self {
        Self {
            patterns: Vec::new(),
            needles: Vec::new(),
            matcher: None,
        }
    }

    /// Every embedded fixture card's secrets and the demo's keys ([`DEMO_SECRETS`],
    /// [`DEMO_TECHNICIAN_PIN`]).
    pub fn fixtures() -> Self {
        let mut c = Self::empty();
        for name in Profile::embedded_names() {
            if let Some(p) = Profile::embedded(name) {
                c.add_profile(name, &p);
            }
        }
        for (label, bytes) in DEMO_SECRETS {
            c.add_key(label, bytes);
            if bytes.iter().all(|b| b.is_ascii_graphic()) {
                c.push(bytes.to_vec(), Kind::Key, label, "text", false);
            }
        }
        c.add_pin("demo technician PIN", DEMO_TECHNICIAN_PIN);
        c.compile();
        c
    }

    fn push(
        &mut self,
        pattern: Vec<u8>,
        kind: Kind,
        label: &str,
        form: &'static str,
        pin_token: bool,
    ) {
        if pattern.is_empty() {
            return;
        }
        // The same secret in several fixtures (a PIN of 123456, say): one pattern, all labels.
        let folded = pattern.to_ascii_lowercase();
        if let Some(i) = self
            .patterns
            .iter()
            .position(|p| p.to_ascii_lowercase() == folded)
            && let Some(n) = self.needles.get_mut(i)
            && n.kind == kind
            && n.form == form
            && n.pin_token == pin_token
        {
            if !n.label.split(" / ").any(|l| l == label) {
                n.label = format!("{} / {label}", n.label);
            }
            return;
        }
        self.patterns.push(pattern);
        self.needles.push(Needle {
            kind,
            label: label.to_string(),
            form,
            pin_token,
        });
    }

    /// Text, its hex and its spaced hex.
    fn add_text(&mut self, kind: Kind, label: &str, text: &str) {
        let bytes = text.as_bytes();
        self.push(bytes.to_vec(), kind, label, "text", false);
        self.push(hex_upper(bytes).into_bytes(), kind, label, "hex", false);
        self.push(
            hex_spaced(bytes).into_bytes(),
            kind,
            label,
            "spaced hex",
            false,
        );
    }

    /// A name: UTF-8 and GBK, raw and hex, and `\u` escapes.
    fn add_name(&mut self, label: &str, name: &str) {
        self.add_text(Kind::Name, label, name);
        if !name.is_ascii() {
            let gbk = card_core::ssse::fields::PersonName::new(name).to_gbk();
            if !gbk.is_empty() {
                self.push(gbk.clone(), Kind::Name, label, "GBK", false);
                self.push(
                    hex_upper(&gbk).into_bytes(),
                    Kind::Name,
                    label,
                    "GBK hex",
                    false,
                );
                self.push(
                    hex_spaced(&gbk).into_bytes(),
                    Kind::Name,
                    label,
                    "GBK spaced hex",
                    false,
                );
            }
            let escaped: String = name
                .chars()
                .map(|c| format!("\\u{:04x}", u32::from(c)))
                .collect();
            self.push(
                escaped.into_bytes(),
                Kind::Name,
                label,
                "\\u escapes",
                false,
            );
        }
    }

    /// Key material: hex, spaced hex and bytes.
    fn add_key(&mut self, label: &str, bytes: &[u8]) {
        self.push(bytes.to_vec(), Kind::Key, label, "bytes", false);
        self.push(
            hex_upper(bytes).into_bytes(),
            Kind::Key,
            label,
            "hex",
            false,
        );
        self.push(
            hex_spaced(bytes).into_bytes(),
            Kind::Key,
            label,
            "spaced hex",
            false,
        );
    }

    /// A PIN: the digits after the word PIN, and every command form it travels in.
    fn add_pin(&mut self, label: &str, digits: &str) {
        self.push(
            digits.as_bytes().to_vec(),
            Kind::Pin,
            label,
            "digits after PIN",
            true,
        );
        let Ok(pin) = Pin::new(digits) else {
            return;
        };
        let bcd = pin.to_bcd().to_vec();
        let Ok(lc) = u8::try_from(bcd.len()) else {
            return;
        };
        // VERIFY 00 20 00 P2 Lc BCD (SSSE: P2 00; ISO references 01, 81, 82).
        for p2 in [0x00, 0x01, 0x81, 0x82] {
            let mut apdu = vec![0x00, 0x20, 0x00, p2, lc];
            apdu.extend_from_slice(&bcd);
            self.add_apdu(label, "VERIFY", apdu);
        }
        // CHANGE PIN 80 5E 01 00 Lc old FF new: the old PIN's part.
        let mut change = vec![0x80, 0x5e, 0x01, 0x00];
        change.push(0);
        change.extend_from_slice(&bcd);
        change.push(0xff);
        // Lc is unknown (it depends on the new PIN): look for what follows it.
        let tail = change.get(5..).unwrap_or_default().to_vec();
        let head = [0x80, 0x5e, 0x01, 0x00];
        for lc in 5..=13u8 {
            let mut apdu = head.to_vec();
            apdu.push(lc);
            apdu.extend_from_slice(&tail);
            self.add_apdu(label, "CHANGE PIN", apdu);
        }
        // PBOC offline plaintext PIN block: 2N ‖ digits ‖ F padding, 8 bytes.
        let mut block = format!("2{:X}{digits}", digits.len());
        while block.len() < 16 {
            block.push('F');
        }
        if let Ok(block) = hex::decode(&block) {
            self.push(block.clone(), Kind::PinApdu, label, "PIN block", false);
            self.push(
                hex_upper(&block).into_bytes(),
                Kind::PinApdu,
                label,
                "PIN block hex",
                false,
            );
        }
        // The PKI application's PIN key.
        let k = card_core::crypto::sm3::digest(&bcd);
        if let Some(k) = k.get(..16) {
            self.push(k.to_vec(), Kind::PinApdu, label, "PIN key bytes", false);
            self.push(
                hex_upper(k).into_bytes(),
                Kind::PinApdu,
                label,
                "PIN key hex",
                false,
            );
        }
    }

    fn add_apdu(&mut self, label: &str, form: &'static str, apdu: Vec<u8>) {
        self.push(
            hex_upper(&apdu).into_bytes(),
            Kind::PinApdu,
            label,
            form,
            false,
        );
        self.push(
            hex_spaced(&apdu).into_bytes(),
            Kind::PinApdu,
            label,
            form,
            false,
        );
        self.push(apdu, Kind::PinApdu, label, form, false);
    }

    /// The secrets of one fixture profile, labelled `name`.
    pub fn add_profile(&mut self, name: &str, p: &Profile) {
        self.add_pin(&format!("{name} PIN"), &p.pin.value);
        self.add_text(Kind::IdNumber, &format!("{name} ID number"), &p.holder.ssn);
        self.add_text(
            Kind::CardNumber,
            &format!("{name} card number"),
            &p.card.card_number,
        );
        self.add_name(&format!("{name} name"), &p.holder.name);
        if let Some(ext) = &p.holder.name_ext {
            self.add_name(&format!("{name} name extension"), ext);
        }
        if let Some(master) = p
            .maintenance_master
            .as_deref()
            .and_then(|m| hex::decode(m.replace(' ', "")).ok())
        {
            self.add_key(&format!("{name} maintenance master"), &master);
            let card_id = hex::decode(p.card.card_id.replace(' ', "")).unwrap_or_default();
            if let Ok(key) = card_core::crypto::sm4::Sm4Key::from_slice(&master)
                .map_err(|_| ())
                .and_then(|m| {
                    card_core::ssse::update::derive_maintenance_key(&m, &card_id).map_err(|_| ())
                })
            {
                self.add_key(&format!("{name} maintenance key"), key.expose_bytes());
            }
        }
        let Some(pboc) = &p.pboc else {
            return;
        };
        if let Some(pin) = &pboc.pin {
            self.add_pin(&format!("{name} payment PIN"), pin);
        }
        let pan = format!("{name} PAN");
        self.push(
            pboc.pan.as_bytes().to_vec(),
            Kind::Pan,
            &pan,
            "digits or BCD hex",
            false,
        );
        if let Some(bcd) = bcd_digits(&pboc.pan) {
            self.push(bcd, Kind::Pan, &pan, "BCD", false);
        }
        self.push(
            hex_spaced(&bcd_digits(&pboc.pan).unwrap_or_default()).into_bytes(),
            Kind::Pan,
            &pan,
            "BCD spaced hex",
            false,
        );
        self.add_name(&format!("{name} payment name"), &pboc.cardholder_name);
        for (field, text) in [
            ("IMK-AC", &pboc.imk_ac),
            ("IMK-SMI", &pboc.imk_smi),
            ("IMK-SMC", &pboc.imk_smc),
        ] {
            if let Ok(bytes) = hex::decode(text) {
                self.add_key(&format!("{name} {field}"), &bytes);
            }
        }
        if let Ok(keys) = pboc.card_keys() {
            for (field, key) in ["MK-AC", "MK-SMI", "MK-SMC"].iter().zip(keys.iter()) {
                self.add_key(&format!("{name} {field}"), key.expose_bytes());
            }
        }
        if let Some(seed) = &pboc.oda.seed {
            self.push(
                seed.as_bytes().to_vec(),
                Kind::Key,
                &format!("{name} ODA seed"),
                "text",
                false,
            );
        }
        for (field, primes) in [
            ("CA RSA", &pboc.oda.ca_rsa),
            ("issuer RSA", &pboc.oda.issuer_rsa),
            ("ICC RSA", &pboc.oda.icc_rsa),
        ] {
            if let Some(primes) = primes {
                for (which, text) in [("p", &primes.p), ("q", &primes.q)] {
                    // The first 16 bytes of a prime are as telling as all of it.
                    if let Ok(bytes) = hex::decode(text.replace([' ', ':'], "")) {
                        let head = bytes.get(..16).unwrap_or(&bytes);
                        self.add_key(&format!("{name} {field} {which}"), head);
                    }
                }
            }
        }
    }

    /// Add a secret read from a key file (a hex key, a token): its text, and its bytes if it
    /// is hex.
    pub fn add_secret_text(&mut self, label: &str, text: &str) {
        let text = text.trim();
        if text.len() < 8 {
            return;
        }
        self.add_text(Kind::Key, label, text);
        if let Ok(bytes) = hex::decode(text) {
            self.add_key(label, &bytes);
        }
    }

    /// Build the matcher after adding secrets.
    pub fn compile(&mut self) {
        self.matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&self.patterns)
            .ok();
    }

    /// How many patterns are looked for.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The findings in `data` (with an empty path).
    pub fn scan_bytes(&self, data: &[u8]) -> Vec<Finding> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for hit in m.find_overlapping_iter(data) {
            let Some(needle) = self.needles.get(hit.pattern().as_usize()) else {
                continue;
            };
            if needle.pin_token && !pin_token(data, hit.start(), hit.end()) {
                continue;
            }
            out.push(Finding {
                path: PathBuf::new(),
                offset: hit.start(),
                kind: needle.kind,
                label: needle.label.clone(),
                form: needle.form,
            });
        }
        out
    }
}

/// Digits at `start..end` standing alone (no digit before or after), with the word PIN (or
/// 密码, 口令) in the 32 bytes before them.
fn pin_token(data: &[u8], start: usize, end: usize) -> bool {
    let digit = |i: Option<usize>| i.and_then(|i| data.get(i)).is_some_and(u8::is_ascii_digit);
    if digit(start.checked_sub(1)) || digit(Some(end)) {
        return false;
    }
    let before = data
        .get(start.saturating_sub(32)..start)
        .unwrap_or_default();
    let lower: Vec<u8> = before.to_ascii_lowercase();
    lower.windows(3).any(|w| w == b"pin")
        || before
            .windows(6)
            .any(|w| w == "密码".as_bytes() || w == "口令".as_bytes())
}

/// What [`scan`] looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Files left out: too large, unreadable, older than `since`, or skipped on purpose; with
    /// the reason.
    pub skipped: BTreeMap<PathBuf, String>,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// How [`scan`] walks.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Only files modified after this time.
    pub since: Option<SystemTime>,
    /// Files (or directories) not to read: key files, say.
    pub skip: Vec<PathBuf>,
    /// Largest file read, in bytes (default 256 MiB).
    pub max_file: Option<u64>,
}

/// Scan `roots` (files or directories, recursively; symbolic links are not followed).
/// A root that does not exist is recorded as skipped.
pub fn scan(catalogue: &Catalogue, roots: &[PathBuf], options: &ScanOptions) -> Report {
    let mut report = Report::default();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(path) = stack.pop() {
        if options.skip.iter().any(|s| path.starts_with(s)) {
            report.skipped.insert(path, "skipped on request".into());
            continue;
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                report.skipped.insert(path, e.to_string());
                continue;
            }
        };
        if meta.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => {
                    let mut children: Vec<PathBuf> =
                        entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    children.reverse();
                    stack.extend(children);
                }
                Err(e) => {
                    report.skipped.insert(path, e.to_string());
                }
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        if let (Some(since), Ok(modified)) = (options.since, meta.modified())
            && modified <= since
        {
            continue;
        }
        if meta.len() > options.max_file.unwrap_or(256 << 20) {
            report
                .skipped
                .insert(path, format!("{} bytes, too large", meta.len()));
            continue;
        }
        match std::fs::read(&path) {
            // Programs carry the fixture profiles compiled in (the virtual card, the simulated
            // serial reader): not a leak, and not what is looked at here.
            Ok(data) if data.starts_with(b"\x7fELF") => {
                report.skipped.insert(
                    path,
                    "executable (programs carry the fixtures compiled in)".into(),
                );
            }
            Ok(data) => {
                report.files += 1;
                report.bytes += data.len() as u64;
                report
                    .findings
                    .extend(catalogue.scan_bytes(&data).into_iter().map(|mut f| {
                        f.path.clone_from(&path);
                        f
                    }));
            }
            Err(e) => {
                report.skipped.insert(path, e.to_string());
            }
        }
    }
    report
}

/// Where the test suite leaves what it writes (scripts/test.sh sets `SSCARD_ARTIFACTS`), or
/// `None` when it is not set.
pub fn artifacts_dir() -> Option<PathBuf> {
    std::env::var_os("SSCARD_ARTIFACTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_catalogue_finds_each_kind_and_never_shows_a_secret() {
        let c = Catalogue::fixtures();
        assert!(c.len() > 100, "{}", c.len());
        let debug = format!("{c:?}");
        assert!(!debug.contains("110105198703153011"), "{debug}");
        let text = "trace: pin=123456\n{\"ssn\":\"110105198703153011\"}\n";
        let found = c.scan_bytes(text.as_bytes());
        let kinds: Vec<Kind> = found.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&Kind::Pin), "{found:?}");
        assert!(kinds.contains(&Kind::IdNumber), "{found:?}");
        for f in &found {
            assert!(!f.to_string().contains("123456"), "{f}");
            assert!(!f.to_string().contains("110105198703153011"), "{f}");
        }
    }

    #[test]
    fn pin_digits_count_only_as_a_token_after_the_word_pin() {
        let c = Catalogue::fixtures();
        let pins = |t: &str| {
            c.scan_bytes(t.as_bytes())
                .into_iter()
                .filter(|f| f.kind == Kind::Pin)
                .count()
        };
        assert_eq!(pins("PIN: 123456"), 1);
        assert_eq!(pins("输入密码 123456"), 1);
        assert_eq!(pins("pin_tries 3, serial 0000000123456"), 0);
        assert_eq!(pins("amount 123456 fen"), 0);
        assert_eq!(pins("PIN 1234567"), 0);
    }
}
