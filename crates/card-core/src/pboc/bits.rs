//! Bit sets with named bits: terminal verification results (TVR, JR/T 0025.6 附录 A.7 表A.5),
//! transaction status information (TSI, 附录 A.8 表A.6), application interchange profile (AIP,
//! JR/T 0025.5 表A.1 `82`), application usage control (AUC, JR/T 0025.6 §7.6.4 表18),
//! terminal capabilities (JR/T 0025.6 附录 A.2), terminal and card transaction qualifiers of
//! qPBOC (JR/T 0025.12 表3, 附录 C `9F6C`), and the cryptogram information data (JR/T 0025.5
//! 表B.9) with the cryptogram types of 表B.5/表B.7.
//!
//! Each set is its bytes as they travel; each bit has a variant in a flag enum with its byte
//! and mask, so code reads `tvr.set(TvrBit::SdaFailed)` and a `Debug` dump names the bits.

use core::fmt;

macro_rules! bit_set {
    (
        $(#[$set_meta:meta])*
        $set:ident [$len:literal];
        $(#[$flag_meta:meta])*
        $flag:ident {
            $( $(#[$var_meta:meta])* $var:ident = ($byte:literal, $mask:literal, $label:literal), )*
        }
    ) => {
        $(#[$flag_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $flag {
            $( $(#[$var_meta])* $var, )*
        }

        impl $flag {
            /// Every bit, in byte and bit order.
            pub const ALL: &'static [$flag] = &[$($flag::$var,)*];

            /// The byte (0-based) and mask of this bit.
            pub const fn position(self) -> (usize, u8) {
                match self {
                    $( $flag::$var => ($byte, $mask), )*
                }
            }

            /// The bit's name as the table gives it.
            pub const fn label(self) -> &'static str {
                match self {
                    $( $flag::$var => $label, )*
                }
            }
        }

        $(#[$set_meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $set([u8; $len]);

        impl $set {
            /// The set from its bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The set from a slice of exactly the set's length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }

            /// The bytes.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// Set a bit.
            pub fn set(&mut self, bit: $flag) {
                let (byte, mask) = bit.position();
                if let Some(b) = self.0.get_mut(byte) {
                    *b |= mask;
                }
            }

            /// Clear a bit.
            pub fn clear(&mut self, bit: $flag) {
                let (byte, mask) = bit.position();
                if let Some(b) = self.0.get_mut(byte) {
                    *b &= !mask;
                }
            }

            /// Whether a bit is set.
            pub fn contains(self, bit: $flag) -> bool {
                let (byte, mask) = bit.position();
                self.0.get(byte).is_some_and(|b| b & mask != 0)
            }

            /// Whether any bit set here is also set in `other`.
            pub fn intersects(self, other: [u8; $len]) -> bool {
                self.0.iter().zip(other).any(|(a, b)| a & b != 0)
            }

            /// The named bits that are set.
            pub fn flags(self) -> impl Iterator<Item = $flag> {
                $flag::ALL.iter().copied().filter(move |f| self.contains(*f))
            }
        }

        impl fmt::Debug for $set {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}", stringify!($set), crate::apdu::HexFmt(&self.0))?;
                let mut first = true;
                for flag in self.flags() {
                    f.write_str(if first { ": " } else { ", " })?;
                    f.write_str(flag.label())?;
                    first = false;
                }
                f.write_str(")")
            }
        }

        impl fmt::Display for $set {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", crate::apdu::HexFmt(&self.0))
            }
        }
    };
}

bit_set! {
    /// Terminal verification results, tag `95` (JR/T 0025.6 附录 A.7 表A.5).
    Tvr[5];
    /// A bit of the [`Tvr`].
    TvrBit {
        /// Offline data authentication was not performed.
        OdaNotPerformed = (0, 0x80, "offline data authentication not performed"),
        /// SDA failed.
        SdaFailed = (0, 0x40, "SDA failed"),
        /// ICC data missing.
        IccDataMissing = (0, 0x20, "ICC data missing"),
        /// Card appears on the terminal exception file.
        CardOnExceptionFile = (0, 0x10, "card on exception file"),
        /// DDA failed.
        DdaFailed = (0, 0x08, "DDA failed"),
        /// CDA failed.
        CdaFailed = (0, 0x04, "CDA failed"),
        /// ICC and terminal have different application versions.
        VersionsDiffer = (1, 0x80, "ICC and terminal application versions differ"),
        /// Expired application.
        Expired = (1, 0x40, "application expired"),
        /// Application not yet effective.
        NotYetEffective = (1, 0x20, "application not yet effective"),
        /// Requested service not allowed for card product.
        ServiceNotAllowed = (1, 0x10, "service not allowed"),
        /// New card.
        NewCard = (1, 0x08, "new card"),
        /// Cardholder verification was not successful.
        CardholderVerificationFailed = (2, 0x80, "cardholder verification failed"),
        /// Unrecognised CVM.
        UnrecognisedCvm = (2, 0x40, "unrecognised CVM"),
        /// PIN try limit exceeded.
        PinTryLimitExceeded = (2, 0x20, "PIN try limit exceeded"),
        /// PIN entry required and PIN pad not present or not working.
        PinPadMissing = (2, 0x10, "PIN pad missing or not working"),
        /// PIN entry required, PIN pad present, but PIN was not entered.
        PinNotEntered = (2, 0x08, "PIN not entered"),
        /// Online PIN entered.
        OnlinePinEntered = (2, 0x04, "online PIN entered"),
        /// Transaction exceeds floor limit.
        FloorLimitExceeded = (3, 0x80, "floor limit exceeded"),
        /// Lower consecutive offline limit exceeded.
        LowerOfflineLimitExceeded = (3, 0x40, "lower consecutive offline limit exceeded"),
        /// Upper consecutive offline limit exceeded.
        UpperOfflineLimitExceeded = (3, 0x20, "upper consecutive offline limit exceeded"),
        /// Transaction selected randomly for online processing.
        RandomlySelectedOnline = (3, 0x10, "randomly selected for online"),
        /// Merchant forced transaction online.
        MerchantForcedOnline = (3, 0x08, "merchant forced online"),
        /// Default TDOL used.
        DefaultTdolUsed = (4, 0x80, "default TDOL used"),
        /// Issuer authentication failed.
        IssuerAuthenticationFailed = (4, 0x40, "issuer authentication failed"),
        /// Script processing failed before the final GENERATE AC.
        ScriptFailedBeforeFinalAc = (4, 0x20, "script failed before final GENERATE AC"),
        /// Script processing failed after the final GENERATE AC.
        ScriptFailedAfterFinalAc = (4, 0x10, "script failed after final GENERATE AC"),
    }
}

bit_set! {
    /// Transaction status information, tag `9B` (JR/T 0025.6 附录 A.8 表A.6).
    Tsi[2];
    /// A bit of the [`Tsi`].
    TsiBit {
        /// Offline data authentication was performed.
        OdaPerformed = (0, 0x80, "offline data authentication performed"),
        /// Cardholder verification was performed.
        CardholderVerificationPerformed = (0, 0x40, "cardholder verification performed"),
        /// Card risk management was performed.
        CardRiskManagementPerformed = (0, 0x20, "card risk management performed"),
        /// Issuer authentication was performed.
        IssuerAuthenticationPerformed = (0, 0x10, "issuer authentication performed"),
        /// Terminal risk management was performed.
        TerminalRiskManagementPerformed = (0, 0x08, "terminal risk management performed"),
        /// Script processing was performed.
        ScriptProcessingPerformed = (0, 0x04, "script processing performed"),
    }
}

bit_set! {
    /// Application interchange profile, tag `82` (JR/T 0025.5 表A.1; qPBOC: JR/T 0025.12 表C.1).
    Aip[2];
    /// A bit of the [`Aip`].
    AipBit {
        /// SDA supported.
        Sda = (0, 0x40, "SDA supported"),
        /// DDA supported (for qPBOC: fDDA).
        Dda = (0, 0x20, "DDA supported"),
        /// Cardholder verification supported.
        CardholderVerification = (0, 0x10, "cardholder verification supported"),
        /// Terminal risk management to be performed.
        TerminalRiskManagement = (0, 0x08, "terminal risk management to be performed"),
        /// Issuer authentication supported.
        IssuerAuthentication = (0, 0x04, "issuer authentication supported"),
        /// CDA supported.
        Cda = (0, 0x01, "CDA supported"),
    }
}

bit_set! {
    /// Application usage control, tag `9F07` (JR/T 0025.6 §7.6.4 表18).
    Auc[2];
    /// A bit of the [`Auc`].
    AucBit {
        /// Valid for domestic cash transactions.
        DomesticCash = (0, 0x80, "domestic cash"),
        /// Valid for international cash transactions.
        InternationalCash = (0, 0x40, "international cash"),
        /// Valid for domestic goods.
        DomesticGoods = (0, 0x20, "domestic goods"),
        /// Valid for international goods.
        InternationalGoods = (0, 0x10, "international goods"),
        /// Valid for domestic services.
        DomesticServices = (0, 0x08, "domestic services"),
        /// Valid for international services.
        InternationalServices = (0, 0x04, "international services"),
        /// Valid at ATMs.
        Atm = (0, 0x02, "ATMs"),
        /// Valid at terminals other than ATMs.
        NonAtm = (0, 0x01, "terminals other than ATMs"),
        /// Domestic cashback allowed.
        DomesticCashback = (1, 0x80, "domestic cashback"),
        /// International cashback allowed.
        InternationalCashback = (1, 0x40, "international cashback"),
    }
}

bit_set! {
    /// Terminal capabilities, tag `9F33` (JR/T 0025.6 附录 A.2 表A.2).
    TerminalCapabilities[3];
    /// A bit of the [`TerminalCapabilities`].
    CapabilityBit {
        /// Manual key entry.
        ManualKeyEntry = (0, 0x80, "manual key entry"),
        /// Magnetic stripe.
        MagneticStripe = (0, 0x40, "magnetic stripe"),
        /// IC with contacts.
        Ic = (0, 0x20, "IC with contacts"),
        /// Plaintext PIN for ICC verification.
        PlaintextPin = (1, 0x80, "plaintext offline PIN"),
        /// Enciphered PIN for online verification.
        OnlinePin = (1, 0x40, "online PIN"),
        /// Signature (paper).
        Signature = (1, 0x20, "signature"),
        /// No CVM required.
        NoCvm = (1, 0x08, "no CVM"),
        /// Cardholder identity document check.
        IdDocument = (1, 0x01, "identity document"),
        /// SDA.
        Sda = (2, 0x80, "SDA"),
        /// DDA.
        Dda = (2, 0x40, "DDA"),
        /// Card capture.
        CardCapture = (2, 0x20, "card capture"),
        /// CDA.
        Cda = (2, 0x08, "CDA"),
    }
}

bit_set! {
    /// Terminal transaction qualifiers of qPBOC, tag `9F66` (JR/T 0025.12 §6.4.4 表3).
    Ttq[4];
    /// A bit of the [`Ttq`].
    TtqBit {
        /// Contactless debit/credit supported.
        ContactlessDebitCredit = (0, 0x40, "contactless debit/credit"),
        /// qPBOC supported.
        Qpboc = (0, 0x20, "qPBOC"),
        /// Contact debit/credit supported.
        ContactDebitCredit = (0, 0x10, "contact debit/credit"),
        /// Offline-only reader.
        OfflineOnly = (0, 0x08, "offline only"),
        /// Online PIN supported.
        OnlinePin = (0, 0x04, "online PIN"),
        /// Signature supported.
        Signature = (0, 0x02, "signature"),
        /// Online cryptogram required.
        OnlineCryptogramRequired = (1, 0x80, "online cryptogram required"),
        /// CVM required.
        CvmRequired = (1, 0x40, "CVM required"),
        /// fDDA version 01 supported.
        FddaV01 = (3, 0x80, "fDDA version 01"),
    }
}

bit_set! {
    /// Card transaction qualifiers of qPBOC, tag `9F6C` (JR/T 0025.12 附录 C 表C.1).
    Ctq[2];
    /// A bit of the [`Ctq`].
    CtqBit {
        /// Online PIN required.
        OnlinePinRequired = (0, 0x80, "online PIN required"),
        /// Signature required.
        SignatureRequired = (0, 0x40, "signature required"),
        /// Go online if offline data authentication fails and the reader is online capable.
        OnlineIfOdaFails = (0, 0x20, "online if ODA fails"),
        /// Terminate (use the contact interface) if offline data authentication fails and the
        /// reader supports contact debit/credit.
        TerminateIfOdaFails = (0, 0x10, "terminate if ODA fails"),
    }
}

/// The cryptogram types (JR/T 0025.5 表B.5) with the bits that ask for them in GENERATE AC's
/// P1 (表B.7) and report them in the cryptogram information data (表B.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcType {
    /// Application authentication cryptogram: decline.
    Aac,
    /// Transaction certificate: approve.
    Tc,
    /// Authorisation request cryptogram: go online.
    Arqc,
}

impl AcType {
    /// Bits 8-7 of GENERATE AC's P1 and of the CID.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Aac => 0x00,
            Self::Tc => 0x40,
            Self::Arqc => 0x80,
        }
    }

    /// The type coded in bits 8-7 of `byte`; `None` for the reserved `11`.
    pub const fn from_bits(byte: u8) -> Option<Self> {
        match byte & 0xc0 {
            0x00 => Some(Self::Aac),
            0x40 => Some(Self::Tc),
            0x80 => Some(Self::Arqc),
            _ => None,
        }
    }
}

