//! The card operating system: command processing over the file system.
//!
//! [`SoftCard::process`] takes a command APDU and returns the response APDU, with the status
//! word a careful card gives for every wrong request (ISO/IEC 7816-4 §5.6, JR/T 0025.5
//! Annex B): `6700` wrong length, `6A86` wrong P1-P2, `6B00` offset outside the file, `6A82`
//! no such file, `6A83` no such record, `6981` wrong file structure, `6982` access refused,
//! `6983` PIN blocked, `63Cx` wrong PIN, `6Cxx` wrong Le, `6D00` unknown instruction, `6E00`
//! wrong class.
//!
//! Volatile state (selected file, verified PIN, challenge, pending GET RESPONSE data) lives in
//! RAM and is lost at power-on and reset. Persistent changes are committed to [`Storage`]
//! before the answer leaves the card; the PIN try counter is decremented and committed *before*
//! the PIN is compared, so pulling the card during VERIFY never yields a free try.
//!
//! While the PBOC payment ADF is selected, its commands go to the payment application
//! ([`crate::pboc`]); SELECT of the PSE, the PPSE or the ADF answers with that application's
//! FCI. Every commit is counted ([`SoftCard::commits`]) so tests can tear each one.

use card_core::apdu::{Command, SHORT_MAX_NE};
use card_core::status::StatusWord;
use card_core::tlv::{Tag, Tlv};
use zeroize::Zeroize;

use crate::fs::{self, EfBody, FsError, MF, NodeId, NodeKind};
use crate::image::CardImage;
use crate::storage::{Storage, StorageError};

type Sw = StatusWord;

/// A successful answer: data and a status that is `9000` or, when more data waits for
/// GET RESPONSE, `61xx`.
struct Reply {
    data: Vec<u8>,
    sw: Sw,
}

impl From<Vec<u8>> for Reply {
    fn from(data: Vec<u8>) -> Self {
        Self {
            data,
            sw: Sw::Success,
        }
    }
}

type Outcome = Result<Reply, Sw>;

impl From<FsError> for Sw {
    fn from(e: FsError) -> Self {
        match e {
            FsError::FileNotFound => Sw::FileNotFound,
            FsError::RecordNotFound => Sw::RecordNotFound,
            FsError::WrongStructure => Sw::IncompatibleFileStructure,
            FsError::OffsetOutOfRange => Sw::WrongP1P2,
            FsError::NoSpace => Sw::NotEnoughMemory,
            FsError::WrongRecordLength => Sw::WrongLength,
        }
    }
}

#[derive(Debug, Default)]
struct Volatile {
    current_df: NodeId,
    current_ef: Option<NodeId>,
    pin_verified: bool,
    /// EXTERNAL AUTHENTICATE with the maintenance key succeeded since the last reset.
    maintenance_ok: bool,
    challenge: Option<Vec<u8>>,
    pending: Vec<u8>,
    /// Matches of the last SELECT by name, and which one is selected (for "next occurrence").
    name_matches: Vec<NodeId>,
    name_index: usize,
    /// RAM of the payment application (its transaction in progress).
    pboc: crate::pboc::session::Session,
}

impl Drop for Volatile {
    fn drop(&mut self) {
        self.pending.zeroize();
        if let Some(c) = &mut self.challenge {
            c.zeroize();
        }
    }
}

/// A software smart card.
pub struct SoftCard {
    image: CardImage,
    storage: Box<dyn Storage>,
    vol: Volatile,
    commands: u64,
    commits: u64,
}

impl std::fmt::Debug for SoftCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftCard")
            .field("label", &self.image.label)
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}

impl SoftCard {
    /// A card with the image found in `storage`, or `initial` (committed first) if the
    /// storage is empty.
    pub fn open(initial: CardImage, mut storage: Box<dyn Storage>) -> Result<Self, StorageError> {
        let image = match storage.load()? {
            Some(image) => image,
            None => {
                storage.commit(&initial)?;
                initial
            }
        };
        Ok(Self {
            image,
            storage,
            vol: Volatile::default(),
            commands: 0,
            commits: 0,
        })
    }

    /// A card kept only in memory.
    pub fn in_memory(image: CardImage) -> Self {
        let mut storage = crate::storage::MemoryStorage::new();
        // Committing to memory storage cannot fail without an injected tear.
        let _ = storage.commit(&image);
        Self {
            image,
            storage: Box::new(storage),
            vol: Volatile::default(),
            commands: 0,
            commits: 0,
        }
    }

