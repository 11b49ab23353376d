//! Changing a cardholder record, and finding out afterwards whether a change that was cut short
//! reached the card.
//!
//! The personal files of the social-security application are written with `UPDATE RECORD`
//! (`00 DC <record> <SFI<<3|100>`) once the terminal has proved it holds the card's maintenance
//! key with `EXTERNAL AUTHENTICATE` (`00 82 00 <key id>`) over a challenge from `GET CHALLENGE`
//! (docs/card-profile.md, "Updating cardholder records"; the command set is the one the public
//! reader programs use, ../reference in the design notes). The key is the issuer's maintenance
//! master key diversified by the card's serial ([`derive_maintenance_key`]); in production the
//! cryptogram comes from the issuer's HSM or PSAM, never from a key in the terminal, which is
//! why the flow asks a [`MaintenanceAuthority`] for it.
//!
//! A write can be cut short by a pulled card. ISO/IEC 7816-4 §5.1.3 lets the terminal tell from
//! an answer whether memory changed (`64xx` unchanged, `65xx` changed); with no answer at all it
//! cannot tell. [`update_record`] therefore ends in one of three ways: done (read back and
//! compared), [`UpdateError::is_unsure`] (the card may hold either value), or surely not done.
//! After an unsure end, [`record_state`] at the next insert says which value the card holds.

use zeroize::Zeroizing;

use super::records::{RecordError, RecordSet};
use super::{SFI_EF05, SsseError, select};
use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::crypto::block::pad_method2;
use crate::crypto::sm4::Sm4Key;
use crate::status::StatusWord;

/// Key identifier of the maintenance key in `EXTERNAL AUTHENTICATE` (P2), project profile.
pub const MAINTENANCE_KEY_ID: u8 = 0x01;
/// Length of the challenge the flow asks for.
pub const CHALLENGE_LEN: usize = 8;
/// Records searched for a tag before giving up (EF06 holds a dozen).
const MAX_RECORDS: u8 = 32;

/// The card's maintenance key: `SM4(MK)[S ‖ ¬S]` with `S` the last 8 bytes of the card
/// identifier (EF05 tag 01: region, `D156000005`, then the card's unique serial), the same
/// one-block diversification PBOC uses for SM4 card keys (JR/T 0025.17 §8.1.4 b)), applied to
/// the serial as the social-security key hierarchy diversifies by card serial.
pub fn derive_maintenance_key(master: &Sm4Key, card_id: &[u8]) -> Result<Sm4Key, UpdateError> {
    let serial: [u8; 8] = card_id
        .len()
        .checked_sub(8)
        .filter(|_| card_id.len() == 16)
        .and_then(|start| card_id.get(start..))
        .and_then(|s| s.try_into().ok())
        .ok_or(UpdateError::CardId { len: card_id.len() })?;
    let mut block = Zeroizing::new([0u8; 16]);
    let complement = serial.map(|b| !b);
    for (dst, b) in block.iter_mut().zip(serial.iter().chain(&complement)) {
        *dst = *b;
    }
    Ok(Sm4Key::new(master.encrypt_block(&block)))
}

/// The `EXTERNAL AUTHENTICATE` cryptogram: the challenge padded with method 2 (`80 00…`) to
/// one block and enciphered with the card's maintenance key.
pub fn external_auth_cryptogram(card_key: &Sm4Key, challenge: &[u8; CHALLENGE_LEN]) -> [u8; 16] {
    let mut block = [0u8; 16];
    for (dst, b) in block.iter_mut().zip(pad_method2(challenge, 16)) {
        *dst = b;
    }
    card_key.encrypt_block(&block)
}

