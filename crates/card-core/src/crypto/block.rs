//! What SM4 and 3DES share: ISO/IEC 9797-1 padding method 2 (`80 00..`), the ECB and CBC
//! modes over whole blocks of JR/T 0025.7 §11.1.1 and JR/T 0025.17 §8.1.1, the CBC-MAC chain,
//! and the errors of both.

/// Errors of the block-cipher operations ([`crate::crypto::sm4`], [`crate::crypto::tdes`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// A key of the wrong length.
    #[error("the key has {actual} bytes, {expected} expected")]
    KeyLength {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// ECB and CBC here work on whole blocks; the caller pads first.
    #[error("{len} bytes is not a whole number of {block}-byte blocks")]
    NotWholeBlocks {
        /// Bytes given.
        len: usize,
        /// Block size of the cipher.
        block: usize,
    },
    /// Removing padding method 2: no `80` byte before the trailing zeros.
    #[error("no 80 padding marker at the end of the data")]
    PaddingMarkerMissing,
    /// Removing padding method 2: the `80 00..` run is longer than one block.
    #[error("padding of {len} bytes is longer than a {block}-byte block")]
    PaddingTooLong {
        /// Length of the `80 00..` run.
        len: usize,
        /// Block size.
        block: usize,
    },
    /// A key check value is 1 to block-size bytes long.
    #[error("a key check value has 1 to {max} bytes, {requested} requested")]
    CheckValueLength {
        /// Length asked for.
        requested: usize,
        /// Block size of the cipher.
        max: usize,
    },
    /// A MAC is 4 to 8 bytes long (JR/T 0025.7 §11.1.2, JR/T 0025.17 §8.1.2).
    #[error("a MAC has 4 to 8 bytes, {requested} requested")]
    MacLength {
        /// Length asked for.
        requested: usize,
    },
}

/// ISO/IEC 9797-1 padding method 2 (GB/T 16649.4 as cited by JR/T 0025.7 §11.1.2 and
/// JR/T 0025.17 §8.1.2): append one `80` byte, then the fewest `00` bytes that make the length
/// a multiple of `block`. The marker is always added, also to data already a whole number of
/// blocks. A `block` of 0 is treated as 1.
pub fn pad_method2(data: &[u8], block: usize) -> Vec<u8> {
    let block = block.max(1);
    let padded_len = (data.len() / block + 1) * block;
    let mut out = Vec::with_capacity(padded_len);
    out.extend_from_slice(data);
    out.push(0x80);
    out.resize(padded_len, 0x00);
    out
}

/// Remove ISO/IEC 9797-1 padding method 2: trailing `00` bytes and the `80` before them, as
/// JR/T 0025.7 §11.1.1 describes for deciphering. The run may not be longer than one block.
pub fn unpad_method2(data: &[u8], block: usize) -> Result<&[u8], BlockError> {
    let zeros = data.iter().rev().take_while(|b| **b == 0).count();
    let marker_at = data
        .len()
        .checked_sub(zeros + 1)
        .ok_or(BlockError::PaddingMarkerMissing)?;
    if data.get(marker_at) != Some(&0x80) {
        return Err(BlockError::PaddingMarkerMissing);
    }
    if zeros + 1 > block.max(1) {
        return Err(BlockError::PaddingTooLong {
            len: zeros + 1,
            block,
        });
    }
    Ok(data.split_at(marker_at).0)
}

/// Split into whole blocks or say why not.
pub(crate) fn whole_blocks<const N: usize>(data: &[u8]) -> Result<&[[u8; N]], BlockError> {
    let (blocks, rest) = data.as_chunks::<N>();
    if rest.is_empty() {
        Ok(blocks)
    } else {
        Err(BlockError::NotWholeBlocks {
            len: data.len(),
            block: N,
        })
    }
}

/// ECB: each block through `f` on its own (JR/T 0025.7 §11.1.1 2), ECB).
pub(crate) fn ecb<const N: usize>(
    data: &[u8],
    f: impl Fn(&[u8; N]) -> [u8; N],
) -> Result<Vec<u8>, BlockError> {
    let blocks = whole_blocks::<N>(data)?;
    Ok(blocks.iter().flat_map(f).collect())
}

