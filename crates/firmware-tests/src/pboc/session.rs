//! What the application keeps in RAM for one transaction: the data the terminal sent, the
//! card verification results being built, the cryptograms given so far. Lost at power-off,
//! reset, and when another application is selected.

use super::dol::DolData;

/// Card verification results (JR/T 0025.5 附录 A `CVR`), as the 4 bytes of the issuer
/// application data: byte 1 is the length `03`.
pub(crate) mod cvr {
    /// Byte 2: second GENERATE AC returned TC.
    pub const SECOND_TC: (usize, u8) = (1, 0x40);
    /// Byte 2: second GENERATE AC not requested.
    pub const SECOND_NOT_REQUESTED: (usize, u8) = (1, 0x80);
    /// Byte 2 mask of the second GENERATE AC result.
    pub const SECOND_MASK: (usize, u8) = (1, 0xc0);
    /// Byte 2: first GENERATE AC returned TC.
    pub const FIRST_TC: (usize, u8) = (1, 0x10);
    /// Byte 2: first GENERATE AC returned ARQC.
    pub const FIRST_ARQC: (usize, u8) = (1, 0x20);
    /// Byte 2: issuer authentication performed and failed.
    pub const ISSUER_AUTH_FAILED: (usize, u8) = (1, 0x08);
    /// Byte 2: offline PIN performed.
    pub const PIN_PERFORMED: (usize, u8) = (1, 0x04);
    /// Byte 2: offline PIN verification failed.
    pub const PIN_FAILED: (usize, u8) = (1, 0x02);
    /// Byte 2: unable to go online.
    pub const UNABLE_ONLINE: (usize, u8) = (1, 0x01);
    /// Byte 3: last online transaction not completed.
    pub const LAST_ONLINE_NOT_COMPLETED: (usize, u8) = (2, 0x80);
    /// Byte 3: PIN try limit exceeded.
    pub const PIN_LIMIT_EXCEEDED: (usize, u8) = (2, 0x40);
    /// Byte 3: velocity checking exceeded.
    pub const VELOCITY_EXCEEDED: (usize, u8) = (2, 0x20);
    /// Byte 3: new card.
    pub const NEW_CARD: (usize, u8) = (2, 0x10);
    /// Byte 3: issuer authentication failed in the last online transaction.
    pub const LAST_ISSUER_AUTH_FAILED: (usize, u8) = (2, 0x08);
    /// Byte 3: issuer authentication not performed after online authorisation.
    pub const ISSUER_AUTH_NOT_PERFORMED: (usize, u8) = (2, 0x04);
    /// Byte 3: application blocked because the PIN try limit was exceeded.
    pub const BLOCKED_BY_PIN: (usize, u8) = (2, 0x02);
    /// Byte 3: SDA failed in the last transaction, which was declined.
    pub const LAST_SDA_FAILED: (usize, u8) = (2, 0x01);
    /// Byte 4: issuer script failed in the last transaction.
    pub const LAST_SCRIPT_FAILED: (usize, u8) = (3, 0x08);
    /// Byte 4: DDA failed in the last transaction, which was declined.
    pub const LAST_DDA_FAILED: (usize, u8) = (3, 0x04);
    /// Byte 4: DDA performed.
    pub const DDA_PERFORMED: (usize, u8) = (3, 0x02);

    /// The CVR of a new transaction: length `03`, everything else zero (JR/T 0025.5 §7.4
    /// step 3 c)).
    pub const INITIAL: [u8; 4] = [0x03, 0, 0, 0];
}

/// Cryptogram information data (JR/T 0025.5 附录 B.6 表B.9).
pub(crate) mod cid {
    /// AAC.
    pub const AAC: u8 = 0x00;
    /// TC.
    pub const TC: u8 = 0x40;
    /// ARQC.
    pub const ARQC: u8 = 0x80;
}

/// The qPBOC part of a transaction (JR/T 0025.12 §7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Qpboc {
    /// Offline approved: the AFL was returned and the tear guard is set.
    pub offline: bool,
    /// fDDA version 01 (TTQ byte 4 bit 8).
    pub fdda_v01: bool,
    /// Card unpredictable number of `9F69`.
    pub card_un: [u8; 4],
    /// Card transaction qualifiers returned.
    pub ctq: [u8; 2],
    /// The last record the AFL names (SFI, record).
    pub last_record: Option<(u8, u8)>,
}

/// Which path the GPO chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Path {
    /// Contact debit/credit; `ec` when JR/T 0025.13 §7.4.2 made it an EC transaction.
    Contact {
        /// An electronic-cash transaction.
        ec: bool,
    },
    /// qPBOC.
    Qpboc(Qpboc),
}

/// An application cryptogram given: its type and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ac {
    /// Cryptogram information data.
    pub cid: u8,
    /// The cryptogram.
    pub value: [u8; 8],
}

/// One transaction, from GET PROCESSING OPTIONS on.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    /// Contact or qPBOC.
    pub path: Path,
    /// The PDOL data of GPO.
    pub pdol: DolData,
    /// The CDOL1 data of the first GENERATE AC.
    pub cdol1: Option<DolData>,
    /// The CDOL2 data of the second GENERATE AC.
    pub cdol2: Option<DolData>,
    /// The card verification results being built.
    pub cvr: [u8; 4],
    /// GENERATE AC commands processed.
    pub gen_ac_count: u8,
    /// The first cryptogram.
    pub first_ac: Option<Ac>,
    /// EXTERNAL AUTHENTICATE received, and whether it succeeded.
    pub external_auth: Option<bool>,
    /// The authorisation response code of successful issuer authentication.
    pub issuer_arc: Option<[u8; 2]>,
    /// The second GENERATE AC was processed.
    pub completed: bool,
}

impl Txn {
    /// A transaction just started by GPO.
    pub fn new(path: Path, pdol: DolData) -> Self {
        Self {
            path,
            pdol,
            cdol1: None,
            cdol2: None,
            cvr: cvr::INITIAL,
            gen_ac_count: 0,
            first_ac: None,
            external_auth: None,
            issuer_arc: None,
            completed: false,
        }
    }

    /// Set a CVR bit.
    pub fn set(&mut self, (byte, bit): (usize, u8)) {
        if let Some(b) = self.cvr.get_mut(byte) {
            *b |= bit;
        }
    }

    /// Clear a CVR field.
    pub fn clear(&mut self, (byte, bit): (usize, u8)) {
        if let Some(b) = self.cvr.get_mut(byte) {
            *b &= !bit;
        }
    }

    /// Whether this is an EC contact transaction.
    pub fn is_ec(&self) -> bool {
        matches!(self.path, Path::Contact { ec: true })
    }
}

/// The application's RAM.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    /// The transaction in progress, if GPO was processed since the application was selected.
    pub txn: Option<Txn>,
    /// VERIFY commands received in this transaction (JR/T 0025.5 §11.3: `6984` answers only
    /// the first).
    pub verify_count: u32,
    /// The PIN try limit was exceeded during this transaction (`6983` afterwards).
    pub pin_exceeded_now: bool,
    /// A script MAC failed: further script commands answer `6985` (JR/T 0025.5 §17.6.3).
    pub scripts_halted: bool,
}

impl Session {
    /// Set a CVR bit of the transaction in progress. Before GPO there is no CVR: GPO starts
    /// it from zero (JR/T 0025.5 §7.4 step 3 c)).
    pub fn set_cvr(&mut self, bit: (usize, u8)) {
        if let Some(t) = &mut self.txn {
            t.set(bit);
        }
    }
}
