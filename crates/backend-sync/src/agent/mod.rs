//! The sync agent: a process of its own (`sync-agent`) or a library inside the kiosk. It reads
//! the ledger, uploads final entries in sequence order in batches, stores the server's answer
//! for each entry, closes settlement batches, and downloads the hot list, parameters and
//! cardholder records, verifying the server's signature on each.
//!
//! Reliability, as store-and-forward systems do it (jPOS SAF, UnionPay POS):
//! - **at-least-once delivery, exactly-once effect**: an entry stays `pending` until the answer
//!   for it is stored; a crash anywhere resends it, and the server answers `duplicate`;
//! - **transient errors** are retried with exponential backoff and full jitter
//!   ([`backoff`]); **permanent** ones stop the run and are recorded for `status`;
//! - **expiry**: entries whose intent is older than `max_age` go to the dead-letter state and
//!   are never sent (a month-old payment should reach an operator, not the host);
//! - **checkpoint**: the ledger itself; resuming needs no other state.
//!
//! Test hooks ([`crate::pause`]): `before_send`, `after_send` (answer received, not stored)
//! and `mid_batch` (one batch stored, the next not sent).

pub mod backoff;
pub mod client;

use std::path::PathBuf;
use std::time::Duration;

use card_core::crypto::sm2::{Sm2PrivateKey, Sm2PublicKey};
use reqwest::Method;

use crate::clock;
use crate::entry::TerminalId;
use crate::field_crypto::FieldKey;
use crate::ledger::{Ledger, LedgerError, UploadState};
use crate::pause::PauseHook;
use crate::signing;
use crate::wire::{
    self, BatchCloseRequest, BatchCloseResponse, CardholderPage, EntryStatus, HotListDelta,
    ParameterSet, RegisterRequest, RegisterResponse, SignedEnvelope, UploadRequest, UploadResponse,
};
use backoff::RetryPolicy;
use client::{CallError, SyncClient, open_envelope};

/// Errors of the agent, one per cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The ledger failed.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The server refused a request for good, or a download was not signed by it.
    #[error("{0}")]
    Call(CallError),
    /// A transient failure lasted through every attempt.
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The terminal has not registered yet (no server key in the ledger).
    #[error("the terminal is not registered: run `sync-agent register` first")]
    NotRegistered,
    /// The server's answer does not match the request (wrong entries, wrong order).
    #[error("the server's answer does not match the batch sent")]
    AnswerMismatch,
    /// A key file could not be read or holds no valid key.
    #[error("key: {0}")]
    Key(String),
}

/// What the agent needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Server base URL.
    pub server: String,
    /// Ledger file.
    pub ledger: PathBuf,
    /// Terminal.
    pub terminal: TerminalId,
    /// CA certificate (PEM) for TLS, if any.
    pub ca_pem: Option<Vec<u8>>,
    /// Entries per upload.
    pub batch_size: usize,
    /// Entries older than this are dead-lettered instead of sent.
    pub max_age: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Upload progress, reported after each stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Entries answered so far in this run.
    pub done: u64,
    /// Entries pending at the start of the run (plus requeued ones).
    pub total: u64,
    /// Booked now.
    pub booked: u64,
    /// Already booked earlier.
    pub duplicate: u64,
    /// Rejected.
    pub rejected: u64,
    /// Of `booked`, those booked unverified (recovered debits, no cryptogram).
    pub unverified: u64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Upload counts.
    pub upload: Progress,
    /// Sequence numbers rejected, with the reason.
    pub rejected: Vec<(u64, String)>,
    /// Entries moved to the dead-letter state.
    pub dead_lettered: u64,
    /// Batches closed, and whether each balanced.
    pub batches: Vec<BatchCloseResponse>,
    /// Hot-list version after the run.
    pub hotlist_version: u64,
    /// Parameters version after the run.
    pub params_version: u64,
    /// Cardholder version after the run.
    pub cardholders_version: u64,
}

/// The agent of one terminal.
pub struct Agent {
    ledger: Ledger,
    client: SyncClient,
    config: AgentConfig,
    pause_before_send: PauseHook,
    pause_after_send: PauseHook,
    pause_mid_batch: PauseHook,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("terminal", &self.config.terminal)
            .finish_non_exhaustive()
    }
}

