//! The key store and the audit log, in one SQLite file.
//!
//! Keys are stored only as cryptograms under the LMK: the secret is encrypted with SM4-CBC under
//! a key derived from the LMK, with a fresh IV, and the record (label, type, scheme, IV,
//! cryptogram, check value) carries an HMAC-SM3 under another LMK-derived key. A record edited in
//! the file (a changed type, a swapped cryptogram) fails its MAC when the store is opened.
//!
//! The audit log is append-only: record `n` carries `HMAC-SM3(audit key, MAC(n-1) ‖ n ‖ time ‖
//! event ‖ label ‖ outcome)`, and the last sequence number and MAC are kept in a MACed head
//! row. A deleted, inserted or edited record breaks the chain; a truncated tail disagrees with
//! the head. Both are checked when the store is opened, which then refuses to start.
//! (Restoring an entire older copy of the file is not detectable from the file alone.)

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use card_core::crypto::block::{pad_method2, unpad_method2};
use card_core::crypto::sm3::hmac_sm3;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::keys::{KeyType, Lmk, Scheme, Secret};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("key store database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A key record fails its MAC: it was altered outside the HSM, or the LMK is wrong.
    #[error(
        "key record {label:?} has been tampered with (or the LMK is not the one it was stored under)"
    )]
    KeyTampered {
        /// The label.
        label: String,
    },
    /// The audit chain is broken.
    #[error("audit log tampered with at record {seq}: {reason}")]
    AuditTampered {
        /// First bad record.
        seq: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key with this label exists.
    #[error("a key labelled {0:?} exists already")]
    Exists(String),
    /// The store was made under another LMK.
    #[error("the key store was created under another LMK (check value {stored}, this LMK {given})")]
    WrongLmk {
        /// Check value recorded in the store.
        stored: String,
        /// Check value of the LMK given.
        given: String,
    },
}

/// A key as loaded from the store (secret decrypted, inside the HSM only).
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Label.
    pub label: String,
    /// Type.
    pub key_type: KeyType,
    /// Scheme.
    pub scheme: Scheme,
    /// The secret.
    pub secret: Secret,
    /// Key check value.
    pub kcv: [u8; 3],
    /// SM2 public key (X‖Y) for key pairs.
    pub public: Option<Vec<u8>>,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Sequence number from 1.
    pub seq: i64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// What happened (command code and name).
    pub event: String,
    /// Key label concerned, if any.
    pub label: String,
    /// Error code of the outcome.
    pub outcome: String,
}

