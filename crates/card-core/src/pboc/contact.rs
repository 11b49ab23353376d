//! The contact debit/credit transaction with electronic cash (JR/T 0025.6 §7, JR/T 0025.13
//! §7.4) as a state machine over plain data.
//!
//! [`ContactTransaction`] holds everything the transaction knows (the terminal's data, the
//! card's data store, TVR, TSI, the DOL data sent) and has one method per step of JR/T 0025.6
//! 图1, each taking the card session (and the hook it needs) and advancing a [`Phase`]:
//!
//! | step | method | clause |
//! |---|---|---|
//! | application selection | [`ContactTransaction::select`] | §7.2 |
//! | initiate application processing | [`ContactTransaction::initiate`] | §7.3 |
//! | read application data | [`ContactTransaction::read_application_data`] | §7.4; EC: JR/T 0025.13 §7.4.2 |
//! | offline data authentication | [`ContactTransaction::authenticate`] | §7.5 |
//! | processing restrictions | [`ContactTransaction::restrictions`] | §7.6 |
//! | cardholder verification | [`ContactTransaction::verify_cardholder`] | §7.7 |
//! | terminal risk management | [`ContactTransaction::risk_management`] | §7.8; EC: JR/T 0025.13 §7.4.3 |
//! | terminal action analysis | [`ContactTransaction::action_analysis`] | §7.9; EC: JR/T 0025.13 §7.4.4 |
//! | card action analysis (1st GENERATE AC) | [`ContactTransaction::first_generate_ac`] | §7.10, §7.13.4 |
//! | online processing, scripts, completion | [`ContactTransaction::complete_online`] | §7.11-§7.13 |
//!
//! Each step is its own function so a transcript can test one step, the kiosk can persist
//! between steps, and the GUI can show progress; [`run_contact`] runs them all and always
//! returns a [`TransactionRecord`] (with [`Outcome::Aborted`] and the typed error when the
//! transaction stopped). Calling a step out of order is [`PbocError::OutOfOrder`].

use crate::channel::{CardChannel, CardSession};
use crate::tlv::Tag;

use super::PbocError;
use super::action::{
    self, ARC_Y1, ARC_Z1, ActionDecision, GenerateAcResponse, arc_approves, generate_ac_command,
    parse_generate_ac_response,
};
use super::bits::{AcType, Aip, AipBit, Tsi, TsiBit, Tvr, TvrBit};
use super::config::{TerminalConfig, TransactionParams, transaction_type};
use super::cryptogram::{self, CryptogramSource, DolData};
use super::cvm::{self, CvmContext, CvmOutcome, PinPad};
use super::data::Amount;
use super::gpo::{ProcessingOptions, gpo_command, parse_gpo_response};
use super::oda::{self, CaStore, IccPublicKey, OdaError, OdaInputs, OdaMethod};
use super::online::{self, OnlineAuthoriser, OnlineRequest, ScriptResult};
use super::outcome::{DebitIntent, DebitJournal, Outcome, TransactionRecord, ec_balance_from_iad};
use super::records::{CardData, Mandatory, read_afl_records};
use super::risk::{self, HotList};
use super::select::{self, Candidate, Interface, SelectedApplication};
use super::store::DataStore;

/// Where a [`ContactTransaction`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Nothing done yet.
    Start,
    /// An application is selected.
    Selected,
    /// GET PROCESSING OPTIONS answered.
    Initiated,
    /// Records read.
    DataRead,
    /// Offline data authentication done (or not performed).
    Authenticated,
    /// Processing restrictions checked.
    Restricted,
    /// Cardholder verification done.
    CardholderVerified,
    /// Terminal risk management done.
    RiskManaged,
    /// Terminal action analysis done.
    Analysed,
    /// The first GENERATE AC answered with ARQC: online processing is next.
    AwaitingOnline,
    /// The transaction has an outcome.
    Finished,
}

/// The hooks a transaction calls out to.
pub struct Hooks<'h> {
    /// The PIN pad.
    pub pin_pad: &'h mut dyn PinPad,
    /// The exception file.
    pub hot_list: &'h dyn HotList,
    /// The online authorisation.
    pub online: &'h mut dyn OnlineAuthoriser,
    /// The write-ahead journal.
    pub journal: &'h mut dyn DebitJournal,
}

