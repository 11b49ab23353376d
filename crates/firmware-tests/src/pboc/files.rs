//! The files of the payment application and its selection (docs/pboc-profile.md "Files and
//! records"): the PSE `1PAY.SYS.DDF01` with its directory, the PPSE `2PAY.SYS.DDF01`, the ADF
//! with its records (SFI 1-4), the transaction log (SFI 11) and the load log (SFI 12); the
//! FCIs the card answers SELECT with; and [`install`], which a personaliser calls to put all of
//! it and the [`PbocState`] into a card image.
//!
//! Record layout (project profile, following docs/pboc-profile.md with the changes its report
//! names): SFI 1 record 1 `70{57, 5F20, 9F1F}`; SFI 2 record 1 `70{5A, 5F24, 5F25, 5F34,
//! 9F07, 5F28, 8E, 9F0D, 9F0E, 9F0F, 9F08, 9F4A}` and record 2 `70{8C, 8D}` (both signed);
//! SFI 3 record 1 `70{8F, 90, 92, 9F32}`, record 2 `70{9F46, 9F47, 9F48, 9F49}`; SFI 4 record 1
//! `70{9F74, 9F69}`, outside offline data authentication, read only in EC and qPBOC
//! transactions (JR/T 0025.13 §7.4.2: the EC AFL adds the record of `9F74`; JR/T 0025.12 §7.5:
//! the last record of a qPBOC AFL holds only `9F74` and `9F69`, at most 32 bytes).

use card_core::tlv::{Tag, Tlv};

use super::dol::{self, DolEntry};
use super::state::PbocState;
use super::{PbocError, SFI_LOAD_LOG, SFI_LOG};
use crate::fs::{Access, EfBody, EfSpec, MF};
use crate::image::CardImage;

/// Name of the PSE (JR/T 0025.3 §12.2.2).
pub const PSE_NAME: &[u8] = b"1PAY.SYS.DDF01";
/// Name of the PPSE (JR/T 0025.12 §6.4.3).
pub const PPSE_NAME: &[u8] = b"2PAY.SYS.DDF01";
/// File identifier of the PSE DDF (project profile).
pub const FID_PSE: u16 = 0x1d01;
/// File identifier of the PPSE (project profile).
pub const FID_PPSE: u16 = 0x1d02;
/// File identifier of the debit/credit ADF (project profile).
pub const FID_ADF: u16 = 0xadf1;
/// Records per log file (JR/T 0025.13 §5.8: at least ten).
pub const LOG_RECORDS: u8 = 10;

/// AFL of a contact debit/credit transaction: SFI 1 record 1; SFI 2 records 1-2, both signed;
/// SFI 3 records 1-2 (JR/T 0025.5 §7.1 表7).
pub const AFL_CONTACT: [u8; 12] = [
    0x08, 0x01, 0x01, 0x00, 0x10, 0x01, 0x02, 0x02, 0x18, 0x01, 0x02, 0x00,
];
/// AFL of a contact EC transaction: as [`AFL_CONTACT`] and SFI 4 record 1 with `9F74`
/// (JR/T 0025.13 §7.4.2).
pub const AFL_CONTACT_EC: [u8; 16] = [
    0x08, 0x01, 0x01, 0x00, 0x10, 0x01, 0x02, 0x02, 0x18, 0x01, 0x02, 0x00, 0x20, 0x01, 0x01, 0x00,
];
/// AFL of a qPBOC offline approval: the signed records, the certificates, and last SFI 4
/// record 1 with `9F74` and `9F69` (JR/T 0025.12 §7.4.3, §7.5). Track 2 comes in the GPO
/// response instead of SFI 1 (表12).
pub const AFL_QPBOC: [u8; 12] = [
    0x10, 0x01, 0x02, 0x02, 0x18, 0x01, 0x02, 0x00, 0x20, 0x01, 0x01, 0x00,
];

/// The card data elements a personaliser provides (JR/T 0025.5 附录 A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardData {
    /// Application PAN, digits.
    pub pan: String,
    /// PAN sequence number (0-99), if any.
    pub psn: Option<u8>,
    /// Application effective date `5F25`, YYMMDD BCD.
    pub effective: [u8; 3],
    /// Application expiration date `5F24`, YYMMDD BCD.
    pub expiry: [u8; 3],
    /// Cardholder name `5F20` (ans, 2-26 characters, "SURNAME/GIVEN").
    pub cardholder_name: String,
    /// Issuer action code - default `9F0D`.
    pub iac_default: [u8; 5],
    /// Issuer action code - denial `9F0E`.
    pub iac_denial: [u8; 5],
    /// Issuer action code - online `9F0F`.
    pub iac_online: [u8; 5],
    /// Application usage control `9F07`.
    pub auc: [u8; 2],
    /// Application version number `9F08`.
    pub app_version: [u8; 2],
    /// Issuer country code `5F28` (numeric).
    pub issuer_country: u16,
    /// CVM list `8E`.
    pub cvm_list: Vec<u8>,
}

