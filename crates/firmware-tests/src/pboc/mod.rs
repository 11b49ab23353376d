//! The PBOC 3.0 (JR/T 0025-2013) debit/credit application with electronic cash, card side, as
//! docs/pboc-profile.md lays it out: PSE `1PAY.SYS.DDF01`, PPSE `2PAY.SYS.DDF01`, the UnionPay
//! debit ADF `A000000333010101`, contact transactions with EC, qPBOC with fDDA, issuer
//! authentication and scripts, transaction and load logs, in an SM profile (SM2/SM3/SM4) or an
//! international one (RSA/SHA-1/3DES).
//!
//! Modules:
//! - [`state`]: what the application keeps in non-volatile memory ([`PbocState`]).
//! - [`files`]: PSE, PPSE and ADF, records, FCIs, and [`files::install`] for personalisers.
//! - `applet` (crate-internal): dispatch while the ADF is selected, SELECT, READ RECORD, GET
//!   DATA, INTERNAL AUTHENTICATE.
//! - [`gpo`]: GET PROCESSING OPTIONS, the EC decision and qPBOC card risk management.
//! - [`generate_ac`]: GENERATE AC, card risk management, CDA, issuer authentication.
//! - [`ec`], [`log`], [`script`], [`pin`], [`tear`], [`oda`], [`dol`], [`cryptogram`].
//! - [`profile`]: the `[pboc]` section of a card profile, for fixtures without an HSM.
//!
//! A personaliser (with keys and certificates from hsm-sim) builds a [`PbocState`] (public
//! fields; [`state::PbocKeys::set_card_keys`] for MK-AC/MK-SMI/MK-SMC, an
//! [`state::IccPrivateKey`]), a [`files::CardData`], and the certificates in a
//! [`files::OdaRecords`] signed over [`files::static_data`], then calls [`files::install`].

pub(crate) mod applet;
pub mod cryptogram;
pub mod dol;
pub mod ec;
pub mod files;
pub mod generate_ac;
pub mod gpo;
pub mod log;
pub mod oda;
pub mod pin;
pub mod profile;
pub mod script;
pub(crate) mod session;
pub mod state;
pub mod tear;

pub use state::{Algorithm, PbocState};

/// AID of the UnionPay debit application (docs/pboc-profile.md, JR/T 0025.3 §13).
pub const AID_DEBIT: &[u8] = &[0xa0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01];
/// RID of UnionPay, the first five bytes of the AID.
pub const RID: [u8; 5] = [0xa0, 0x00, 0x00, 0x03, 0x33];
/// CA public key index of the SM2 CA (docs/pboc-profile.md).
pub const CA_INDEX_SM2: u8 = 0x80;
/// CA public key index of the RSA CA (docs/pboc-profile.md).
pub const CA_INDEX_RSA: u8 = 0x08;
/// SFI of the transaction log (JR/T 0025.5 §18.1: recommended 11).
pub const SFI_LOG: u8 = 11;
/// SFI of the load log (JR/T 0025.13 §5.8: recommended 12).
pub const SFI_LOAD_LOG: u8 = 12;

/// Errors of laying out or personalising the application.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PbocError {
    /// A data element cannot be encoded (not digits, too long, file system full).
    #[error("PBOC data: {0}")]
    Data(String),
    /// A key or certificate could not be made.
    #[error("PBOC keys: {0}")]
    Oda(#[from] oda::OdaError),
}