    /// The ATR.
    pub fn atr(&self) -> &[u8] {
        &self.image.atr
    }

    /// The current non-volatile state.
    pub const fn image(&self) -> &CardImage {
        &self.image
    }

    /// Commands processed since creation.
    pub const fn commands(&self) -> u64 {
        self.commands
    }

    /// Commits attempted since creation (successful or torn). The difference before and after
    /// a flow is the number of commits it makes, so a test can tear each of them in turn
    /// (`MemoryStorage::tear_at`).
    pub const fn commits(&self) -> u64 {
        self.commits
    }

    /// Cold or warm reset: volatile state is lost and RAM is reloaded from the committed
    /// image. Returns the ATR.
    pub fn reset(&mut self) -> Vec<u8> {
        self.vol = Volatile::default();
        if let Ok(Some(image)) = self.storage.load() {
            self.image = image;
        }
        self.image.atr.clone()
    }

    /// Power on (same as a reset for this card). Returns the ATR.
    pub fn power_on(&mut self) -> Vec<u8> {
        self.reset()
    }

    /// Power off: volatile state is lost.
    pub fn power_off(&mut self) {
        self.vol = Volatile::default();
    }

    /// Process one command APDU and return the response APDU.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.commands += 1;
        let Ok(cmd) = Command::parse(apdu) else {
            return Sw::WrongLength.to_bytes().to_vec();
        };
        let is_get_response = cmd.cla & 0x80 == 0 && cmd.ins == 0xc0;
        if !is_get_response {
            self.vol.pending.zeroize();
            self.vol.pending.clear();
        }
        let outcome = self.dispatch(&cmd);
        let (mut data, sw) = match outcome {
            Ok(reply) => (reply.data, reply.sw),
            Err(sw) => (Vec::new(), sw),
        };
        if self.image.behaviour.t0_get_response && sw.is_success() && !is_get_response {
            // Over T=0 a case 4 command travels without Le (JR/T 0025.3 §9.3.1.2): any
            // command with data that has data to answer gets 61xx.
            let case4 = !cmd.data().is_empty();
            let case2 = cmd.data().is_empty() && cmd.ne().is_some();
            if case4 && !data.is_empty() {
                // T=0: the data of a case 4 command comes through GET RESPONSE.
                self.vol.pending = core::mem::take(&mut data);
                return more_data(self.vol.pending.len()).to_bytes().to_vec();
            }
            if case2 && cmd.ne() == Some(SHORT_MAX_NE) && data.len() < SHORT_MAX_NE {
                // T=0: Le=00 with fewer bytes available draws 6C Licc (JR/T 0025.3
                // §9.3.1.2.1 rule 1). Nothing was changed by a case 2 read, so the
                // terminal may simply ask again.
                let n = data.len() as u8;
                data.zeroize();
                return Sw::WrongLe(n).to_bytes().to_vec();
            }
        }
        data.extend_from_slice(&sw.to_bytes());
        data
    }

    fn dispatch(&mut self, cmd: &Command) -> Outcome {
        if cmd.cla == 0xff {
            return Err(Sw::ClaNotSupported);
        }
        if cmd.cla & 0x80 == 0 && cmd.cla & 0x03 != 0 {
            return Err(Sw::LogicalChannelNotSupported);
        }
        // CLA b5 (ISO/IEC 7816-4 §5.4.1): a command chain, which this card does not take.
        if cmd.cla & 0x80 == 0 && cmd.cla & 0x10 != 0 {
            return Err(Sw::ChainingNotSupported);
        }
        if let Some(outcome) = self.pboc_dispatch(cmd) {
            return outcome;
        }
        match (cmd.cla, cmd.ins) {
            (0x00, 0xa4) => self.select(cmd),
            (0x00, 0xb0) => self.read_binary(cmd),
            (0x00, 0xb2) => self.read_record(cmd),
            (0x00, 0xd6) => self.update_binary(cmd),
            (0x00, 0xdc) => self.update_record(cmd),
            (0x00, 0xe2) => self.append_record(cmd),
            (0x00, 0x84) => self.get_challenge(cmd),
            (0x00, 0x88) => self.internal_authenticate(cmd),
            (0x00, 0x82) => self.external_authenticate(cmd),
            (0x00, 0x20) => self.verify(cmd),
            (0x80, 0x5e) => self.change_pin(cmd),
            (0x00, 0xc0) => self.get_response(cmd),
            (
                _,
                0xa4 | 0xb0 | 0xb2 | 0xd6 | 0xdc | 0xe2 | 0x84 | 0x88 | 0x82 | 0x20 | 0x5e | 0xc0,
            ) => Err(Sw::ClaNotSupported),
            (0x00 | 0x80 | 0x04 | 0x84, _) => Err(Sw::InsNotSupported),
            _ => Err(Sw::ClaNotSupported),
        }
    }

    fn commit(&mut self) -> Result<(), Sw> {
        commit_image(&mut self.image, self.storage.as_mut(), &mut self.commits)
    }

    /// The payment application's context, if `df` is its ADF.
    fn pboc_ctx(&mut self, df: NodeId) -> Option<crate::pboc::applet::Ctx<'_>> {
        let adf = crate::pboc::applet::adf_node(&self.image)?;
        (adf == df).then_some(crate::pboc::applet::Ctx {
            image: &mut self.image,
            storage: self.storage.as_mut(),
            commits: &mut self.commits,
            session: &mut self.vol.pboc,
            adf,
        })
    }

    /// Commands for the payment application while its ADF is selected. On an error answer RAM
    /// goes back to the committed image, so nothing uncommitted outlives a failed command.
    fn pboc_dispatch(&mut self, cmd: &Command) -> Option<Outcome> {
        let df = self.vol.current_df;
        let mut ctx = self.pboc_ctx(df)?;
        match crate::pboc::applet::dispatch(&mut ctx, cmd)? {
            // A case 4 command (GPO, GENERATE AC, INTERNAL AUTHENTICATE) has done its work and
            // committed: its answer is given whatever Le said (up to 256 bytes, the rest by
            // GET RESPONSE), never lost to a 6Cxx. Case 2 reads follow the Le rules.
            Ok(data) if !cmd.data().is_empty() => Some(self.deliver(data, SHORT_MAX_NE)),
            Ok(data) => Some(self.deliver(data, cmd.ne().unwrap_or(SHORT_MAX_NE))),
            Err(sw) => {
                if let Ok(Some(image)) = self.storage.load() {
                    self.image = image;
                }
                Some(Err(sw))
            }
        }
    }

    // ---- SELECT -------------------------------------------------------------------------

    fn select(&mut self, cmd: &Command) -> Outcome {
        let p2 = cmd.p2;
        let occurrence = p2 & 0x03;
        let fci_wanted = match p2 & 0x0c {
            0x00 => true,
            0x0c => false,
            _ => return Err(Sw::IncorrectP1P2),
        };
        let data = cmd.data();
        let fs = &self.image.fs;
        let target = match cmd.p1 {
            0x00 => {
                if occurrence != 0 {
                    return Err(Sw::IncorrectP1P2);
                }
                match data {
                    [] => MF,
                    [hi, lo] => {
                        let fid = u16::from_be_bytes([*hi, *lo]);
                        self.find_by_fid(fid).ok_or(Sw::FileNotFound)?
                    }
                    _ => return Err(Sw::WrongLength),
                }
            }
            0x01 | 0x02 => {
                let [hi, lo] = data else {
                    return Err(Sw::WrongLength);
                };
                let fid = u16::from_be_bytes([*hi, *lo]);
                let id = fs
                    .child_by_fid(self.vol.current_df, fid)
                    .ok_or(Sw::FileNotFound)?;
                if fs.is_df(id) != (cmd.p1 == 0x01) {
                    return Err(Sw::FileNotFound);
                }
                id
            }
            0x03 => {
                if !data.is_empty() {
                    return Err(Sw::WrongLength);
                }
                fs.node(self.vol.current_df)
                    .and_then(|n| n.parent)
                    .ok_or(Sw::FileNotFound)?
            }
            0x04 => {
                if data.len() > 16 {
                    return Err(Sw::WrongLength);
                }
                match occurrence {
                    0x00 => {
                        if data.is_empty() {
                            MF
                        } else {
                            self.vol.name_matches = fs.dfs_by_name(data);
                            self.vol.name_index = 0;
                            *self.vol.name_matches.first().ok_or(Sw::FileNotFound)?
                        }
                    }
                    0x02 => {
                        // Next occurrence of the same name (JR/T 0025.3 §12.3.3).
                        let matches = fs.dfs_by_name(data);
                        if matches != self.vol.name_matches {
                            self.vol.name_matches = matches;
                            self.vol.name_index = 0;
                        } else {
                            self.vol.name_index += 1;
                        }
                        *self
                            .vol
                            .name_matches
                            .get(self.vol.name_index)
                            .ok_or(Sw::FileNotFound)?
                    }
                    _ => return Err(Sw::IncorrectP1P2),
                }
            }
            _ => return Err(Sw::IncorrectP1P2),
        };
        let fs = &self.image.fs;
        if fs.is_df(target) {
            self.vol.current_df = target;
            self.vol.current_ef = None;
            self.vol.pboc = crate::pboc::session::Session::default();
        } else {
            self.vol.current_df = fs.df_of(target);
            self.vol.current_ef = Some(target);
        }
        if let Some(which) = crate::pboc::applet::which(&self.image, target) {
            return self.pboc_select(target, which, fci_wanted);
        }
        if !fci_wanted {
            return Ok(Vec::new().into());
        }
        Ok(self.fci(target).into())
    }

    /// SELECT of the PSE, the PPSE or the payment ADF: the application's FCI and status.
    fn pboc_select(
        &mut self,
        target: NodeId,
        which: crate::pboc::applet::Selected,
        fci_wanted: bool,
    ) -> Outcome {
        let adf = crate::pboc::applet::adf_node(&self.image).unwrap_or(target);
        let mut ctx = crate::pboc::applet::Ctx {
            image: &mut self.image,
            storage: self.storage.as_mut(),
            commits: &mut self.commits,
            session: &mut self.vol.pboc,
            adf,
        };
        let (fci, sw) = crate::pboc::applet::select(&mut ctx, which)?;
        Ok(Reply {
            data: if fci_wanted { fci } else { Vec::new() },
            sw,
        })
    }

    fn find_by_fid(&self, fid: u16) -> Option<NodeId> {
        let fs = &self.image.fs;
        if fid == 0x3f00 {
            return Some(MF);
        }
        let cur = self.vol.current_df;
        if let Some(id) = fs.child_by_fid(cur, fid) {
            return Some(id);
        }
        let parent = fs.node(cur).and_then(|n| n.parent)?;
        if fs.node(parent).is_some_and(|n| n.fid == fid) {
            return Some(parent);
        }
        fs.child_by_fid(parent, fid)
    }

    /// FCI of a DF (`6F { 84 name, A5 { 50 label } }`) or FCP of an EF (`62 { 82, 83, 80 }`).
    fn fci(&self, id: NodeId) -> Vec<u8> {
        let Some(node) = self.image.fs.node(id) else {
            return Vec::new();
        };
        let tlv = match &node.kind {
            NodeKind::Df { aid, .. } => {
                let name = aid
                    .clone()
                    .unwrap_or_else(|| node.fid.to_be_bytes().to_vec());
                Tlv::constructed(
                    Tag::new(0x6f),
                    vec![
                        Tlv::primitive(Tag::new(0x84), name),
                        Tlv::constructed(
                            Tag::new(0xa5),
                            vec![Tlv::primitive(
                                Tag::new(0x50),
                                node.name.as_bytes().to_vec(),
                            )],
                        ),
                    ],
                )
            }
            NodeKind::Ef { body, .. } => {
                let (descriptor, size) = match body {
                    EfBody::Transparent { size, .. } => (0x01u8, *size),
                    EfBody::Linear {
                        max_records,
                        max_record_len,
                        ..
                    } => (0x02, max_records * max_record_len),
                    EfBody::Cyclic {
                        max_records,
                        max_record_len,
                        ..
                    } => (0x06, max_records * max_record_len),
                };
                Tlv::constructed(
                    Tag::new(0x62),
                    vec![
                        Tlv::primitive(Tag::new(0x82), vec![descriptor]),
                        Tlv::primitive(Tag::new(0x83), node.fid.to_be_bytes().to_vec()),
                        Tlv::primitive(
                            Tag::new(0x80),
                            u16::try_from(size)
                                .unwrap_or(u16::MAX)
                                .to_be_bytes()
                                .to_vec(),
                        ),
                    ],
                )
            }
        };
        tlv.to_bytes().unwrap_or_default()
    }

    // ---- access -------------------------------------------------------------------------

    fn check_access(&self, access: fs::Access) -> Result<(), Sw> {
        match access {
            fs::Access::Always => Ok(()),
            fs::Access::Pin if self.vol.pin_verified => Ok(()),
            fs::Access::Maintenance if self.vol.maintenance_ok => Ok(()),
            fs::Access::Pin | fs::Access::Maintenance | fs::Access::Never => {
                Err(Sw::SecurityStatusNotSatisfied)
            }
        }
    }

    /// The EF addressed by an SFI (0 = current EF). Selects it.
    fn ef_by_sfi(&mut self, sfi: u8) -> Result<NodeId, Sw> {
        if sfi == 0 {
            return self.vol.current_ef.ok_or(Sw::CommandNotAllowed);
        }
        if sfi == 31 {
            return Err(Sw::IncorrectP1P2);
        }
        let id = self
            .image
            .fs
            .child_by_sfi(self.vol.current_df, sfi)
            .ok_or(Sw::FileNotFound)?;
        self.vol.current_ef = Some(id);
        Ok(id)
    }

    fn ef(&self, id: NodeId) -> Result<(&EfBody, fs::Access, fs::Access), Sw> {
        match self.image.fs.node(id).map(|n| &n.kind) {
            Some(NodeKind::Ef {
                body, read, update, ..
            }) => Ok((body, *read, *update)),
            _ => Err(Sw::IncompatibleFileStructure),
        }
    }

    fn ef_body_mut(&mut self, id: NodeId) -> Result<&mut EfBody, Sw> {
        match self.image.fs.node_mut(id).map(|n| &mut n.kind) {
            Some(NodeKind::Ef { body, .. }) => Ok(body),
            _ => Err(Sw::IncompatibleFileStructure),
        }
    }

    // ---- transparent files --------------------------------------------------------------

    /// Decode P1-P2 of READ/UPDATE BINARY: an SFI in P1 (b8 set) and offset P2, or a 15-bit
    /// offset into the current EF.
    fn binary_target(&mut self, cmd: &Command) -> Result<(NodeId, usize), Sw> {
        if cmd.p1 & 0x80 != 0 {
            if cmd.p1 & 0x60 != 0 {
                return Err(Sw::IncorrectP1P2);
            }
            let id = self.ef_by_sfi(cmd.p1 & 0x1f)?;
            Ok((id, usize::from(cmd.p2)))
        } else {
            let id = self.vol.current_ef.ok_or(Sw::CommandNotAllowed)?;
            Ok((id, usize::from(u16::from_be_bytes([cmd.p1, cmd.p2]))))
        }
    }

    fn read_binary(&mut self, cmd: &Command) -> Outcome {
        if !cmd.data().is_empty() {
            return Err(Sw::WrongLength);
        }
        let ne = cmd.ne().ok_or(Sw::WrongLength)?;
        let (id, offset) = self.binary_target(cmd)?;
        let (body, read, _) = self.ef(id)?;
        let EfBody::Transparent { data, .. } = body else {
            return Err(Sw::IncompatibleFileStructure);
        };
        self.check_access(read)?;
        if offset >= data.len() {
            return Err(Sw::WrongP1P2);
        }
        let available = data.len() - offset;
        let n = if ne == SHORT_MAX_NE {
            available.min(ne)
        } else {
            ne
        };
        if n > available {
            return Err(Sw::WrongLe(available.min(255) as u8));
        }
        Ok(data
            .get(offset..offset + n)
            .unwrap_or_default()
            .to_vec()
            .into())
    }

    fn update_binary(&mut self, cmd: &Command) -> Outcome {
        if cmd.data().is_empty() || cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        let (id, offset) = self.binary_target(cmd)?;
        let (body, _, update) = self.ef(id)?;
        let EfBody::Transparent { size, .. } = body else {
            return Err(Sw::IncompatibleFileStructure);
        };
        let size = *size;
        self.check_access(update)?;
        let end = offset + cmd.data().len();
        if end > size {
            return Err(Sw::WrongP1P2);
        }
        let incoming = cmd.data().to_vec();
        if let EfBody::Transparent { data, .. } = self.ef_body_mut(id)? {
            if data.len() < end {
                data.resize(end, 0);
            }
            if let Some(dst) = data.get_mut(offset..end) {
                dst.copy_from_slice(&incoming);
            }
        }
        self.commit()?;
        Ok(Vec::new().into())
    }

    // ---- record files -------------------------------------------------------------------

    fn read_record(&mut self, cmd: &Command) -> Outcome {
        if !cmd.data().is_empty() {
            return Err(Sw::WrongLength);
        }
        let ne = cmd.ne().ok_or(Sw::WrongLength)?;
        let sfi = cmd.p2 >> 3;
        let mode = cmd.p2 & 0x07;
        let id = self.ef_by_sfi(sfi)?;
        let all_records = self.image.behaviour.read_all_records;
        let (body, read, _) = self.ef(id)?;
        if body.records().is_none() {
            return Err(Sw::IncompatibleFileStructure);
        }
        self.check_access(read)?;
        let out = match mode {
            // Record number P1.
            0b100 => {
                if cmd.p1 == 0 {
                    return Err(Sw::IncorrectP1P2);
                }
                fs::record(body, usize::from(cmd.p1))?.to_vec()
            }
            // First (000) or last (001) record whose identifier (tag) is P1.
            0b000 | 0b001 => {
                let found = fs::records_with_id(body, cmd.p1)?;
                let number = if mode == 0 {
                    found.first()
                } else {
                    found.last()
                };
                fs::record(body, *number.ok_or(Sw::RecordNotFound)?)?.to_vec()
            }
            // All records from number P1 to the last.
            0b101 if all_records => {
                if cmd.p1 == 0 {
                    return Err(Sw::IncorrectP1P2);
                }
                let records = body.records().unwrap_or_default();
                let start = usize::from(cmd.p1) - 1;
                if start >= records.len() {
                    return Err(Sw::RecordNotFound);
                }
                records.iter().skip(start).flatten().copied().collect()
            }
            _ => return Err(Sw::IncorrectP1P2),
        };
        self.deliver(out, ne)
    }

    /// Hand out response data under the rules for Le: `Le=00` takes up to 256 bytes, the rest
    /// waiting for GET RESPONSE behind `61xx`; any other Le must be the exact length, else
    /// `6Cxx` (JR/T 0025.3 §9.3.1.2.1).
    fn deliver(&mut self, mut out: Vec<u8>, ne: usize) -> Outcome {
        if ne == SHORT_MAX_NE {
            if out.len() > SHORT_MAX_NE {
                self.vol.pending = out.split_off(SHORT_MAX_NE);
                return Ok(Reply {
                    data: out,
                    sw: more_data(self.vol.pending.len()),
                });
            }
            return Ok(out.into());
        }
        if ne != out.len() {
            let n = out.len();
            out.zeroize();
            return Err(Sw::WrongLe(if n >= 256 { 0 } else { n as u8 }));
        }
        Ok(out.into())
    }

    fn update_record(&mut self, cmd: &Command) -> Outcome {
        if cmd.data().is_empty() || cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        if cmd.p2 & 0x07 != 0b100 || cmd.p1 == 0 {
            return Err(Sw::IncorrectP1P2);
        }
        let id = self.ef_by_sfi(cmd.p2 >> 3)?;
        let (_, _, update) = self.ef(id)?;
        self.check_access(update)?;
        let data = cmd.data().to_vec();
        fs::update_record(self.ef_body_mut(id)?, usize::from(cmd.p1), &data)?;
        self.commit()?;
        Ok(Vec::new().into())
    }

    fn append_record(&mut self, cmd: &Command) -> Outcome {
        if cmd.data().is_empty() || cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        if cmd.p1 != 0 || cmd.p2 & 0x07 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        let id = self.ef_by_sfi(cmd.p2 >> 3)?;
        let (_, _, update) = self.ef(id)?;
        self.check_access(update)?;
        let data = cmd.data().to_vec();
        fs::append_record(self.ef_body_mut(id)?, &data)?;
        self.commit()?;
        Ok(Vec::new().into())
    }

    // ---- security -----------------------------------------------------------------------

    /// EXTERNAL AUTHENTICATE `00 82 00 01` with the maintenance key: the data must be the
    /// card's last challenge (8 bytes, from GET CHALLENGE, good for one try) padded with method
    /// 2 and enciphered with the key (card_core `ssse::update::external_auth_cryptogram`).
    /// Success opens the files whose update access is [`fs::Access::Maintenance`] until the
    /// next reset; a wrong cryptogram answers `6300` and closes them.
    fn external_authenticate(&mut self, cmd: &Command) -> Outcome {
        use card_core::ssse::update::{
            CHALLENGE_LEN, MAINTENANCE_KEY_ID, external_auth_cryptogram,
        };
        if cmd.p1 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        if cmd.data().len() != 16 || cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        let key = match (&self.image.keys.maintenance, cmd.p2) {
            (Some(k), MAINTENANCE_KEY_ID) => {
                card_core::crypto::sm4::Sm4Key::from_slice(k).map_err(|_| Sw::ExecutionError)?
            }
            _ => return Err(Sw::ReferencedDataNotFound),
        };
        self.vol.maintenance_ok = false;
        let Some(mut challenge) = self.vol.challenge.take() else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        let Ok(fresh) = <[u8; CHALLENGE_LEN]>::try_from(challenge.as_slice()) else {
            challenge.zeroize();
            return Err(Sw::ConditionsNotSatisfied);
        };
        challenge.zeroize();
        let expected = zeroize::Zeroizing::new(external_auth_cryptogram(&key, &fresh));
        if !crate::pboc::cryptogram::mac_eq(expected.as_slice(), cmd.data()) {
            return Err(Sw::AuthenticationFailed);
        }
        self.vol.maintenance_ok = true;
        Ok(Vec::new().into())
    }

    fn get_challenge(&mut self, cmd: &Command) -> Outcome {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        if !cmd.data().is_empty() {
            return Err(Sw::WrongLength);
        }
        let n = match cmd.ne() {
            Some(n @ (4 | 8 | 16)) => n,
            _ => return Err(Sw::WrongLength),
        };
        let mut challenge = vec![0u8; n];
        getrandom::fill(&mut challenge).map_err(|_| Sw::ExecutionError)?;
        self.vol.challenge = Some(challenge.clone());
        Ok(challenge.into())
    }

    /// INTERNAL AUTHENTICATE in the PKI application: sign the terminal's dynamic data with the
    /// card's SM2 key as signed dynamic application data, format `15` (JR/T 0025.17 §5.2.4
    /// 表9/表11): `15 ‖ LDD ‖ ICC dynamic data ‖ r‖s`, signed over `15 ‖ LDD ‖ ICC dynamic data ‖
    /// terminal dynamic data`. The ICC dynamic data is a fresh 8-byte ICC dynamic number with
    /// its length (JR/T 0025.7). The answer is `77 { 9F4B ... }`.
    fn internal_authenticate(&mut self, cmd: &Command) -> Outcome {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        let terminal = cmd.data();
        if !(4..=32).contains(&terminal.len()) || cmd.ne().is_none() {
            return Err(Sw::WrongLength);
        }
        let in_pki = matches!(
            self.image.fs.node(self.vol.current_df).map(|n| &n.kind),
            Some(NodeKind::Df { aid: Some(aid), .. }) if aid.as_slice() == card_core::ssse::PKI_ADF_AID
        );
        let Some(d) = self.image.keys.sm2_private.as_ref().filter(|_| in_pki) else {
            return Err(Sw::ConditionsNotSatisfied);
        };
        let key =
            card_core::crypto::sm2::Sm2PrivateKey::from_bytes(d).map_err(|_| Sw::ExecutionError)?;
        let mut number = [0u8; 8];
        getrandom::fill(&mut number).map_err(|_| Sw::ExecutionError)?;
        let mut signed = vec![0x15, 9, 8];
        signed.extend_from_slice(&number);
        let header_len = signed.len();
        signed.extend_from_slice(terminal);
        let sig = key
            .sign(card_core::crypto::sm2::DEFAULT_ID, &signed)
            .map_err(|_| Sw::ExecutionError)?;
        signed.truncate(header_len);
        signed.extend_from_slice(&sig.to_bytes());
        let sdad = Tlv::primitive(Tag::new(0x9f4b), signed);
        let out = Tlv::constructed(Tag::new(0x77), vec![sdad])
            .to_bytes()
            .map_err(|_| Sw::ExecutionError)?;
        self.deliver(out, cmd.ne().unwrap_or(SHORT_MAX_NE))
    }

    fn verify(&mut self, cmd: &Command) -> Outcome {
        if cmd.p1 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        if cmd.p2 != 0 {
            return Err(Sw::ReferencedDataNotFound);
        }
        if cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        let pin = &self.image.pin;
        if cmd.data().is_empty() {
            // Retry counter query (ISO/IEC 7816-4 §7.5.6).
            return if pin.tries_left == 0 {
                Err(Sw::AuthenticationBlocked)
            } else if self.vol.pin_verified {
                Ok(Vec::new().into())
            } else {
                Err(Sw::WrongPin {
                    tries_left: pin.tries_left,
                })
            };
        }
        if !(2..=6).contains(&cmd.data().len()) {
            return Err(Sw::WrongLength);
        }
        let candidate = cmd.data().to_vec();
        self.check_pin(candidate)?;
        Ok(Vec::new().into())
    }

    /// Count a try (committed first), compare, and restore the counter on success.
    fn check_pin(&mut self, mut candidate: Vec<u8>) -> Result<(), Sw> {
        if self.image.pin.tries_left == 0 {
            candidate.zeroize();
            return Err(Sw::AuthenticationBlocked);
        }
        self.vol.pin_verified = false;
        self.image.pin.tries_left -= 1;
        if let Err(sw) = self.commit() {
            candidate.zeroize();
            return Err(sw);
        }
        let ok = self.image.pin.matches(&candidate);
        candidate.zeroize();
        if !ok {
            return Err(Sw::WrongPin {
                tries_left: self.image.pin.tries_left,
            });
        }
        self.image.pin.tries_left = self.image.pin.max_tries;
        self.commit()?;
        self.vol.pin_verified = true;
        Ok(())
    }

    fn change_pin(&mut self, cmd: &Command) -> Outcome {
        if cmd.p1 != 0x01 || cmd.p2 != 0x00 {
            return Err(Sw::IncorrectP1P2);
        }
        if cmd.ne().is_some() {
            return Err(Sw::WrongLength);
        }
        let data = cmd.data();
        let Some(sep) = data.iter().position(|&b| b == 0xff) else {
            return Err(Sw::IncorrectData);
        };
        let (old, rest) = data.split_at(sep);
        let new = rest.get(1..).unwrap_or_default();
        if !(2..=6).contains(&old.len()) || !valid_pin_bcd(new) {
            return Err(Sw::IncorrectData);
        }
        let new = new.to_vec();
        self.check_pin(old.to_vec())?;
        self.image.pin.bcd.zeroize();
        self.image.pin.bcd = new;
        self.commit()?;
        Ok(Vec::new().into())
    }

    fn get_response(&mut self, cmd: &Command) -> Outcome {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(Sw::IncorrectP1P2);
        }
        if !cmd.data().is_empty() {
            return Err(Sw::WrongLength);
        }
        let ne = cmd.ne().ok_or(Sw::WrongLength)?;
        if self.vol.pending.is_empty() {
            return Err(Sw::ConditionsNotSatisfied);
        }
        let available = self.vol.pending.len();
        if ne > available || (ne == SHORT_MAX_NE && available < SHORT_MAX_NE) {
            return Err(Sw::WrongLe(available.min(255) as u8));
        }
        let rest = self.vol.pending.split_off(ne);
        let out = core::mem::replace(&mut self.vol.pending, rest);
        let sw = if self.vol.pending.is_empty() {
            Sw::Success
        } else {
            more_data(self.vol.pending.len())
        };
        Ok(Reply { data: out, sw })
    }
}

