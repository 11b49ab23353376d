//! Cryptogram verification through hsm-sim over TCP: `KQ` mode 0 (verify a TC/ARQC/AAC, no
//! ARPC; docs/hsm-protocol.md) with the issuer master key of the card's algorithm, through
//! [`AsyncClient::check_cryptogram`]. Connections are pooled and made on demand; a call that
//! fails on the wire or takes longer than the timeout drops its connection and reports the HSM
//! unavailable, which the server answers with 503 so the terminal retries (nothing is booked or
//! rejected on an HSM outage).

use std::sync::Mutex;
use std::time::Duration;

use hsm_sim::{ArqcRequest, AsyncClient, ClientError, ErrorCode};
use tokio::sync::Semaphore;

use crate::entry::{Algorithm, CardResult, Pan, Psn};

/// Outcome of asking the HSM, other than a clean yes/no.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// Could not reach the HSM, or it did not answer in time.
    #[error("HSM unavailable: {0}")]
    Unavailable(String),
    /// The HSM refused the command for another reason than a wrong cryptogram (a missing key,
    /// a key of the wrong type): a configuration error.
    #[error("HSM refused the verification with error code {0}")]
    Refused(ErrorCode),
}

/// HSM address and the labels of the issuer master keys (MK-AC) per algorithm.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// `host:port` of hsm-sim.
    pub addr: String,
    /// Header length the HSM expects.
    pub header_len: usize,
    /// Label of the 3DES MK-AC.
    pub mk_tdes: String,
    /// Label of the SM4 MK-AC.
    pub mk_sm4: String,
    /// Most connections at once.
    pub connections: usize,
    /// Per-call timeout.
    pub timeout: Duration,
}

/// A pool of HSM connections.
#[derive(Debug)]
pub struct HsmVerifier {
    config: HsmConfig,
    idle: Mutex<Vec<AsyncClient>>,
    limit: Semaphore,
}

impl HsmVerifier {
    /// A pool for `config` (connects on first use).
    pub fn new(config: HsmConfig) -> Self {
        let n = config.connections.max(1);
        Self {
            config,
            idle: Mutex::new(Vec::new()),
            limit: Semaphore::new(n),
        }
    }

    /// Whether the HSM confirms the cryptogram: `Ok(true)` it verifies, `Ok(false)` it does not.
    pub async fn verify(&self, pan: &Pan, psn: &Psn, card: &CardResult) -> Result<bool, HsmError> {
        let label = match card.algorithm {
            Algorithm::Tdes => &self.config.mk_tdes,
            Algorithm::Sm4 => &self.config.mk_sm4,
        };
        // ARC `0000`: unused in mode 0.
        let request = ArqcRequest {
            mk_ac: label,
            pan: pan.expose(),
            psn: psn.as_str(),
            atc: card.atc,
            data: &card.mac_data.0,
            arqc: card.cryptogram.0,
            arc: [0, 0],
        };
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| HsmError::Unavailable("closed".into()))?;
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut client = match reused {
            Some(c) => c,
            None => tokio::time::timeout(
                self.config.timeout,
                AsyncClient::connect(self.config.addr.as_str(), self.config.header_len),
            )
            .await
            .map_err(|_| HsmError::Unavailable("connect timed out".into()))?
            .map_err(|e| HsmError::Unavailable(e.to_string()))?,
        };
        let result = client.check_cryptogram(&request, self.config.timeout).await;
        // A connection that failed on the wire or timed out is dropped; one that answered,
        // yes or no, goes back to the pool.
        if !client.is_broken() {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(client);
        }
        match result {
            Ok(()) => Ok(true),
            Err(ClientError::Hsm(ErrorCode::VerificationFailure)) => Ok(false),
            Err(ClientError::Hsm(other)) => Err(HsmError::Refused(other)),
            Err(ClientError::Timeout(_)) => Err(HsmError::Unavailable("call timed out".into())),
            Err(e) => Err(HsmError::Unavailable(e.to_string())),
        }
    }
}
