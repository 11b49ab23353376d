//! The qPBOC transaction (JR/T 0025.12 §6-§7): PPSE selection, GET PROCESSING OPTIONS with the
//! terminal transaction qualifiers, and the card's decision in the GPO answer.
//!
//! | step | function | clause |
//! |---|---|---|
//! | PPSE and final selection; PDOL must ask for `9F66` | [`QpbocTransaction::select`] | §6.4.1, §6.5.1 |
//! | ATC and EC balance for the journal, GPO; `6985` ends it | [`QpbocTransaction::process`] | §6.5.3-§6.5.5, §7.4; JR/T 0025.17 §10.5 |
//! | cryptogram type (`9F27`, else IAD byte 5 bits 6-5) | [`cryptogram_type`] | §7.8.1 |
//! | offline approval: exception file, records, expiry, fDDA | [`QpbocTransaction::complete_offline`] | §7.8.1-§7.8.2, §7.7.20, 附录 B |
//! | online (ARQC, or TC after a failed fDDA per CTQ) | [`QpbocTransaction::complete_online`] | §7.8.3 |
//!
//! The card debits electronic cash in the GPO itself (docs/pboc-profile.md), so the journal
//! records the intent before the GPO. No GENERATE AC, no issuer scripts.

use crate::channel::{CardChannel, CardSession};
use crate::crypto::sm2_cert::FddaTerminalData;
use crate::status::StatusWord;
use crate::tlv::Tag;

use super::PbocError;
use super::bits::{AcType, AipBit, Cid, Ctq, CtqBit, CvmResults, Tsi, TsiBit, TtqBit, Tvr, TvrBit};
use super::config::{TerminalConfig, TransactionParams};
use super::cryptogram::{self, CryptogramSource, DolData};
use super::data::Amount;
use super::gpo::{ProcessingOptions, gpo_command, parse_gpo_response};
use super::oda::{self, CaStore, OdaError, OdaInputs, OdaMethod};
use super::online::{OnlineAuthoriser, OnlineRequest};
use super::outcome::{DebitIntent, DebitJournal, Outcome, TransactionRecord, ec_balance_from_iad};
use super::records::{CardData, Mandatory, read_afl_records};
use super::risk::{self, HotList};
use super::select::{self, Interface, SelectedApplication};
use super::store::DataStore;

/// The hooks of a qPBOC transaction (no PIN pad: the qPBOC CVMs are online PIN and
/// signature, decided by the CTQ).
pub struct QpbocHooks<'h> {
    /// The exception file.
    pub hot_list: &'h dyn HotList,
    /// The online authorisation.
    pub online: &'h mut dyn OnlineAuthoriser,
    /// The write-ahead journal.
    pub journal: &'h mut dyn DebitJournal,
}

/// The cryptogram type of a qPBOC GPO answer (JR/T 0025.12 §7.8.1): the CID `9F27` if the card
/// returned one, else bits 6-5 of byte 5 of the issuer application data (`00` AAC, `01` TC,
/// `10` ARQC).
pub fn cryptogram_type(po: &ProcessingOptions) -> Result<AcType, PbocError> {
    if let Some(cid) = po.get(0x9f27) {
        let &[cid] = cid else {
            return Err(PbocError::BadData {
                tag: Tag::new(0x9f27),
            });
        };
        return Cid(cid).ac_type().ok_or(PbocError::BadData {
            tag: Tag::new(0x9f27),
        });
    }
    let iad = po.get(0x9f10).ok_or(PbocError::MissingData {
        tag: Tag::new(0x9f10),
    })?;
    match iad.get(4).map(|b| b & 0x30) {
        Some(0x00) => Ok(AcType::Aac),
        Some(0x10) => Ok(AcType::Tc),
        Some(0x20) => Ok(AcType::Arqc),
        _ => Err(PbocError::BadData {
            tag: Tag::new(0x9f10),
        }),
    }
}