/// What offline data authentication needs in the records (SFI 3), from issuance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OdaRecords {
    /// CA public key index `8F`.
    pub ca_index: u8,
    /// Issuer public-key certificate `90`.
    pub issuer_certificate: Vec<u8>,
    /// Issuer public-key remainder `92` (RSA; empty if none).
    pub issuer_remainder: Vec<u8>,
    /// Issuer public-key exponent `9F32` (RSA; empty for SM2).
    pub issuer_exponent: Vec<u8>,
    /// ICC public-key certificate `9F46`.
    pub icc_certificate: Vec<u8>,
    /// ICC public-key remainder `9F48` (RSA; empty if none).
    pub icc_remainder: Vec<u8>,
    /// ICC public-key exponent `9F47` (RSA; empty for SM2).
    pub icc_exponent: Vec<u8>,
}

fn tlv(tag: u32, value: impl Into<Vec<u8>>) -> Tlv {
    Tlv::primitive(Tag::new(tag), value)
}

fn encode(t: &Tlv) -> Result<Vec<u8>, PbocError> {
    t.to_bytes().map_err(|e| PbocError::Data(e.to_string()))
}

fn template(tag: u32, children: Vec<Tlv>) -> Result<Vec<u8>, PbocError> {
    encode(&Tlv::constructed(Tag::new(tag), children))
}

/// Digits packed two a byte, an odd count padded with `F` (`cn`).
pub fn cn(digits: &str) -> Result<Vec<u8>, PbocError> {
    let mut nibbles: Vec<u8> = digits
        .bytes()
        .map(|b| b.checked_sub(b'0').filter(|d| *d <= 9))
        .collect::<Option<_>>()
        .ok_or_else(|| PbocError::Data(format!("{digits:?} is not digits")))?;
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0f);
    }
    Ok(nibbles
        .chunks(2)
        .map(|p| (p.first().copied().unwrap_or(0) << 4) | p.get(1).copied().unwrap_or(0))
        .collect())
}

/// Track 2 equivalent data `57`: PAN, separator `D`, expiry YYMM, service code `220` (IC
/// card, PIN when possible), discretionary data, `F` padding.
pub fn track2(data: &CardData) -> Result<Vec<u8>, PbocError> {
    cn(&data.pan)?;
    let [yy, mm, _] = data.expiry;
    let text = format!("{}D{yy:02X}{mm:02X}2200000000000", data.pan);
    let mut nibbles: Vec<u8> = text
        .bytes()
        .map(|b| {
            if b == b'D' {
                0x0d
            } else {
                b.wrapping_sub(b'0') & 0x0f
            }
        })
        .collect();
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0f);
    }
    Ok(nibbles
        .chunks(2)
        .map(|p| (p.first().copied().unwrap_or(0) << 4) | p.get(1).copied().unwrap_or(0))
        .collect())
}

/// SFI 1 record 1: `70{57, 5F20, 9F1F}`.
fn sfi1_record(data: &CardData) -> Result<Vec<u8>, PbocError> {
    template(
        0x70,
        vec![
            tlv(0x57, track2(data)?),
            tlv(0x5f20, data.cardholder_name.as_bytes().to_vec()),
            tlv(0x9f1f, b"000000".to_vec()),
        ],
    )
}

/// SFI 2 records 1 and 2, the records of offline data authentication.
fn sfi2_records(data: &CardData) -> Result<[Vec<u8>; 2], PbocError> {
    let mut first = vec![
        tlv(0x5a, cn(&data.pan)?),
        tlv(0x5f24, data.expiry.to_vec()),
        tlv(0x5f25, data.effective.to_vec()),
    ];
    if let Some(psn) = data.psn {
        first.push(tlv(0x5f34, super::ec::to_bcd::<1>(u64::from(psn)).to_vec()));
    }
    first.extend([
        tlv(0x9f07, data.auc.to_vec()),
        tlv(0x5f28, super::ec::n3(data.issuer_country).to_vec()),
        tlv(0x8e, data.cvm_list.clone()),
        tlv(0x9f0d, data.iac_default.to_vec()),
        tlv(0x9f0e, data.iac_denial.to_vec()),
        tlv(0x9f0f, data.iac_online.to_vec()),
        tlv(0x9f08, data.app_version.to_vec()),
        tlv(0x9f4a, vec![0x82]),
    ]);
    let second = vec![
        tlv(0x8c, dol::encode(dol::CDOL1)),
        tlv(0x8d, dol::encode(dol::CDOL2)),
    ];
    Ok([template(0x70, first)?, template(0x70, second)?])
}

