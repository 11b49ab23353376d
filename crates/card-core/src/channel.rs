//! The transport trait and the one function that sends APDUs.
//!
//! A [`CardChannel`] moves raw APDU bytes to a card and back: a PC/SC reader, a serial reader,
//! the in-process software card, or a recorded transcript. Everything above it talks to the
//! card through [`CardSession::send`], which alone handles the transmission details of
//! JR/T 0025.3 §9.3 and ISO/IEC 7816-4 §5.1:
//!
//! - `61xx`: fetch the rest with GET RESPONSE (`00 C0 00 00 xx`), repeatedly, bounded;
//! - `6Cxx`: re-send the same command with `Le = xx`;
//! - data longer than 255 bytes: the extended form if the session allows it, otherwise command
//!   chaining (CLA bit `10`, ISO/IEC 7816-4 §5.1.1.1);
//! - the trace: every exchange on the wire, with secret data redacted.

use std::time::{Duration, Instant};

use crate::apdu::{ApduError, Command, Response, SHORT_MAX_NC, SHORT_MAX_NE};
use crate::status::StatusWord;
use crate::trace::{ExchangeKind, TraceEvent, TraceSink};

/// Errors a transport reports. Backends map their own errors onto these.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No card is present in the reader.
    #[error("no card in the reader")]
    NoCard,
    /// The card was removed during the exchange.
    #[error("the card was removed")]
    CardRemoved,
    /// The card was reset (by another application or a power cycle); volatile card state such
    /// as the selected application and verified PINs is lost. Re-select and retry.
    #[error("the card was reset; select the application again")]
    CardReset,
    /// The card does not answer (mute card or a timeout).
    #[error("the card does not respond")]
    CardUnresponsive,
    /// The reader is gone or unusable.
    #[error("reader {reader:?} is not available")]
    ReaderUnavailable {
        /// Reader name.
        reader: String,
    },
    /// The smart-card service (pcscd) is not running or not reachable.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The reader and card could not agree on a protocol.
    #[error("protocol mismatch: {0}")]
    Protocol(String),
    /// Any other failure of the transport, with its description.
    #[error("transport failure: {0}")]
    Other(String),
}

/// Moves APDU bytes to a card and back. Implementations do no APDU-level processing: no
/// GET RESPONSE, no retries; that is [`CardSession::send`]'s job.
pub trait CardChannel {
    /// Send one command APDU and return the complete response (data ‖ SW1 SW2).
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

impl<T: CardChannel + ?Sized> CardChannel for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

impl<T: CardChannel + ?Sized> CardChannel for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

/// Errors from [`CardSession::send`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The command could not be encoded.
    #[error("cannot encode the command: {0}")]
    Encode(#[from] ApduError),
    /// The card answered fewer than two bytes.
    #[error("malformed response of {len} bytes from the card (no status word)")]
    MalformedResponse {
        /// Bytes received.
        len: usize,
    },
    /// The card kept answering `61xx` beyond the limit.
    #[error("card kept announcing more data after {rounds} GET RESPONSE commands")]
    EndlessGetResponse {
        /// GET RESPONSE commands sent.
        rounds: usize,
    },
    /// The response grew beyond the limit.
    #[error("response longer than {limit} bytes")]
    ResponseTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The card kept answering `6Cxx` to corrected commands.
    #[error("card kept answering 6Cxx (wrong Le) to the corrected command")]
    WrongLeLoop,
}

impl SendError {
    /// Whether the command may have been carried out by the card although no answer came back:
    /// every failure after the command left the terminal (the card pulled or reset mid-command,
    /// a mute card, a garbled answer, and a reader or pcscd lost mid-command). Only a command
    /// that could not be encoded, or a reader that had no card to send it to, surely did
    /// nothing. Flows that write use this to tell "not done" from "find out at the next insert".
    pub fn may_have_reached_card(&self) -> bool {
        !matches!(
            self,
            Self::Encode(_) | Self::Transport(TransportError::NoCard)
        )
    }
}

/// Errors that can say "the card was reset underneath": the flow lost its selected
/// application and verified PINs, and may simply be run again.
pub trait ResetAware {
    /// Whether this error is a card reset.
    fn is_card_reset(&self) -> bool;
}

impl ResetAware for TransportError {
    fn is_card_reset(&self) -> bool {
        matches!(self, Self::CardReset)
    }
}

impl ResetAware for SendError {
    fn is_card_reset(&self) -> bool {
        matches!(self, Self::Transport(TransportError::CardReset))
    }
}

/// Run `flow`, which must start by selecting its application; if the card was reset while it
/// ran (another application reset it, or it was re-powered), run it once more from the start.
/// A second reset is returned to the caller.
pub fn rerun_after_reset<C, T, E: ResetAware>(
    session: &mut CardSession<C>,
    mut flow: impl FnMut(&mut CardSession<C>) -> Result<T, E>,
) -> Result<T, E> {
    match flow(session) {
        Err(e) if e.is_card_reset() => flow(session),
        other => other,
    }
}

/// Limits and capabilities for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Use extended-length APDUs for data over 255 bytes (otherwise chain).
    pub extended_length: bool,
    /// Most GET RESPONSE commands for one command.
    pub max_get_response: usize,
    /// Most response bytes accepted for one command.
    pub max_response_len: usize,
    /// Automatically handle `61xx` and `6Cxx`.
    pub auto_get_response: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            extended_length: false,
            max_get_response: 64,
            max_response_len: 65_536 + 256,
            auto_get_response: true,
        }
    }
}

