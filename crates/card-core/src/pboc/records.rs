//! Read application data (JR/T 0025.6 §7.4): the records the AFL names, into the card's data
//! store, with the static data to authenticate for offline data authentication.
//!
//! [`read_afl_records`] sends one READ RECORD per record (§7.4.3, JR/T 0025.5 附录 B.12) and
//! stops the transaction (a typed error) on what §7.4.4 lists: a status other than `9000`, a
//! record of SFI 1-10 that is not one template `70`, malformed TLV, a tag returned twice (in
//! records, or in a record after the GPO answer). Unknown tags are kept. The records of the AFL
//! entries' ODA counts are collected as JR/T 0025.5 §9.3.1 says: the value of template `70` for
//! SFI 1-10, the whole record for SFI 11-30.
//!
//! [`CardData::from_store`] then checks the mandatory data of JR/T 0025.5 表A.2 (`5A`, `5F24`,
//! `8C`, `8D`, `9F08`, `57` for debit/credit) and gives them types.

use crate::apdu::Command;
use crate::channel::{CardChannel, CardSession};
use crate::tlv::{Tag, TlvIter};

use super::PbocError;
use super::bits::Auc;
use super::cvm::CvmList;
use super::data::{Date, Pan};
use super::dol::Dol;
use super::gpo::Afl;
use super::store::DataStore;

/// What reading the AFL records produced besides the data store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordsRead {
    /// The records marked for offline data authentication, reduced as JR/T 0025.5 §9.3.1
    /// says, in AFL order (without the AIP the SDA tag list may add).
    pub static_data: Vec<u8>,
    /// Records read.
    pub count: usize,
}

/// Most records an AFL may name. JR/T 0025 sets no number; cards name a handful (the
/// project's profile six, docs/pboc-profile.md), and an AFL of one short GPO answer can name
/// 62 × 255. The limit bounds what a hostile card can make the terminal read.
pub const MAX_AFL_RECORDS: usize = 128;

/// READ RECORD `00 B2 record (SFI<<3)|4 00`. The answer (PAN, track 2 equivalent data,
/// cardholder name; log records) is marked sensitive: traces get its length only.
pub fn read_record_command(sfi: u8, record: u8) -> Command {
    Command::new(0x00, 0xb2, record, (sfi << 3) | 0x04)
        .expect_data()
        .sensitive_response()
}

/// Read every record the AFL names into `store` (JR/T 0025.6 §7.4.4). `gpo_tags` are the tags
/// the GPO answer already returned; a record must not repeat them. An AFL naming more than
/// [`MAX_AFL_RECORDS`] records is refused before anything is read.
pub fn read_afl_records<C: CardChannel>(
    s: &mut CardSession<C>,
    afl: &Afl,
    store: &mut DataStore,
    gpo_tags: &[Tag],
) -> Result<RecordsRead, PbocError> {
    let named: usize = afl
        .0
        .iter()
        .map(|e| usize::from(e.last.saturating_sub(e.first)) + 1)
        .sum();
    if named > MAX_AFL_RECORDS {
        return Err(PbocError::AflTooLong {
            records: named,
            limit: MAX_AFL_RECORDS,
        });
    }
    let mut out = RecordsRead::default();
    let mut from_records: Vec<Tag> = Vec::new();
    for entry in &afl.0 {
        for record in entry.first..=entry.last {
            let r = s.send(&read_record_command(entry.sfi, record))?;
            if !r.is_success() {
                return Err(PbocError::ReadRecord {
                    sfi: entry.sfi,
                    record,
                    sw: r.sw(),
                });
            }
            let data = r.data();
            let in_oda = u16::from(record - entry.first) < u16::from(entry.oda_records);
            let template = record_template(data, entry.sfi, record)?;
            if let Some(value) = template {
                store_record(value, entry.sfi, record, store, &mut from_records, gpo_tags)?;
            }
            if in_oda {
                match (entry.sfi, template) {
                    (1..=10, Some(value)) => out.static_data.extend_from_slice(value),
                    _ => out.static_data.extend_from_slice(data),
                }
            }
            out.count += 1;
        }
    }
    Ok(out)
}