/// The static data to authenticate (JR/T 0025.5 §9.3.1; JR/T 0025.7 §5.2.1; JR/T 0025.17
/// §5.1.1): the values of the `70` templates of SFI 2 records 1 and 2, then the AIP named by
/// the SDA tag list `9F4A`. The ICC certificate is signed over this.
pub fn static_data(data: &CardData, aip: [u8; 2]) -> Result<Vec<u8>, PbocError> {
    let mut out = Vec::new();
    for record in sfi2_records(data)? {
        let t = Tlv::parse(&record).map_err(|e| PbocError::Data(e.to_string()))?;
        for child in t.children() {
            out.extend(encode(child)?);
        }
    }
    out.extend_from_slice(&aip);
    Ok(out)
}

/// SFI 3 records 1 and 2: certificates and the DDOL.
fn sfi3_records(oda: &OdaRecords) -> Result<[Vec<u8>; 2], PbocError> {
    let mut first = vec![
        tlv(0x8f, vec![oda.ca_index]),
        tlv(0x90, oda.issuer_certificate.clone()),
    ];
    if !oda.issuer_remainder.is_empty() {
        first.push(tlv(0x92, oda.issuer_remainder.clone()));
    }
    if !oda.issuer_exponent.is_empty() {
        first.push(tlv(0x9f32, oda.issuer_exponent.clone()));
    }
    let mut second = vec![tlv(0x9f46, oda.icc_certificate.clone())];
    if !oda.icc_exponent.is_empty() {
        second.push(tlv(0x9f47, oda.icc_exponent.clone()));
    }
    if !oda.icc_remainder.is_empty() {
        second.push(tlv(0x9f48, oda.icc_remainder.clone()));
    }
    second.push(tlv(0x9f49, dol::encode(dol::DDOL)));
    Ok([template(0x70, first)?, template(0x70, second)?])
}

/// SFI 4 record 1: `70{9F74}`, and in a qPBOC transaction with fDDA version 01 also the card
/// authentication related data `9F69` of that transaction (JR/T 0025.12 附录 C: version `01`,
/// card unpredictable number, CTQ, `00`).
pub(crate) fn sfi4_record(
    state: &PbocState,
    fdda: Option<([u8; 4], [u8; 2])>,
) -> Result<Vec<u8>, PbocError> {
    let code = state
        .ec
        .as_ref()
        .map(|ec| ec.issuer_auth_code)
        .unwrap_or(*b"ECC000");
    let mut children = vec![tlv(0x9f74, code.to_vec())];
    if let Some((un, ctq)) = fdda {
        children.push(tlv(0x9f69, card_auth_data(un, ctq).to_vec()));
    }
    template(0x70, children)
}

/// Card authentication related data `9F69` of fDDA version 01 (JR/T 0025.12 附录 C).
pub(crate) fn card_auth_data(un: [u8; 4], ctq: [u8; 2]) -> [u8; 8] {
    let [u0, u1, u2, u3] = un;
    let [c0, c1] = ctq;
    [0x01, u0, u1, u2, u3, c0, c1, 0x00]
}

/// The directory entry of the application (`61{4F, 50, 87}`, JR/T 0025.3 §12.2.3 表44/表45).
fn directory_entry(state: &PbocState) -> Tlv {
    Tlv::constructed(
        Tag::new(0x61),
        vec![
            tlv(0x4f, state.aid.clone()),
            tlv(0x50, state.label.as_bytes().to_vec()),
            tlv(0x87, vec![0x01]),
        ],
    )
}

/// FCI of the PSE: `6F{84 name, A5{88 SFI 01, 5F2D "zhen"}}` (JR/T 0025.3 §11.3.4 表42).
pub fn pse_fci() -> Result<Vec<u8>, PbocError> {
    template(
        0x6f,
        vec![
            tlv(0x84, PSE_NAME.to_vec()),
            Tlv::constructed(
                Tag::new(0xa5),
                vec![tlv(0x88, vec![0x01]), tlv(0x5f2d, b"zhen".to_vec())],
            ),
        ],
    )
}

/// FCI of the PPSE: `6F{84 name, A5{BF0C{61{4F, 50, 87}}}}` (JR/T 0025.12 §6.4.3 表2).
pub fn ppse_fci(state: &PbocState) -> Result<Vec<u8>, PbocError> {
    template(
        0x6f,
        vec![
            tlv(0x84, PPSE_NAME.to_vec()),
            Tlv::constructed(
                Tag::new(0xa5),
                vec![Tlv::constructed(
                    Tag::new(0xbf0c),
                    vec![directory_entry(state)],
                )],
            ),
        ],
    )
}

