//! The transaction log (SFI 11, format `9F4F`, JR/T 0025.5 §18, JR/T 0025.13 表9) and the load
//! log (SFI 12, JR/T 0025.13 §5.8, 表10/表11), both cyclic files of ten records, newest first,
//! and the MAC-protected reading of the whole load log (`READ RECORD P1=00`, 表12/表13).
//!
//! Records are written into the card image in memory; the caller commits them in the same
//! commit as the balance and counters they go with, so they succeed or fail together (JR/T
//! 0025.5 §18.1, JR/T 0025.13 §5.8).

use card_core::status::StatusWord as Sw;

use super::cryptogram;
use super::dol::{self, DolData, DolEntry, TAG_ATC};
use super::state::PbocState;
use super::{SFI_LOAD_LOG, SFI_LOG};
use crate::fs::{self, EfBody, NodeId, NodeKind};
use crate::image::CardImage;

/// The values of `format` from the transaction data (`sources`, first wins), the ATC for
/// `9F36`, zeros for anything missing.
fn fill(format: &[DolEntry], sources: &[&DolData], atc: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(dol::data_len(format));
    for entry in format {
        if entry.tag == TAG_ATC {
            out.extend_from_slice(&atc.to_be_bytes());
        } else {
            out.extend(dol::collect(core::slice::from_ref(entry), sources));
        }
    }
    out
}

/// A transaction log record in the format `9F4F` from the GPO and GENERATE AC data.
pub(crate) fn transaction_record(sources: &[&DolData], atc: u16) -> Vec<u8> {
    fill(dol::LOG_FORMAT, sources, atc)
}

/// A load log record (JR/T 0025.13 表10): P1 and P2 of the PUT DATA, the balance before and
/// after (n12), then the `DF4F` data of the transaction.
pub(crate) fn load_record(
    p1: u8,
    p2: u8,
    before: [u8; 6],
    after: [u8; 6],
    sources: &[&DolData],
    atc: u16,
) -> Vec<u8> {
    let mut out = vec![p1, p2];
    out.extend_from_slice(&before);
    out.extend_from_slice(&after);
    out.extend(fill(dol::LOAD_LOG_FORMAT, sources, atc));
    out
}

/// The EF with `sfi` under `adf`.
pub(crate) fn log_file(image: &CardImage, adf: NodeId, sfi: u8) -> Option<NodeId> {
    image.fs.child_by_sfi(adf, sfi)
}

fn body_mut(image: &mut CardImage, ef: NodeId) -> Result<&mut EfBody, Sw> {
    match image.fs.node_mut(ef).map(|n| &mut n.kind) {
        Some(NodeKind::Ef { body, .. }) => Ok(body),
        _ => Err(Sw::ExecutionError),
    }
}

/// The records of a log file, newest first.
pub(crate) fn records(image: &CardImage, adf: NodeId, sfi: u8) -> Vec<Vec<u8>> {
    log_file(image, adf, sfi)
        .and_then(|ef| match image.fs.node(ef).map(|n| &n.kind) {
            Some(NodeKind::Ef { body, .. }) => body.records().map(<[Vec<u8>]>::to_vec),
            _ => None,
        })
        .unwrap_or_default()
}

/// Replace the records of a log file (tear-guard rollback).
pub(crate) fn set_records(
    image: &mut CardImage,
    adf: NodeId,
    sfi: u8,
    new: Vec<Vec<u8>>,
) -> Result<(), Sw> {
    let ef = log_file(image, adf, sfi).ok_or(Sw::ExecutionError)?;
    match body_mut(image, ef)? {
        EfBody::Cyclic { records, .. } | EfBody::Linear { records, .. } => {
            *records = new;
            Ok(())
        }
        EfBody::Transparent { .. } => Err(Sw::ExecutionError),
    }
}

/// Add a record to a log file as its newest (record 1), in memory.
pub(crate) fn append(image: &mut CardImage, adf: NodeId, sfi: u8, record: &[u8]) -> Result<(), Sw> {
    let ef = log_file(image, adf, sfi).ok_or(Sw::ExecutionError)?;
    fs::append_record(body_mut(image, ef)?, record).map_err(|_| Sw::ExecutionError)
}

/// Add a transaction log record.
pub(crate) fn log_transaction(image: &mut CardImage, adf: NodeId, record: &[u8]) -> Result<(), Sw> {
    append(image, adf, SFI_LOG, record)
}

/// The answer to `READ RECORD P1=00` on the load log (JR/T 0025.13 §5.8, 表12): ATC, number of
/// records, for each of the (at most ten) newest records the 表13 fields (P1, P2, balance
/// before and after, date, time, ATC), and a MAC over all of it computed as JR/T 0025.5 附录
/// C.2.4 with the data block `ATC ‖ count ‖ records`.
pub(crate) fn load_log_all(state: &PbocState, image: &CardImage, adf: NodeId) -> Vec<u8> {
    let records = records(image, adf, SFI_LOAD_LOG);
    let mut out = state.atc.to_be_bytes().to_vec();
    let shown: Vec<&Vec<u8>> = records.iter().take(10).collect();
    out.push(u8::try_from(shown.len()).unwrap_or(10));
    for r in shown {
        // 表10 layout: P1 P2 before(6) after(6), then DF4F data: date(3) time(3) country(2)
        // merchant(20) ATC(2). 表13 keeps P1..after, date, time and ATC.
        out.extend(r.get(..14).unwrap_or_default());
        out.extend(r.get(14..20).unwrap_or_default());
        out.extend(r.get(42..44).unwrap_or_default());
    }
    let mac = cryptogram::mac(state, state.atc, &out);
    out.extend_from_slice(&mac);
    out
}