/// The SQLite-backed store.
pub struct Store {
    conn: Connection,
    lmk: Lmk,
    head: (i64, [u8; 32]),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("audit_head", &self.head.0)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Store {
    /// Open (creating if needed) the store at `path`, checking every key record and the audit
    /// chain.
    pub fn open(path: &Path, lmk: Lmk) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?, lmk)
    }

    /// A store in memory (tests, in-process mode without persistence).
    pub fn in_memory(lmk: Lmk) -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, lmk)
    }

    fn init(conn: Connection, lmk: Lmk) -> Result<Self, StoreError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS keys (
                 label TEXT PRIMARY KEY,
                 key_type TEXT NOT NULL,
                 scheme TEXT NOT NULL,
                 iv BLOB NOT NULL,
                 cryptogram BLOB NOT NULL,
                 kcv BLOB NOT NULL,
                 public BLOB,
                 created_ms INTEGER NOT NULL,
                 mac BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS audit (
                 seq INTEGER PRIMARY KEY,
                 time_ms INTEGER NOT NULL,
                 event TEXT NOT NULL,
                 label TEXT NOT NULL,
                 outcome TEXT NOT NULL,
                 mac BLOB NOT NULL
             );",
        )?;
        let check = hex::encode_upper(lmk.check_value());
        let mut store = Self {
            conn,
            lmk,
            head: (0, [0u8; 32]),
        };
        match store.meta_bytes("lmk_check")? {
            Some(s) if s != check.as_bytes() => {
                return Err(StoreError::WrongLmk {
                    stored: String::from_utf8_lossy(&s).into_owned(),
                    given: check,
                });
            }
            Some(_) => {}
            None => {
                store.conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('lmk_check', ?1)",
                    params![check.as_bytes()],
                )?;
            }
        }
        store.head = store.verify_audit()?;
        Ok(store)
    }

    /// MAC over a key record's fields: label, type, scheme, IV, cryptogram, KCV, public key.
    fn key_mac(&self, fields: [&[u8]; 7]) -> [u8; 32] {
        let mut data = Vec::with_capacity(160);
        for part in fields {
            data.extend_from_slice(&(part.len() as u32).to_be_bytes());
            data.extend_from_slice(part);
        }
        hmac_sm3(self.lmk.mac_key(), &data)
    }

    /// Store a new key under the LMK.
    pub fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut iv = [0u8; 16];
        getrandom::fill(&mut iv).map_err(|_| StoreError::Sql(rusqlite::Error::InvalidQuery))?;
        let padded = Zeroizing::new(pad_method2(key.secret.expose(), 16));
        let ct = self
            .lmk
            .enc_key()
            .encrypt_cbc(&iv, &padded)
            .map_err(|_| StoreError::Sql(rusqlite::Error::InvalidQuery))?;
        let scheme = [key.scheme.letter()];
        let scheme = std::str::from_utf8(&scheme).unwrap_or("?");
        let mac = self.key_mac([
            key.label.as_bytes(),
            key.key_type.code().as_bytes(),
            scheme.as_bytes(),
            &iv,
            &ct,
            &key.kcv,
            key.public.as_deref().unwrap_or_default(),
        ]);
        let r = self.conn.execute(
            "INSERT INTO keys (label, key_type, scheme, iv, cryptogram, kcv, public, created_ms, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![key.label, key.key_type.code(), scheme, &iv[..], ct, &key.kcv[..], key.public, now_ms(), &mac[..]],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Exists(key.label.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Load and check every key.
    pub fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT label, key_type, scheme, iv, cryptogram, kcv, public, mac FROM keys ORDER BY label",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
                r.get::<_, Vec<u8>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (label, key_type, scheme, iv, ct, kcv, public, mac) = row?;
            let tampered = || StoreError::KeyTampered {
                label: label.clone(),
            };
            let expected = self.key_mac([
                label.as_bytes(),
                key_type.as_bytes(),
                scheme.as_bytes(),
                &iv,
                &ct,
                &kcv,
                public.as_deref().unwrap_or_default(),
            ]);
            if !card_core_ct_eq(&expected, &mac) {
                return Err(tampered());
            }
            let key_type = KeyType::parse(&key_type).map_err(|_| tampered())?;
            let scheme = Scheme::parse(scheme.as_bytes().first().copied().unwrap_or(0))
                .map_err(|_| tampered())?;
            let iv: [u8; 16] = iv.as_slice().try_into().map_err(|_| tampered())?;
            let padded = Zeroizing::new(
                self.lmk
                    .enc_key()
                    .decrypt_cbc(&iv, &ct)
                    .map_err(|_| tampered())?,
            );
            let secret = unpad_method2(&padded, 16).map_err(|_| tampered())?;
            let kcv: [u8; 3] = kcv.as_slice().try_into().map_err(|_| tampered())?;
            out.push(StoredKey {
                label,
                key_type,
                scheme,
                secret: Secret::new(secret.to_vec()),
                kcv,
                public,
            });
        }
        Ok(out)
    }

    fn audit_mac(&self, prev: &[u8; 32], rec: &AuditRecord) -> [u8; 32] {
        let mut data = Vec::with_capacity(96);
        data.extend_from_slice(prev);
        data.extend_from_slice(&rec.seq.to_be_bytes());
        data.extend_from_slice(&rec.time_ms.to_be_bytes());
        for part in [
            rec.event.as_bytes(),
            rec.label.as_bytes(),
            rec.outcome.as_bytes(),
        ] {
            data.extend_from_slice(&(part.len() as u32).to_be_bytes());
            data.extend_from_slice(part);
        }
        hmac_sm3(self.lmk.audit_key(), &data)
    }

    fn head_mac(&self, seq: i64, mac: &[u8; 32]) -> [u8; 32] {
        let mut data = b"head".to_vec();
        data.extend_from_slice(&seq.to_be_bytes());
        data.extend_from_slice(mac);
        hmac_sm3(self.lmk.audit_key(), &data)
    }

    /// Check the whole audit chain and the head; returns the head.
    pub fn verify_audit(&self) -> Result<(i64, [u8; 32]), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, time_ms, event, label, outcome, mac FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                AuditRecord {
                    seq: r.get(0)?,
                    time_ms: r.get(1)?,
                    event: r.get(2)?,
                    label: r.get(3)?,
                    outcome: r.get(4)?,
                },
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        let mut prev = [0u8; 32];
        let mut expected_seq = 1;
        for row in rows {
            let (rec, mac) = row?;
            if rec.seq != expected_seq {
                return Err(StoreError::AuditTampered {
                    seq: expected_seq,
                    reason: "record missing",
                });
            }
            let want = self.audit_mac(&prev, &rec);
            if !card_core_ct_eq(&want, &mac) {
                return Err(StoreError::AuditTampered {
                    seq: rec.seq,
                    reason: "record altered or chain broken",
                });
            }
            prev = want;
            expected_seq += 1;
        }
        let last = expected_seq - 1;
        let head = match (
            self.meta_bytes("audit_head_seq")?,
            self.meta_bytes("audit_head_mac")?,
            self.meta_bytes("audit_head_check")?,
        ) {
            (Some(s), Some(m), Some(c)) => {
                let s = std::str::from_utf8(&s)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                Some((s, m, c))
            }
            (None, None, None) => None,
            _ => {
                return Err(StoreError::AuditTampered {
                    seq: last,
                    reason: "head malformed",
                });
            }
        };
        match head {
            None if last == 0 => Ok((0, prev)),
            None => Err(StoreError::AuditTampered {
                seq: last,
                reason: "head missing",
            }),
            Some((seq, mac, check)) => {
                let mac_arr: [u8; 32] =
                    mac.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::AuditTampered {
                            seq,
                            reason: "head malformed",
                        })?;
                if !card_core_ct_eq(&self.head_mac(seq, &mac_arr), &check) {
                    return Err(StoreError::AuditTampered {
                        seq,
                        reason: "head altered",
                    });
                }
                if seq != last || mac_arr != prev {
                    return Err(StoreError::AuditTampered {
                        seq: last.min(seq) + 1,
                        reason: "records after the last one are missing",
                    });
                }
                Ok((seq, prev))
            }
        }
    }

    /// A value of the meta table as bytes, whatever SQLite type it was stored as.
    fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::types::Value;
        let v: Option<Value> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match v {
            None | Some(Value::Null) => None,
            Some(Value::Blob(b)) => Some(b),
            Some(Value::Text(t)) => Some(t.into_bytes()),
            Some(Value::Integer(i)) => Some(i.to_string().into_bytes()),
            Some(Value::Real(r)) => Some(r.to_string().into_bytes()),
        })
    }

    /// Append an audit record.
    pub fn audit(&mut self, event: &str, label: &str, outcome: &str) -> Result<i64, StoreError> {
        let rec = AuditRecord {
            seq: self.head.0 + 1,
            time_ms: now_ms(),
            event: event.to_string(),
            label: label.to_string(),
            outcome: outcome.to_string(),
        };
        let mac = self.audit_mac(&self.head.1, &rec);
        let check = self.head_mac(rec.seq, &mac);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO audit (seq, time_ms, event, label, outcome, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![rec.seq, rec.time_ms, rec.event, rec.label, rec.outcome, &mac[..]],
        )?;
        for (name, value) in [
            ("audit_head_seq", rec.seq.to_string().into_bytes()),
            ("audit_head_mac", mac.to_vec()),
            ("audit_head_check", check.to_vec()),
        ] {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )?;
        }
        tx.commit()?;
        self.head = (rec.seq, mac);
        Ok(rec.seq)
    }

    /// All audit records, oldest first.
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, time_ms, event, label, outcome FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                time_ms: r.get(1)?,
                event: r.get(2)?,
                label: r.get(3)?,
                outcome: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn card_core_ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