/// Commit `image` to `storage` in one atomic write, counting the attempt. If the write fails
/// (an injected tear), RAM goes back to the committed image and the answer is `6581`.
pub(crate) fn commit_image(
    image: &mut CardImage,
    storage: &mut dyn Storage,
    commits: &mut u64,
) -> Result<(), Sw> {
    *commits += 1;
    match storage.commit(image) {
        Ok(()) => Ok(()),
        Err(_) => {
            // The write did not happen: go back to what is committed.
            if let Ok(Some(committed)) = storage.load() {
                *image = committed;
            }
            Err(Sw::MemoryFailure)
        }
    }
}

/// `61xx` for `n` waiting bytes (`6100` for 256 or more).
fn more_data(n: usize) -> Sw {
    Sw::BytesAvailable(if n >= 256 { 0 } else { n as u8 })
}

/// A PIN block: packed BCD of 4 to 12 digits, an odd last digit padded with `F`.
fn valid_pin_bcd(bcd: &[u8]) -> bool {
    let mut digits = 0;
    let mut ended = false;
    for b in bcd {
        for nibble in [b >> 4, b & 0x0f] {
            match nibble {
                0..=9 if !ended => digits += 1,
                0x0f => ended = true,
                _ => return false,
            }
        }
    }
    (4..=12).contains(&digits)
}

impl card_core::channel::CardChannel for SoftCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, card_core::TransportError> {
        Ok(self.process(command))
    }
}
