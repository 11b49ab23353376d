//! A simulated GemPC Twin serial reader holding the software card, for one end of a pty pair.
//!
//! It answers as the reader would (see `docs/serial-readers.md`): the GemPC Twin framing
//! ([`wire`]), the CCID commands ([`engine`]), the card's T=0 and T=1 transmission at TPDU
//! level ([`slot`], [`t1card`]), the echo, NAK and retransmission, card-movement notifications,
//! the line's delay at a chosen baud rate and injectable line faults ([`faults`]), all in
//! [`serve::run`]. The `serial-reader` binary runs it on a pty; [`control`] is how tests steer
//! it, [`harness::SerialLine`] starts it with socat, [`pcscd`] shares the readers that pcscd's
//! libccidtwin drives, and [`checks`] are the checks both hosts must pass.

pub mod checks;
pub mod control;
pub mod engine;
pub mod faults;
pub mod harness;
pub mod pcscd;
pub mod serve;
pub mod slot;
pub mod t1card;
pub mod wire;

pub use harness::SerialLine;
