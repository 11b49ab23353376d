//! USB CCID messages as the host sends and reads them (CCID specification rev 1.1, §6.1 and
//! §6.2), with only what a GemPC Twin on a serial line needs.

/// PC_to_RDR_IccPowerOn (§6.1.1).
pub const PC_TO_RDR_ICC_POWER_ON: u8 = 0x62;
/// PC_to_RDR_IccPowerOff (§6.1.2).
pub const PC_TO_RDR_ICC_POWER_OFF: u8 = 0x63;
/// PC_to_RDR_GetSlotStatus (§6.1.3).
pub const PC_TO_RDR_GET_SLOT_STATUS: u8 = 0x65;
/// PC_to_RDR_XfrBlock (§6.1.4).
pub const PC_TO_RDR_XFR_BLOCK: u8 = 0x6f;
/// PC_to_RDR_GetParameters (§6.1.5).
pub const PC_TO_RDR_GET_PARAMETERS: u8 = 0x6c;
/// PC_to_RDR_SetParameters (§6.1.7).
pub const PC_TO_RDR_SET_PARAMETERS: u8 = 0x61;
/// PC_to_RDR_Escape (§6.1.8).
pub const PC_TO_RDR_ESCAPE: u8 = 0x6b;
/// RDR_to_PC_DataBlock (§6.2.1).
pub const RDR_TO_PC_DATA_BLOCK: u8 = 0x80;
/// RDR_to_PC_SlotStatus (§6.2.2).
pub const RDR_TO_PC_SLOT_STATUS: u8 = 0x81;
/// RDR_to_PC_Parameters (§6.2.3).
pub const RDR_TO_PC_PARAMETERS: u8 = 0x82;
/// RDR_to_PC_Escape (§6.2.4).
pub const RDR_TO_PC_ESCAPE: u8 = 0x83;

/// The bError value "ICC mute" (§6.2.6, with bmICCStatus telling absent from mute).
pub const ERROR_ICC_MUTE: u8 = 0xfe;

/// The response type a command is answered with (§6.2).
pub const fn response_type(command: u8) -> Option<u8> {
    match command {
        PC_TO_RDR_ICC_POWER_ON | PC_TO_RDR_XFR_BLOCK => Some(RDR_TO_PC_DATA_BLOCK),
        PC_TO_RDR_ICC_POWER_OFF | PC_TO_RDR_GET_SLOT_STATUS => Some(RDR_TO_PC_SLOT_STATUS),
        PC_TO_RDR_GET_PARAMETERS | PC_TO_RDR_SET_PARAMETERS => Some(RDR_TO_PC_PARAMETERS),
        PC_TO_RDR_ESCAPE => Some(RDR_TO_PC_ESCAPE),
        _ => None,
    }
}

/// A command to the reader, without its sequence number (the link assigns it).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// bMessageType.
    pub kind: u8,
    /// The three message-specific bytes after bSeq.
    pub params: [u8; 3],
    /// abData.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The data of an XfrBlock may hold a PIN block: show only its length.
        f.debug_struct("Command")
            .field("kind", &format_args!("{:#04x}", self.kind))
            .field("params", &self.params)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl Command {
    /// PC_to_RDR_IccPowerOn with automatic voltage selection.
    pub fn power_on() -> Self {
        Self {
            kind: PC_TO_RDR_ICC_POWER_ON,
            params: [0, 0, 0],
            data: Vec::new(),
        }
    }

    /// PC_to_RDR_IccPowerOff.
    pub fn power_off() -> Self {
        Self {
            kind: PC_TO_RDR_ICC_POWER_OFF,
            params: [0, 0, 0],
            data: Vec::new(),
        }
    }

    /// PC_to_RDR_GetSlotStatus.
    pub fn slot_status() -> Self {
        Self {
            kind: PC_TO_RDR_GET_SLOT_STATUS,
            params: [0, 0, 0],
            data: Vec::new(),
        }
    }

    /// PC_to_RDR_XfrBlock with a TPDU or T=1 block; `bwi` extends the block waiting time
    /// (bBWI, 0 = as negotiated).
    pub fn xfr_block(data: &[u8], bwi: u8) -> Self {
        Self {
            kind: PC_TO_RDR_XFR_BLOCK,
            params: [bwi, 0, 0],
            data: data.to_vec(),
        }
    }

    /// PC_to_RDR_Escape with a reader-specific command.
    pub fn escape(data: &[u8]) -> Self {
        Self {
            kind: PC_TO_RDR_ESCAPE,
            params: [0, 0, 0],
            data: data.to_vec(),
        }
    }

    /// PC_to_RDR_GetParameters.
    pub fn get_parameters() -> Self {
        Self {
            kind: PC_TO_RDR_GET_PARAMETERS,
            params: [0, 0, 0],
            data: Vec::new(),
        }
    }

    /// PC_to_RDR_SetParameters for protocol `t` (0 or 1) with its protocol data structure
    /// (§6.1.7: 5 bytes for T=0, 7 for T=1).
    pub fn set_parameters(t: u8, data: &[u8]) -> Self {
        Self {
            kind: PC_TO_RDR_SET_PARAMETERS,
            params: [t, 0, 0],
            data: data.to_vec(),
        }
    }

    /// The message with slot 0 and sequence number `seq`.
    pub fn encode(&self, seq: u8) -> Vec<u8> {
        let len = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        let mut m = Vec::with_capacity(10 + self.data.len());
        m.push(self.kind);
        m.extend_from_slice(&len.to_le_bytes());
        m.push(0);
        m.push(seq);
        m.extend_from_slice(&self.params);
        m.extend_from_slice(&self.data);
        m
    }
}

