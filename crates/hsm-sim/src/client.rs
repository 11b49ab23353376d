//! Clients: blocking over TCP, async over TCP (tokio), and in-process (the same
//! [`Hsm::execute`] without a socket). Request bodies are built and responses read by the same
//! functions whichever transport carries them.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::codes::ErrorCode;
use crate::fields::{Fields, push_hex};
use crate::frame::{parse_response, with_length};
use crate::hsm::Hsm;
use crate::keys::{KeyType, Scheme};

/// Errors of a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection failed.
    #[error("HSM connection: {0}")]
    Io(#[from] std::io::Error),
    /// The HSM answered with an error code.
    #[error("HSM refused: {0}")]
    Hsm(ErrorCode),
    /// The answer could not be understood.
    #[error("malformed HSM response: {0}")]
    Protocol(&'static str),
    /// The HSM did not answer within the time given. The connection is abandoned: its answer
    /// may still arrive, so the client refuses further calls ([`AsyncClient::is_broken`]).
    #[error("the HSM did not answer within {0:?}")]
    Timeout(Duration),
}

/// A response: its error code and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The error code.
    pub error: ErrorCode,
    /// The fields.
    pub body: Vec<u8>,
}

fn build(header: &[u8], command: [u8; 2], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(header.len() + 2 + body.len());
    m.extend_from_slice(header);
    m.extend_from_slice(&command);
    m.extend_from_slice(body);
    m
}

fn read_reply(message: &[u8], header: &[u8], command: [u8; 2]) -> Result<Reply, ClientError> {
    let r =
        parse_response(message, header.len()).ok_or(ClientError::Protocol("response too short"))?;
    if r.header != header {
        return Err(ClientError::Protocol("header does not match the request"));
    }
    if r.code != crate::frame::response_code(command) && &r.code != b"ZZ" {
        return Err(ClientError::Protocol(
            "response code does not match the command",
        ));
    }
    Ok(Reply {
        error: r.error,
        body: r.body.to_vec(),
    })
}

/// Carries one command and brings back its reply.
pub trait Call {
    /// Send `command` with `body`, return the reply.
    fn call(&mut self, command: [u8; 2], body: &[u8]) -> Result<Reply, ClientError>;
}

/// The in-process transport.
#[derive(Debug, Clone)]
pub struct InProcess {
    hsm: Arc<Hsm>,
    header: Vec<u8>,
}

impl InProcess {
    /// Call `hsm` directly.
    pub fn new(hsm: Arc<Hsm>) -> Self {
        let header = vec![b'0'; hsm.header_len()];
        Self { hsm, header }
    }
}

impl Call for InProcess {
    fn call(&mut self, command: [u8; 2], body: &[u8]) -> Result<Reply, ClientError> {
        let resp = self.hsm.execute(&build(&self.header, command, body));
        read_reply(&resp, &self.header, command)
    }
}

/// Blocking TCP transport.
#[derive(Debug)]
pub struct BlockingClient {
    stream: TcpStream,
    header: Vec<u8>,
    counter: u32,
}

impl BlockingClient {
    /// Connect, with a header of `header_len` characters.
    pub fn connect(addr: impl ToSocketAddrs, header_len: usize) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            stream,
            header: vec![b'0'; header_len],
            counter: 0,
        })
    }

    /// Send a raw message (header included) and read the raw answer. For tests of malformed
    /// input.
    pub fn raw(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        let framed = with_length(message).ok_or(ClientError::Protocol("message too long"))?;
        self.stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len)?;
        let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut resp)?;
        Ok(resp)
    }
}

/// A header that changes with each call, so answers can be matched to requests.
fn next_header(header: &mut [u8], counter: &mut u32) {
    *counter = counter.wrapping_add(1);
    let digits = format!("{:0width$}", *counter, width = header.len());
    let tail = digits.len().saturating_sub(header.len());
    for (h, d) in header.iter_mut().zip(digits.bytes().skip(tail)) {
        *h = d;
    }
}

impl Call for BlockingClient {
    fn call(&mut self, command: [u8; 2], body: &[u8]) -> Result<Reply, ClientError> {
        next_header(&mut self.header, &mut self.counter);
        let header = self.header.clone();
        let resp = self.raw(&build(&header, command, body))?;
        read_reply(&resp, &header, command)
    }
}

/// Async TCP transport.
///
/// A call that fails on the wire or times out leaves the stream out of step with the HSM (an
/// answer may be half read, or still on its way); the client then refuses further calls and
/// [`AsyncClient::is_broken`] says so, so a pool drops it and connects anew.
#[derive(Debug)]
pub struct AsyncClient {
    stream: tokio::net::TcpStream,
    header: Vec<u8>,
    counter: u32,
    broken: bool,
}

