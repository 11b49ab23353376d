//! The serial link to one GemPC Twin: frames out, frames in, retransmission.
//!
//! [`Link::exchange`] sends one CCID command and returns its response, and never returns a
//! response it cannot vouch for:
//!
//! - a frame with a bad checksum, a bad control byte, a frame cut off (no byte for the
//!   inter-character timeout) or a good frame followed by garbage is answered with NAK, and
//!   the reader sends its last response again (bounded: [`LinkConfig::max_naks`]);
//! - a NAK from the reader means it did not take our frame: the same frame (same bSeq) is
//!   sent again (bounded: [`LinkConfig::max_sends`]);
//! - the reader's echo of our frame (GemPC Twin readers echo every command) must equal what we
//!   sent; an echo of another command means the reader received a corrupted command, which is
//!   an error ([`SerialError::EchoMismatch`]), never retried;
//! - a response whose bSeq is not ours is stale (an answer to an earlier command): discarded;
//! - time requests (single bytes `80`..`FF`) and CCID time extensions (bStatus command status
//!   2, bError = multiplier) extend the wait; slot-change notifications are kept for the event
//!   watcher;
//! - end of file or an I/O error on the port is [`SerialError::Disconnected`]; no answer at
//!   all is [`SerialError::Timeout`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::ccid::{self, Command, CommandStatus, Response};
use super::error::SerialError;
use super::frame::{self, Decoder, FrameError, Item};

/// Settings of one serial link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Device path (`/dev/ttyS0`, `/dev/ttyUSB0`, a pty).
    pub path: String,
    /// Line speed. GemPC Twin readers run at 115200 (libccid sets it and nothing else).
    pub baud: u32,
    /// The reader echoes each command frame before answering (GemPC Twin: yes).
    pub echo: bool,
    /// Longest wait for an answer (extended by time requests and time extensions).
    pub response_timeout: Duration,
    /// Longest gap between two bytes of one frame before the frame counts as cut off.
    pub char_timeout: Duration,
    /// How often one command may be sent (first time included) when the reader NAKs it or
    /// does not answer at all.
    pub max_sends: u32,
    /// How many NAKs we send for one command before giving up on a garbled answer.
    pub max_naks: u32,
}

impl LinkConfig {
    /// Defaults for a GemPC Twin on `path`: 115200 baud, echo, 3 s response timeout (as
    /// libccid's default read timeout), 3 sends, 3 NAKs.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            baud: 115_200,
            echo: true,
            response_timeout: Duration::from_secs(3),
            char_timeout: Duration::from_millis(100),
            max_sends: 3,
            max_naks: 3,
        }
    }

    /// Time one byte takes on the line (8 data bits, 2 stop bits, as libccid sets it).
    pub fn byte_time(&self) -> Duration {
        Duration::from_nanos(11_000_000_000 / u64::from(self.baud.max(1)))
    }
}

/// Counters of what happened on a link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Commands exchanged.
    pub commands: u64,
    /// Frames sent again after a NAK or no answer.
    pub retransmissions: u64,
    /// NAKs we sent for garbled or missing answers.
    pub naks_sent: u64,
    /// NAKs the reader sent us.
    pub naks_received: u64,
    /// Garbled frames seen.
    pub garbled: u64,
    /// Responses discarded for a stale bSeq.
    pub stale: u64,
    /// Time requests and time extensions.
    pub time_extensions: u64,
}

/// The byte stream under a link.
pub trait Line: Send {
    /// Write all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Read what is there, waiting up to `timeout` for something. `Ok(0)` is end of file;
    /// `Err` of kind `TimedOut` is "nothing came".
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
}

/// A serial port opened with the `serialport` crate.
pub struct PortLine {
    port: serialport::TTYPort,
}

impl std::fmt::Debug for PortLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortLine").finish_non_exhaustive()
    }
}