/// One request with retries for transient failures. A free function so that the futures of
/// the agent hold no shared borrow of the ledger (whose connection is not `Sync`) and stay
/// `Send`.
async fn request<T: wire::Message>(
    client: &SyncClient,
    retry: &RetryPolicy,
    method: Method,
    path: &str,
    body: &[u8],
) -> Result<T, AgentError> {
    let max = retry.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        match client.call::<T>(method.clone(), path, body.to_vec()).await {
            Ok(v) => return Ok(v),
            Err(CallError::Transient(why)) => {
                attempt += 1;
                tracing::debug!(path, attempt, why = %why, "transient failure");
                if attempt >= max {
                    return Err(AgentError::GaveUp {
                        attempts: attempt,
                        last: why,
                    });
                }
                tokio::time::sleep(retry.delay(attempt - 1)).await;
            }
            Err(e) => return Err(AgentError::Call(e)),
        }
    }
}

/// Read an SM2 key file (64 hex digits).
pub fn read_key_file(path: &std::path::Path) -> Result<Sm2PrivateKey, AgentError> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| AgentError::Key(format!("{}: {e}", path.display())))?,
    );
    let mut d = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), d.as_mut())
        .map_err(|_| AgentError::Key("a key file holds 64 hex digits".into()))?;
    Sm2PrivateKey::from_bytes(d.as_ref()).map_err(|e| AgentError::Key(e.to_string()))
}

impl Agent {
    /// Open the ledger and build the client.
    pub fn open(
        config: AgentConfig,
        key: Sm2PrivateKey,
        field_key: FieldKey,
    ) -> Result<Self, AgentError> {
        let ledger = Ledger::open(&config.ledger, &config.terminal, field_key)?;
        let client = SyncClient::new(
            &config.server,
            config.terminal.clone(),
            key,
            config.ca_pem.as_deref(),
            config.timeout,
        )
        .map_err(AgentError::Call)?;
        if let Some(offset) = ledger.meta_i64("clock_offset")? {
            client.set_clock_offset(offset);
        }
        Ok(Self {
            ledger,
            client,
            config,
            pause_before_send: PauseHook::from_env("before_send"),
            pause_after_send: PauseHook::from_env("after_send"),
            pause_mid_batch: PauseHook::from_env("mid_batch"),
        })
    }

    /// The ledger (the kiosk embedding the agent may share it).
    pub fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The HTTP client.
    pub fn client(&self) -> &SyncClient {
        &self.client
    }