impl AsyncClient {
    /// Connect, with a header of `header_len` characters.
    pub async fn connect(
        addr: impl tokio::net::ToSocketAddrs,
        header_len: usize,
    ) -> Result<Self, ClientError> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            header: vec![b'0'; header_len],
            counter: 0,
            broken: false,
        })
    }

    /// Whether an earlier call failed on the wire or timed out, so this connection can carry
    /// no more calls (type documentation).
    pub const fn is_broken(&self) -> bool {
        self.broken
    }

    /// Send `command` with `body`, return the reply. The message is zeroized after sending
    /// (bodies carry PANs and cryptogram inputs).
    pub async fn call(&mut self, command: [u8; 2], body: &[u8]) -> Result<Reply, ClientError> {
        if self.broken {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection was abandoned after a failed call",
            )));
        }
        self.broken = true;
        next_header(&mut self.header, &mut self.counter);
        let message = Zeroizing::new(build(&self.header, command, body));
        let framed =
            Zeroizing::new(with_length(&message).ok_or(ClientError::Protocol("message too long"))?);
        self.stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).await?;
        let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.stream.read_exact(&mut resp).await?;
        let reply = read_reply(&resp, &self.header, command);
        // An answer that does not match the request leaves the stream out of step too.
        self.broken = reply.is_err();
        reply
    }

    /// [`AsyncClient::call`] within `timeout`; [`ClientError::Timeout`] (and a broken client)
    /// if the answer does not come in time.
    pub async fn call_within(
        &mut self,
        timeout: Duration,
        command: [u8; 2],
        body: &[u8],
    ) -> Result<Reply, ClientError> {
        match tokio::time::timeout(timeout, self.call(command, body)).await {
            Ok(r) => r,
            Err(_) => {
                self.broken = true;
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// `KQ` mode 1, asynchronously: verify an ARQC and return the ARPC.
    pub async fn verify_arqc(&mut self, q: &ArqcRequest<'_>) -> Result<[u8; 8], ClientError> {
        let reply = self.call(*b"KQ", &q.body(KqMode::VerifyAndArpc)).await?;
        parse_arpc(&reply)
    }

    /// `KQ` mode 0, asynchronously and within `timeout`: verify a cryptogram (ARQC, TC or AAC)
    /// over [`ArqcRequest::data`]. `Ok(())` when it verifies; a wrong cryptogram is
    /// `Err(ClientError::Hsm(ErrorCode::VerificationFailure))` as in
    /// [`HsmClient::check_cryptogram`]; no answer in time is [`ClientError::Timeout`].
    pub async fn check_cryptogram(
        &mut self,
        q: &ArqcRequest<'_>,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let body = q.body(KqMode::Verify);
        ok(self.call_within(timeout, *b"KQ", &body).await?).map(|_| ())
    }

    /// `NC`, asynchronously.
    pub async fn diagnostics(&mut self) -> Result<Diagnostics, ClientError> {
        let reply = self.call(*b"NC", b"").await?;
        parse_diagnostics(&reply)
    }
}

/// What `A0` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Key check value.
    pub kcv: [u8; 3],
    /// SM2 public key X‖Y.
    pub public: Option<[u8; 64]>,
}

/// What `NC` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// LMK check value.
    pub lmk_check: [u8; 8],
    /// Software version.
    pub version: String,
}

/// The mode of `KQ` (docs/hsm-protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KqMode {
    /// `0`: verify the cryptogram only.
    Verify,
    /// `1`: verify the ARQC and generate the ARPC.
    VerifyAndArpc,
    /// `2`: generate the ARPC only.
    ArpcOnly,
}

impl KqMode {
    /// The mode character.
    pub const fn code(self) -> u8 {
        match self {
            Self::Verify => b'0',
            Self::VerifyAndArpc => b'1',
            Self::ArpcOnly => b'2',
        }
    }
}

/// The inputs of `KQ`: a cryptogram check (ARQC, TC or AAC) and/or an ARPC. `Debug` leaves out
/// the PAN and the data.
#[derive(Clone)]
pub struct ArqcRequest<'a> {
    /// Label of the MK-AC.
    pub mk_ac: &'a str,
    /// PAN digits.
    pub pan: &'a str,
    /// PAN sequence number, 2 digits.
    pub psn: &'a str,
    /// Application transaction counter.
    pub atc: u16,
    /// The data the card MACed (for a PBOC card of cryptogram version 01, what
    /// `card_core::pboc::TransactionRecord::cryptogram_input` gives).
    pub data: &'a [u8],
    /// The ARQC.
    pub arqc: [u8; 8],
    /// Authorisation response code for the ARPC (any value in mode 0).
    pub arc: [u8; 2],
}