impl PortLine {
    /// Open `path` at `baud`, 8 data bits, no parity, 2 stop bits, no flow control (the
    /// settings libccid uses), and empty both buffers.
    pub fn open(path: &str, baud: u32) -> Result<Self, SerialError> {
        let open_err = |e: serialport::Error| SerialError::Open {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::Two)
            .flow_control(serialport::FlowControl::None)
            .timeout(Duration::from_millis(100))
            .open_native()
            .map_err(open_err)?;
        let mut line = Self { port };
        use serialport::SerialPort as _;
        let _ = line.port.clear(serialport::ClearBuffer::All);
        // Anything a previous user left in the kernel buffer is not ours.
        let mut buf = [0u8; 256];
        while matches!(line.read_some(&mut buf, Duration::ZERO), Ok(n) if n > 0) {}
        Ok(line)
    }
}

impl Line for PortLine {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }

    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        use serialport::SerialPort as _;
        self.port
            .set_timeout(timeout)
            .map_err(|e| io::Error::other(e.to_string()))?;
        match self.port.read(buf) {
            // A pty whose other side closed reports EIO; a USB adapter pulled, ENXIO/ENODEV.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(e),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "interrupted"))
            }
            other => other,
        }
    }
}

/// One serial link to a reader.
pub struct Link {
    line: Box<dyn Line>,
    config: LinkConfig,
    decoder: Decoder,
    queued: VecDeque<Result<Item, FrameError>>,
    seq: u8,
    slot_changes: Vec<u8>,
    stats: LinkStats,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("path", &self.config.path)
            .field("seq", &self.seq)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Link {
    /// A link over an open line.
    pub fn new(line: Box<dyn Line>, config: LinkConfig) -> Self {
        Self {
            line,
            config,
            decoder: Decoder::new(),
            queued: VecDeque::new(),
            seq: 0,
            slot_changes: Vec::new(),
            stats: LinkStats::default(),
            buf: vec![0; 512],
        }
    }

    /// The settings.
    pub const fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Counters so far.
    pub const fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Slot-change notifications (`02` absent, `03` present) seen since the last call.
    pub fn take_slot_changes(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.slot_changes)
    }

