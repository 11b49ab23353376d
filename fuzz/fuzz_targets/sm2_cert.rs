//! The SM2 certificates and signed data of JR/T 0025.17 §5 (formats `12`, `13`, `14`, `15`):
//! every parser returns an error, never panics, on any bytes; whatever parses re-encodes to
//! exactly the input (the CDA fields of 表13 to the input's first bytes); the SDA tag-list rule
//! and the fDDA version rule never panic either.

#![no_main]

use card_core::crypto::sm2_cert::{
    CdaDynamicData, FddaVersion, IccCertificate, IssuerCertificate, SignedDynamicData,
    SignedStaticData, StaticData,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = IssuerCertificate::parse(data) {
        assert_eq!(p.content.public_key.len(), data.len() - 14 - 64);
        let encoded = p
            .content
            .to_bytes(&p.signature)
            .expect("a parsed certificate encodes");
        assert_eq!(encoded, data);
        let signed = p
            .content
            .to_signed_data()
            .expect("and so does its signed data");
        assert_eq!(signed, data[..data.len() - 64]);
    }
    if let Ok(p) = IccCertificate::parse(data) {
        assert_eq!(p.content.public_key.len(), data.len() - 20 - 64);
        let encoded = p
            .content
            .to_bytes(&p.signature)
            .expect("a parsed certificate encodes");
        assert_eq!(encoded, data);
        let signed = p
            .content
            .to_signed_data(b"static")
            .expect("and so does its signed data");
        assert_eq!(&signed[..data.len() - 64], &data[..data.len() - 64]);
        assert!(signed.ends_with(b"static"));
    }
    if let Ok(p) = SignedStaticData::parse(data) {
        assert_eq!(p.content.to_bytes(&p.signature), data);
    }
    if let Ok(p) = SignedDynamicData::parse(data) {
        let encoded = p
            .content
            .to_bytes(&p.signature)
            .expect("parsed dynamic data encodes");
        assert_eq!(encoded, data);
        if let Ok(number) = p.content.icc_dynamic_number() {
            assert!((2..=8).contains(&number.len()));
        }
        if let Ok(cda) = CdaDynamicData::parse(&p.content.icc_dynamic_data) {
            let fields = cda.to_bytes().expect("parsed CDA fields encode");
            assert!(p.content.icc_dynamic_data.starts_with(&fields));
        }
    }
    if let Ok(cda) = CdaDynamicData::parse(data) {
        let fields = cda.to_bytes().expect("parsed CDA fields encode");
        assert!(data.starts_with(&fields));
    }
    let assembled = StaticData {
        records: b"R",
        sda_tag_list: Some(data),
        aip: Some([0x7c, 0x00]),
    }
    .to_bytes();
    if let Ok(bytes) = assembled {
        // Only 82 tags: the AIP once per byte of the list.
        assert!(data.iter().all(|b| *b == 0x82));
        assert_eq!(bytes.len(), 1 + 2 * data.len());
    }
    let _ = FddaVersion::from_card_data(Some(data));
});