/// The value of the record template `70` that must make up a record of SFI 1-10 (JR/T 0025.5
/// 表B.22); for SFI 11-30 the template if the record is one, else `None` (the content is not
/// defined by JR/T 0025 and is not interpreted).
fn record_template(data: &[u8], sfi: u8, record: u8) -> Result<Option<&[u8]>, PbocError> {
    let mut iter = TlvIter::new(data);
    let first = iter.next();
    let single = iter.next().is_none();
    match (first, single) {
        (Some(Ok(t)), true) if t.tag.value() == 0x70 => Ok(Some(t.value)),
        _ if sfi > 10 => Ok(None),
        (Some(Err(source)), _) => Err(PbocError::Tlv {
            what: "record",
            source,
        }),
        _ => Err(PbocError::NotRecordTemplate { sfi, record }),
    }
}

fn store_record(
    template: &[u8],
    sfi: u8,
    record: u8,
    store: &mut DataStore,
    from_records: &mut Vec<Tag>,
    gpo_tags: &[Tag],
) -> Result<(), PbocError> {
    for item in TlvIter::new(template) {
        let item = item.map_err(|source| PbocError::Tlv {
            what: "record",
            source,
        })?;
        if from_records.contains(&item.tag) || gpo_tags.contains(&item.tag) {
            return Err(PbocError::DuplicateTag {
                tag: item.tag,
                sfi,
                record,
            });
        }
        from_records.push(item.tag);
        store.insert(item.tag, item.value);
    }
    Ok(())
}

/// The issuer action codes (tags `9F0D` default, `9F0E` denial, `9F0F` online), each absent
/// when the card has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IssuerActionCodes {
    /// IAC-default.
    pub default: Option<[u8; 5]>,
    /// IAC-denial.
    pub denial: Option<[u8; 5]>,
    /// IAC-online.
    pub online: Option<[u8; 5]>,
}

/// The card data the debit/credit flow works with, typed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardData {
    /// Application PAN (`5A`).
    pub pan: Pan,
    /// PAN sequence number (`5F34`).
    pub psn: Option<u8>,
    /// Application expiration date (`5F24`).
    pub expiry: Date,
    /// Application effective date (`5F25`).
    pub effective: Option<Date>,
    /// Application usage control (`9F07`).
    pub auc: Option<Auc>,
    /// Issuer country code (`5F28`).
    pub issuer_country: Option<[u8; 2]>,
    /// Application version number of the card (`9F08`).
    pub app_version: Option<[u8; 2]>,
    /// Application currency code (`9F42`).
    pub app_currency: Option<[u8; 2]>,
    /// CVM list (`8E`).
    pub cvm_list: Option<CvmList>,
    /// Issuer action codes.
    pub iac: IssuerActionCodes,
    /// CDOL1 (`8C`).
    pub cdol1: Dol,
    /// CDOL2 (`8D`).
    pub cdol2: Option<Dol>,
    /// DDOL (`9F49`).
    pub ddol: Option<Dol>,
    /// Lower consecutive offline limit (`9F14`).
    pub lcol: Option<u8>,
    /// Upper consecutive offline limit (`9F23`).
    pub ucol: Option<u8>,
    /// Electronic cash issuer authorisation code (`9F74`): its presence makes the transaction
    /// an electronic cash one (JR/T 0025.13 §7.4.2).
    pub ec_issuer_auth_code: Option<Vec<u8>>,
}

/// Which data must be there (JR/T 0025.5 表A.2; JR/T 0025.12 §7.6 for qPBOC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mandatory {
    /// Contact debit/credit: `5A`, `5F24`, `8C`, `8D`, `9F08`, `57`.
    DebitCredit,
    /// qPBOC: the PAN and expiry date (from `5A`/`5F24` or track 2 `57`); no CDOL.
    Qpboc,
}

fn fixed<const N: usize>(store: &DataStore, tag: u32) -> Result<Option<[u8; N]>, PbocError> {
    store
        .value(tag)
        .map(|v| {
            v.try_into()
                .map_err(|_| PbocError::BadData { tag: Tag::new(tag) })
        })
        .transpose()
}

fn dol(store: &DataStore, tag: u32) -> Result<Option<Dol>, PbocError> {
    store
        .value(tag)
        .map(|v| {
            Dol::parse(v).map_err(|source| PbocError::Dol {
                tag: Tag::new(tag),
                source,
            })
        })
        .transpose()
}

fn required(store: &DataStore, tag: u32) -> Result<&[u8], PbocError> {
    store
        .value(tag)
        .ok_or(PbocError::MissingData { tag: Tag::new(tag) })
}