impl std::fmt::Debug for ArqcRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArqcRequest")
            .field("mk_ac", &self.mk_ac)
            .field("pan", &format_args!("<{} digits>", self.pan.len()))
            .field("atc", &self.atc)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish_non_exhaustive()
    }
}

impl ArqcRequest<'_> {
    /// The `KQ` request body in `mode` (after the command code; fields as docs/hsm-protocol.md
    /// lists them): mode, MK-AC label, PAN length and PAN, PSN, ATC, data length and data,
    /// `;`, cryptogram, ARC. Zeroized when dropped: it carries the PAN and the MACed data.
    pub fn body(&self, mode: KqMode) -> Zeroizing<Vec<u8>> {
        // Allocated once and written in place, so no copy of the PAN or the data is left
        // behind unzeroized by a temporary string or a reallocation.
        let mut b = Zeroizing::new(Vec::with_capacity(
            1 + self.mk_ac.len()
                + 2
                + self.pan.len()
                + self.psn.len()
                + 8
                + 2 * self.data.len()
                + 1
                + 16
                + 4,
        ));
        b.push(mode.code());
        b.extend_from_slice(self.mk_ac.as_bytes());
        let pan_len = u8::try_from(self.pan.len()).unwrap_or(99).min(99);
        b.extend_from_slice(&[b'0' + pan_len / 10, b'0' + pan_len % 10]);
        b.extend_from_slice(self.pan.as_bytes());
        b.extend_from_slice(self.psn.as_bytes());
        push_hex(&mut b, &self.atc.to_be_bytes());
        let data_len = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        push_hex(&mut b, &data_len.to_be_bytes());
        push_hex(&mut b, self.data);
        b.push(b';');
        push_hex(&mut b, &self.arqc);
        push_hex(&mut b, &self.arc);
        b
    }
}

fn ok(reply: Reply) -> Result<Reply, ClientError> {
    if reply.error == ErrorCode::Ok {
        Ok(reply)
    } else {
        Err(ClientError::Hsm(reply.error))
    }
}

fn parse_arpc(reply: &Reply) -> Result<[u8; 8], ClientError> {
    if reply.error != ErrorCode::Ok {
        return Err(ClientError::Hsm(reply.error));
    }
    let mut f = Fields::new(&reply.body);
    let arpc = f.hex_array().map_err(|_| ClientError::Protocol("ARPC"))?;
    Ok(arpc)
}

fn parse_diagnostics(reply: &Reply) -> Result<Diagnostics, ClientError> {
    if reply.error != ErrorCode::Ok {
        return Err(ClientError::Hsm(reply.error));
    }
    let mut f = Fields::new(&reply.body);
    let lmk_check = f
        .hex_array()
        .map_err(|_| ClientError::Protocol("LMK check value"))?;
    let version = String::from_utf8_lossy(reply.body.get(16..).unwrap_or_default()).into_owned();
    Ok(Diagnostics { lmk_check, version })
}

fn var_hex(data: &[u8]) -> Vec<u8> {
    let mut b = format!("{:04X}", data.len()).into_bytes();
    b.extend_from_slice(hex::encode_upper(data).as_bytes());
    b
}

/// Typed commands over any [`Call`] transport.
#[derive(Debug)]
pub struct HsmClient<C> {
    transport: C,
}

impl<C: Call> HsmClient<C> {
    /// Wrap a transport.
    pub const fn new(transport: C) -> Self {
        Self { transport }
    }

    /// The transport.
    pub fn transport(&mut self) -> &mut C {
        &mut self.transport
    }

    /// `A0`: generate a key.
    pub fn generate_key(
        &mut self,
        key_type: KeyType,
        scheme: Scheme,
        label: &str,
    ) -> Result<Generated, ClientError> {
        let mut body = key_type.code().as_bytes().to_vec();
        body.push(scheme.letter());
        body.extend_from_slice(label.as_bytes());
        let reply = ok(self.transport.call(*b"A0", &body)?)?;
        let mut f = Fields::new(&reply.body);
        let kcv = f.hex_array().map_err(|_| ClientError::Protocol("KCV"))?;
        let public = if f.at_end() {
            None
        } else {
            Some(
                f.hex_array()
                    .map_err(|_| ClientError::Protocol("public key"))?,
            )
        };
        Ok(Generated { kcv, public })
    }

