//! The HSM core: keys in memory (decrypted once at start, zeroized on drop), the key store
//! behind them, and the host commands. [`Hsm::execute`] takes one message (header, command code,
//! fields) and returns the response message; the TCP server and the in-process client both call
//! it, so they run the same code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use card_core::crypto::kdf::{self, CardAlgorithm, CardKey};
use card_core::crypto::sm2::{DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey};
use card_core::crypto::sm4::Sm4MacRule;
use card_core::crypto::tdes::{TdesKey, set_odd_parity};
use card_core::ssse::update as ssse_update;
use zeroize::Zeroizing;

use crate::codes::ErrorCode;
use crate::fields::{Fields, push_hex};
use crate::frame::{build_frame_error, build_response, parse_request};
use crate::keys::{BlockKey, KeyType, Lmk, Scheme, Secret, check_value};
use crate::store::{AuditRecord, Store, StoreError, StoredKey};

/// Version reported by diagnostics.
pub const VERSION: &str = concat!("sscard-hsm-sim ", env!("CARGO_PKG_VERSION"));

/// A key ready for use.
struct LoadedKey {
    key_type: KeyType,
    scheme: Scheme,
    secret: Secret,
    kcv: [u8; 3],
    public: Option<Vec<u8>>,
    block: Option<BlockKey>,
    /// The key as a card-key-derivation key (issuer master keys), its schedule made once at
    /// load instead of per command: a third of the key schedules of a `KQ`
    /// (docs/benchmarks.md, the profile of hsm-sim).
    card: Option<CardKey>,
}

impl LoadedKey {
    fn from_stored(k: StoredKey) -> Result<Self, ErrorCode> {
        let block = match k.scheme {
            Scheme::Tdes | Scheme::Sm4 => Some(BlockKey::new(k.scheme, &k.secret)?),
            Scheme::Sm2 => None,
        };
        let card = match k.scheme {
            Scheme::Tdes => CardKey::from_slice(CardAlgorithm::Tdes, k.secret.expose()).ok(),
            Scheme::Sm4 => CardKey::from_slice(CardAlgorithm::Sm4, k.secret.expose()).ok(),
            Scheme::Sm2 => None,
        };
        Ok(Self {
            key_type: k.key_type,
            scheme: k.scheme,
            secret: k.secret,
            kcv: k.kcv,
            public: k.public,
            block,
            card,
        })
    }

    fn block(&self) -> Result<&BlockKey, ErrorCode> {
        self.block.as_ref().ok_or(ErrorCode::SchemeNotPermitted)
    }

    fn card_key(&self) -> Result<&CardKey, ErrorCode> {
        match self.scheme {
            Scheme::Tdes | Scheme::Sm4 => self.card.as_ref().ok_or(ErrorCode::WrongKeyLength),
            Scheme::Sm2 => Err(ErrorCode::SchemeNotPermitted),
        }
    }

    fn sm2(&self) -> Result<Sm2PrivateKey, ErrorCode> {
        if self.scheme != Scheme::Sm2 {
            return Err(ErrorCode::SchemeNotPermitted);
        }
        Sm2PrivateKey::from_bytes(self.secret.expose()).map_err(|_| ErrorCode::Internal)
    }
}

/// Errors opening the HSM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The store could not be opened or failed its checks.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key is unusable.
    #[error("stored key {label:?} is unusable: {code}")]
    BadKey {
        /// The label.
        label: String,
        /// Why.
        code: ErrorCode,
    },
    /// A console operation was refused.
    #[error("refused: {0}")]
    Refused(ErrorCode),
}

/// Counters for diagnostics and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands executed.
    pub commands: AtomicU64,
    /// Commands answered with an error.
    pub errors: AtomicU64,
}

/// The HSM.
pub struct Hsm {
    store: Mutex<Store>,
    keys: RwLock<HashMap<String, Arc<LoadedKey>>>,
    lmk_check: [u8; 8],
    header_len: usize,
    stats: Stats,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("lmk_check", &hex::encode_upper(self.lmk_check))
            .field("header_len", &self.header_len)
            .finish_non_exhaustive()
    }
}

/// Default header length (characters).
pub const DEFAULT_HEADER_LEN: usize = 4;

