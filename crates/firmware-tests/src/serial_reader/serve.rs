//! The simulated reader on its end of the line: bytes in, frames out, with the line's delay
//! and the injected faults.
//!
//! For each good command frame the reader echoes it (GemPC Twin readers do, and libccidtwin
//! expects it), sends a pending card-movement notification (`50 02`/`50 03`, synchronous
//! mode), then the response frame. A frame with a bad checksum, or one that stops for longer
//! than the inter-character timeout, is answered with one NAK once the line is quiet. A NAK from
//! the host gets the last response again; the same command frame again (same bSeq and bytes,
//! a retransmission) gets the same response again without running the command twice.
//!
//! With a baud rate set, every frame takes the time it would take on the line (11 bits a
//! byte: start, 8 data bits, 2 stop bits): incoming frames are processed only once they could
//! have arrived, outgoing frames are held back for their transmission time. The echo costs no
//! extra time (on a real line it comes back while the command goes out).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::control::{Control, Request};
use super::engine;
use super::faults::{self, Fault, FaultPlan};
use super::slot::Slot;
use super::wire::{self, HostDecoder, Input};
use crate::{Profile, SoftCard};

/// How the reader behaves on the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Simulated line speed (0: no delay).
    pub baud: u32,
    /// Echo every command frame (GemPC Twin: yes).
    pub echo: bool,
    /// Gap after which a partial frame counts as cut off.
    pub char_timeout: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            baud: 0,
            echo: true,
            char_timeout: Duration::from_millis(50),
        }
    }
}

/// Counters of the reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Good command frames.
    pub frames: u64,
    /// NAKs the reader sent.
    pub naks_sent: u64,
    /// NAKs the host sent.
    pub naks_received: u64,
    /// Retransmitted commands answered from the cache.
    pub duplicates: u64,
}

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A `quit` command.
    Quit,
    /// The line closed (the other end of the pty went away).
    LineClosed,
}

struct State {
    opts: ReaderOptions,
    slot: Slot,
    plan: FaultPlan,
    stats: ReaderStats,
    decoder: HostDecoder,
    frame_start: Instant,
    last_byte: Instant,
    nak_due: bool,
    last_command: Vec<u8>,
    last_response: Vec<u8>,
    /// `noisy-return`: the bit flipped in every repeat of the last response.
    noisy_return: Option<usize>,
    notify: Option<u8>,
    muted_until: Option<Instant>,
}