/// The expiry date `YYMM` in track 2 after the separator, as the last day of that month.
fn track2_expiry(track2: &[u8]) -> Option<Date> {
    let nibbles: Vec<u8> = track2.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect();
    let sep = nibbles.iter().position(|&n| n == 0x0d)?;
    let d = nibbles.get(sep + 1..sep + 5)?;
    if d.iter().any(|&n| n > 9) {
        return None;
    }
    let yy = d.first()? * 10 + d.get(1)?;
    let mm = d.get(2)? * 10 + d.get(3)?;
    let year = if yy < 50 { 2000 } else { 1900 } + u16::from(yy);
    (28..=31).rev().find_map(|day| Date::new(year, mm, day))
}

impl CardData {
    /// Check and type the card data in `store` (JR/T 0025.6 §7.4.4: missing mandatory data and
    /// data format errors end the transaction).
    pub fn from_store(store: &DataStore, mandatory: Mandatory) -> Result<Self, PbocError> {
        let bad = |tag: u32| PbocError::BadData { tag: Tag::new(tag) };
        let (pan, expiry) = match (mandatory, store.value(0x5a), store.value(0x57)) {
            (Mandatory::Qpboc, None, Some(t2)) => (
                Pan::from_track2(t2).ok_or(bad(0x57))?,
                match store.value(0x5f24) {
                    Some(d) => Date::from_bcd(d).ok_or(bad(0x5f24))?,
                    None => track2_expiry(t2).ok_or(bad(0x57))?,
                },
            ),
            _ => (
                Pan::from_bcd(required(store, 0x5a)?).ok_or(bad(0x5a))?,
                Date::from_bcd(required(store, 0x5f24)?).ok_or(bad(0x5f24))?,
            ),
        };
        let cdol1 = match mandatory {
            Mandatory::DebitCredit => {
                required(store, 0x8d)?;
                required(store, 0x9f08)?;
                required(store, 0x57)?;
                dol(store, 0x8c)?.ok_or(PbocError::MissingData {
                    tag: Tag::new(0x8c),
                })?
            }
            Mandatory::Qpboc => dol(store, 0x8c)?.unwrap_or_default(),
        };
        let psn = match store.value(0x5f34) {
            Some(&[b]) if (b >> 4) <= 9 && (b & 0x0f) <= 9 => Some(b),
            Some(_) => return Err(bad(0x5f34)),
            None => None,
        };
        let effective = store
            .value(0x5f25)
            .map(|d| Date::from_bcd(d).ok_or(bad(0x5f25)))
            .transpose()?;
        let cvm_list = store
            .value(0x8e)
            .map(|v| CvmList::parse(v).ok_or(bad(0x8e)))
            .transpose()?;
        Ok(Self {
            pan,
            psn,
            expiry,
            effective,
            auc: fixed::<2>(store, 0x9f07)?.map(Auc::from_bytes),
            issuer_country: fixed(store, 0x5f28)?,
            app_version: fixed(store, 0x9f08)?,
            app_currency: fixed(store, 0x9f42)?,
            cvm_list,
            iac: IssuerActionCodes {
                default: fixed(store, 0x9f0d)?,
                denial: fixed(store, 0x9f0e)?,
                online: fixed(store, 0x9f0f)?,
            },
            cdol1,
            cdol2: dol(store, 0x8d)?,
            ddol: dol(store, 0x9f49)?,
            lcol: fixed::<1>(store, 0x9f14)?.map(|[b]| b),
            ucol: fixed::<1>(store, 0x9f23)?.map(|[b]| b),
            ec_issuer_auth_code: store.value(0x9f74).map(<[u8]>::to_vec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StatusWord;
    use crate::transcript::ReplayChannel;

    fn session(script: &str) -> CardSession<ReplayChannel> {
        CardSession::new(ReplayChannel::parse(script).unwrap())
    }

    fn afl(hex: &str) -> Afl {
        Afl::parse(&hex::decode(hex).unwrap()).unwrap()
    }

    #[test]
    fn an_afl_naming_too_many_records_is_refused_before_any_read() {
        // SFI 1 records 1-255 (255 records): nothing is sent to the card.
        let mut s = session("");
        let mut store = DataStore::new();
        assert_eq!(
            read_afl_records(&mut s, &afl("0801FF00"), &mut store, &[]),
            Err(PbocError::AflTooLong {
                records: 255,
                limit: MAX_AFL_RECORDS
            })
        );
        assert_eq!(s.exchanges(), 0);
        // Exactly the limit is read (each record an empty template).
        let script: String = (1..=128u8)
            .map(|r| format!("> 00B2{r:02X}0C00\n< 7000 9000\n"))
            .collect();
        let mut s = session(&script);
        let read = read_afl_records(&mut s, &afl("08018000"), &mut store, &[]).unwrap();
        assert_eq!(read.count, MAX_AFL_RECORDS);
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn reads_records_and_collects_static_data() {
        let script = "> 00B2010C00\n< 7004 5F3401 01 9000\n\
                      > 00B2011400\n< 7005 9F080200 30 9000\n\
                      > 00B2021400\n< 7003 8F0180 9000\n";
        let mut s = session(script);
        let mut store = DataStore::new();
        let read = read_afl_records(
            &mut s,
            &afl("0801010010010201"),
            &mut store,
            &[Tag::new(0x82)],
        )
        .unwrap();
        assert_eq!(read.count, 3);
        assert_eq!(read.static_data, hex::decode("9F08020030").unwrap());
        assert_eq!(store.value(0x8f), Some(&[0x80][..]));
        s.channel().assert_finished().unwrap();
    }

    #[test]
    fn record_errors_are_typed() {
        let mut store = DataStore::new();
        let mut s = session("> 00B2010C00\n< 6A83\n");
        assert_eq!(
            read_afl_records(&mut s, &afl("08010100"), &mut store, &[]),
            Err(PbocError::ReadRecord {
                sfi: 1,
                record: 1,
                sw: StatusWord::RecordNotFound
            })
        );
        let mut s = session("> 00B2010C00\n< 7103 5F3401 01 9000\n");
        assert_eq!(
            read_afl_records(&mut s, &afl("08010100"), &mut store, &[]),
            Err(PbocError::NotRecordTemplate { sfi: 1, record: 1 })
        );
        let mut s = session("> 00B2010C00\n< 7005 5F3405 01 9000\n");
        assert!(matches!(
            read_afl_records(&mut s, &afl("08010100"), &mut store, &[]),
            Err(PbocError::Tlv { .. })
        ));
        let mut s = session("> 00B2010C00\n< 7008 5F340101 5F340101 9000\n");
        assert_eq!(
            read_afl_records(&mut s, &afl("08010100"), &mut store, &[]),
            Err(PbocError::DuplicateTag {
                tag: Tag::new(0x5f34),
                sfi: 1,
                record: 1
            })
        );
        let mut s = session("> 00B2010C00\n< 7004 82027C00 9000\n");
        assert!(matches!(
            read_afl_records(&mut s, &afl("08010100"), &mut store, &[Tag::new(0x82)]),
            Err(PbocError::DuplicateTag { .. })
        ));
        // SFI 11: not interpreted, whole record in the static data.
        let mut s = session("> 00B2015C00\n< 0102 9000\n");
        let mut store = DataStore::new();
        let read = read_afl_records(&mut s, &afl("58010101"), &mut store, &[]).unwrap();
        assert_eq!(read.static_data, [1, 2]);
    }

    fn minimal() -> DataStore {
        let mut s = DataStore::new();
        s.set(0x5a, hex::decode("6228480402564890").unwrap());
        s.set(0x5f24, [0x30, 0x12, 0x31]);
        s.set(0x8c, hex::decode("9F02069F3704").unwrap());
        s.set(0x8d, hex::decode("8A02").unwrap());
        s.set(0x9f08, [0x00, 0x30]);
        s.set(0x57, hex::decode("6228480402564890D30122010000").unwrap());
        s
    }

    #[test]
    fn mandatory_data() {
        let card = CardData::from_store(&minimal(), Mandatory::DebitCredit).unwrap();
        assert_eq!(card.pan.reveal(), "6228480402564890");
        assert_eq!(card.cdol1.data_len(), 10);
        for tag in [0x5a, 0x5f24, 0x8c, 0x8d, 0x9f08, 0x57] {
            let mut s = minimal();
            s.remove(Tag::new(tag));
            assert_eq!(
                CardData::from_store(&s, Mandatory::DebitCredit),
                Err(PbocError::MissingData { tag: Tag::new(tag) }),
                "{tag:X}"
            );
        }
        let mut s = minimal();
        s.set(0x5f24, [0x30, 0x13, 0x01]);
        assert_eq!(
            CardData::from_store(&s, Mandatory::DebitCredit),
            Err(PbocError::BadData {
                tag: Tag::new(0x5f24)
            })
        );
        // qPBOC: track 2 is enough.
        let mut s = DataStore::new();
        s.set(0x57, hex::decode("6228480402564890D30122010000").unwrap());
        let card = CardData::from_store(&s, Mandatory::Qpboc).unwrap();
        assert_eq!(card.expiry, Date::new(2030, 12, 31).unwrap());
    }
}