impl Hsm {
    /// Open the key store at `path` under `lmk`, checking every key and the audit log.
    pub fn open(path: &Path, lmk: Lmk, header_len: usize) -> Result<Self, HsmError> {
        let check = lmk.check_value();
        Self::with_store(Store::open(path, lmk)?, check, header_len)
    }

    /// An HSM whose key store lives in memory.
    pub fn in_memory(lmk: Lmk, header_len: usize) -> Result<Self, HsmError> {
        let check = lmk.check_value();
        Self::with_store(Store::in_memory(lmk)?, check, header_len)
    }

    fn with_store(
        mut store: Store,
        lmk_check: [u8; 8],
        header_len: usize,
    ) -> Result<Self, HsmError> {
        let mut keys = HashMap::new();
        for k in store.load_keys()? {
            let label = k.label.clone();
            let loaded = LoadedKey::from_stored(k).map_err(|code| HsmError::BadKey {
                label: label.clone(),
                code,
            })?;
            keys.insert(label, Arc::new(loaded));
        }
        store.audit("START", "", &format!("{} keys", keys.len()))?;
        Ok(Self {
            store: Mutex::new(store),
            keys: RwLock::new(keys),
            lmk_check,
            header_len,
            stats: Stats::default(),
        })
    }

    /// Header length in characters.
    pub const fn header_len(&self) -> usize {
        self.header_len
    }