/// A contact transaction in progress (module documentation).
pub struct ContactTransaction<'a> {
    terminal: &'a TerminalConfig,
    ca: &'a CaStore,
    params: TransactionParams,
    phase: Phase,
    candidates: Vec<Candidate>,
    app: Option<SelectedApplication>,
    card_store: DataStore,
    gpo: Option<ProcessingOptions>,
    card: Option<CardData>,
    static_data: Vec<u8>,
    tvr: Tvr,
    tsi: Tsi,
    cvm: CvmOutcome,
    oda: Option<OdaMethod>,
    oda_failure: Option<OdaError>,
    icc_key: Option<IccPublicKey>,
    cda_requested: bool,
    decision: Option<ActionDecision>,
    ec_indicator: u8,
    ec: bool,
    ec_balance_before: Option<Amount>,
    ec_reset_threshold: Option<Amount>,
    ec_balance_after: Option<Amount>,
    atc_before: Option<u16>,
    pdol_data: Vec<u8>,
    cdol1_data: Vec<u8>,
    cdol2_data: Vec<u8>,
    first_ac: Option<GenerateAcResponse>,
    final_ac: Option<GenerateAcResponse>,
    final_cryptogram: Option<[u8; 8]>,
    cryptogram_source: Option<CryptogramSource>,
    arqc: Option<[u8; 8]>,
    arc: Option<[u8; 2]>,
    issuer_auth_data: Option<Vec<u8>>,
    script_results: Vec<ScriptResult>,
    debit_attempted: bool,
    outcome: Option<Outcome>,
}