/// A qPBOC transaction in progress.
pub struct QpbocTransaction<'a> {
    terminal: &'a TerminalConfig,
    ca: &'a CaStore,
    params: TransactionParams,
    app: Option<SelectedApplication>,
    card_store: DataStore,
    gpo: Option<ProcessingOptions>,
    card: Option<CardData>,
    ac: Option<AcType>,
    tvr: Tvr,
    tsi: Tsi,
    oda: Option<OdaMethod>,
    oda_failure: Option<OdaError>,
    pdol_data: Vec<u8>,
    atc_before: Option<u16>,
    ec_balance_before: Option<Amount>,
    arc: Option<[u8; 2]>,
    debit_attempted: bool,
    outcome: Option<Outcome>,
}

impl<'a> QpbocTransaction<'a> {
    /// A new transaction.
    pub fn new(terminal: &'a TerminalConfig, ca: &'a CaStore, params: TransactionParams) -> Self {
        Self {
            terminal,
            ca,
            params,
            app: None,
            card_store: DataStore::new(),
            gpo: None,
            card: None,
            ac: None,
            tvr: Tvr::default(),
            tsi: Tsi::default(),
            oda: None,
            oda_failure: None,
            pdol_data: Vec::new(),
            atc_before: None,
            ec_balance_before: None,
            arc: None,
            debit_attempted: false,
            outcome: None,
        }
    }

    /// The card's data store.
    pub fn card_store(&self) -> &DataStore {
        &self.card_store
    }

    /// The terminal's data for the PDOL.
    pub fn terminal_data(&self) -> DataStore {
        self.params.terminal_data(self.terminal)
    }

    /// PPSE selection and the final SELECT (JR/T 0025.12 §6.4.1); the PDOL must ask for `9F66`
    /// (§6.5.1), else the terminal tries another interface ([`PbocError::NoTtqInPdol`]).
    pub fn select<C: CardChannel>(&mut self, s: &mut CardSession<C>) -> Result<(), PbocError> {
        let mut list =
            select::build_candidate_list(s, &self.terminal.supported_aids, Interface::Contactless)?;
        let app = select::final_select(s, &mut list, true)?;
        if !app
            .fci
            .pdol
            .as_ref()
            .is_some_and(|d| d.contains(Tag::new(0x9f66)))
        {
            return Err(PbocError::NoTtqInPdol);
        }
        self.app = Some(app);
        Ok(())
    }