/// Cryptogram information data, tag `9F27` (JR/T 0025.5 表B.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cid(pub u8);

impl Cid {
    /// The cryptogram type; `None` for the reserved `11`.
    pub const fn ac_type(self) -> Option<AcType> {
        AcType::from_bits(self.0)
    }

    /// Whether the card asks for an advice (bit 4).
    pub const fn advice_required(self) -> bool {
        self.0 & 0x08 != 0
    }

    /// The reason/advice code (bits 3-1): 1 service not allowed, 2 PIN try limit exceeded,
    /// 3 issuer authentication failed.
    pub const fn reason(self) -> u8 {
        self.0 & 0x07
    }
}

/// CVM results, tag `9F34` (JR/T 0025.6 附录 A.4): the CVM code and condition of the last CVM
/// performed and its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CvmResults(pub [u8; 3]);

impl CvmResults {
    /// No CVM was performed (`3F 00 00`).
    pub const NOT_PERFORMED: Self = Self([0x3f, 0x00, 0x00]);
    /// Result byte: unknown (e.g. signature).
    pub const UNKNOWN: u8 = 0x00;
    /// Result byte: failed.
    pub const FAILED: u8 = 0x01;
    /// Result byte: successful.
    pub const SUCCESSFUL: u8 = 0x02;
}