    fn gone(&self, reason: impl std::fmt::Display) -> SerialError {
        SerialError::Disconnected {
            path: self.config.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SerialError> {
        self.line.write_all(bytes).map_err(|e| self.gone(e))
    }

    /// Read into the decoder, waiting up to `wait`. `Ok(false)`: nothing came.
    fn fill(&mut self, wait: Duration) -> Result<bool, SerialError> {
        let mut buf = core::mem::take(&mut self.buf);
        let result = self.line.read_some(&mut buf, wait);
        let out = match result {
            Ok(0) => Err(self.gone("end of file")),
            Ok(n) => {
                for &b in buf.get(..n).unwrap_or_default() {
                    if let Some(item) = self.decoder.push(b) {
                        self.queued.push_back(item);
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(self.gone(e)),
        };
        self.buf = buf;
        out
    }

    /// The next item, or `None` when `deadline` passes with nothing. A frame that stops for
    /// longer than the inter-character timeout comes out as [`FrameError::Incomplete`].
    fn next_item(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Result<Item, FrameError>>, SerialError> {
        loop {
            if let Some(item) = self.queued.pop_front() {
                return Ok(Some(item));
            }
            let now = Instant::now();
            let in_item = self.decoder.in_item();
            let wait = if in_item {
                self.config.char_timeout
            } else {
                deadline.saturating_duration_since(now)
            };
            if !in_item && wait.is_zero() {
                return Ok(None);
            }
            if !self.fill(wait)? && in_item {
                let got = self.decoder.partial_len();
                self.decoder.reset();
                return Ok(Some(Err(FrameError::Incomplete { got })));
            }
        }
    }

    /// Throw away whatever is on the line until it is quiet, so that what comes after a NAK
    /// is read from a clean start.
    fn drain(&mut self) -> Result<(), SerialError> {
        self.queued.clear();
        self.decoder.reset();
        let quiet = self.config.byte_time() * 3 + Duration::from_millis(3);
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until && self.fill(quiet)? {
            self.queued.clear();
            self.decoder.reset();
        }
        self.queued.clear();
        self.decoder.reset();
        Ok(())
    }

    /// After a response frame: is anything but whole frames right behind it? A flip in
    /// `dwLength` can make a shorter frame with a good checksum by chance; its leftover bytes
    /// give it away, whatever they parse as (a reader sends time requests and notifications
    /// before its answer, never right after it).
    fn garbage_follows(&mut self) -> Result<bool, SerialError> {
        self.fill(Duration::ZERO)?;
        if self.decoder.in_item() {
            let until = Instant::now() + self.config.char_timeout;
            while self.decoder.in_item() && Instant::now() < until {
                if !self.fill(self.config.char_timeout)? {
                    break;
                }
            }
            if self.decoder.in_item() {
                return Ok(true);
            }
        }
        Ok(self
            .queued
            .iter()
            .any(|item| !matches!(item, Ok(Item::Frame(_)))))
    }

    fn send_nak(&mut self) -> Result<(), SerialError> {
        self.stats.naks_sent += 1;
        self.write(&frame::NAK_FRAME)
    }

    /// Send `command` and return the reader's response to it (see the module documentation
    /// for the rules). A response whose command status is "failed" is returned as it is: its
    /// meaning depends on the command.
    pub fn exchange(&mut self, command: &Command) -> Result<Response, SerialError> {
        self.exchange_with_timeout(command, self.config.response_timeout)
    }

    /// [`Link::exchange`] with another response timeout.
    pub fn exchange_with_timeout(
        &mut self,
        command: &Command,
        timeout: Duration,
    ) -> Result<Response, SerialError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.stats.commands += 1;
        let message = command.encode(seq);
        let frame =
            frame::encode(&message).map_err(|last| SerialError::Garbled { attempts: 0, last })?;
        let expected = ccid::response_type(command.kind);
        // Time to move the frame, its echo and a longest answer at this speed.
        let line_time =
            self.config.byte_time() * u32::try_from(frame.len() * 2 + 280).unwrap_or(u32::MAX);
        let wait = timeout + line_time;
        let mut sends = 0u32;
        let mut naks = 0u32;
        let mut extensions = 0u32;
        'send: loop {
            sends += 1;
            if sends > self.config.max_sends {
                return Err(SerialError::Refused {
                    attempts: sends - 1,
                });
            }
            if sends > 1 {
                self.stats.retransmissions += 1;
            }
            self.write(&frame)?;
            let mut awaiting_echo = self.config.echo;
            let mut heard = false;
            let mut deadline = Instant::now() + wait;
            loop {
                let item = self.next_item(deadline)?;
                let garbled = match item {
                    None => {
                        if !heard {
                            // Not a byte back: the reader did not see the frame. Send again.
                            if sends >= self.config.max_sends {
                                return Err(SerialError::Timeout {
                                    waited: wait * sends,
                                });
                            }
                            continue 'send;
                        }
                        // It heard us but its answer did not come: ask for it again.
                        if naks >= self.config.max_naks {
                            return Err(SerialError::Timeout { waited: wait });
                        }
                        naks += 1;
                        self.send_nak()?;
                        awaiting_echo = false;
                        deadline = Instant::now() + wait;
                        continue;
                    }
                    Some(Err(e)) => Some(e),
                    Some(Ok(Item::Nak)) => {
                        self.stats.naks_received += 1;
                        self.drain()?;
                        continue 'send;
                    }
                    Some(Ok(Item::SlotChange(state))) => {
                        heard = true;
                        self.slot_changes.push(state);
                        None
                    }
                    Some(Ok(Item::TimeRequest(_))) => {
                        heard = true;
                        extensions += 1;
                        self.stats.time_extensions += 1;
                        if extensions > 10_000 {
                            return Err(SerialError::Timeout { waited: wait });
                        }
                        deadline = Instant::now() + wait;
                        None
                    }
                    Some(Ok(Item::Frame(m))) => {
                        heard = true;
                        if m == message {
                            // The echo (or a late repeat of it).
                            awaiting_echo = false;
                            continue;
                        }
                        if awaiting_echo && m.first().is_some_and(|k| (0x60..0x70).contains(k)) {
                            self.drain()?;
                            return Err(SerialError::EchoMismatch);
                        }
                        awaiting_echo = false;
                        if self.garbage_follows()? {
                            Some(FrameError::BadChecksum {
                                residue: 0,
                                len: m.len(),
                            })
                        } else {
                            let response = Response::parse(&m)?;
                            if response.seq != seq {
                                self.stats.stale += 1;
                                continue;
                            }
                            if Some(response.kind) != expected {
                                return Err(SerialError::WrongResponseType {
                                    expected: expected.unwrap_or(0),
                                    got: response.kind,
                                });
                            }
                            if response.command() == CommandStatus::TimeExtension {
                                extensions += 1;
                                self.stats.time_extensions += 1;
                                if extensions > 10_000 {
                                    return Err(SerialError::Timeout { waited: wait });
                                }
                                deadline = Instant::now() + wait * u32::from(response.error.max(1));
                                continue;
                            }
                            return Ok(response);
                        }
                    }
                };
                if let Some(last) = garbled {
                    heard = true;
                    self.stats.garbled += 1;
                    if naks >= self.config.max_naks {
                        self.drain()?;
                        return Err(SerialError::Garbled {
                            attempts: naks + 1,
                            last,
                        });
                    }
                    naks += 1;
                    self.drain()?;
                    self.send_nak()?;
                    // What comes next is the reader's repeat of its last answer, not an echo.
                    awaiting_echo = false;
                    deadline = Instant::now() + wait;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A line that answers each write with the next scripted bytes.
    struct Scripted {
        written: Arc<Mutex<Vec<Vec<u8>>>>,
        script: VecDeque<Vec<u8>>,
        readable: VecDeque<u8>,
    }

    impl Line for Scripted {
        fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.written.lock().unwrap().push(bytes.to_vec());
            if let Some(next) = self.script.pop_front() {
                self.readable.extend(next);
            }
            Ok(())
        }

        fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
            if self.readable.is_empty() {
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
                return Err(io::Error::new(io::ErrorKind::TimedOut, "quiet"));
            }
            let mut n = 0;
            for slot in buf.iter_mut() {
                let Some(b) = self.readable.pop_front() else {
                    break;
                };
                *slot = b;
                n += 1;
            }
            Ok(n)
        }
    }

    fn link(script: Vec<Vec<u8>>) -> (Link, Arc<Mutex<Vec<Vec<u8>>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let line = Scripted {
            written: Arc::clone(&written),
            script: script.into(),
            readable: VecDeque::new(),
        };
        let mut c = LinkConfig::new("scripted");
        c.response_timeout = Duration::from_millis(50);
        c.char_timeout = Duration::from_millis(10);
        (Link::new(Box::new(line), c), written)
    }

    fn response(kind: u8, seq: u8, data: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(data.len() as u32).to_le_bytes());
        m.extend_from_slice(&[0, seq, 0, 0, 0]);
        m.extend_from_slice(data);
        m
    }

    fn framed(m: &[u8]) -> Vec<u8> {
        frame::encode(m).unwrap()
    }

    fn command_frame(seq: u8) -> Vec<u8> {
        framed(&Command::slot_status().encode(seq))
    }

    #[test]
    fn echo_then_answer() {
        let mut answer = command_frame(0);
        answer.extend(framed(&response(0x81, 0, &[])));
        let (mut l, written) = link(vec![answer]);
        let r = l.exchange(&Command::slot_status()).unwrap();
        assert_eq!(r.kind, 0x81);
        assert_eq!(written.lock().unwrap().len(), 1);
    }

    #[test]
    fn echo_of_another_command_is_an_error() {
        // The reader echoes a command whose bSeq differs: it got something else.
        let (mut l, _) = link(vec![command_frame(7)]);
        assert_eq!(
            l.exchange(&Command::slot_status()),
            Err(SerialError::EchoMismatch)
        );
    }

    #[test]
    fn stale_answer_is_skipped_and_wrong_type_refused() {
        let mut answer = command_frame(0);
        answer.extend(framed(&response(0x81, 0xff, &[])));
        answer.extend(framed(&response(0x81, 0, &[])));
        let (mut l, _) = link(vec![answer]);
        assert_eq!(l.exchange(&Command::slot_status()).unwrap().seq, 0);
        assert_eq!(l.stats().stale, 1);
        let mut answer = command_frame(0);
        answer.extend(framed(&response(0x80, 0, &[0x90, 0])));
        let (mut l, _) = link(vec![answer]);
        assert_eq!(
            l.exchange(&Command::slot_status()),
            Err(SerialError::WrongResponseType {
                expected: 0x81,
                got: 0x80
            })
        );
    }

    /// A flipped `dwLength` bit that leaves a shorter frame with a zero XOR: the bytes it
    /// leaves behind make the link ask again, and the good copy is taken.
    #[test]
    fn shortened_frame_with_good_checksum_is_asked_again() {
        let mut data = vec![0x11, 0x22, 0x33, 0x44, 0];
        let mut m = response(0x80, 0, &data);
        // Choose the last data byte so that the frame cut after 4 data bytes has XOR 0.
        let mut short = m.clone();
        short[1] = 4;
        let x = frame::lrc(&[frame::SYNC, frame::ACK]) ^ frame::lrc(&short[..14]);
        data[4] = x;
        m = response(0x80, 0, &data);
        let good = framed(&m);
        let mut bad = good.clone();
        bad[3] = 4;
        let xfr = Command::xfr_block(&[0, 0xb0, 0, 0, 3], 0);
        let mut first = framed(&xfr.encode(0));
        first.extend(&bad);
        // After our NAK the reader sends its answer again.
        let (mut l, written) = link(vec![first, good]);
        let r = l.exchange(&xfr).unwrap();
        assert_eq!(r.data, data);
        assert_eq!(written.lock().unwrap().get(1).unwrap(), &frame::NAK_FRAME);
        assert_eq!(l.stats().naks_sent, 1);
    }

    /// Leftover bytes that parse as a time request still give a shortened frame away.
    #[test]
    fn trailing_time_request_after_an_answer_is_suspect() {
        let xfr = Command::xfr_block(&[0, 0xb0, 0, 0, 2], 0);
        let good = framed(&response(0x80, 0, &[0x90, 0]));
        let mut first = framed(&xfr.encode(0));
        first.extend(&good);
        first.push(0x80);
        let (mut l, written) = link(vec![first, good]);
        assert_eq!(l.exchange(&xfr).unwrap().data, [0x90, 0]);
        assert_eq!(written.lock().unwrap().get(1).unwrap(), &frame::NAK_FRAME);
    }

    #[test]
    fn nak_from_the_reader_resends_the_same_frame() {
        let mut answer = command_frame(0);
        answer.extend(framed(&response(0x81, 0, &[])));
        let (mut l, written) = link(vec![frame::NAK_FRAME.to_vec(), answer]);
        l.exchange(&Command::slot_status()).unwrap();
        let w = written.lock().unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0], w[1]);
        assert_eq!(l.stats().retransmissions, 1);
    }

    #[test]
    fn silence_is_a_timeout_after_bounded_sends() {
        let (mut l, written) = link(vec![]);
        assert!(matches!(
            l.exchange(&Command::slot_status()),
            Err(SerialError::Timeout { .. })
        ));
        assert_eq!(written.lock().unwrap().len(), 3);
    }
}