    /// Read the ATC and EC balance for the journal, record the intent, send GET PROCESSING
    /// OPTIONS and read the answer (JR/T 0025.12 §6.5.3-§6.5.5, §7.4.2): `6985` is
    /// [`PbocError::GpoConditionsNotSatisfied`] (no matching path, or the algorithm the
    /// terminal asked for in `DF69` is not the card's, JR/T 0025.17 §10.5). Returns the
    /// cryptogram type.
    pub fn process<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        journal: &mut dyn DebitJournal,
    ) -> Result<AcType, PbocError> {
        let app = self
            .app
            .as_ref()
            .ok_or(PbocError::OutOfOrder { step: "process" })?;
        let pdol = app.fci.pdol.clone().unwrap_or_default();
        let aid = app.aid.clone();
        self.atc_before = risk::get_counter(s, 0x9f36)?;
        self.ec_balance_before = risk::get_amount(s, 0x9f79)?;
        self.pdol_data = pdol.build(&self.terminal_data());
        let intent = DebitIntent {
            aid,
            pan: None,
            psn: None,
            atc_before: self.atc_before,
            amount: self.params.amount,
            currency: self.terminal.currency,
            date: self.params.date,
            time: self.params.time,
            ec_balance_before: self.ec_balance_before,
        };
        journal
            .record_intent(&intent)
            .map_err(|e| PbocError::Journal(e.0))?;
        self.debit_attempted = true;
        let r = s.send(&gpo_command(&self.pdol_data)?)?;
        match r.sw() {
            StatusWord::Success => {}
            StatusWord::ConditionsNotSatisfied => return Err(PbocError::GpoConditionsNotSatisfied),
            sw => {
                return Err(PbocError::Status {
                    command: "GET PROCESSING OPTIONS",
                    sw,
                });
            }
        }
        let po = parse_gpo_response(r.data(), false)?;
        if po.objects.is_empty() {
            return Err(PbocError::Malformed {
                what: "qPBOC GET PROCESSING OPTIONS response",
                reason: "format 1 (80) where format 2 (77) is required",
            });
        }
        for (tag, value) in &po.objects {
            self.card_store.insert(*tag, value.clone());
        }
        // 表11 and 表12: the data every qPBOC answer carries.
        for tag in [0x9f36, 0x9f26, 0x9f10] {
            if po.get(tag).is_none() {
                return Err(PbocError::MissingData { tag: Tag::new(tag) });
            }
        }
        let ac = cryptogram_type(&po)?;
        self.gpo = Some(po);
        self.ac = Some(ac);
        Ok(ac)
    }

    fn ctq(&self) -> Ctq {
        self.card_store
            .value(0x9f6c)
            .and_then(Ctq::from_slice)
            .unwrap_or_default()
    }

    /// The offline approval path of a TC (JR/T 0025.12 §7.8.1-§7.8.2): the exception file,
    /// the AFL's records, the expiry date (§7.7.20) and fDDA (附录 B). Returns the outcome, or
    /// `None` when fDDA failed and the card's CTQ asks to go online with the TC (byte 1 bit 6)
    /// and the terminal can.
    pub fn complete_offline<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        hot_list: &dyn HotList,
    ) -> Result<Option<Outcome>, PbocError> {
        let po = self.gpo.clone().ok_or(PbocError::OutOfOrder {
            step: "complete offline",
        })?;
        if po.afl.0.is_empty() {
            return Err(PbocError::MissingData {
                tag: Tag::new(0x94),
            });
        }
        let gpo_tags: Vec<Tag> = po.objects.iter().map(|(t, _)| *t).collect();
        let read = read_afl_records(s, &po.afl, &mut self.card_store, &gpo_tags)?;
        let card = CardData::from_store(&self.card_store, Mandatory::Qpboc)?;
        self.card = Some(card.clone());
        if hot_list.is_listed(&card.pan, card.psn) {
            self.tvr.set(TvrBit::CardOnExceptionFile);
            return Ok(Some(self.finish(Outcome::DeclinedOffline)));
        }
        if risk::expired(&card, self.params.date) {
            self.tvr.set(TvrBit::Expired);
            return Ok(Some(self.finish(Outcome::DeclinedOffline)));
        }
        if let Err(e) = self.fdda(&card, &po, &read.static_data) {
            if e.is_missing_data() {
                self.tvr.set(TvrBit::IccDataMissing);
            }
            self.tvr.set(TvrBit::DdaFailed);
            self.oda_failure = Some(e);
            let ctq = self.ctq();
            if ctq.contains(CtqBit::OnlineIfOdaFails) && self.terminal.online_capable() {
                return Ok(None);
            }
            if ctq.contains(CtqBit::TerminateIfOdaFails)
                && self.terminal.ttq.contains(TtqBit::ContactDebitCredit)
            {
                return Err(PbocError::UseContactInterface);
            }
            return Ok(Some(self.finish(Outcome::DeclinedOffline)));
        }
        self.arc = Some(super::action::ARC_Y1);
        Ok(Some(self.finish(Outcome::ApprovedOffline)))
    }

    /// fDDA (JR/T 0025.12 §7.6, 附录 B.2): fails when the AIP has no DDA, data is missing, or
    /// the signature does not verify.
    fn fdda(
        &mut self,
        card: &CardData,
        po: &ProcessingOptions,
        static_data: &[u8],
    ) -> Result<(), OdaError> {
        if !po.aip.contains(AipBit::Dda) {
            self.tvr.set(TvrBit::OdaNotPerformed);
            return Err(OdaError::AipNoDda);
        }
        self.oda = Some(OdaMethod::Fdda);
        self.tsi.set(TsiBit::OdaPerformed);
        let rid = self
            .app
            .as_ref()
            .and_then(SelectedApplication::rid)
            .unwrap_or_default();
        let pan_bcd = match self.card_store.value(0x5a) {
            Some(p) => p.to_vec(),
            None => card.pan.bcd().to_vec(),
        };
        let input = OdaInputs {
            card: &self.card_store,
            rid,
            pan: &pan_bcd,
            records: static_data,
            aip: po.aip,
            today: self.params.date.year_month(),
        };
        let key = oda::recover_icc_key(self.ca, &input)?;
        let sdad = self.card_store.value(0x9f4b).ok_or(OdaError::MissingData {
            tag: Tag::new(0x9f4b),
        })?;
        let terminal = FddaTerminalData {
            unpredictable_number: self.params.unpredictable_number,
            amount_authorised: self.params.amount.to_bcd(),
            transaction_currency_code: self.terminal.currency,
            card_authentication_related_data: self.card_store.value(0x9f69),
        };
        let require_v01 = self.terminal.ttq.contains(TtqBit::FddaV01)
            && card.app_version == Some(self.terminal.app_version);
        let number = oda::verify_fdda(&key, sdad, po.aip, &terminal, require_v01)?;
        self.card_store.set(0x9f4c, number);
        Ok(())
    }

    /// Online authorisation with the cryptogram of the GPO answer (JR/T 0025.12 §7.8.3): the
    /// issuer's code decides; if the issuer cannot be reached the transaction is declined.
    pub fn complete_online(
        &mut self,
        online: &mut dyn OnlineAuthoriser,
    ) -> Result<Outcome, PbocError> {
        let po = self.gpo.clone().ok_or(PbocError::OutOfOrder {
            step: "complete online",
        })?;
        let card = self
            .card
            .clone()
            .or_else(|| CardData::from_store(&self.card_store, Mandatory::Qpboc).ok());
        let atc = po
            .get(0x9f36)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map(u16::from_be_bytes)
            .unwrap_or_default();
        let ac = self.ac.unwrap_or(AcType::Arqc);
        let pdol = self.app.as_ref().and_then(|a| a.fci.pdol.clone());
        let input = pdol.as_ref().and_then(|d| {
            cryptogram::cryptogram_input(
                &[DolData::new(d, &self.pdol_data)],
                po.aip,
                atc,
                po.get(0x9f10).unwrap_or_default(),
            )
        });
        let request = OnlineRequest {
            aid: self
                .app
                .as_ref()
                .map(|a| a.aid.as_slice())
                .unwrap_or_default(),
            pan: card.as_ref().map(|c| &c.pan),
            psn: card.as_ref().and_then(|c| c.psn),
            amount: self.params.amount,
            amount_other: self.params.amount_other,
            currency: self.terminal.currency,
            country: self.terminal.country,
            date: self.params.date,
            time: self.params.time,
            transaction_type: self.params.transaction_type,
            unpredictable_number: self.params.unpredictable_number,
            atc,
            aip: po.aip,
            tvr: self.tvr,
            cid: Cid(ac.bits()),
            arqc: po
                .get(0x9f26)
                .and_then(|v| v.try_into().ok())
                .unwrap_or_default(),
            iad: po.get(0x9f10).unwrap_or_default(),
            cryptogram_data: &self.pdol_data,
            cryptogram_input: input.as_ref(),
            cvm_results: CvmResults::NOT_PERFORMED,
            online_pin: None,
            ec_load: false,
        };
        let outcome = if self.terminal.online_capable() {
            match online.authorise(&request) {
                Ok(r) => {
                    self.arc = Some(r.arc);
                    if super::action::arc_approves(r.arc) {
                        Outcome::ApprovedOnline
                    } else {
                        Outcome::DeclinedOnline
                    }
                }
                Err(_) => Outcome::DeclinedOffline,
            }
        } else {
            Outcome::DeclinedOffline
        };
        Ok(self.finish(outcome))
    }

    fn finish(&mut self, outcome: Outcome) -> Outcome {
        self.outcome = Some(outcome.clone());
        outcome
    }

    /// The record as it stands (`Aborted(error)` if given).
    pub fn record(&self, abort: Option<PbocError>) -> TransactionRecord {
        let card = self
            .card
            .clone()
            .or_else(|| CardData::from_store(&self.card_store, Mandatory::Qpboc).ok());
        let po = self.gpo.as_ref();
        let iad = po.and_then(|p| p.get(0x9f10)).unwrap_or_default().to_vec();
        let approved_offline = self.outcome == Some(Outcome::ApprovedOffline);
        let ec_balance_after = (approved_offline || self.ac == Some(AcType::Tc))
            .then(|| {
                ec_balance_from_iad(&iad)
                    .or_else(|| po.and_then(|p| p.get(0x9f5d)).and_then(Amount::from_bcd))
            })
            .flatten();
        let outcome = Outcome::resolve(abort, self.outcome.as_ref());
        TransactionRecord {
            interface: Interface::Contactless,
            aid: self.app.as_ref().map(|a| a.aid.clone()).unwrap_or_default(),
            label: self.app.as_ref().and_then(SelectedApplication::label),
            pan: card.as_ref().map(|c| c.pan.clone()),
            psn: card.as_ref().and_then(|c| c.psn),
            amount: self.params.amount,
            amount_other: self.params.amount_other,
            currency: self.terminal.currency,
            transaction_type: self.params.transaction_type,
            date: self.params.date,
            time: self.params.time,
            unpredictable_number: self.params.unpredictable_number,
            atc: po
                .and_then(|p| p.get(0x9f36))
                .and_then(|v| <[u8; 2]>::try_from(v).ok())
                .map(u16::from_be_bytes),
            aip: po.map(|p| p.aip),
            cid: self.ac.map(|a| Cid(a.bits())),
            cryptogram: po
                .and_then(|p| p.get(0x9f26))
                .and_then(|v| v.try_into().ok()),
            arqc: (self.ac == Some(AcType::Arqc))
                .then(|| {
                    po.and_then(|p| p.get(0x9f26))
                        .and_then(|v| v.try_into().ok())
                })
                .flatten(),
            ec: ec_balance_after.is_some(),
            iad,
            cryptogram_data: self.pdol_data.clone(),
            cdol2_data: Vec::new(),
            pdol_data: self.pdol_data.clone(),
            pdol: self.app.as_ref().and_then(|a| a.fci.pdol.clone()),
            cdol1: None,
            cdol2: None,
            cryptogram_source: po
                .and_then(|p| p.get(0x9f26))
                .map(|_| CryptogramSource::GetProcessingOptions),
            tvr: self.tvr,
            tsi: self.tsi,
            cvm_results: CvmResults::NOT_PERFORMED,
            arc: self.arc,
            oda: self.oda,
            oda_failure: self.oda_failure.clone(),
            script_results: Vec::new(),
            ec_balance_before: self.ec_balance_before,
            ec_balance_after,
            signature_required: self.ctq().contains(CtqBit::SignatureRequired),
            debit_attempted: self.debit_attempted,
            outcome,
        }
    }
}

/// Run a qPBOC transaction (JR/T 0025.12 图6, 图17) and return its record.
pub fn run_qpboc<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
    ca: &CaStore,
    params: TransactionParams,
    hooks: &mut QpbocHooks<'_>,
) -> TransactionRecord {
    let mut t = QpbocTransaction::new(terminal, ca, params);
    let result = (|| -> Result<(), PbocError> {
        t.select(s)?;
        match t.process(s, hooks.journal)? {
            AcType::Aac => {
                t.arc = Some(super::action::ARC_Z1);
                t.finish(Outcome::DeclinedOffline);
            }
            AcType::Arqc => {
                t.complete_online(hooks.online)?;
            }
            AcType::Tc => {
                if t.complete_offline(s, hooks.hot_list)?.is_none() {
                    t.complete_online(hooks.online)?;
                }
            }
        }
        Ok(())
    })();
    t.record(result.err())
}