impl Default for CvmResults {
    fn default() -> Self {
        Self::NOT_PERFORMED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tvr_bits() {
        let mut tvr = Tvr::default();
        tvr.set(TvrBit::SdaFailed);
        tvr.set(TvrBit::Expired);
        tvr.set(TvrBit::ScriptFailedAfterFinalAc);
        assert_eq!(tvr.to_bytes(), [0x40, 0x40, 0x00, 0x00, 0x10]);
        assert!(tvr.contains(TvrBit::Expired));
        assert!(tvr.intersects([0, 0x40, 0, 0, 0]));
        assert!(!tvr.intersects([0x80, 0, 0xff, 0xff, 0]));
        tvr.clear(TvrBit::Expired);
        assert!(!tvr.contains(TvrBit::Expired));
        assert_eq!(
            format!("{tvr:?}"),
            "Tvr(4000000010: SDA failed, script failed after final GENERATE AC)"
        );
        assert_eq!(tvr.to_string(), "4000000010");
    }

    #[test]
    fn every_flag_has_one_bit_and_no_duplicates() {
        fn check(all: &[(usize, u8)]) {
            for (i, a) in all.iter().enumerate() {
                assert_eq!(a.1.count_ones(), 1);
                assert!(!all[i + 1..].contains(a));
            }
        }
        check(&TvrBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
        check(&TsiBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
        check(&AipBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
        check(&AucBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
        check(
            &CapabilityBit::ALL
                .iter()
                .map(|b| b.position())
                .collect::<Vec<_>>(),
        );
        check(&TtqBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
        check(&CtqBit::ALL.iter().map(|b| b.position()).collect::<Vec<_>>());
    }

    #[test]
    fn cryptogram_types() {
        assert_eq!(Cid(0x40).ac_type(), Some(AcType::Tc));
        assert_eq!(Cid(0x80).ac_type(), Some(AcType::Arqc));
        assert_eq!(Cid(0x0a).ac_type(), Some(AcType::Aac));
        assert_eq!(Cid(0x0a).reason(), 2);
        assert!(Cid(0x0a).advice_required());
        assert_eq!(Cid(0xc0).ac_type(), None);
        let caps = TerminalCapabilities::from_bytes([0x20, 0x88, 0xc8]);
        assert!(caps.contains(CapabilityBit::PlaintextPin));
        assert!(caps.contains(CapabilityBit::Cda));
        assert!(!caps.contains(CapabilityBit::CardCapture));
    }
}