    async fn req<T: wire::Message>(
        &mut self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<T, AgentError> {
        let r = request(&self.client, &self.config.retry, method, path, body).await;
        self.save_clock_offset()?;
        r
    }

    fn save_clock_offset(&self) -> Result<(), AgentError> {
        let off = self.client.clock_offset();
        if self.ledger.meta_i64("clock_offset")?.unwrap_or(0) != off {
            self.ledger.set_meta("clock_offset", &off.to_string())?;
        }
        Ok(())
    }

    fn server_key(&self) -> Result<Sm2PublicKey, AgentError> {
        let hex = self
            .ledger
            .meta("server_public_key")?
            .ok_or(AgentError::NotRegistered)?;
        signing::public_key_from_hex(&hex).map_err(|_| AgentError::NotRegistered)
    }

    /// Register the terminal's key with its one-time enrolment token; stores the server's key
    /// and the region in the ledger.
    pub async fn register(&mut self, token: &str) -> Result<RegisterResponse, AgentError> {
        let req = RegisterRequest {
            terminal_id: self.config.terminal.clone(),
            public_key: hex::encode_upper(self.client.public_key().to_xy()),
            enrollment_token: token.to_string(),
        };
        let r: RegisterResponse = self
            .req(Method::POST, "/v1/register", &wire::encode(&req))
            .await?;
        self.ledger
            .set_meta("server_public_key", &r.server_public_key)?;
        self.ledger.set_meta("region", r.region.as_str())?;
        Ok(r)
    }

    /// Upload every pending entry, batch by batch, reporting progress after each.
    pub async fn upload_pending(
        &mut self,
        report: &mut SyncReport,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), AgentError> {
        let pending = self.ledger.sync_summary()?.pending;
        report.upload.total += pending;
        loop {
            let batch = self.ledger.pending_upload(self.config.batch_size.max(1))?;
            if batch.is_empty() {
                return Ok(());
            }
            let ids: Vec<_> = batch.iter().map(|e| (e.seq, e.idempotency_id)).collect();
            let body = zeroize::Zeroizing::new(wire::encode(&UploadRequest { entries: batch }));
            self.pause_before_send.maybe_pause_async().await;
            let answer: UploadResponse = self.req(Method::POST, "/v1/entries", &body).await?;
            self.pause_after_send.maybe_pause_async().await;
            let matches = answer.results.len() == ids.len()
                && answer
                    .results
                    .iter()
                    .zip(&ids)
                    .all(|(r, (s, i))| r.seq == *s && r.idempotency_id == *i);
            if !matches {
                return Err(AgentError::AnswerMismatch);
            }
            self.ledger.store_results(&answer.results)?;
            for r in &answer.results {
                report.upload.done += 1;
                match r.status {
                    EntryStatus::Booked => report.upload.booked += 1,
                    EntryStatus::BookedUnverified => {
                        report.upload.booked += 1;
                        report.upload.unverified += 1;
                    }
                    EntryStatus::Duplicate => report.upload.duplicate += 1,
                    EntryStatus::Rejected => {
                        report.upload.rejected += 1;
                        let why = r.reason.map_or("other", |x| x.as_str());
                        tracing::warn!(seq = r.seq, reason = why, "entry rejected by the server");
                        report.rejected.push((r.seq, why.to_string()));
                    }
                }
            }
            progress(&report.upload);
            self.pause_mid_batch.maybe_pause_async().await;
        }
    }

    /// Send the totals of every batch that is closing and fully uploaded; requeue the entries
    /// the server says it lacks (then they are uploaded again).
    pub async fn close_batches(&mut self, report: &mut SyncReport) -> Result<bool, AgentError> {
        let mut requeued = false;
        for b in self.ledger.batches_ready_to_close()? {
            let (totals, seqs) = self.ledger.batch_totals(b)?;
            let (recovered, recovered_seqs) = self.ledger.batch_recovered(b)?;
            let (medical, medical_seqs) = self.ledger.batch_medical(b)?;
            let req = BatchCloseRequest {
                batch_no: b,
                totals,
                seqs,
                recovered,
                recovered_seqs,
                medical,
                medical_seqs,
            };
            let answer: BatchCloseResponse = self
                .req(Method::POST, "/v1/batches/close", &wire::encode(&req))
                .await?;
            if answer.batch_no != b {
                return Err(AgentError::AnswerMismatch);
            }
            if !answer.balanced && !answer.missing_on_server.is_empty() {
                let n = self.ledger.requeue(&answer.missing_on_server)?;
                if n > 0 {
                    requeued = true;
                    continue;
                }
            }
            self.ledger.record_batch_result(&answer)?;
            report.batches.push(answer);
        }
        Ok(requeued)
    }

    /// Download and apply the hot list up to the server's version.
    pub async fn download_hotlist(&mut self) -> Result<u64, AgentError> {
        let key = self.server_key()?;
        loop {
            let since = self.ledger.hotlist_version()?;
            let env: SignedEnvelope = self
                .req(Method::GET, &format!("/v1/hotlist?since={since}"), b"")
                .await?;
            let delta: HotListDelta = open_envelope(&env, "hotlist", &self.config.terminal, &key)
                .map_err(AgentError::Call)?;
            if delta.from_version != since {
                return Err(AgentError::AnswerMismatch);
            }
            if delta.changes.is_empty() {
                return Ok(since);
            }
            self.ledger.apply_hotlist(&delta)?;
        }
    }

    /// Download and apply the parameters if newer.
    pub async fn download_parameters(&mut self) -> Result<u64, AgentError> {
        let key = self.server_key()?;
        let env: SignedEnvelope = self.req(Method::GET, "/v1/parameters", b"").await?;
        let set: ParameterSet = open_envelope(&env, "parameters", &self.config.terminal, &key)
            .map_err(AgentError::Call)?;
        self.ledger.apply_parameters(&set)?;
        Ok(self.ledger.meta_u64("params_version")?)
    }

    /// Download the region's cardholder records changed since the ledger's version.
    pub async fn download_cardholders(&mut self) -> Result<u64, AgentError> {
        let key = self.server_key()?;
        loop {
            let since = self.ledger.meta_u64("cardholders_version")?;
            let env: SignedEnvelope = self
                .req(Method::GET, &format!("/v1/cardholders?since={since}"), b"")
                .await?;
            let page: CardholderPage =
                open_envelope(&env, "cardholders", &self.config.terminal, &key)
                    .map_err(AgentError::Call)?;
            if page.from_version != since {
                return Err(AgentError::AnswerMismatch);
            }
            self.ledger.apply_cardholders(&page)?;
            if !page.more || page.records.is_empty() {
                return Ok(self.ledger.meta_u64("cardholders_version")?);
            }
        }
    }

    /// Everything once: expire stale entries, upload, close batches, download. The outcome is
    /// recorded in the ledger for `status`.
    pub async fn sync_once(
        &mut self,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<SyncReport, AgentError> {
        let started = clock::unix_now();
        let result = self.sync_inner(progress).await;
        let err = result.as_ref().err().map(ToString::to_string);
        self.ledger.record_run(started, err.as_deref())?;
        result
    }

    async fn sync_inner(
        &mut self,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<SyncReport, AgentError> {
        let mut report = SyncReport::default();
        self.server_key()?;
        let max_age = i64::try_from(self.config.max_age.as_secs()).unwrap_or(i64::MAX);
        report.dead_lettered =
            u64::try_from(self.ledger.expire_stale(max_age, clock::unix_now())?).unwrap_or(0);
        self.upload_pending(&mut report, progress).await?;
        if self.close_batches(&mut report).await? {
            self.upload_pending(&mut report, progress).await?;
            self.close_batches(&mut report).await?;
        }
        report.hotlist_version = self.download_hotlist().await?;
        report.params_version = self.download_parameters().await?;
        report.cardholders_version = self.download_cardholders().await?;
        Ok(report)
    }

    /// Keep syncing every `interval` until `stop` resolves or a permanent error occurs.
    pub async fn run(
        &mut self,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<(), AgentError> {
        tokio::pin!(stop);
        loop {
            match self.sync_once(progress).await {
                Ok(r) => tracing::info!(
                    uploaded = r.upload.done,
                    hotlist = r.hotlist_version,
                    "sync ok"
                ),
                Err(e @ AgentError::GaveUp { .. }) => {
                    tracing::warn!(error = %e, "sync failed, will retry")
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// The lines `sync-agent unresolved` prints: each entry still `intent` or `unknown`, with its
/// amount, masked PAN, time and the last note (what an unclear recovery found).
pub fn unresolved_lines(ledger: &Ledger) -> Result<Vec<String>, AgentError> {
    let mut lines = Vec::new();
    for seq in ledger.unresolved()? {
        if let Some(e) = ledger.entry(seq)? {
            lines.push(format!(
                "seq {}\t{}\t{} fen\t{}\t{}\t{}",
                e.seq,
                e.state.as_str(),
                e.amount_fen,
                e.pan_masked,
                e.txn_time.as_str(),
                e.note.as_deref().unwrap_or("-")
            ));
        }
    }
    Ok(lines)
}

/// The lines `sync-agent status` prints.
pub fn status_lines(ledger: &Ledger) -> Result<Vec<String>, AgentError> {
    let s = ledger.sync_summary()?;
    let when = |t: Option<i64>| t.map_or_else(|| "never".to_string(), clock::format_utc);
    let mut lines = vec![
        format!("terminal:            {}", ledger.terminal()),
        format!("pending:             {}", s.pending),
        format!("booked:              {}", s.booked),
        format!("failed (rejected):   {}", s.rejected),
        format!("dead letter:         {}", s.dead),
        format!("unresolved:          {}", s.unresolved),
        format!("last success:        {}", when(s.last_success)),
        format!("hot-list version:    {}", s.hotlist_version),
        format!("parameters version:  {}", s.params_version),
        format!("cardholders version: {}", s.cardholders_version),
        format!("open batch:          {}", s.current_batch),
    ];
    if let Some(e) = s.last_error {
        lines.push(format!("last error:          {e}"));
    }
    for seq in ledger.seqs_in(UploadState::Rejected)?.into_iter().take(20) {
        if let Some((_, reason)) = ledger.upload_state(seq)? {
            lines.push(format!(
                "  rejected seq {seq}: {}",
                reason.unwrap_or_default()
            ));
        }
    }
    Ok(lines)
}
