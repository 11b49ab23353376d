//! The card's side of the T=1 block protocol (ISO/IEC 7816-3 §11), wrapped around the
//! APDU-level software card: I-block chaining both ways, R-blocks for retransmission, S(IFS),
//! S(RESYNCH), S(ABORT), and an S(WTX) request when a delay is injected.

/// State of the card's block layer.
#[derive(Debug, Clone)]
pub struct T1Card {
    /// N(S) of the next I-block the card sends.
    ns: bool,
    /// N(S) expected in the next I-block from the terminal.
    nr: bool,
    /// Largest INF the terminal takes (IFSD), 32 until it says otherwise.
    ifsd: usize,
    /// Chained command received so far.
    rx: Vec<u8>,
    /// Response still to send.
    tx: Vec<u8>,
    /// The last block sent (for retransmission).
    last: Vec<u8>,
    /// N(S) of the last I-block sent.
    last_i: Option<bool>,
    /// A response held back behind an S(WTX) request.
    after_wtx: Option<Vec<u8>>,
}

impl Default for T1Card {
    fn default() -> Self {
        Self {
            ns: false,
            nr: false,
            ifsd: 32,
            rx: Vec::new(),
            tx: Vec::new(),
            last: Vec::new(),
            last_i: None,
            after_wtx: None,
        }
    }
}

fn block(pcb: u8, inf: &[u8]) -> Vec<u8> {
    let mut b = vec![0, pcb, u8::try_from(inf.len()).unwrap_or(0)];
    b.extend_from_slice(inf);
    let x = b.iter().fold(0u8, |a, v| a ^ v);
    b.push(x);
    b
}

impl T1Card {
    fn send_i(&mut self) -> Vec<u8> {
        let n = self.tx.len().min(self.ifsd);
        let chunk: Vec<u8> = self.tx.drain(..n).collect();
        let more = !self.tx.is_empty();
        let pcb = (if self.ns { 0x40 } else { 0 }) | if more { 0x20 } else { 0 };
        self.last_i = Some(self.ns);
        self.ns = !self.ns;
        self.last = block(pcb, &chunk);
        self.last.clone()
    }

    fn send_r(&mut self, error: u8) -> Vec<u8> {
        self.last = block(0x80 | if self.nr { 0x10 } else { 0 } | error, &[]);
        self.last.clone()
    }

    /// Handle one block from the terminal; `card` runs a complete command APDU. With `wtx`,
    /// the answer to a complete command is held back behind an S(WTX request) of that
    /// multiplier.
    pub fn handle(
        &mut self,
        b: &[u8],
        wtx: Option<u8>,
        card: &mut dyn FnMut(&[u8]) -> Vec<u8>,
    ) -> Vec<u8> {
        let valid = b.len() >= 4
            && b.first() == Some(&0)
            && b.get(2).map(|l| usize::from(*l) + 4) == Some(b.len())
            && b.iter().fold(0u8, |a, v| a ^ v) == 0;
        if !valid {
            return self.send_r(0x01);
        }
        let pcb = b.get(1).copied().unwrap_or(0);
        let inf = b.get(3..b.len() - 1).unwrap_or_default();
        match pcb & 0xc0 {
            0x80 => {
                let seq = pcb & 0x10 != 0;
                if !self.tx.is_empty() && Some(seq) != self.last_i {
                    // Acknowledges our chained block: next one.
                    return self.send_i();
                }
                // Retransmission asked for.
                self.last.clone()
            }
            0xc0 => {
                let kind = pcb & 0x3f;
                match (kind, inf) {
                    (0x01, &[n]) if n > 0 && n < 0xff => {
                        self.ifsd = usize::from(n);
                        self.last = block(0xe1, &[n]);
                        self.last.clone()
                    }
                    (0x00, []) => {
                        *self = Self {
                            ifsd: self.ifsd,
                            ..Self::default()
                        };
                        self.last = block(0xe0, &[]);
                        self.last.clone()
                    }
                    (0x02, []) => {
                        self.rx.clear();
                        self.tx.clear();
                        self.last = block(0xe2, &[]);
                        self.last.clone()
                    }
                    (0x23, &[_]) => match self.after_wtx.take() {
                        Some(r) => {
                            self.tx = r;
                            self.send_i()
                        }
                        None => self.send_r(0x02),
                    },
                    _ => self.send_r(0x02),
                }
            }
            _ => {
                let seq = pcb & 0x40 != 0;
                if seq != self.nr {
                    return self.send_r(0x02);
                }
                self.nr = !self.nr;
                self.rx.extend_from_slice(inf);
                if pcb & 0x20 != 0 {
                    return self.send_r(0);
                }
                let apdu = core::mem::take(&mut self.rx);
                let response = card(&apdu);
                if let Some(m) = wtx {
                    self.after_wtx = Some(response);
                    self.last = block(0xc3, &[m]);
                    return self.last.clone();
                }
                self.tx = response;
                self.send_i()
            }
        }
    }
}