/// CBC encryption: `Yi := ALG(K)[Xi ⊕ Yi-1]`, `Y0 := iv` (JR/T 0025.7 §11.1.1 2), CBC).
pub(crate) fn cbc_encrypt<const N: usize>(
    iv: &[u8; N],
    data: &[u8],
    encrypt: impl Fn(&[u8; N]) -> [u8; N],
) -> Result<Vec<u8>, BlockError> {
    let blocks = whole_blocks::<N>(data)?;
    let mut out = Vec::with_capacity(data.len());
    let mut chain = *iv;
    for block in blocks {
        chain = encrypt(&xor(&chain, block));
        out.extend_from_slice(&chain);
    }
    Ok(out)
}

/// CBC decryption: `Xi := ALG⁻¹(K)[Yi] ⊕ Yi-1`, `Y0 := iv` (JR/T 0025.7 §11.1.1, deciphering).
pub(crate) fn cbc_decrypt<const N: usize>(
    iv: &[u8; N],
    data: &[u8],
    decrypt: impl Fn(&[u8; N]) -> [u8; N],
) -> Result<Vec<u8>, BlockError> {
    let blocks = whole_blocks::<N>(data)?;
    let mut out = Vec::with_capacity(data.len());
    let mut chain = *iv;
    for block in blocks {
        out.extend_from_slice(&xor(&decrypt(block), &chain));
        chain = *block;
    }
    Ok(out)
}

/// The CBC-MAC chain over data padded with method 2: `Hi := ALG(K)[Xi ⊕ Hi-1]`, `H0 := 0`,
/// returning `HK` (JR/T 0025.7 §11.1.2, JR/T 0025.17 §8.1.2 c)).
pub(crate) fn cbc_mac_chain<const N: usize>(
    data: &[u8],
    encrypt: impl Fn(&[u8; N]) -> [u8; N],
) -> [u8; N] {
    let padded = pad_method2(data, N);
    let (blocks, _) = padded.as_chunks::<N>();
    blocks
        .iter()
        .fold([0u8; N], |chain, block| encrypt(&xor(&chain, block)))
}

/// Byte-wise XOR of two blocks.
pub(crate) fn xor<const N: usize>(a: &[u8; N], b: &[u8; N]) -> [u8; N] {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b) {
        *o ^= x;
    }
    out
}

/// The first `len` bytes of `block` (a key check value), `len` from 1 to `N`.
pub(crate) fn check_value<const N: usize>(
    block: &[u8; N],
    len: usize,
) -> Result<Vec<u8>, BlockError> {
    match block.get(..len) {
        Some(kcv) if len > 0 => Ok(kcv.to_vec()),
        _ => Err(BlockError::CheckValueLength {
            requested: len,
            max: N,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_method2() {
        assert_eq!(pad_method2(&[], 8), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pad_method2(&[1; 7], 8).len(), 8);
        assert_eq!(pad_method2(&[1; 8], 8).len(), 16);
        assert_eq!(pad_method2(&[1; 16], 16).len(), 32);
        for len in 0..40 {
            let data = vec![0x11u8; len];
            assert_eq!(
                unpad_method2(&pad_method2(&data, 16), 16).unwrap(),
                &data[..]
            );
        }
    }

    #[test]
    fn unpadding_rejects() {
        assert_eq!(
            unpad_method2(&[0; 8], 8),
            Err(BlockError::PaddingMarkerMissing)
        );
        assert_eq!(unpad_method2(&[], 8), Err(BlockError::PaddingMarkerMissing));
        assert_eq!(
            unpad_method2(&[1, 2, 3, 0], 8),
            Err(BlockError::PaddingMarkerMissing)
        );
        let mut long = vec![0x80];
        long.extend([0; 9]);
        assert_eq!(
            unpad_method2(&long, 8),
            Err(BlockError::PaddingTooLong { len: 10, block: 8 })
        );
    }

    #[test]
    fn whole_blocks_only() {
        assert_eq!(
            ecb::<8>(&[0; 9], |b| *b),
            Err(BlockError::NotWholeBlocks { len: 9, block: 8 })
        );
        assert_eq!(ecb::<8>(&[], |b| *b), Ok(vec![]));
    }
}