    /// `A6`: import a key encrypted under a ZMK.
    pub fn import_key(
        &mut self,
        key_type: KeyType,
        scheme: Scheme,
        zmk: &str,
        cryptogram: &[u8],
        kcv: [u8; 3],
        label: &str,
    ) -> Result<[u8; 3], ClientError> {
        let mut body = key_type.code().as_bytes().to_vec();
        body.push(scheme.letter());
        body.extend_from_slice(zmk.as_bytes());
        body.extend_from_slice(hex::encode_upper(cryptogram).as_bytes());
        body.extend_from_slice(hex::encode_upper(kcv).as_bytes());
        body.extend_from_slice(label.as_bytes());
        let reply = ok(self.transport.call(*b"A6", &body)?)?;
        Fields::new(&reply.body)
            .hex_array()
            .map_err(|_| ClientError::Protocol("KCV"))
    }

    /// `A8`: export a key under a ZMK. Returns the cryptogram and the KCV.
    pub fn export_key(
        &mut self,
        key_type: KeyType,
        zmk: &str,
        label: &str,
    ) -> Result<(Vec<u8>, [u8; 3]), ClientError> {
        let mut body = key_type.code().as_bytes().to_vec();
        body.extend_from_slice(zmk.as_bytes());
        body.extend_from_slice(label.as_bytes());
        let reply = ok(self.transport.call(*b"A8", &body)?)?;
        split_cryptogram_kcv(&reply.body)
    }

    /// `KD`: derive a card key and export it under a ZMK.
    pub fn derive_card_key(
        &mut self,
        mk: &str,
        zmk: &str,
        pan: &str,
        psn: &str,
    ) -> Result<(Vec<u8>, [u8; 3]), ClientError> {
        let mut body = mk.as_bytes().to_vec();
        body.extend_from_slice(zmk.as_bytes());
        body.extend_from_slice(format!("{:02}{pan}{psn}", pan.len()).as_bytes());
        let reply = ok(self.transport.call(*b"KD", &body)?)?;
        split_cryptogram_kcv(&reply.body)
    }

    /// `KE`: the EXTERNAL AUTHENTICATE cryptogram for a social-security card's challenge,
    /// from the maintenance master key `mk` (type `409`) and the card identifier.
    pub fn external_auth_cryptogram(
        &mut self,
        mk: &str,
        card_id: &[u8; 16],
        challenge: &[u8; 8],
    ) -> Result<Zeroizing<[u8; 16]>, ClientError> {
        let mut body = mk.as_bytes().to_vec();
        body.extend_from_slice(hex::encode_upper(card_id).as_bytes());
        body.extend_from_slice(hex::encode_upper(challenge).as_bytes());
        let reply = ok(self.transport.call(*b"KE", &body)?)?;
        let mut f = Fields::new(&reply.body);
        let cryptogram = f
            .hex_array()
            .map_err(|_| ClientError::Protocol("cryptogram"))?;
        Ok(Zeroizing::new(cryptogram))
    }

    /// `KF`: derive a card's maintenance key and export it under a ZMK (personalisation).
    pub fn derive_maintenance_key(
        &mut self,
        mk: &str,
        zmk: &str,
        card_id: &[u8; 16],
    ) -> Result<(Vec<u8>, [u8; 3]), ClientError> {
        let mut body = mk.as_bytes().to_vec();
        body.extend_from_slice(zmk.as_bytes());
        body.extend_from_slice(hex::encode_upper(card_id).as_bytes());
        let reply = ok(self.transport.call(*b"KF", &body)?)?;
        split_cryptogram_kcv(&reply.body)
    }

    /// `KQ` mode 1: verify an ARQC and return the ARPC. A wrong ARQC is
    /// `Err(ClientError::Hsm(ErrorCode::VerificationFailure))`.
    pub fn verify_arqc(&mut self, q: &ArqcRequest<'_>) -> Result<[u8; 8], ClientError> {
        let reply = self
            .transport
            .call(*b"KQ", &q.body(KqMode::VerifyAndArpc))?;
        parse_arpc(&reply)
    }

    /// `KQ` mode 0: verify an ARQC (or TC, or AAC) only. A wrong cryptogram is
    /// `Err(ClientError::Hsm(ErrorCode::VerificationFailure))`.
    pub fn check_cryptogram(&mut self, q: &ArqcRequest<'_>) -> Result<(), ClientError> {
        ok(self.transport.call(*b"KQ", &q.body(KqMode::Verify))?).map(|_| ())
    }