/// A card reached through a [`CardChannel`], with the trace hook and the sending rules.
pub struct CardSession<C> {
    channel: C,
    trace: Option<Box<dyn TraceSink + Send>>,
    options: SessionOptions,
    exchanges: u64,
    wire_time: Duration,
    buf: Vec<u8>,
}

impl<C: CardChannel> CardSession<C> {
    /// A session with default options and no trace.
    pub fn new(channel: C) -> Self {
        Self {
            channel,
            trace: None,
            options: SessionOptions::default(),
            exchanges: 0,
            wire_time: Duration::ZERO,
            buf: Vec::with_capacity(261),
        }
    }

    /// Replace the options.
    pub fn with_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// Attach a trace sink.
    pub fn with_trace(mut self, trace: Box<dyn TraceSink + Send>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Attach or remove the trace sink.
    pub fn set_trace(&mut self, trace: Option<Box<dyn TraceSink + Send>>) {
        self.trace = trace;
    }

    /// The options in force.
    pub const fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The underlying channel.
    pub const fn channel(&self) -> &C {
        &self.channel
    }

    /// The underlying channel, mutably (e.g. to reconnect a reader).
    pub const fn channel_mut(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Give back the channel.
    pub fn into_channel(self) -> C {
        self.channel
    }

    /// APDUs exchanged on the wire so far (including GET RESPONSE and chained parts).
    pub const fn exchanges(&self) -> u64 {
        self.exchanges
    }

    /// Time spent inside [`CardChannel::transmit`] so far.
    pub const fn wire_time(&self) -> Duration {
        self.wire_time
    }

    /// Send a command and return the complete response.
    ///
    /// The status word of the result is the card's final answer; `61xx` and `6Cxx` never
    /// reach the caller while `auto_get_response` is on. A status word that signals an error is
    /// not an `Err` here: the caller decides what it means for its flow.
    pub fn send(&mut self, cmd: &Command) -> Result<Response, SendError> {
        let mut response = if cmd.data().len() > SHORT_MAX_NC && !self.options.extended_length {
            self.send_chained(cmd)?
        } else {
            self.buf.clear();
            cmd.encode_into(&mut self.buf)?;
            let bytes = core::mem::take(&mut self.buf);
            let r = self.exchange(&bytes, cmd, ExchangeKind::Command);
            self.buf = bytes;
            r?
        };
        if !self.options.auto_get_response {
            return Ok(finish(response, cmd));
        }
        // 6Cxx: re-send with the exact length (JR/T 0025.3 §9.3.1.2).
        let mut resends = 0;
        while let StatusWord::WrongLe(n) = response.sw() {
            resends += 1;
            if resends > 2 {
                return Err(SendError::WrongLeLoop);
            }
            let ne = if n == 0 { SHORT_MAX_NE } else { usize::from(n) };
            let fixed = cmd.clone().with_ne(ne);
            self.buf.clear();
            fixed.encode_into(&mut self.buf)?;
            let bytes = core::mem::take(&mut self.buf);
            let r = self.exchange(&bytes, cmd, ExchangeKind::ResendWithLe);
            self.buf = bytes;
            response = r?;
        }
        if let StatusWord::BytesAvailable(_) = response.sw() {
            response = self.get_response(response, cmd)?;
        }
        Ok(finish(response, cmd))
    }

    fn get_response(&mut self, first: Response, cmd: &Command) -> Result<Response, SendError> {
        let mut sw = first.sw();
        let mut data = first.into_data();
        let mut rounds = 0;
        let cla = if cmd.cla & 0x80 == 0 {
            cmd.cla & 0x03
        } else {
            0
        };
        while let StatusWord::BytesAvailable(n) = sw {
            rounds += 1;
            if rounds > self.options.max_get_response {
                return Err(SendError::EndlessGetResponse { rounds: rounds - 1 });
            }
            let mut ne = if n == 0 { SHORT_MAX_NE } else { usize::from(n) };
            let mut resends = 0;
            let part = loop {
                let get = [
                    cla,
                    0xc0,
                    0x00,
                    0x00,
                    if ne == SHORT_MAX_NE { 0 } else { ne as u8 },
                ];
                let part = self.exchange(&get, cmd, ExchangeKind::GetResponse)?;
                match part.sw() {
                    StatusWord::WrongLe(m) if resends < 2 => {
                        resends += 1;
                        ne = if m == 0 { SHORT_MAX_NE } else { usize::from(m) };
                    }
                    StatusWord::WrongLe(_) => return Err(SendError::WrongLeLoop),
                    _ => break part,
                }
            };
            sw = part.sw();
            if data.len() + part.data().len() > self.options.max_response_len {
                return Err(SendError::ResponseTooLong {
                    limit: self.options.max_response_len,
                });
            }
            data.extend_from_slice(part.data());
        }
        Ok(Response::new(data, sw))
    }

    fn send_chained(&mut self, cmd: &Command) -> Result<Response, SendError> {
        let chunks: Vec<&[u8]> = cmd.data().chunks(SHORT_MAX_NC).collect();
        let last = chunks.len().saturating_sub(1);
        let mut response = None;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut part = Command::new(cmd.cla, cmd.ins, cmd.p1, cmd.p2).with_data(chunk);
            if cmd.is_sensitive() {
                part = part.sensitive();
            }
            if i < last {
                part.cla |= 0x10;
            } else if let Some(ne) = cmd.ne() {
                part = part.with_ne(ne.min(SHORT_MAX_NE));
            }
            let bytes = part.to_bytes()?;
            let r = self.exchange(&bytes, &part, ExchangeKind::ChainPart)?;
            if i < last && !r.is_success() {
                // The card refused a part: its answer is the answer.
                return Ok(r);
            }
            response = Some(r);
        }
        response.ok_or(SendError::MalformedResponse { len: 0 })
    }

    fn exchange(
        &mut self,
        bytes: &[u8],
        cmd: &Command,
        kind: ExchangeKind,
    ) -> Result<Response, SendError> {
        let start = Instant::now();
        let result = self.channel.transmit(bytes);
        let elapsed = start.elapsed();
        self.wire_time += elapsed;
        self.exchanges += 1;
        let Some(trace) = self.trace.as_mut() else {
            return match result {
                Ok(raw) => {
                    let len = raw.len();
                    Response::from_vec(raw).map_err(|_| SendError::MalformedResponse { len })
                }
                Err(e) => Err(SendError::Transport(e)),
            };
        };
        // What of the command may be shown: everything, or the bytes before a secret data field.
        let (command, command_redacted) =
            if kind != ExchangeKind::GetResponse && cmd.is_sensitive() && !cmd.data().is_empty() {
                // The short form is header, Lc, data, Le: anything longer is the extended form.
                let short_len = 5 + cmd.data().len() + 1;
                let le_len = match cmd.ne() {
                    None => 0,
                    Some(_) if bytes.len() > short_len => 2,
                    Some(_) => 1,
                };
                let keep = bytes.len().saturating_sub(cmd.data().len() + le_len);
                (bytes.get(..keep).unwrap_or_default(), cmd.data().len())
            } else {
                (bytes, 0)
            };
        match result {
            Ok(raw) => {
                let len = raw.len();
                let response =
                    Response::from_vec(raw).map_err(|_| SendError::MalformedResponse { len });
                let (shown, response_redacted, sw) = match &response {
                    Ok(r) if cmd.is_response_sensitive() => (&[][..], r.data().len(), Some(r.sw())),
                    Ok(r) => (r.data(), 0, Some(r.sw())),
                    Err(_) => (&[][..], len, None),
                };
                trace.record(&TraceEvent {
                    kind,
                    command,
                    command_redacted,
                    response: shown,
                    response_redacted,
                    sw,
                    elapsed,
                    error: None,
                });
                response
            }
            Err(e) => {
                let message = e.to_string();
                trace.record(&TraceEvent {
                    kind,
                    command,
                    command_redacted,
                    response: &[],
                    response_redacted: 0,
                    sw: None,
                    elapsed,
                    error: Some(&message),
                });
                Err(SendError::Transport(e))
            }
        }
    }
}

fn finish(response: Response, cmd: &Command) -> Response {
    if cmd.is_response_sensitive() {
        response.into_sensitive()
    } else {
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;
    use std::sync::{Arc, Mutex};

    fn session(script: &str) -> CardSession<ReplayChannel> {
        CardSession::new(ReplayChannel::parse(script).unwrap())
    }

    #[test]
    fn get_response_collects_all_parts() {
        let mut s = session(
            "> 00A4040002A00000\n< 6104\n\
             > 00C0000004\n< 01020304 6102\n\
             > 00C0000002\n< 0506 9000\n",
        );
        let r = s
            .send(
                &Command::new(0, 0xa4, 4, 0)
                    .with_data([0xa0, 0])
                    .expect_data(),
            )
            .unwrap();
        assert_eq!(r.data(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.sw(), StatusWord::Success);
        assert_eq!(s.exchanges(), 3);
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn wrong_le_is_resent() {
        let mut s = session("> 00B2012C00\n< 6C05\n> 00B2012C05\n< 0102030405 9000\n");
        let r = s
            .send(&Command::new(0, 0xb2, 1, 0x2c).expect_data())
            .unwrap();
        assert_eq!(r.data(), [1, 2, 3, 4, 5]);
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn wrong_le_on_get_response_is_resent() {
        let mut s = session(
            "> 0084000008\n< 6100\n> 00C0000000\n< 6C08\n> 00C0000008\n< 1122334455667788 9000\n",
        );
        let r = s.send(&Command::new(0, 0x84, 0, 0).with_ne(8)).unwrap();
        assert_eq!(r.data().len(), 8);
    }

    #[test]
    fn endless_61xx_is_cut_off() {
        let mut script = String::from("> 00B0000000\n< 6101\n");
        for _ in 0..100 {
            script.push_str("> 00C0000001\n< AA 6101\n");
        }
        let mut s = session(&script).with_options(SessionOptions {
            max_get_response: 10,
            ..SessionOptions::default()
        });
        assert_eq!(
            s.send(&Command::new(0, 0xb0, 0, 0).expect_data()),
            Err(SendError::EndlessGetResponse { rounds: 10 })
        );
    }

    #[test]
    fn endless_6cxx_is_cut_off() {
        let mut s = session("> 00B0000000\n< 6C10\n> 00B0000010\n< 6C11\n> 00B0000011\n< 6C12\n");
        assert_eq!(
            s.send(&Command::new(0, 0xb0, 0, 0).expect_data()),
            Err(SendError::WrongLeLoop)
        );
    }

    #[test]
    fn malformed_response_is_an_error() {
        let mut s = session("> 00B0000000\n< 90\n");
        assert_eq!(
            s.send(&Command::new(0, 0xb0, 0, 0).expect_data()),
            Err(SendError::MalformedResponse { len: 1 })
        );
    }

    #[test]
    fn long_data_is_chained() {
        let data: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let first = hex::encode_upper(&data[..255]);
        let second = hex::encode_upper(&data[255..]);
        let script = format!("> 10DA0000FF{first}\n< 9000\n> 00DA00002D{second}\n< 9000\n");
        let mut s = session(&script);
        let r = s
            .send(&Command::new(0, 0xda, 0, 0).with_data(data))
            .unwrap();
        assert!(r.is_success());
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn refused_chain_part_stops_the_chain() {
        let data = vec![0u8; 300];
        let script = format!("> 10DA0000FF{}\n< 6884\n", "00".repeat(255));
        let mut s = session(&script);
        let r = s
            .send(&Command::new(0, 0xda, 0, 0).with_data(data))
            .unwrap();
        assert_eq!(r.sw(), StatusWord::ChainingNotSupported);
    }

    #[test]
    fn extended_length_when_allowed() {
        let data = vec![0x11u8; 300];
        let script = format!("> 00DA000000012C{}\n< 9000\n", "11".repeat(300));
        let mut s = session(&script).with_options(SessionOptions {
            extended_length: true,
            ..SessionOptions::default()
        });
        assert!(
            s.send(&Command::new(0, 0xda, 0, 0).with_data(data))
                .unwrap()
                .is_success()
        );
    }

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);
    impl TraceSink for Collect {
        fn record(&mut self, e: &TraceEvent<'_>) {
            self.0.lock().unwrap().push(e.to_json_line());
        }
    }

    #[test]
    fn trace_redacts_sensitive_data() {
        let sink = Collect::default();
        let mut s =
            session("> 0020000003123456\n< 63C2\n> 0088000004AABBCCDD\n< 0102030405060708 9000\n")
                .with_trace(Box::new(sink.clone()));
        let verify = Command::new(0, 0x20, 0, 0)
            .with_data([0x12, 0x34, 0x56])
            .sensitive();
        assert_eq!(
            s.send(&verify).unwrap().sw(),
            StatusWord::WrongPin { tries_left: 2 }
        );
        let auth = Command::new(0, 0x88, 0, 0)
            .with_data([0xaa, 0xbb, 0xcc, 0xdd])
            .sensitive_response();
        let r = s.send(&auth).unwrap();
        assert_eq!(r.data().len(), 8);
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].contains("123456"), "{}", lines[0]);
        assert!(lines[0].contains("\"redacted\":3"), "{}", lines[0]);
        assert!(lines[0].contains("\"apdu\":\"0020000003\""), "{}", lines[0]);
        assert!(lines[0].contains("\"sw\":\"63C2\""), "{}", lines[0]);
        assert!(lines[1].contains("AABBCCDD"), "{}", lines[1]);
        assert!(!lines[1].contains("0102030405060708"), "{}", lines[1]);
    }

    #[test]
    fn a_reset_reruns_the_flow_once() {
        let mut s = session("> 00A4040000\n! reset\n> 00A4040000\n< 9000\n");
        let mut runs = 0;
        let r = rerun_after_reset(&mut s, |s| {
            runs += 1;
            s.send(&Command::new(0, 0xa4, 4, 0).expect_data())
        });
        assert!(r.unwrap().is_success());
        assert_eq!(runs, 2);
        let mut s = session("> 00A4040000\n! reset\n> 00A4040000\n! reset\n");
        let r = rerun_after_reset(&mut s, |s| {
            s.send(&Command::new(0, 0xa4, 4, 0).expect_data())
        });
        assert!(r.unwrap_err().is_card_reset());
    }

    #[test]
    fn transport_errors_pass_through_and_are_traced() {
        let sink = Collect::default();
        let mut s = CardSession::new(ReplayChannel::parse("> 00A4040000\n! removed\n").unwrap())
            .with_trace(Box::new(sink.clone()));
        assert_eq!(
            s.send(&Command::new(0, 0xa4, 4, 0).expect_data()),
            Err(SendError::Transport(TransportError::CardRemoved))
        );
        assert!(sink.0.lock().unwrap()[0].contains("the card was removed"));
    }
}