/// Whoever holds the maintenance master key and answers a card's challenge: the issuer's HSM or
/// PSAM in production, [`SoftwareAuthority`] in tests and the demo.
pub trait MaintenanceAuthority {
    /// The cryptogram for `EXTERNAL AUTHENTICATE` to the card with identifier `card_id`.
    fn cryptogram(
        &mut self,
        card_id: &[u8],
        challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<Zeroizing<[u8; 16]>, UpdateError>;
}

/// The maintenance master key held in memory. For tests and the demo only: a terminal in the
/// field asks the HSM instead. `Debug` shows the key check value only.
#[derive(Debug)]
pub struct SoftwareAuthority {
    master: Sm4Key,
}

impl SoftwareAuthority {
    /// An authority holding `master`.
    pub fn new(master: Sm4Key) -> Self {
        Self { master }
    }
}

impl MaintenanceAuthority for SoftwareAuthority {
    fn cryptogram(
        &mut self,
        card_id: &[u8],
        challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<Zeroizing<[u8; 16]>, UpdateError> {
        let key = derive_maintenance_key(&self.master, card_id)?;
        Ok(Zeroizing::new(external_auth_cryptogram(&key, challenge)))
    }
}

/// Why a record update did not (surely) happen.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The card was lost, or answered "memory changed", while it was writing: it holds the
    /// old or the new value. Read it at the next insert with [`record_state`].
    #[error("the card was lost while writing the record; it holds the old or the new value: {0}")]
    Unsure(#[source] SsseError),
    /// The flow stopped before the card was asked to write, or the card refused the write
    /// without changing its memory: the old value is still there.
    #[error("the record was not changed: {0}")]
    NotDone(#[source] SsseError),
    /// The file has no record with that tag.
    #[error("the card has no record {tag:02X} in that file")]
    NoSuchRecord {
        /// The record identifier.
        tag: u8,
    },
    /// The new value does not fit one record.
    #[error("a value of {len} bytes does not fit a record")]
    ValueTooLong {
        /// Its length.
        len: usize,
    },
    /// The card identifier is not the 16 bytes the diversification needs.
    #[error("card identifier of {len} bytes, expected 16")]
    CardId {
        /// Its length.
        len: usize,
    },
    /// The maintenance authority (HSM) could not answer.
    #[error("the maintenance key holder failed: {0}")]
    Authority(String),
    /// The card said it wrote the record, yet reads back something else.
    #[error("the card accepted the update but reads back another value")]
    ReadBackDiffers,
}

impl UpdateError {
    /// Whether the card may hold the new value: ask [`record_state`] at the next insert.
    pub fn is_unsure(&self) -> bool {
        matches!(self, Self::Unsure(_) | Self::ReadBackDiffers)
    }
}

fn status(command: &'static str, sw: StatusWord) -> SsseError {
    SsseError::Status { command, sw }
}

/// `READ RECORD` number `n` of the file `sfi`: `None` past the last record.
fn read_record_number<C: CardChannel>(
    s: &mut CardSession<C>,
    sfi: u8,
    n: u8,
) -> Result<Option<Vec<u8>>, SsseError> {
    let r = s.send(
        &Command::new(0x00, 0xb2, n, (sfi << 3) | 0b100)
            .expect_data()
            .sensitive_response(),
    )?;
    match r.sw() {
        StatusWord::Success => Ok(Some(r.into_data())),
        StatusWord::RecordNotFound => Ok(None),
        StatusWord::SecurityStatusNotSatisfied => Err(SsseError::PinRequired { file: "EF" }),
        sw => Err(status("READ RECORD", sw)),
    }
}

/// A record's value if its tag is `tag` (records are `tag ‖ length ‖ value`).
fn value_if_tag(record: &[u8], tag: u8) -> Option<Zeroizing<Vec<u8>>> {
    if record.first() != Some(&tag) {
        return None;
    }
    let mut set = RecordSet::new();
    set.add_records("EF", record).ok()?;
    set.get(tag).map(|v| Zeroizing::new(v.to_vec()))
}

/// A record found by its tag: its number and value.
type Found = (u8, Zeroizing<Vec<u8>>);

/// Find the record of `sfi` whose tag is `tag`.
fn find_record<C: CardChannel>(
    s: &mut CardSession<C>,
    sfi: u8,
    tag: u8,
) -> Result<Option<Found>, SsseError> {
    for n in 1..=MAX_RECORDS {
        let Some(record) = read_record_number(s, sfi, n)?.map(Zeroizing::new) else {
            return Ok(None);
        };
        if let Some(v) = value_if_tag(&record, tag) {
            return Ok(Some((n, v)));
        }
    }
    Ok(None)
}

/// The card identifier (EF05 tag 01) of the selected SSSE application.
fn card_id<C: CardChannel>(s: &mut CardSession<C>) -> Result<Vec<u8>, SsseError> {
    let r = s.send(
        &Command::new(0x00, 0xb2, 0x01, SFI_EF05 << 3)
            .expect_data()
            .sensitive_response(),
    )?;
    if !r.is_success() {
        return Err(status("READ RECORD", r.sw()));
    }
    value_if_tag(r.data(), 0x01)
        .map(|v| v.to_vec())
        .ok_or(SsseError::Record(RecordError::Missing {
            file: "EF05",
            tag: 0x01,
            name: "card identifier",
        }))
}

/// Prove the maintenance key to the selected SSSE application: `GET CHALLENGE`, the
/// authority's cryptogram, `EXTERNAL AUTHENTICATE`. Holds until the card is reset.
pub fn external_authenticate<C: CardChannel, A: MaintenanceAuthority + ?Sized>(
    s: &mut CardSession<C>,
    authority: &mut A,
    card_id: &[u8],
) -> Result<(), UpdateError> {
    let r = s
        .send(&Command::new(0x00, 0x84, 0x00, 0x00).with_ne(CHALLENGE_LEN))
        .map_err(|e| UpdateError::NotDone(e.into()))?;
    let challenge: [u8; CHALLENGE_LEN] = match r.sw() {
        StatusWord::Success => r
            .data()
            .try_into()
            .map_err(|_| UpdateError::NotDone(status("GET CHALLENGE", StatusWord::WrongLength)))?,
        sw => return Err(UpdateError::NotDone(status("GET CHALLENGE", sw))),
    };
    let cryptogram = authority.cryptogram(card_id, &challenge)?;
    let r = s
        .send(
            &Command::new(0x00, 0x82, 0x00, MAINTENANCE_KEY_ID)
                .with_data(cryptogram.as_slice())
                .sensitive(),
        )
        .map_err(|e| UpdateError::NotDone(e.into()))?;
    match r.sw() {
        StatusWord::Success => Ok(()),
        sw => Err(UpdateError::NotDone(status("EXTERNAL AUTHENTICATE", sw))),
    }
}

/// Replace the value of the record tagged `tag` in the file `sfi` of the SSSE application
/// (EF06, the cardholder, for a name or ID correction at the issuer's counter) with `value`,
/// then read it back. Returns the old value.
///
/// Ends in one of three ways: `Ok` (the card holds `value`, read back); an error with
/// [`UpdateError::is_unsure`] (the card was lost during or after `UPDATE RECORD`: it holds the
/// old or the new value, [`record_state`] tells at the next insert); any other error (the card
/// holds the old value).
pub fn update_record<C: CardChannel, A: MaintenanceAuthority + ?Sized>(
    s: &mut CardSession<C>,
    authority: &mut A,
    sfi: u8,
    tag: u8,
    value: &[u8],
) -> Result<Zeroizing<Vec<u8>>, UpdateError> {
    let mut record = Zeroizing::new(vec![tag]);
    crate::tlv::write_length(&mut record, value.len())
        .map_err(|_| UpdateError::ValueTooLong { len: value.len() })?;
    record.extend_from_slice(value);
    if record.len() > 255 {
        return Err(UpdateError::ValueTooLong { len: value.len() });
    }
    select(s).map_err(UpdateError::NotDone)?;
    let id = card_id(s).map_err(UpdateError::NotDone)?;
    let (number, old) = find_record(s, sfi, tag)
        .map_err(UpdateError::NotDone)?
        .ok_or(UpdateError::NoSuchRecord { tag })?;
    external_authenticate(s, authority, &id)?;
    // From here on the card may write.
    let r = s
        .send(
            &Command::new(0x00, 0xdc, number, (sfi << 3) | 0b100)
                .with_data(record.as_slice())
                .sensitive(),
        )
        .map_err(|e| {
            if e.may_have_reached_card() {
                UpdateError::Unsure(e.into())
            } else {
                UpdateError::NotDone(e.into())
            }
        })?;
    match r.sw() {
        StatusWord::Success => {}
        sw if sw.memory_may_have_changed() => {
            return Err(UpdateError::Unsure(status("UPDATE RECORD", sw)));
        }
        sw => return Err(UpdateError::NotDone(status("UPDATE RECORD", sw))),
    }
    let back = read_record_number(s, sfi, number)
        .map_err(UpdateError::Unsure)?
        .map(Zeroizing::new);
    if back.as_deref().map(Vec::as_slice) != Some(record.as_slice()) {
        return Err(UpdateError::ReadBackDiffers);
    }
    Ok(old)
}

/// Which value a record holds, compared with the two an unsure update left possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// The value before the update.
    Old,
    /// The value the update wrote.
    New,
    /// Neither (someone else wrote it, or the card is broken), or the record is gone.
    Other,
}

/// At the next insert after an unsure [`update_record`]: select the application and say
/// whether the record tagged `tag` of `sfi` holds `old` or `new`.
pub fn record_state<C: CardChannel>(
    s: &mut CardSession<C>,
    sfi: u8,
    tag: u8,
    old: &[u8],
    new: &[u8],
) -> Result<RecordState, SsseError> {
    select(s)?;
    Ok(match find_record(s, sfi, tag)? {
        Some((_, v)) if v.as_slice() == new => RecordState::New,
        Some((_, v)) if v.as_slice() == old => RecordState::Old,
        _ => RecordState::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::ReplayChannel;

    fn master() -> Sm4Key {
        Sm4Key::new(*b"sscard-maint-key")
    }

    const CARD_ID: &str = "110105D1560000050000000000000001";

    #[test]
    fn diversification_uses_the_serial_and_its_complement() {
        let id = hex::decode(CARD_ID).unwrap();
        let key = derive_maintenance_key(&master(), &id).unwrap();
        let mut block = [0u8; 16];
        block[7] = 1;
        block[8..15].fill(0xff);
        block[15] = 0xfe;
        assert_eq!(
            key.expose_bytes(),
            &master().encrypt_block(&block),
            "SM4(MK)[S || not S]"
        );
        // Another serial, another key; the region does not count.
        let mut other = id.clone();
        other[15] = 2;
        assert_ne!(
            derive_maintenance_key(&master(), &other)
                .unwrap()
                .expose_bytes(),
            key.expose_bytes()
        );
        let mut region = id.clone();
        region[0] = 0x12;
        assert_eq!(
            derive_maintenance_key(&master(), &region)
                .unwrap()
                .expose_bytes(),
            key.expose_bytes()
        );
        assert_eq!(
            derive_maintenance_key(&master(), &id[..15]).unwrap_err(),
            UpdateError::CardId { len: 15 }
        );
    }

    #[test]
    fn cryptogram_is_the_padded_challenge_enciphered() {
        let key = Sm4Key::new([7; 16]);
        let c = external_auth_cryptogram(&key, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let plain = key.decrypt_block(&c);
        assert_eq!(plain, [1, 2, 3, 4, 5, 6, 7, 8, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    }

    const SELECT: &str = "> 00A404000F7378312E73682EC9E7BBE1B1A3D5CF00\n< 6F11840F7378312E73682EC9E7BBE1B1A3D5CF 9000\n";

    /// The exchanges up to EXTERNAL AUTHENTICATE, with the cryptogram the authority makes for
    /// the challenge 0102030405060708.
    fn prologue() -> String {
        let key = derive_maintenance_key(&master(), &hex::decode(CARD_ID).unwrap()).unwrap();
        let crypt = hex::encode_upper(external_auth_cryptogram(&key, &[1, 2, 3, 4, 5, 6, 7, 8]));
        format!(
            "{SELECT}> 00B2012800\n< 0110{CARD_ID} 9000\n\
             > 00B2013400\n< 081231313031303531393837303331353330313158 9000\n\
             > 00B2023400\n< 0904D5C5C8FD 9000\n\
             > 0084000008\n< 0102030405060708 9000\n\
             > 0082000110{crypt}\n< 9000\n"
        )
    }

    #[test]
    fn update_finds_the_record_authenticates_writes_and_reads_back() {
        let script = format!(
            "{}> 00DC023406 0904D5C5C8FE\n< 9000\n> 00B2023400\n< 0904D5C5C8FE 9000\n",
            prologue()
        );
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let old = update_record(
            &mut s,
            &mut SoftwareAuthority::new(master()),
            6,
            0x09,
            &[0xd5, 0xc5, 0xc8, 0xfe],
        )
        .unwrap();
        assert_eq!(old.as_slice(), &[0xd5, 0xc5, 0xc8, 0xfd]);
        s.into_channel().assert_finished().unwrap();
    }

    #[test]
    fn a_refused_cryptogram_is_not_done() {
        let script = prologue().replace("< 9000\n", "< 6300\n");
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let e = update_record(&mut s, &mut SoftwareAuthority::new(master()), 6, 0x09, &[1])
            .unwrap_err();
        assert!(!e.is_unsure(), "{e}");
        assert!(e.to_string().contains("EXTERNAL AUTHENTICATE"), "{e}");
    }

    #[test]
    fn the_write_ends_unsure_on_a_lost_answer_or_65xx_and_not_done_on_69xx() {
        for (answer, unsure) in [("! removed", true), ("< 6581", true), ("< 6982", false)] {
            let script = format!("{}> 00DC023403 090101\n{answer}\n", prologue());
            let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
            let e = update_record(&mut s, &mut SoftwareAuthority::new(master()), 6, 0x09, &[1])
                .unwrap_err();
            assert_eq!(e.is_unsure(), unsure, "{answer}: {e}");
        }
        // Lost before the write: surely not done.
        let script = format!("{SELECT}> 00B2012800\n! removed\n");
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let e =
            update_record(&mut s, &mut SoftwareAuthority::new(master()), 6, 9, &[1]).unwrap_err();
        assert!(
            !e.is_unsure() && matches!(e, UpdateError::NotDone(_)),
            "{e}"
        );
    }

    #[test]
    fn a_missing_tag_is_named() {
        let script = format!(
            "{SELECT}> 00B2012800\n< 0110{CARD_ID} 9000\n> 00B2013400\n< 0A0131 9000\n> 00B2023400\n< 6A83\n"
        );
        let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
        let e = update_record(&mut s, &mut SoftwareAuthority::new(master()), 6, 0x09, &[1])
            .unwrap_err();
        assert_eq!(e, UpdateError::NoSuchRecord { tag: 0x09 });
    }

    #[test]
    fn record_state_tells_old_new_and_other() {
        for (value, want) in [
            ("D5C5C8FD", RecordState::Old),
            ("D5C5C8FE", RecordState::New),
            ("00000000", RecordState::Other),
        ] {
            let script = format!("{SELECT}> 00B2013400\n< 0904{value} 9000\n");
            let mut s = CardSession::new(ReplayChannel::parse(&script).unwrap());
            let got = record_state(
                &mut s,
                6,
                0x09,
                &[0xd5, 0xc5, 0xc8, 0xfd],
                &[0xd5, 0xc5, 0xc8, 0xfe],
            )
            .unwrap();
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn change_pin_errors_say_whether_the_card_may_have_changed() {
        use crate::channel::{SendError, TransportError};
        let lost = SsseError::Send(SendError::Transport(TransportError::CardRemoved));
        let none = SsseError::Send(SendError::Transport(TransportError::NoCard));
        let changed = status("CHANGE PIN", StatusWord::MemoryFailure);
        let refused = SsseError::WrongPin { tries_left: 2 };
        assert!(lost.card_may_have_changed());
        assert!(changed.card_may_have_changed());
        assert!(!none.card_may_have_changed());
        assert!(!refused.card_may_have_changed());
    }
}