impl<'a> ContactTransaction<'a> {
    /// A new transaction with the terminal's parameters, CA keys and this transaction's inputs.
    pub fn new(terminal: &'a TerminalConfig, ca: &'a CaStore, params: TransactionParams) -> Self {
        Self {
            terminal,
            ca,
            params,
            phase: Phase::Start,
            candidates: Vec::new(),
            app: None,
            card_store: DataStore::new(),
            gpo: None,
            card: None,
            static_data: Vec::new(),
            tvr: Tvr::default(),
            tsi: Tsi::default(),
            cvm: CvmOutcome::default(),
            oda: None,
            oda_failure: None,
            icc_key: None,
            cda_requested: false,
            decision: None,
            ec_indicator: 0,
            ec: false,
            ec_balance_before: None,
            ec_reset_threshold: None,
            ec_balance_after: None,
            atc_before: None,
            pdol_data: Vec::new(),
            cdol1_data: Vec::new(),
            cdol2_data: Vec::new(),
            first_ac: None,
            final_ac: None,
            final_cryptogram: None,
            cryptogram_source: None,
            arqc: None,
            arc: None,
            issuer_auth_data: None,
            script_results: Vec::new(),
            debit_attempted: false,
            outcome: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The terminal verification results so far.
    pub fn tvr(&self) -> Tvr {
        self.tvr
    }

    /// The transaction status information so far.
    pub fn tsi(&self) -> Tsi {
        self.tsi
    }

    /// The card's data store (FCI, GPO answer, records, GENERATE AC answers).
    pub fn card_store(&self) -> &DataStore {
        &self.card_store
    }

    /// The selected application.
    pub fn application(&self) -> Option<&SelectedApplication> {
        self.app.as_ref()
    }

    /// The card data, once read.
    pub fn card(&self) -> Option<&CardData> {
        self.card.as_ref()
    }

    /// Whether the card treats the transaction as electronic cash.
    pub fn is_ec(&self) -> bool {
        self.ec
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    fn step(&mut self, after: Phase, to: Phase, step: &'static str) -> Result<(), PbocError> {
        if self.phase != after {
            return Err(PbocError::OutOfOrder { step });
        }
        self.phase = to;
        Ok(())
    }

    /// The terminal's data for the DOLs (JR/T 0025.6 §8.2 表40) as of now.
    pub fn terminal_data(&self) -> DataStore {
        let mut d = self.params.terminal_data(self.terminal);
        d.set(0x95, self.tvr.to_bytes());
        d.set(0x9b, self.tsi.to_bytes());
        // The TTQ is a contactless reader's (JR/T 0025.12 §6.4.4); over contacts the card must
        // not see qPBOC asked for (docs/pboc-profile.md "interface"), so 9F66 is zeros.
        d.set(0x9f66, [0; 4]);
        d.set(0x9f7a, [self.ec_indicator]);
        d.set(0x9f34, self.cvm.results.0);
        if let Some(arc) = self.arc {
            d.set(0x8a, arc);
        }
        if let Some(iad) = &self.issuer_auth_data {
            d.set(0x91, iad.clone());
        }
        d
    }

    fn card_data(&self) -> Result<&CardData, PbocError> {
        self.card
            .as_ref()
            .ok_or(PbocError::OutOfOrder { step: "card data" })
    }

    fn aip(&self) -> Aip {
        self.gpo.as_ref().map(|g| g.aip).unwrap_or_default()
    }

    /// Application selection (JR/T 0025.6 §7.2): the candidate list (PSE, then AID list), then
    /// the final SELECT of the highest priority.
    pub fn select<C: CardChannel>(&mut self, s: &mut CardSession<C>) -> Result<(), PbocError> {
        self.step(Phase::Start, Phase::Selected, "select")?;
        self.candidates =
            select::build_candidate_list(s, &self.terminal.supported_aids, Interface::Contact)?;
        self.app = Some(select::final_select(
            s,
            &mut self.candidates,
            self.terminal.confirmation_supported,
        )?);
        Ok(())
    }

    /// Initiate application processing (JR/T 0025.6 §7.3.4): TVR and TSI cleared, the card's
    /// ATC read for the write-ahead journal, the PDOL data built (with `9F7A` per JR/T
    /// 0025.13 §7.4.2 and `DF69` per JR/T 0025.17 §10.3.3) and GET PROCESSING OPTIONS sent.
    /// `6985` removes the application and selects the next candidate (§7.3.4, §7.2.6).
    pub fn initiate<C: CardChannel>(&mut self, s: &mut CardSession<C>) -> Result<(), PbocError> {
        self.step(Phase::Selected, Phase::Initiated, "initiate")?;
        self.tvr = Tvr::default();
        self.tsi = Tsi::default();
        self.ec_indicator = risk::ec_indicator(self.terminal, &self.params);
        loop {
            let app = self.app.as_ref().ok_or(PbocError::NoApplication)?;
            let pdol = app.fci.pdol.clone();
            self.atc_before = risk::get_counter(s, 0x9f36)?;
            let terminal = self.terminal_data();
            self.pdol_data = pdol.map(|d| d.build(&terminal)).unwrap_or_default();
            let r = s.send(&gpo_command(&self.pdol_data)?)?;
            match r.sw() {
                crate::status::StatusWord::Success => {
                    let po = parse_gpo_response(r.data(), true)?;
                    self.card_store.set(0x82, po.aip.to_bytes());
                    self.card_store.set(0x94, po.afl.to_bytes());
                    for (tag, value) in &po.objects {
                        self.card_store.insert(*tag, value.clone());
                    }
                    self.gpo = Some(po);
                    return Ok(());
                }
                crate::status::StatusWord::ConditionsNotSatisfied => {
                    self.app = Some(select::final_select(
                        s,
                        &mut self.candidates,
                        self.terminal.confirmation_supported,
                    )?);
                }
                sw => {
                    return Err(PbocError::Status {
                        command: "GET PROCESSING OPTIONS",
                        sw,
                    });
                }
            }
        }
    }

    /// Read application data (JR/T 0025.6 §7.4.4) and check the mandatory data; if the
    /// records carry the EC issuer authorisation code `9F74`, the transaction is electronic
    /// cash and the EC balance `9F79` and reset threshold `9F6D` are read (JR/T 0025.13
    /// §7.4.2).
    pub fn read_application_data<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
    ) -> Result<(), PbocError> {
        self.step(Phase::Initiated, Phase::DataRead, "read application data")?;
        let po = self.gpo.as_ref().ok_or(PbocError::OutOfOrder {
            step: "read application data",
        })?;
        let mut gpo_tags: Vec<Tag> = po.objects.iter().map(|(t, _)| *t).collect();
        if gpo_tags.is_empty() {
            gpo_tags = vec![Tag::new(0x82), Tag::new(0x94)];
        }
        let afl = po.afl.clone();
        let read = read_afl_records(s, &afl, &mut self.card_store, &gpo_tags)?;
        self.static_data = read.static_data;
        let card = CardData::from_store(&self.card_store, Mandatory::DebitCredit)?;
        self.ec = card.ec_issuer_auth_code.is_some();
        self.card = Some(card);
        if self.ec {
            self.ec_balance_before = risk::get_amount(s, 0x9f79)?;
            self.ec_reset_threshold = risk::get_amount(s, 0x9f6d)?;
        }
        Ok(())
    }

    /// Offline data authentication (JR/T 0025.6 §7.5): the method of §7.5.3.3, then SDA
    /// (§7.5.4.3), DDA with INTERNAL AUTHENTICATE (§7.5.5.4), or for CDA the ICC key now and the
    /// signature at GENERATE AC (§7.5.6). Failures set TVR bits.
    pub fn authenticate<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
    ) -> Result<(), PbocError> {
        self.step(Phase::DataRead, Phase::Authenticated, "authenticate")?;
        let aip = self.aip();
        let method = oda::choose_method(aip, self.terminal.capabilities);
        self.oda = method;
        let Some(method) = method else {
            self.tvr.set(TvrBit::OdaNotPerformed);
            return Ok(());
        };
        self.tsi.set(TsiBit::OdaPerformed);
        let card = self.card_data()?;
        let rid = self
            .app
            .as_ref()
            .and_then(SelectedApplication::rid)
            .unwrap_or_default();
        let input = OdaInputs {
            card: &self.card_store,
            rid,
            pan: card.pan.bcd(),
            records: &self.static_data,
            aip,
            today: self.params.date.year_month(),
        };
        let result: Result<(), OdaError> = match method {
            OdaMethod::Sda => oda::perform_sda(self.ca, &input).map(|dac| {
                self.card_store.set(0x9f45, dac);
            }),
            OdaMethod::Cda => oda::recover_icc_key(self.ca, &input).map(|key| {
                self.icc_key = Some(key);
            }),
            OdaMethod::Dda | OdaMethod::Fdda => {
                let ddol = card.ddol.clone();
                match oda::recover_icc_key(self.ca, &input) {
                    Ok(key) => self.internal_authenticate(s, &key, ddol)?,
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = result {
            if e.is_missing_data() {
                self.tvr.set(TvrBit::IccDataMissing);
            }
            self.tvr.set(match method {
                OdaMethod::Sda => TvrBit::SdaFailed,
                OdaMethod::Cda => TvrBit::CdaFailed,
                OdaMethod::Dda | OdaMethod::Fdda => TvrBit::DdaFailed,
            });
            self.oda_failure = Some(e);
        }
        Ok(())
    }

    /// DDA steps 4-5 (JR/T 0025.6 §7.5.5.4): INTERNAL AUTHENTICATE with the DDOL data (the
    /// card's DDOL or the default), then the signature.
    fn internal_authenticate<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        key: &IccPublicKey,
        ddol: Option<super::dol::Dol>,
    ) -> Result<Result<(), OdaError>, PbocError> {
        let ddol = ddol.unwrap_or_else(|| self.terminal.default_ddol.clone());
        if !ddol.contains(Tag::new(0x9f37)) {
            return Ok(Err(OdaError::DdolWithoutUnpredictableNumber));
        }
        let data = ddol.build(&(&self.terminal_data(), &self.card_store));
        Ok(oda::internal_authenticate(s, key, &data)?.map(|proof| {
            self.card_store.set(0x9f4c, proof.icc_dynamic_number);
            self.card_store.set(0x9f4b, proof.sdad);
        }))
    }

    /// Processing restrictions (JR/T 0025.6 §7.6).
    pub fn restrictions(&mut self) -> Result<(), PbocError> {
        self.step(Phase::Authenticated, Phase::Restricted, "restrictions")?;
        let card = self.card_data()?;
        let mut tvr = self.tvr;
        risk::processing_restrictions(card, self.terminal, &self.params, &mut tvr);
        self.tvr = tvr;
        Ok(())
    }

    /// Cardholder verification (JR/T 0025.6 §7.7), when the AIP says the card supports it.
    pub fn verify_cardholder<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        pin_pad: &mut dyn PinPad,
    ) -> Result<(), PbocError> {
        self.step(
            Phase::Restricted,
            Phase::CardholderVerified,
            "verify cardholder",
        )?;
        if !self.aip().contains(AipBit::CardholderVerification) {
            return Ok(());
        }
        let card = self.card_data()?;
        let t = self.terminal;
        let p = &self.params;
        let ctx = CvmContext {
            cash: p.transaction_type == transaction_type::CASH,
            cashback: p.transaction_type == transaction_type::CASHBACK
                || p.amount_other != Amount::ZERO,
            atm: t.atm(),
            attended: t.attended(),
            amount: p.amount,
            same_currency: card.app_currency.map(|c| c == t.currency),
            capabilities: t.capabilities,
        };
        let list = card.cvm_list.clone();
        let id = (
            self.card_store
                .value(0x9f62)
                .and_then(|v| v.first().copied()),
            self.card_store.value(0x9f61).map(<[u8]>::to_vec),
        );
        let mut tvr = self.tvr;
        let out = cvm::verify_cardholder(
            s,
            list.as_ref(),
            &ctx,
            (id.0, id.1.as_deref()),
            pin_pad,
            &mut tvr,
        )?;
        self.tvr = tvr;
        if out.performed {
            self.tsi.set(TsiBit::CardholderVerificationPerformed);
        }
        self.cvm = out;
        Ok(())
    }

    /// Terminal risk management (JR/T 0025.6 §7.8; JR/T 0025.13 §7.4.3 for EC).
    pub fn risk_management<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        hot_list: &dyn HotList,
    ) -> Result<(), PbocError> {
        self.step(
            Phase::CardholderVerified,
            Phase::RiskManaged,
            "risk management",
        )?;
        let card = self.card.clone().ok_or(PbocError::OutOfOrder {
            step: "risk management",
        })?;
        let mut tvr = self.tvr;
        risk::terminal_risk_management(
            s,
            &card,
            self.terminal,
            &self.params,
            hot_list,
            self.ec,
            &mut tvr,
        )?;
        self.tvr = tvr;
        self.tsi.set(TsiBit::TerminalRiskManagementPerformed);
        Ok(())
    }

    /// Terminal action analysis (JR/T 0025.6 §7.9.3) and, for electronic cash, the balance
    /// against the reset threshold (JR/T 0025.13 §7.4.4): a TC is changed to an ARQC when the
    /// balance after the purchase falls below the threshold and the terminal can go online.
    pub fn action_analysis(&mut self) -> Result<ActionDecision, PbocError> {
        self.step(Phase::RiskManaged, Phase::Analysed, "action analysis")?;
        let card = self.card_data()?;
        let t = self.terminal;
        let mut d = action::analyse(
            self.tvr,
            &card.iac,
            &t.tac,
            t.online_capable(),
            t.online_only(),
        );
        if self.ec
            && d.ac == AcType::Tc
            && t.online_capable()
            && let (Some(balance), Some(threshold)) =
                (self.ec_balance_before, self.ec_reset_threshold)
            && balance
                .checked_sub(self.params.amount)
                .is_none_or(|after| after < threshold)
        {
            d = ActionDecision {
                ac: AcType::Arqc,
                arc: None,
            };
        }
        self.cda_requested =
            self.oda == Some(OdaMethod::Cda) && self.icc_key.is_some() && d.ac != AcType::Aac;
        self.arc = d.arc;
        self.decision = Some(d);
        Ok(d)
    }

    fn record_intent(&mut self, journal: &mut dyn DebitJournal) -> Result<(), PbocError> {
        if self.debit_attempted {
            return Ok(());
        }
        let card = self.card.as_ref();
        let intent = DebitIntent {
            aid: self.app.as_ref().map(|a| a.aid.clone()).unwrap_or_default(),
            pan: card.map(|c| c.pan.clone()),
            psn: card.and_then(|c| c.psn),
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
        Ok(())
    }

    /// Send GENERATE AC and read the answer; `9000` is required.
    fn generate_ac<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        ac: AcType,
        cda: bool,
        data: &[u8],
    ) -> Result<GenerateAcResponse, PbocError> {
        let r = s.send(&generate_ac_command(ac, cda, data))?;
        if !r.is_success() {
            return Err(PbocError::Status {
                command: "GENERATE AC",
                sw: r.sw(),
            });
        }
        let resp = parse_generate_ac_response(r.data())?;
        self.card_store.set(0x9f27, [resp.cid.0]);
        self.card_store.set(0x9f36, resp.atc.to_be_bytes());
        if let Some(ac) = resp.cryptogram {
            self.card_store.set(0x9f26, ac);
        }
        if let Some(iad) = &resp.iad {
            self.card_store.set(0x9f10, iad.clone());
        }
        Ok(resp)
    }

    /// JR/T 0025.7 §5.3.6.2 / JR/T 0025.17 §5.2.5.2 for an answer with a TC or ARQC to a CDA
    /// request: `Ok(cryptogram)` or the failure (TVR "CDA failed" set).
    fn check_cda(&mut self, resp: &GenerateAcResponse, second: bool) -> Result<[u8; 8], OdaError> {
        let result = (|| {
            let key = self.icc_key.as_ref().ok_or(OdaError::MissingData {
                tag: Tag::new(0x9f46),
            })?;
            let sdad = resp.sdad.as_deref().ok_or(OdaError::MissingData {
                tag: Tag::new(0x9f4b),
            })?;
            let mut parts: Vec<&[u8]> = vec![&self.pdol_data, &self.cdol1_data];
            if second {
                parts.push(&self.cdol2_data);
            }
            parts.push(&resp.objects_without_sdad);
            oda::verify_cda(
                key,
                sdad,
                self.params.unpredictable_number,
                resp.cid.0,
                &parts,
            )
        })();
        match result {
            Ok(r) => {
                self.card_store.set(0x9f4c, r.dynamic_number);
                self.card_store.set(0x9f26, r.cryptogram);
                Ok(r.cryptogram)
            }
            Err(e) => {
                self.tvr.set(TvrBit::CdaFailed);
                self.oda_failure = Some(e.clone());
                Err(e)
            }
        }
    }

    fn finish(&mut self, outcome: Outcome) -> Outcome {
        self.phase = Phase::Finished;
        self.outcome = Some(outcome.clone());
        outcome
    }

    fn update_ec_balance<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        resp: &GenerateAcResponse,
    ) -> Result<(), PbocError> {
        if !self.ec {
            return Ok(());
        }
        self.ec_balance_after = match resp.iad.as_deref().and_then(ec_balance_from_iad) {
            Some(b) => Some(b),
            None => risk::get_amount(s, 0x9f79)?,
        };
        Ok(())
    }