/// The log entry data object of `BF0C`: SFI and record count.
fn log_entry(sfi: u8) -> Vec<u8> {
    vec![sfi, LOG_RECORDS]
}

/// FCI of the ADF: `6F{84 AID, A5{50, 87, 9F38 PDOL, 5F2D, 9F11, BF0C{9F4D, DF4D}}}`
/// (JR/T 0025.3 §11.3.4 表43, JR/T 0025.5 附录 B.13.4, JR/T 0025.13 §5.8).
pub fn adf_fci(state: &PbocState) -> Result<Vec<u8>, PbocError> {
    template(
        0x6f,
        vec![
            tlv(0x84, state.aid.clone()),
            Tlv::constructed(
                Tag::new(0xa5),
                vec![
                    tlv(0x50, state.label.as_bytes().to_vec()),
                    tlv(0x87, vec![0x01]),
                    tlv(0x9f38, dol::encode(dol::PDOL)),
                    tlv(0x5f2d, b"zhen".to_vec()),
                    tlv(0x9f11, vec![0x01]),
                    Tlv::constructed(
                        Tag::new(0xbf0c),
                        vec![
                            tlv(0x9f4d, log_entry(SFI_LOG)),
                            tlv(0xdf4d, log_entry(SFI_LOAD_LOG)),
                        ],
                    ),
                ],
            ),
        ],
    )
}

/// The encoding of a DOL for GET DATA (`9F4F`, `DF4F`).
pub(crate) fn dol_value(list: &[DolEntry]) -> Vec<u8> {
    dol::encode(list)
}

fn linear(records: Vec<Vec<u8>>) -> EfBody {
    EfBody::Linear {
        max_records: records.len(),
        max_record_len: 254,
        records,
    }
}

fn cyclic(record_len: usize) -> EfBody {
    EfBody::Cyclic {
        records: Vec::new(),
        max_records: usize::from(LOG_RECORDS),
        max_record_len: record_len,
    }
}

/// Lay out the PSE, the PPSE and the ADF with their records in `image`, and make `state` its
/// payment application (track 2 and PSN are filled from `data`). The static data the ICC
/// certificate in `oda` signs must be [`static_data`] of `data` and `state.aip`.
pub fn install(
    image: &mut CardImage,
    mut state: PbocState,
    data: &CardData,
    oda: &OdaRecords,
) -> Result<(), PbocError> {
    state.track2 = track2(data)?;
    state.psn = data.psn;
    let fs_err = |e: crate::fs::FsError| PbocError::Data(format!("file system: {e:?}"));
    let ef = |fid, name, sfi, body| EfSpec {
        fid,
        name,
        sfi: Some(sfi),
        body,
        read: Access::Always,
        update: Access::Never,
    };
    let fs = &mut image.fs;
    let pse = fs
        .add_df(MF, FID_PSE, "PSE", Some(PSE_NAME.to_vec()))
        .map_err(fs_err)?;
    let directory = template(0x70, vec![directory_entry(&state)])?;
    fs.add_ef(pse, ef(0x0001, "PSE/DIR", 1, linear(vec![directory])))
        .map_err(fs_err)?;
    fs.add_df(MF, FID_PPSE, "PPSE", Some(PPSE_NAME.to_vec()))
        .map_err(fs_err)?;
    let adf = fs
        .add_df(MF, FID_ADF, "PBOC", Some(state.aid.clone()))
        .map_err(fs_err)?;
    let [r21, r22] = sfi2_records(data)?;
    let [r31, r32] = sfi3_records(oda)?;
    let files = [
        (1u8, "PBOC/SFI1", linear(vec![sfi1_record(data)?])),
        (2, "PBOC/SFI2", linear(vec![r21, r22])),
        (3, "PBOC/SFI3", linear(vec![r31, r32])),
        (4, "PBOC/SFI4", linear(vec![sfi4_record(&state, None)?])),
        (SFI_LOG, "PBOC/LOG", cyclic(dol::data_len(dol::LOG_FORMAT))),
        (
            SFI_LOAD_LOG,
            "PBOC/LOADLOG",
            cyclic(14 + dol::data_len(dol::LOAD_LOG_FORMAT)),
        ),
    ];
    for (sfi, name, body) in files {
        fs.add_ef(adf, ef(u16::from(sfi), name, sfi, body))
            .map_err(fs_err)?;
    }
    image.pboc = Some(state);
    Ok(())
}
