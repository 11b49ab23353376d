//! The PIN pad of a counter terminal run from a console: the cardholder types the PIN on the
//! terminal's keyboard at a prompt without echo (`/dev/tty`). The counter GUI has its own
//! on-screen pad; the tests have one that types as a cardholder would. Whatever the pad, the
//! PIN goes from it to the card and nowhere else.

use card_core::pboc::cvm::{PinEntry, PinPad, PinPrompt};
use card_core::secret::Pin;
use zeroize::Zeroizing;

/// Asks on the controlling terminal; an empty line cancels.
#[derive(Debug, Default)]
pub struct ConsolePinPad;

impl PinPad for ConsolePinPad {
    fn request_pin(&mut self, prompt: PinPrompt) -> PinEntry {
        let mut text = String::from("\n[counter] cardholder: enter the card's PIN");
        if prompt.previous_wrong {
            text.push_str(" (the last one was wrong)");
        }
        if let Some(n) = prompt.tries_left {
            text.push_str(&format!(", {n} tries left"));
        }
        text.push_str("; Enter alone cancels: ");
        let Ok(typed) = rpassword::prompt_password(text).map(Zeroizing::new) else {
            return PinEntry::Unavailable;
        };
        let typed = typed.trim();
        if typed.is_empty() {
            return PinEntry::Unavailable;
        }
        match Pin::new(typed) {
            Ok(pin) => PinEntry::Pin(pin),
            Err(_) => {
                eprintln!("[counter] a PIN is 6 digits; cancelled");
                PinEntry::Unavailable
            }
        }
    }
}
