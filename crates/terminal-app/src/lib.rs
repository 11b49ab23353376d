//! `terminal-app` holds the applications of the social-security terminal. So far that is the
//! technician's `cardctl` CLI ([`cardctl`]): list readers, watch reader and card events,
//! decode the ATR, read the SSSE identity (masked unless asked), verify the PIN, send raw
//! APDUs, with a redacted JSON-lines trace. The kiosk, the counter mode and the counter API
//! come with their issues and will share the UI-free flows kept here.

pub mod card_source;
pub mod cardctl;
pub mod clock;
pub mod counter;
pub mod counter_mode;
pub mod demo;
pub mod failpoint;
pub mod kiosk;
pub mod payment;
pub mod receipt;
pub mod service_view;
pub mod session;
pub mod techtools;
