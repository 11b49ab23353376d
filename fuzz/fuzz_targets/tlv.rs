//! BER-TLV: the zero-copy iterator and the owned tree must agree with each other and with the
//! encoder on arbitrary bytes.

#![no_main]

use card_core::tlv::{Tag, Tlv, TlvIter, TlvRef};
use libfuzzer_sys::fuzz_target;

/// Tags of every node of the trees, depth first, at most `limit` of them.
fn tags(trees: &[Tlv], out: &mut Vec<Tag>, limit: usize) {
    for t in trees {
        if out.len() >= limit {
            return;
        }
        if !out.contains(&t.tag()) {
            out.push(t.tag());
        }
        tags(t.children(), out, limit);
    }
}

/// A borrowed object found in `data` describes the same object as the owned `node`.
fn same_object(data: &[u8], found: &TlvRef<'_>, node: &Tlv) {
    assert_eq!(found.tag, node.tag());
    assert!(
        data[found.offset..].starts_with(found.tag.bytes().as_slice()),
        "offset {} does not point at tag {}",
        found.offset,
        found.tag
    );
    match node.bytes() {
        Some(bytes) => assert_eq!(found.value, bytes),
        None => assert_eq!(
            Tlv::parse_all(found.value).as_deref(),
            Ok(node.children()),
            "children of constructed {}",
            node.tag()
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    // The iterator: every value lies inside the input, right after its tag and length, and
    // objects come in order without overlapping.
    let mut end_of_previous = 0;
    let mut top_level = Vec::new();
    for item in TlvIter::new(data) {
        let Ok(item) = item else { break };
        assert!(item.offset >= end_of_previous, "objects overlap");
        assert!(
            item.value_offset > item.offset + item.tag.len(),
            "a length byte follows the tag"
        );
        let end = item.value_offset + item.value.len();
        assert!(end <= data.len(), "value runs past the input");
        assert_eq!(&data[item.value_offset..end], item.value);
        end_of_previous = end;
        top_level.push(item);
    }

    let Ok(first) = Tlv::parse_all(data) else {
        return;
    };

    // The tree's top level is what the iterator yielded.
    assert_eq!(first.len(), top_level.len());
    for (node, item) in first.iter().zip(&top_level) {
        same_object(data, item, node);
    }

    // Re-encoding parses back to the same tree ...
    let mut again = Vec::new();
    for t in &first {
        t.encode_into(&mut again).expect("a parsed tree re-encodes");
    }
    let second = Tlv::parse_all(&again).expect("the re-encoding parses");
    assert_eq!(second, first);
    // ... is canonical (minimal lengths, no padding): encoding it again changes nothing ...
    let mut third = Vec::new();
    for t in &second {
        t.encode_into(&mut third).expect("re-encodes");
    }
    assert_eq!(third, again);
    // ... has the announced length, and is never longer than the input.
    assert_eq!(
        again.len(),
        first.iter().map(Tlv::encoded_len).sum::<usize>()
    );
    assert!(again.len() <= data.len());

    // A single object parses the same with Tlv::parse.
    if let [only] = first.as_slice() {
        assert_eq!(Tlv::parse(data).as_ref(), Ok(only));
    }

    // Depth-first search over the borrowed input finds the same first object as over the tree.
    let mut wanted = Vec::new();
    tags(&first, &mut wanted, 8);
    for tag in wanted {
        let found = TlvIter::new(data)
            .find_deep(tag)
            .expect("the input parsed, so a search through it succeeds")
            .expect("the tag is in the tree");
        let node = first
            .iter()
            .find_map(|t| t.find(tag))
            .expect("the tag is in the tree");
        same_object(data, &found, node);
    }
});
