//! The PBOC kernel's parsers of card answers: GET PROCESSING OPTIONS (formats 1 and 2), the
//! AFL, READ RECORD of the AFL's records into the data store, the typed card data, GENERATE AC,
//! FCI, CVM list, DOLs and the load log bundle. None may panic; what parses must be
//! consistent (an AFL re-encodes to itself, built DOL data splits back, read records are in
//! the store).
//!
//! Input: first byte selects nothing; the rest is fed to every parser, and used as the answer
//! to every READ RECORD.

#![no_main]

use card_core::CardSession;
use card_core::channel::{CardChannel, TransportError};
use card_core::pboc::action::parse_generate_ac_response;
use card_core::pboc::cvm::CvmList;
use card_core::pboc::dol::Dol;
use card_core::pboc::ec::parse_load_log_bundle;
use card_core::pboc::gpo::{Afl, parse_gpo_response};
use card_core::pboc::outcome::ec_balance_from_iad;
use card_core::pboc::records::{CardData, Mandatory, read_afl_records};
use card_core::pboc::select::parse_fci;
use card_core::pboc::store::DataStore;
use libfuzzer_sys::fuzz_target;

struct Echo<'a>(&'a [u8]);

impl CardChannel for Echo<'_> {
    fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut v = self.0.to_vec();
        v.extend_from_slice(&[0x90, 0x00]);
        Ok(v)
    }
}

fuzz_target!(|data: &[u8]| {
    for require_afl in [true, false] {
        if let Ok(po) = parse_gpo_response(data, require_afl) {
            assert_eq!(Afl::parse(&po.afl.to_bytes()).as_ref(), Ok(&po.afl));
            // The AFL's records, each answered with the input, into the store.
            let afl = Afl(po.afl.0.iter().take(4).copied().collect());
            let mut s = CardSession::new(Echo(data));
            let mut store = DataStore::new();
            let tags: Vec<_> = po.objects.iter().map(|(t, _)| *t).collect();
            if read_afl_records(&mut s, &afl, &mut store, &tags).is_ok() {
                let _ = CardData::from_store(&store, Mandatory::DebitCredit);
                let _ = CardData::from_store(&store, Mandatory::Qpboc);
            }
        }
    }
    if let Ok(afl) = Afl::parse(data) {
        assert_eq!(afl.to_bytes(), data);
    }
    if let Ok(dol) = Dol::parse(data) {
        if dol.data_len() < 4096 {
            let built = dol.build(&DataStore::new());
            assert_eq!(built.len(), dol.data_len());
            assert_eq!(dol.split(&built).map(|p| p.len()), Ok(dol.entries().len()));
        }
        assert_eq!(Dol::parse(&dol.to_bytes()).as_ref(), Ok(&dol));
    }
    let _ = parse_generate_ac_response(data);
    let _ = parse_fci(data);
    let _ = CvmList::parse(data);
    let _ = parse_load_log_bundle(data);
    let _ = ec_balance_from_iad(data);
});