/// The card's state in bmICCStatus (bStatus bits 0-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IccStatus {
    /// A card is present and powered.
    PresentActive,
    /// A card is present and not powered.
    PresentInactive,
    /// No card.
    Absent,
}

/// The outcome in bmCommandStatus (bStatus bits 6-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Processed without error.
    Ok,
    /// Failed; bError says why.
    Failed,
    /// Time extension requested; bError is the multiplier of the waiting time.
    TimeExtension,
}

/// A response from the reader.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// bMessageType.
    pub kind: u8,
    /// bSlot.
    pub slot: u8,
    /// bSeq.
    pub seq: u8,
    /// bStatus.
    pub status: u8,
    /// bError.
    pub error: u8,
    /// The message-specific byte (bChainParameter, bClockStatus or bProtocolNum).
    pub specific: u8,
    /// abData.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("kind", &format_args!("{:#04x}", self.kind))
            .field("seq", &self.seq)
            .field("status", &format_args!("{:#04x}", self.status))
            .field("error", &format_args!("{:#04x}", self.error))
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// A reader message that cannot be a response.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CcidError {
    /// Shorter than the 10-byte header.
    #[error("CCID message of {len} bytes is shorter than its header")]
    TooShort {
        /// Length.
        len: usize,
    },
    /// dwLength disagrees with the data that came.
    #[error("CCID dwLength {announced} but {actual} data bytes")]
    LengthMismatch {
        /// dwLength.
        announced: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// A message type no reader sends.
    #[error("CCID message type {kind:#04x} is not a reader response")]
    NotAResponse {
        /// bMessageType.
        kind: u8,
    },
}

impl Response {
    /// Parse a message from the reader.
    pub fn parse(m: &[u8]) -> Result<Self, CcidError> {
        let (header, data) = m
            .split_first_chunk::<10>()
            .ok_or(CcidError::TooShort { len: m.len() })?;
        let [kind, l0, l1, l2, l3, slot, seq, status, error, specific] = *header;
        let announced = u32::from_le_bytes([l0, l1, l2, l3]);
        if usize::try_from(announced).ok() != Some(data.len()) {
            return Err(CcidError::LengthMismatch {
                announced,
                actual: data.len(),
            });
        }
        if !matches!(
            kind,
            RDR_TO_PC_DATA_BLOCK
                | RDR_TO_PC_SLOT_STATUS
                | RDR_TO_PC_PARAMETERS
                | RDR_TO_PC_ESCAPE
                | 0x84
        ) {
            return Err(CcidError::NotAResponse { kind });
        }
        Ok(Self {
            kind,
            slot,
            seq,
            status,
            error,
            specific,
            data: data.to_vec(),
        })
    }

    /// bmICCStatus.
    pub const fn icc(&self) -> IccStatus {
        match self.status & 0x03 {
            0 => IccStatus::PresentActive,
            1 => IccStatus::PresentInactive,
            _ => IccStatus::Absent,
        }
    }

    /// bmCommandStatus.
    pub const fn command(&self) -> CommandStatus {
        match self.status >> 6 {
            0 => CommandStatus::Ok,
            2 => CommandStatus::TimeExtension,
            _ => CommandStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_and_parses() {
        let c = Command::xfr_block(&[0, 0xa4, 4, 0, 0], 0);
        assert_eq!(
            c.encode(9),
            [0x6f, 5, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0xa4, 4, 0, 0]
        );
        let r = Response::parse(&[0x80, 2, 0, 0, 0, 0, 9, 0, 0, 0, 0x90, 0]).unwrap();
        assert_eq!(r.data, [0x90, 0]);
        assert_eq!(r.icc(), IccStatus::PresentActive);
        assert_eq!(r.command(), CommandStatus::Ok);
        let r = Response::parse(&[0x81, 0, 0, 0, 0, 0, 1, 0x42, 0xfe, 0]).unwrap();
        assert_eq!(r.icc(), IccStatus::Absent);
        assert_eq!(r.command(), CommandStatus::Failed);
        let r = Response::parse(&[0x80, 0, 0, 0, 0, 0, 1, 0x80, 2, 0]).unwrap();
        assert_eq!(r.command(), CommandStatus::TimeExtension);
        assert_eq!(
            Response::parse(&[0x80, 3, 0, 0, 0, 0, 9, 0, 0, 0, 0x90, 0]),
            Err(CcidError::LengthMismatch {
                announced: 3,
                actual: 2
            })
        );
        assert!(Response::parse(&[0x6f, 0, 0, 0, 0, 0, 1, 0, 0, 0]).is_err());
        assert!(Response::parse(&[0x80]).is_err());
        assert_eq!(response_type(0x65), Some(0x81));
    }
}
