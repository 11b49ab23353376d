//! The reader's command processing: one CCID message in, one CCID message out.
//!
//! Commands (CCID rev 1.1 §6.1): IccPowerOn answers the ATR, IccPowerOff and GetSlotStatus
//! the slot status, XfrBlock goes to the [`Slot`], Get/SetParameters answer the protocol data
//! structure, Escape `02` answers the firmware string libccid asks for at start and Escape
//! `01 01 01` (synchronous card movement notification) is acknowledged. Anything else fails
//! with bError 00 (command not supported). bStatus carries bmICCStatus (0 active, 1 present
//! and not powered, 2 absent) and bmCommandStatus (0 ok, 1 failed).

use super::slot::{Slot, XfrError};

/// What the reader answers to Escape `02` ("get firmware").
pub const FIRMWARE: &[u8] = b"GemTwin SIM-SSCARD 1.00";

/// A CCID response message.
pub fn response(kind: u8, seq: u8, status: u8, error: u8, specific: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(10 + data.len());
    m.push(kind);
    m.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_le_bytes());
    m.extend_from_slice(&[0, seq, status, error, specific]);
    m.extend_from_slice(data);
    m
}

/// Handle one command message (frame checksum already checked). `wtx` is passed to T=1.
pub fn handle(slot: &mut Slot, m: &[u8], wtx: Option<u8>) -> Vec<u8> {
    let kind = m.first().copied().unwrap_or(0);
    let seq = m.get(6).copied().unwrap_or(0);
    let params = [
        m.get(7).copied().unwrap_or(0),
        m.get(8).copied().unwrap_or(0),
        m.get(9).copied().unwrap_or(0),
    ];
    let data = m.get(10..).unwrap_or_default();
    let failed = |slot: &Slot, kind: u8, error: u8| {
        response(kind, seq, 0x40 | slot.icc_status(), error, 0, &[])
    };
    if m.get(5).copied().unwrap_or(0) != 0 {
        // Only slot 0 exists: bError 5 points at bSlot.
        return failed(slot, response_kind(kind), 5);
    }
    match kind {
        0x62 => match slot.power_on() {
            Some(atr) => response(0x80, seq, 0, 0, 0, &atr),
            None => failed(slot, 0x80, 0xfe),
        },
        0x63 => {
            slot.power_off();
            response(0x81, seq, slot.icc_status(), 0, 0, &[])
        }
        0x65 => response(0x81, seq, slot.icc_status(), 0, 0, &[]),
        0x6f => match slot.xfr(data, wtx) {
            Ok(r) => response(0x80, seq, 0, 0, 0, &r),
            Err(XfrError::Mute) => failed(slot, 0x80, 0xfe),
            Err(XfrError::BadLength) => failed(slot, 0x80, 0x01),
        },
        0x6c => {
            let t = slot.protocol;
            response(0x82, seq, slot.icc_status(), 0, t, &default_params(t))
        }
        0x61 => {
            let t = params[0];
            if t > 1 || slot.inserted.is_none() {
                return failed(slot, 0x82, 7);
            }
            slot.set_protocol(t);
            response(0x82, seq, slot.icc_status(), 0, t, data)
        }
        0x6b => match data {
            [0x02] => response(0x83, seq, slot.icc_status(), 0, 0, FIRMWARE),
            [0x01, 0x01, 0x01] => response(0x83, seq, slot.icc_status(), 0, 0, &[]),
            _ => failed(slot, 0x83, 0),
        },
        _ => failed(slot, 0x81, 0),
    }
}

fn response_kind(command: u8) -> u8 {
    match command {
        0x62 | 0x6f => 0x80,
        0x61 | 0x6c => 0x82,
        0x6b => 0x83,
        _ => 0x81,
    }
}

fn default_params(t: u8) -> Vec<u8> {
    if t == 1 {
        vec![0x11, 0x10, 0, 0x45, 0, 0xfe, 0]
    } else {
        vec![0x11, 0, 0, 0x0a, 0]
    }
}