    /// Counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The audit records.
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, HsmError> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(store.audit_records()?)
    }

    fn key(&self, label: &str) -> Result<Arc<LoadedKey>, ErrorCode> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(label).cloned().ok_or(ErrorCode::KeyNotFound)
    }

    fn key_of(&self, label: &str, types: &[KeyType]) -> Result<Arc<LoadedKey>, ErrorCode> {
        let k = self.key(label)?;
        if types.contains(&k.key_type) {
            Ok(k)
        } else {
            Err(ErrorCode::UsageNotPermitted)
        }
    }

    fn audit(&self, event: &str, label: &str, outcome: ErrorCode) {
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An audit write that fails makes the command fail too: see `store_key`.
        let _ = store.audit(event, label, outcome.as_str());
    }

    fn store_key(
        &self,
        label: &str,
        key_type: KeyType,
        scheme: Scheme,
        secret: Secret,
    ) -> Result<[u8; 3], ErrorCode> {
        let kcv = check_value(scheme, &secret)?;
        let public = match scheme {
            Scheme::Sm2 => Some(
                Sm2PrivateKey::from_bytes(secret.expose())
                    .map_err(|_| ErrorCode::WrongKeyLength)?
                    .public_key()
                    .to_xy()
                    .to_vec(),
            ),
            _ => None,
        };
        let stored = StoredKey {
            label: label.to_string(),
            key_type,
            scheme,
            secret,
            kcv,
            public,
        };
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.contains_key(label) {
            return Err(ErrorCode::KeyExists);
        }
        {
            let store = self
                .store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match store.insert(&stored) {
                Ok(()) => {}
                Err(StoreError::Exists(_)) => return Err(ErrorCode::KeyExists),
                Err(_) => return Err(ErrorCode::Internal),
            }
        }
        keys.insert(label.to_string(), Arc::new(LoadedKey::from_stored(stored)?));
        Ok(kcv)
    }

    /// Console operation (the key ceremony): form a key from clear components, XORed together,
    /// and store it under the LMK. This is not reachable through host commands; clear key
    /// material never travels over the network.
    pub fn form_key_from_components(
        &self,
        label: &str,
        key_type: KeyType,
        scheme: Scheme,
        components: &[&[u8]],
    ) -> Result<[u8; 3], HsmError> {
        let result = (|| {
            if !scheme.fits(key_type) || scheme == Scheme::Sm2 {
                return Err(ErrorCode::SchemeNotPermitted);
            }
            let mut key = Zeroizing::new(vec![0u8; scheme.secret_len()]);
            if components.is_empty() {
                return Err(ErrorCode::InvalidInput);
            }
            for c in components {
                if c.len() != key.len() {
                    return Err(ErrorCode::WrongKeyLength);
                }
                for (k, b) in key.iter_mut().zip(c.iter()) {
                    *k ^= b;
                }
            }
            if scheme == Scheme::Tdes {
                set_odd_parity(&mut key);
            }
            self.store_key(label, key_type, scheme, Secret::new(key.to_vec()))
        })();
        self.audit(
            "CONSOLE form key",
            label,
            result.err().unwrap_or(ErrorCode::Ok),
        );
        result.map_err(HsmError::Refused)
    }

    /// Execute one message (header, command code, fields; no length prefix) and return the
    /// response message.
    pub fn execute(&self, message: &[u8]) -> Vec<u8> {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let req = match parse_request(message, self.header_len) {
            Ok(r) => r,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                return build_frame_error(message, self.header_len, e.code());
            }
        };
        let mut body = Vec::new();
        let result = self.dispatch(req.command, &mut Fields::new(req.body), &mut body);
        let code = match result {
            Ok(()) => ErrorCode::Ok,
            Err(code) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                body.clear();
                code
            }
        };
        build_response(req.header, req.command, code, &body)
    }

    fn dispatch(
        &self,
        command: [u8; 2],
        f: &mut Fields<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), ErrorCode> {
        match &command {
            b"A0" => self.generate_key(f, out),
            b"A6" => self.import_key(f, out),
            b"A8" => self.export_key(f, out),
            b"KD" => self.derive_card_key(f, out),
            b"KE" => self.external_auth_cryptogram(f, out),
            b"KF" => self.derive_maintenance_key(f, out),
            b"KQ" => self.verify_arqc(f, out),
            b"M6" => self.generate_mac(f, out),
            b"M8" => self.verify_mac(f, out),
            b"K3" => self.sign_certificate(f, out),
            b"K7" => self.public_key(f, out),
            b"NC" => self.diagnostics(f, out),
            _ => Err(ErrorCode::CommandDisabled),
        }
    }

    /// `A0`: generate a key. Fields: key type (3), scheme (1), label (8). Answer: KCV (6 hex),
    /// and for SM2 key pairs the public key X‖Y (128 hex).
    fn generate_key(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let key_type = KeyType::parse(f.text(3)?)?;
        let scheme = Scheme::parse(f.char()?)?;
        let label = f.label()?;
        f.end()?;
        let result = (|| {
            if !scheme.fits(key_type) {
                return Err(ErrorCode::SchemeNotPermitted);
            }
            let secret = match scheme {
                Scheme::Sm2 => {
                    let k = Sm2PrivateKey::generate_os().map_err(|_| ErrorCode::Internal)?;
                    Secret::new(k.expose_bytes().to_vec())
                }
                Scheme::Tdes | Scheme::Sm4 => {
                    let mut bytes = Zeroizing::new(vec![0u8; scheme.secret_len()]);
                    getrandom::fill(&mut bytes).map_err(|_| ErrorCode::Internal)?;
                    if scheme == Scheme::Tdes {
                        set_odd_parity(&mut bytes);
                    }
                    Secret::new(bytes.to_vec())
                }
            };
            self.store_key(&label, key_type, scheme, secret)
        })();
        self.audit(
            "A0 generate key",
            &label,
            result.err().unwrap_or(ErrorCode::Ok),
        );
        let kcv = result?;
        push_hex(out, &kcv);
        if let Some(public) = &self.key(&label)?.public {
            push_hex(out, public);
        }
        Ok(())
    }

    /// `A6`: import a key encrypted under a ZMK (ECB). Fields: key type (3), scheme (1), ZMK
    /// label (8), key under ZMK (hex, 32 or 64 characters), KCV (6 hex), new label (8).
    fn import_key(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let key_type = KeyType::parse(f.text(3)?)?;
        let scheme = Scheme::parse(f.char()?)?;
        let zmk_label = f.label()?;
        let cryptogram = f.hex(scheme.secret_len())?;
        let kcv: [u8; 3] = f.hex_array()?;
        let label = f.label()?;
        f.end()?;
        let result = (|| {
            if !scheme.fits(key_type) {
                return Err(ErrorCode::SchemeNotPermitted);
            }
            let zmk = self.key_of(&zmk_label, &[KeyType::Zmk])?;
            let clear = zmk.block()?.decrypt_ecb(&cryptogram)?;
            let secret = Secret::new(clear.to_vec());
            if check_value(scheme, &secret)? != kcv {
                return Err(ErrorCode::SourceKeyParity);
            }
            self.store_key(&label, key_type, scheme, secret)
        })();
        self.audit(
            "A6 import key",
            &label,
            result.err().unwrap_or(ErrorCode::Ok),
        );
        push_hex(out, &result?);
        Ok(())
    }

    /// `A8`: export a key under a ZMK (ECB). Fields: key type (3), ZMK label (8), key label
    /// (8). Only key types that may leave the HSM are exported. Answer: cryptogram (hex), KCV.
    fn export_key(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let key_type = KeyType::parse(f.text(3)?)?;
        let zmk_label = f.label()?;
        let label = f.label()?;
        f.end()?;
        let result = (|| {
            let key = self.key(&label)?;
            if key.key_type != key_type {
                return Err(ErrorCode::KeyTypeNotPermitted);
            }
            if !key_type.exportable() {
                return Err(ErrorCode::NotAuthorised);
            }
            let zmk = self.key_of(&zmk_label, &[KeyType::Zmk])?;
            let ct = zmk.block()?.encrypt_ecb(key.secret.expose())?;
            Ok((ct, key.kcv))
        })();
        self.audit(
            "A8 export key",
            &label,
            result.as_ref().err().copied().unwrap_or(ErrorCode::Ok),
        );
        let (ct, kcv) = result?;
        push_hex(out, &ct);
        push_hex(out, &kcv);
        Ok(())
    }

    /// PAN (2-digit length and digits) and PAN sequence number (2 digits).
    fn pan_psn(f: &mut Fields<'_>) -> Result<(String, String), ErrorCode> {
        let n = f.decimal(2)?;
        if !(12..=19).contains(&n) {
            return Err(ErrorCode::InvalidInput);
        }
        let pan = f.text(n)?.to_string();
        if !pan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ErrorCode::InvalidInput);
        }
        let psn = f.text(2)?.to_string();
        if !psn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ErrorCode::InvalidInput);
        }
        Ok((pan, psn))
    }

    /// `KD` (simulator): derive a card key from an issuer master key (JR/T 0025.7 §11.1.4,
    /// JR/T 0025.17 §8.1.4) and export it under a ZMK for personalisation. Fields: master key
    /// label (8), ZMK label (8), PAN, PSN. Answer: card key under ZMK (32 hex), KCV (6 hex).
    fn derive_card_key(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let mk_label = f.label()?;
        let zmk_label = f.label()?;
        let (pan, psn) = Self::pan_psn(f)?;
        f.end()?;
        self.export_derived("KD derive card key", &mk_label, &zmk_label, out, || {
            let mk = self.key_of(&mk_label, &[KeyType::MkAc, KeyType::MkSmi, KeyType::MkSmc])?;
            kdf::derive_card_key(mk.card_key()?, &pan, Some(&psn))
                .map_err(|_| ErrorCode::InvalidInput)
        })
    }

    /// The end of `KD` and `KF`: the card key `derive` makes, under the ZMK `zmk_label`, and its
    /// check value; audited as `what` on `mk_label`.
    fn export_derived(
        &self,
        what: &str,
        mk_label: &str,
        zmk_label: &str,
        out: &mut Vec<u8>,
        derive: impl FnOnce() -> Result<CardKey, ErrorCode>,
    ) -> Result<(), ErrorCode> {
        let result = (|| {
            let card = derive()?;
            let zmk = self.key_of(zmk_label, &[KeyType::Zmk])?;
            let ct = zmk.block()?.encrypt_ecb(card.expose_bytes())?;
            Ok((ct, card.kcv()))
        })();
        self.audit(
            what,
            mk_label,
            result.as_ref().err().copied().unwrap_or(ErrorCode::Ok),
        );
        let (ct, kcv) = result?;
        push_hex(out, &ct);
        push_hex(out, &kcv);
        Ok(())
    }

    /// The SM4 maintenance master key under `label` (type `409`).
    fn maintenance_master(&self, label: &str) -> Result<Arc<LoadedKey>, ErrorCode> {
        let mk = self.key_of(label, &[KeyType::MkMnt])?;
        if mk.scheme != Scheme::Sm4 {
            return Err(ErrorCode::SchemeNotPermitted);
        }
        Ok(mk)
    }

    /// The card's maintenance key, derived from the master by the card identifier's serial
    /// (card-core `ssse::update::derive_maintenance_key`).
    fn card_maintenance_key(
        mk: &LoadedKey,
        card_id: &[u8; 16],
    ) -> Result<card_core::crypto::sm4::Sm4Key, ErrorCode> {
        let CardKey::Sm4(master) = mk.card_key()? else {
            return Err(ErrorCode::SchemeNotPermitted);
        };
        ssse_update::derive_maintenance_key(master, card_id).map_err(|_| ErrorCode::InvalidInput)
    }

    /// `KE`: the EXTERNAL AUTHENTICATE cryptogram for a social-security card's challenge.
    /// Fields: maintenance master key label (8, type `409`), card identifier (32 hex, EF05 tag
    /// 01), challenge (16 hex). Answer: cryptogram (32 hex), `SM4(K)[challenge ‖ 80 00..]` with
    /// `K` the card's maintenance key. The master never leaves the HSM.
    fn external_auth_cryptogram(
        &self,
        f: &mut Fields<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), ErrorCode> {
        let label = f.label()?;
        let card_id: [u8; 16] = f.hex_array()?;
        let challenge: [u8; ssse_update::CHALLENGE_LEN] = f.hex_array()?;
        f.end()?;
        let mk = self.maintenance_master(&label)?;
        let key = Self::card_maintenance_key(&mk, &card_id)?;
        let cryptogram = Zeroizing::new(ssse_update::external_auth_cryptogram(&key, &challenge));
        push_hex(out, cryptogram.as_slice());
        Ok(())
    }

    /// `KF`: derive a social-security card's maintenance key and export it under a ZMK, for
    /// personalisation. Fields: maintenance master key label (8), ZMK label (8), card
    /// identifier (32 hex). Answer: card key under ZMK (32 hex), KCV (6 hex).
    fn derive_maintenance_key(
        &self,
        f: &mut Fields<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), ErrorCode> {
        let mk_label = f.label()?;
        let zmk_label = f.label()?;
        let card_id: [u8; 16] = f.hex_array()?;
        f.end()?;
        self.export_derived(
            "KF derive maintenance key",
            &mk_label,
            &zmk_label,
            out,
            || {
                let mk = self.maintenance_master(&mk_label)?;
                Self::card_maintenance_key(&mk, &card_id).map(CardKey::Sm4)
            },
        )
    }

    /// `KQ`: verify an ARQC and/or generate an ARPC (payShield's KQ, with PBOC session keys).
    /// Fields: mode (`0` verify, `1` verify and ARPC, `2` ARPC only), MK-AC label (8), PAN,
    /// PSN, ATC (4 hex), transaction data (length 4 hex, data hex), `;`, ARQC (16 hex), ARC (4
    /// hex). The algorithm is the master key's: 3DES (JR/T 0025.7 §11) or SM4 (JR/T 0025.17 §8,
    /// leftmost-bytes MAC rule). Answer: ARPC (16 hex) in modes 1 and 2.
    fn verify_arqc(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let mode = f.char()?;
        if !matches!(mode, b'0' | b'1' | b'2') {
            return Err(ErrorCode::InvalidInput);
        }
        let label = f.label()?;
        let (pan, psn) = Self::pan_psn(f)?;
        let atc = u16::try_from(f.hex_number(4)?).map_err(|_| ErrorCode::InvalidInput)?;
        let data = f.var_hex()?;
        f.delimiter(b';')?;
        let arqc: [u8; 8] = f.hex_array()?;
        let arc: [u8; 2] = f.hex_array()?;
        f.end()?;
        let mk = self.key_of(&label, &[KeyType::MkAc])?;
        let card = kdf::derive_card_key(mk.card_key()?, &pan, Some(&psn))
            .map_err(|_| ErrorCode::InvalidInput)?;
        let session = kdf::derive_session_key(&card, atc);
        if mode != b'2' {
            let expected = kdf::application_cryptogram(&session, &data, Sm4MacRule::default());
            if !ct_eq(&expected, &arqc) {
                return Err(ErrorCode::VerificationFailure);
            }
        }
        if mode != b'0' {
            push_hex(out, &kdf::arpc(&session, &arqc, &arc));
        }
        Ok(())
    }

    /// `M6`: generate a MAC with a ZAK: ISO 9797-1 algorithm 3 for 3DES keys, the PBOC SM4 MAC
    /// for SM4 keys. Fields: key label (8), data (length 4 hex, data hex). Answer: MAC (16 hex).
    fn generate_mac(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let label = f.label()?;
        let data = f.var_hex()?;
        f.end()?;
        let key = self.key_of(&label, &[KeyType::Zak])?;
        push_hex(out, &mac(key.block()?, &data));
        Ok(())
    }

    /// `M8`: verify a MAC. Fields: key label (8), data (length 4 hex, data hex), `;`, MAC (16
    /// hex). Error `01` if it does not match.
    fn verify_mac(&self, f: &mut Fields<'_>, _out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let label = f.label()?;
        let data = f.var_hex()?;
        f.delimiter(b';')?;
        let given: [u8; 8] = f.hex_array()?;
        f.end()?;
        let key = self.key_of(&label, &[KeyType::Zak])?;
        if ct_eq(&mac(key.block()?, &data), &given) {
            Ok(())
        } else {
            Err(ErrorCode::VerificationFailure)
        }
    }

    /// `K3` (simulator): SM2-sign a PBOC certificate or signed data (JR/T 0025.17 §5) with the
    /// distinguishing ID `1234567812345678`. Fields: signer label (8), data to sign (length 4
    /// hex, data hex), whose first byte is the format: `12` issuer certificate (CA key), `13`
    /// signed static data or `14` ICC certificate (issuer key). Answer: r‖s (128 hex).
    fn sign_certificate(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let label = f.label()?;
        let data = f.var_hex()?;
        f.end()?;
        let result = (|| {
            let allowed = match data.first() {
                Some(0x12) => KeyType::Sm2Ca,
                Some(0x13 | 0x14) => KeyType::Sm2Issuer,
                _ => return Err(ErrorCode::InvalidInput),
            };
            let key = self.key_of(&label, &[allowed])?;
            let sig = key
                .sm2()?
                .sign(DEFAULT_ID, &data)
                .map_err(|_| ErrorCode::Internal)?;
            Ok(sig.to_bytes())
        })();
        self.audit(
            "K3 sign certificate",
            &label,
            result.as_ref().err().copied().unwrap_or(ErrorCode::Ok),
        );
        push_hex(out, &result?);
        Ok(())
    }

    /// `K7` (simulator): the public key of an SM2 key pair. Fields: label (8). Answer: key type
    /// (3), public key X‖Y (128 hex).
    fn public_key(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        let label = f.label()?;
        f.end()?;
        let key = self.key(&label)?;
        let public = key.public.as_ref().ok_or(ErrorCode::SchemeNotPermitted)?;
        // Check the stored public key still matches the private key.
        let derived = key.sm2()?.public_key().to_xy();
        if derived.as_slice() != public.as_slice() || Sm2PublicKey::from_xy(public).is_err() {
            return Err(ErrorCode::Internal);
        }
        out.extend_from_slice(key.key_type.code().as_bytes());
        push_hex(out, public);
        Ok(())
    }

    /// `NC`: diagnostics. No fields. Answer: LMK check value (16 hex), then the version.
    fn diagnostics(&self, f: &mut Fields<'_>, out: &mut Vec<u8>) -> Result<(), ErrorCode> {
        f.end()?;
        push_hex(out, &self.lmk_check);
        out.extend_from_slice(VERSION.as_bytes());
        Ok(())
    }
}

/// The MAC of a ZAK: retail MAC for 3DES, PBOC SM4 MAC (left 8 bytes) for SM4.
fn mac(key: &BlockKey, data: &[u8]) -> [u8; 8] {
    match key {
        BlockKey::Tdes(k) => k.retail_mac(data),
        BlockKey::Sm4(k) => k.pboc_mac(data, Sm4MacRule::default()),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A 3DES key from 16 bytes (exposed for tests that build vectors).
pub fn tdes(bytes: [u8; 16]) -> TdesKey {
    TdesKey::new(bytes)
}