    /// The first GENERATE AC (JR/T 0025.6 §7.9.3 "生成应用密文", §7.10, §7.11.4.1, §7.13.4):
    /// the journal records the intent first when a TC is asked for; the answer decides an
    /// offline outcome (`Some`) or online processing (`None`, then
    /// [`ContactTransaction::complete_online`]). A card answering with a stronger cryptogram
    /// than asked ends the transaction ([`PbocError::UnexpectedCryptogram`]).
    pub fn first_generate_ac<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        journal: &mut dyn DebitJournal,
    ) -> Result<Option<Outcome>, PbocError> {
        self.step(Phase::Analysed, Phase::AwaitingOnline, "first GENERATE AC")?;
        let decision = self.decision.ok_or(PbocError::OutOfOrder {
            step: "first GENERATE AC",
        })?;
        if decision.ac == AcType::Tc {
            self.record_intent(journal)?;
        }
        let cdol1 = self.card_data()?.cdol1.clone();
        self.cdol1_data = cdol1.build(&(&self.terminal_data(), &self.card_store));
        let data = self.cdol1_data.clone();
        let resp = self.generate_ac(s, decision.ac, self.cda_requested, &data)?;
        self.tsi.set(TsiBit::CardRiskManagementPerformed);
        let returned = resp.cid.ac_type();
        let stronger = matches!(
            (decision.ac, returned),
            (_, None)
                | (AcType::Aac, Some(AcType::Tc | AcType::Arqc))
                | (AcType::Arqc, Some(AcType::Tc))
        );
        if stronger {
            return Err(PbocError::UnexpectedCryptogram {
                requested: decision.ac,
                returned,
            });
        }
        self.final_cryptogram = resp.cryptogram;
        let cda_failed = if self.cda_requested && returned != Some(AcType::Aac) {
            match self.check_cda(&resp, false) {
                Ok(ac) => {
                    self.final_cryptogram = Some(ac);
                    false
                }
                Err(_) => true,
            }
        } else {
            false
        };
        self.first_ac = Some(resp.clone());
        self.final_ac = Some(resp.clone());
        self.cryptogram_source = Some(CryptogramSource::FirstGenerateAc);
        match returned {
            Some(AcType::Tc) if cda_failed => {
                // §7.5.6, §7.13.4: TC with a failed CDA is declined offline.
                self.arc = Some(ARC_Z1);
                Ok(Some(self.finish(Outcome::DeclinedOffline)))
            }
            Some(AcType::Tc) => {
                self.arc = Some(ARC_Y1);
                self.update_ec_balance(s, &resp)?;
                Ok(Some(self.finish(Outcome::ApprovedOffline)))
            }
            Some(AcType::Arqc) if cda_failed => {
                // §7.5.6: ARQC with a failed CDA: second GENERATE AC asking for an AAC.
                self.arc = Some(ARC_Z1);
                self.second_generate_ac(s, AcType::Aac, false)?;
                Ok(Some(self.finish(Outcome::DeclinedOffline)))
            }
            Some(AcType::Arqc) => {
                self.arqc = self.final_cryptogram;
                Ok(None)
            }
            _ => {
                self.arc = self.arc.or(Some(ARC_Z1));
                Ok(Some(self.finish(Outcome::DeclinedOffline)))
            }
        }
    }

    fn second_generate_ac<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        ac: AcType,
        cda: bool,
    ) -> Result<GenerateAcResponse, PbocError> {
        let cdol2 = self.card_data()?.cdol2.clone().unwrap_or_default();
        self.cdol2_data = cdol2.build(&(&self.terminal_data(), &self.card_store));
        let data = self.cdol2_data.clone();
        let resp = self.generate_ac(s, ac, cda, &data)?;
        self.final_cryptogram = resp.cryptogram;
        self.final_ac = Some(resp.clone());
        self.cryptogram_source = Some(CryptogramSource::SecondGenerateAc);
        Ok(resp)
    }

    /// Online processing and completion after an ARQC (JR/T 0025.6 §7.11-§7.13): the online
    /// authorisation; issuer authentication with EXTERNAL AUTHENTICATE when the response has
    /// issuer authentication data and the AIP supports it (§7.11.4.3); scripts `71`; the
    /// second GENERATE AC asking for a TC if the issuer approved (with CDA if requested), else
    /// an AAC (§7.13.5.1); scripts `72` (§7.12). When the issuer cannot be reached, the default
    /// action codes decide the second GENERATE AC (`Y3`/`Z3`, §7.13.6).
    pub fn complete_online<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        online: &mut dyn OnlineAuthoriser,
        journal: &mut dyn DebitJournal,
    ) -> Result<Outcome, PbocError> {
        self.step(Phase::AwaitingOnline, Phase::Finished, "complete online")?;
        let first = self.first_ac.clone().ok_or(PbocError::OutOfOrder {
            step: "complete online",
        })?;
        let arqc = self.final_cryptogram.unwrap_or_default();
        let response = if self.terminal.online_capable() {
            let card = self.card_data()?;
            let pdol = self.app.as_ref().and_then(|a| a.fci.pdol.as_ref());
            let mut sources = vec![DolData::new(&card.cdol1, &self.cdol1_data)];
            sources.extend(pdol.map(|d| DolData::new(d, &self.pdol_data)));
            let input = cryptogram::cryptogram_input(
                &sources,
                self.aip(),
                first.atc,
                first.iad.as_deref().unwrap_or_default(),
            );
            let request = OnlineRequest {
                aid: self
                    .app
                    .as_ref()
                    .map(|a| a.aid.as_slice())
                    .unwrap_or_default(),
                pan: Some(&card.pan),
                psn: card.psn,
                amount: self.params.amount,
                amount_other: self.params.amount_other,
                currency: self.terminal.currency,
                country: self.terminal.country,
                date: self.params.date,
                time: self.params.time,
                transaction_type: self.params.transaction_type,
                unpredictable_number: self.params.unpredictable_number,
                atc: first.atc,
                aip: self.aip(),
                tvr: self.tvr,
                cid: first.cid,
                arqc,
                iad: first.iad.as_deref().unwrap_or_default(),
                cryptogram_data: &self.cdol1_data,
                cryptogram_input: input.as_ref(),
                cvm_results: self.cvm.results,
                online_pin: self.cvm.online_pin.as_ref(),
                ec_load: self.params.transaction_type == transaction_type::EC_LOAD,
            };
            online.authorise(&request).ok()
        } else {
            None
        };
        // The online PIN is not needed any more.
        self.cvm.online_pin = None;
        let Some(response) = response else {
            return self.unable_to_go_online(s, journal);
        };
        self.arc = Some(response.arc);
        self.issuer_auth_data = response.issuer_authentication_data.clone();
        let scripts = match online::parse_issuer_scripts(&response.issuer_scripts) {
            Ok(scripts) => scripts,
            Err(_) => {
                // §7.12.4.1: not parsed, nothing sent.
                self.tsi.set(TsiBit::ScriptProcessingPerformed);
                self.tvr.set(TvrBit::ScriptFailedAfterFinalAc);
                self.script_results.push([0x00, 0, 0, 0, 0]);
                Vec::new()
            }
        };
        if let Some(iad) = response.issuer_authentication_data.as_deref()
            && self.aip().contains(AipBit::IssuerAuthentication)
        {
            let (mut tvr, mut tsi) = (self.tvr, self.tsi);
            online::external_authenticate(s, iad, &mut tvr, &mut tsi)?;
            (self.tvr, self.tsi) = (tvr, tsi);
        }
        self.run_scripts(s, &scripts, 0x71)?;
        let approve = arc_approves(response.arc);
        let ac = if approve { AcType::Tc } else { AcType::Aac };
        let cda = approve && self.cda_requested;
        if ac == AcType::Tc {
            self.record_intent(journal)?;
        }
        let resp = self.second_generate_ac(s, ac, cda)?;
        let returned = resp.cid.ac_type();
        let mut approved = approve && returned == Some(AcType::Tc);
        if approved
            && cda
            && self
                .check_cda(&resp, true)
                .map(|ac| self.final_cryptogram = Some(ac))
                .is_err()
        {
            approved = false;
        }
        self.run_scripts(s, &scripts, 0x72)?;
        if approved {
            self.update_ec_balance(s, &resp)?;
        }
        if scripts
            .iter()
            .flat_map(|sc| &sc.commands)
            .any(|c| c.get(1..4) == Some(&[0xda, 0x9f, 0x79]))
        {
            self.ec_balance_after = risk::get_amount(s, 0x9f79)?;
        }
        Ok(self.finish(if approved {
            Outcome::ApprovedOnline
        } else {
            Outcome::DeclinedOnline
        }))
    }

    fn run_scripts<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        scripts: &[online::IssuerScript],
        template: u8,
    ) -> Result<(), PbocError> {
        let (mut tvr, mut tsi) = (self.tvr, self.tsi);
        let mut results = core::mem::take(&mut self.script_results);
        let r = online::run_issuer_scripts(s, scripts, template, &mut tvr, &mut tsi, &mut results);
        (self.tvr, self.tsi, self.script_results) = (tvr, tsi, results);
        r
    }

    /// JR/T 0025.6 §7.13.6: online was asked for but not done.
    fn unable_to_go_online<C: CardChannel>(
        &mut self,
        s: &mut CardSession<C>,
        journal: &mut dyn DebitJournal,
    ) -> Result<Outcome, PbocError> {
        let card = self.card_data()?;
        let d = action::unable_to_go_online(self.tvr, &card.iac, &self.terminal.tac);
        self.arc = d.arc;
        let cda = d.ac == AcType::Tc && self.cda_requested;
        if d.ac == AcType::Tc {
            self.record_intent(journal)?;
        }
        let resp = self.second_generate_ac(s, d.ac, cda)?;
        let mut approved = d.ac == AcType::Tc && resp.cid.ac_type() == Some(AcType::Tc);
        if approved
            && cda
            && self
                .check_cda(&resp, true)
                .map(|ac| self.final_cryptogram = Some(ac))
                .is_err()
        {
            approved = false;
        }
        if approved {
            self.update_ec_balance(s, &resp)?;
        }
        Ok(self.finish(if approved {
            Outcome::ApprovedOffline
        } else {
            Outcome::DeclinedOffline
        }))
    }

    /// The record of the transaction as it stands (the outcome `Aborted(error)` if given).
    pub fn record(&self, abort: Option<PbocError>) -> TransactionRecord {
        let card = self.card.as_ref();
        let final_ac = self.final_ac.as_ref();
        let outcome = Outcome::resolve(abort, self.outcome.as_ref());
        TransactionRecord {
            interface: Interface::Contact,
            aid: self.app.as_ref().map(|a| a.aid.clone()).unwrap_or_default(),
            label: self.app.as_ref().and_then(SelectedApplication::label),
            pan: card.map(|c| c.pan.clone()),
            psn: card.and_then(|c| c.psn),
            amount: self.params.amount,
            amount_other: self.params.amount_other,
            currency: self.terminal.currency,
            transaction_type: self.params.transaction_type,
            date: self.params.date,
            time: self.params.time,
            unpredictable_number: self.params.unpredictable_number,
            atc: final_ac.map(|r| r.atc),
            aip: self.gpo.as_ref().map(|g| g.aip),
            cid: final_ac.map(|r| r.cid),
            cryptogram: self.final_cryptogram,
            arqc: self.arqc,
            iad: final_ac.and_then(|r| r.iad.clone()).unwrap_or_default(),
            cryptogram_data: self.cdol1_data.clone(),
            cdol2_data: self.cdol2_data.clone(),
            pdol_data: self.pdol_data.clone(),
            pdol: self.app.as_ref().and_then(|a| a.fci.pdol.clone()),
            cdol1: card.map(|c| c.cdol1.clone()),
            cdol2: card.and_then(|c| c.cdol2.clone()),
            cryptogram_source: self.cryptogram_source,
            tvr: self.tvr,
            tsi: self.tsi,
            cvm_results: self.cvm.results,
            arc: self.arc,
            oda: self.oda,
            oda_failure: self.oda_failure.clone(),
            script_results: self.script_results.clone(),
            ec: self.ec,
            ec_balance_before: self.ec_balance_before,
            ec_balance_after: self.ec_balance_after,
            signature_required: self.cvm.signature_required,
            debit_attempted: self.debit_attempted,
            outcome,
        }
    }
}

/// Run a contact transaction from selection to completion (JR/T 0025.6 §7, 图1) and return
/// its record; an error at any step is the record's [`Outcome::Aborted`].
pub fn run_contact<C: CardChannel>(
    s: &mut CardSession<C>,
    terminal: &TerminalConfig,
    ca: &CaStore,
    params: TransactionParams,
    hooks: &mut Hooks<'_>,
) -> TransactionRecord {
    let mut t = ContactTransaction::new(terminal, ca, params);
    let result = (|| -> Result<(), PbocError> {
        t.select(s)?;
        t.initiate(s)?;
        t.read_application_data(s)?;
        t.authenticate(s)?;
        t.restrictions()?;
        t.verify_cardholder(s, hooks.pin_pad)?;
        t.risk_management(s, hooks.hot_list)?;
        t.action_analysis()?;
        if t.first_generate_ac(s, hooks.journal)?.is_none() {
            t.complete_online(s, hooks.online, hooks.journal)?;
        }
        Ok(())
    })();
    t.record(result.err())
}