    /// `KQ` mode 2: the ARPC for [`ArqcRequest::arqc`] and [`ArqcRequest::arc`], without
    /// checking the ARQC (it was checked before, or the issuer declines it with its own code).
    pub fn generate_arpc(&mut self, q: &ArqcRequest<'_>) -> Result<[u8; 8], ClientError> {
        let reply = self.transport.call(*b"KQ", &q.body(KqMode::ArpcOnly))?;
        parse_arpc(&reply)
    }

    /// `M6`: MAC with a ZAK.
    pub fn generate_mac(&mut self, zak: &str, data: &[u8]) -> Result<[u8; 8], ClientError> {
        let mut body = zak.as_bytes().to_vec();
        body.extend_from_slice(&var_hex(data));
        let reply = ok(self.transport.call(*b"M6", &body)?)?;
        Fields::new(&reply.body)
            .hex_array()
            .map_err(|_| ClientError::Protocol("MAC"))
    }

    /// `M8`: verify a MAC; `Ok(false)` if it does not match.
    pub fn verify_mac(
        &mut self,
        zak: &str,
        data: &[u8],
        mac: [u8; 8],
    ) -> Result<bool, ClientError> {
        let mut body = zak.as_bytes().to_vec();
        body.extend_from_slice(&var_hex(data));
        body.push(b';');
        body.extend_from_slice(hex::encode_upper(mac).as_bytes());
        let reply = self.transport.call(*b"M8", &body)?;
        match reply.error {
            ErrorCode::Ok => Ok(true),
            ErrorCode::VerificationFailure => Ok(false),
            e => Err(ClientError::Hsm(e)),
        }
    }

    /// `K3`: SM2-sign certificate data (first byte 12, 13 or 14). Returns r‖s.
    pub fn sign_certificate(&mut self, label: &str, data: &[u8]) -> Result<[u8; 64], ClientError> {
        let mut body = label.as_bytes().to_vec();
        body.extend_from_slice(&var_hex(data));
        let reply = ok(self.transport.call(*b"K3", &body)?)?;
        Fields::new(&reply.body)
            .hex_array()
            .map_err(|_| ClientError::Protocol("signature"))
    }

    /// `K7`: the public key (X‖Y) of an SM2 key pair.
    pub fn public_key(&mut self, label: &str) -> Result<(KeyType, [u8; 64]), ClientError> {
        let reply = ok(self.transport.call(*b"K7", label.as_bytes())?)?;
        let mut f = Fields::new(&reply.body);
        let t = f.text(3).map_err(|_| ClientError::Protocol("key type"))?;
        let t = KeyType::parse(t).map_err(|_| ClientError::Protocol("key type"))?;
        let xy = f
            .hex_array()
            .map_err(|_| ClientError::Protocol("public key"))?;
        Ok((t, xy))
    }

    /// `NC`: diagnostics.
    pub fn diagnostics(&mut self) -> Result<Diagnostics, ClientError> {
        let reply = self.transport.call(*b"NC", b"")?;
        parse_diagnostics(&reply)
    }
}

fn split_cryptogram_kcv(body: &[u8]) -> Result<(Vec<u8>, [u8; 3]), ClientError> {
    let split = body
        .len()
        .checked_sub(6)
        .ok_or(ClientError::Protocol("too short"))?;
    let (ct, kcv) = body.split_at(split);
    let ct = hex::decode(ct).map_err(|_| ClientError::Protocol("cryptogram"))?;
    let kcv = Fields::new(kcv)
        .hex_array()
        .map_err(|_| ClientError::Protocol("KCV"))?;
    Ok((ct, kcv))
}

/// The issuer's maintenance key holder for card-core's record update: the HSM answers the
/// card's challenge with the master key labelled `label` (type `409`), which never leaves it.
#[derive(Debug)]
pub struct HsmAuthority<'a, C> {
    client: &'a mut HsmClient<C>,
    label: String,
}

impl<'a, C: Call> HsmAuthority<'a, C> {
    /// Ask `client` with the master key `label`.
    pub fn new(client: &'a mut HsmClient<C>, label: &str) -> Self {
        Self {
            client,
            label: label.to_string(),
        }
    }
}

impl<C: Call> card_core::ssse::update::MaintenanceAuthority for HsmAuthority<'_, C> {
    fn cryptogram(
        &mut self,
        card_id: &[u8],
        challenge: &[u8; 8],
    ) -> Result<Zeroizing<[u8; 16]>, card_core::ssse::update::UpdateError> {
        use card_core::ssse::update::UpdateError;
        let id: &[u8; 16] = card_id
            .try_into()
            .map_err(|_| UpdateError::CardId { len: card_id.len() })?;
        self.client
            .external_auth_cryptogram(&self.label, id, challenge)
            .map_err(|e| UpdateError::Authority(e.to_string()))
    }
}