fn byte_time(baud: u32) -> Duration {
    if baud == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(11_000_000_000 / u64::from(baud))
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

impl State {
    fn bytes_time(&self, n: usize) -> Duration {
        byte_time(self.opts.baud) * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Transmit `bytes`, taking the line's time.
    fn send(&self, out: &mut File, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        sleep_until(Instant::now() + self.bytes_time(bytes.len()));
        out.write_all(bytes)?;
        out.flush()
    }

    fn control(&mut self, c: Control) -> (String, bool) {
        match c {
            Control::Insert(name) => {
                let Some(profile) = Profile::embedded(&name) else {
                    return (format!("error no fixture card {name:?}"), false);
                };
                match profile.build() {
                    Ok(image) => {
                        self.slot.insert(&name, SoftCard::in_memory(image));
                        self.notify = Some(0x03);
                        (format!("ok inserted {name}"), false)
                    }
                    Err(e) => (format!("error {e}"), false),
                }
            }
            Control::Remove => match self.slot.remove() {
                Some(i) => {
                    self.notify = Some(0x02);
                    (format!("ok removed {}", i.name), false)
                }
                None => ("ok empty".into(), false),
            },
            Control::Fault(f, n) => {
                self.plan.push(f, n);
                (format!("ok {} pending", self.plan.pending()), false)
            }
            Control::ClearFaults => {
                self.plan.clear();
                ("ok".into(), false)
            }
            Control::Mute(d) => {
                self.muted_until = Some(Instant::now() + d);
                ("ok muted".into(), false)
            }
            Control::Baud(b) => {
                self.opts.baud = b;
                (format!("ok baud {b}"), false)
            }
            Control::Stats => (
                format!(
                    "ok frames={} naks_sent={} naks_received={} duplicates={} apdus={} faults_injected={} faults_pending={} card={}",
                    self.stats.frames,
                    self.stats.naks_sent,
                    self.stats.naks_received,
                    self.stats.duplicates,
                    self.slot.apdus,
                    self.plan.injected,
                    self.plan.pending(),
                    self.slot
                        .inserted
                        .as_ref()
                        .map_or("none", |i| i.name.as_str())
                ),
                false,
            ),
            Control::Tries => match &self.slot.inserted {
                Some(i) => (format!("ok {}", i.card.image().pin.tries_left), false),
                None => ("error no card".into(), false),
            },
            Control::Quit => ("ok bye".into(), true),
        }
    }

    fn input(&mut self, out: &mut File, bytes: &[u8], faults_on: bool) -> io::Result<()> {
        for &b in bytes {
            if !self.decoder.partial() {
                self.frame_start = Instant::now();
            }
            match self.decoder.push(b) {
                None => {}
                Some(Input::Garbage) => self.nak_due = true,
                Some(Input::Nak) => {
                    self.stats.naks_received += 1;
                    let mut last = self.last_response.clone();
                    if let Some(bit) = self.noisy_return {
                        faults::flip(&mut last, bit);
                    }
                    self.send(out, &last)?;
                }
                Some(Input::Frame(raw)) => self.frame(out, raw, faults_on)?,
            }
        }
        Ok(())
    }

    fn frame(&mut self, out: &mut File, raw: Vec<u8>, faults_on: bool) -> io::Result<()> {
        let message = raw.get(2..raw.len().saturating_sub(1)).unwrap_or_default();
        let is_xfr = message.first() == Some(&0x6f);
        let duplicate = raw == self.last_command && !self.last_response.is_empty();
        let fault = if faults_on && is_xfr && !duplicate {
            self.plan.take_next()
        } else {
            None
        };
        if let Some(f) = fault
            && f.inbound()
        {
            // The frame is damaged on its way in: parse the damaged bytes instead.
            let mut damaged = raw.clone();
            match f {
                Fault::DropCommand(n) => faults::drop_bytes(&mut damaged, n),
                Fault::FlipCommand(bit) => faults::flip(&mut damaged, bit),
                _ => {}
            }
            self.frame_start = Instant::now();
            return self.input(out, &damaged, false);
        }
        self.nak_due = false;
        self.stats.frames += 1;
        // The frame could not have arrived faster than the line carries it.
        sleep_until(self.frame_start + self.bytes_time(raw.len()));
        let lose = fault == Some(Fault::LoseResponse);
        if self.opts.echo && !lose {
            let mut echo = raw.clone();
            if let Some(Fault::FlipEcho(bit)) = fault {
                faults::flip(&mut echo, bit);
            }
            out.write_all(&echo)?;
        }
        if let Some(state) = self.notify.take() {
            self.send(out, &[0x50, state])?;
        }
        if duplicate {
            self.stats.duplicates += 1;
            let last = self.last_response.clone();
            return self.send(out, &last);
        }
        let seq = message.get(6).copied().unwrap_or(0);
        match fault {
            Some(Fault::Delay(d)) => {
                let end = Instant::now() + d;
                while Instant::now() < end {
                    self.send(out, &[0x80])?;
                    sleep_until((Instant::now() + Duration::from_millis(100)).min(end));
                }
            }
            Some(Fault::TimeExtension(d)) => {
                let end = Instant::now() + d;
                while Instant::now() < end {
                    let ext = wire::frame(&engine::response(0x80, seq, 0x80, 1, 0, &[]));
                    self.send(out, &ext)?;
                    sleep_until((Instant::now() + Duration::from_millis(100)).min(end));
                }
            }
            _ => {}
        }
        let wtx = match fault {
            Some(Fault::Wtx(n)) => Some(n),
            _ => None,
        };
        let response = wire::frame(&engine::handle(&mut self.slot, message, wtx));
        self.last_command = raw;
        self.last_response = response.clone();
        self.noisy_return = match fault {
            Some(Fault::NoisyReturn(bit)) => Some(bit),
            _ => None,
        };
        let mut bytes = response;
        match fault {
            Some(Fault::FlipResponse(bit) | Fault::NoisyReturn(bit)) => {
                faults::flip(&mut bytes, bit)
            }
            Some(Fault::DropResponse(n)) => faults::drop_bytes(&mut bytes, n),
            Some(Fault::Stale) => {
                let mut stale = wire::frame(&engine::response(
                    0x80,
                    seq.wrapping_sub(1),
                    0,
                    0,
                    0,
                    &[0x90, 0],
                ));
                stale.extend_from_slice(&bytes);
                bytes = stale;
            }
            Some(Fault::Garbage) => {
                let mut noisy = vec![0x41, 0x00, 0x7e];
                noisy.extend_from_slice(&bytes);
                bytes = noisy;
            }
            Some(Fault::LoseResponse) => bytes.clear(),
            _ => {}
        }
        self.send(out, &bytes)
    }
}

/// Serve the line at `path` until `quit` or until the line closes. Commands come on
/// `controls`; `insert` names a fixture card to start with.
pub fn run(
    path: &Path,
    opts: ReaderOptions,
    controls: &Receiver<Request>,
    insert: Option<&str>,
) -> io::Result<Ended> {
    // O_NOCTTY (0o400 on Linux): the pty must not become the reader's controlling terminal.
    let mut out = File::options()
        .read(true)
        .write(true)
        .custom_flags(0o400)
        .open(path)?;
    let mut input = out.try_clone()?;
    let (bytes_tx, bytes_rx) = channel::<Option<Vec<u8>>>();
    std::thread::Builder::new()
        .name("serial-reader-rx".into())
        .spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = bytes_tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if bytes_tx
                            .send(Some(buf.get(..n).unwrap_or_default().to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        })?;
    let now = Instant::now();
    let mut st = State {
        opts,
        slot: Slot::default(),
        plan: FaultPlan::default(),
        stats: ReaderStats::default(),
        decoder: HostDecoder::default(),
        frame_start: now,
        last_byte: now,
        nak_due: false,
        last_command: Vec::new(),
        last_response: Vec::new(),
        noisy_return: None,
        notify: None,
        muted_until: None,
    };
    if let Some(name) = insert {
        let (answer, _) = st.control(Control::Insert(name.to_string()));
        if !answer.starts_with("ok") {
            return Err(io::Error::other(answer));
        }
        st.notify = None;
    }
    loop {
        while let Ok(req) = controls.try_recv() {
            let (answer, quit) = st.control(req.control);
            let _ = req.reply.send(answer);
            if quit {
                return Ok(Ended::Quit);
            }
        }
        let wait = if st.decoder.partial() || st.nak_due {
            st.opts.char_timeout
        } else {
            Duration::from_millis(20)
        };
        match bytes_rx.recv_timeout(wait) {
            Ok(Some(bytes)) => {
                if st.muted_until.is_some_and(|t| Instant::now() < t) {
                    st.decoder.reset();
                    st.nak_due = false;
                    continue;
                }
                st.muted_until = None;
                st.last_byte = Instant::now();
                st.input(&mut out, &bytes, true)?;
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return Ok(Ended::LineClosed),
            Err(RecvTimeoutError::Timeout) => {
                let quiet = st.last_byte.elapsed() >= st.opts.char_timeout;
                if quiet && (st.decoder.partial() || st.nak_due) {
                    st.decoder.reset();
                    st.nak_due = false;
                    st.stats.naks_sent += 1;
                    out.write_all(&wire::NAK_FRAME)?;
                }
            }
        }
    }
}
