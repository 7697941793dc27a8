//! Padding of plaintexts to fixed size buckets, so that ciphertext length
//! reveals only a coarse size class (design property 7).
//!
//! Layout: `content || 0x80 || 0x00*`, filling the smallest bucket that holds
//! `content.len() + 1` bytes (ISO/IEC 7816-4 style, unambiguous to remove).

use super::WireError;

/// Padded plaintext sizes, in bytes. The last is the largest message kolo sends.
pub const PADDING_BUCKETS: [usize; 6] = [256, 1024, 4096, 16 * 1024, 32 * 1024, 64 * 1024];

/// Pad `content` to the smallest bucket that fits it with its terminator.
pub fn pad(content: &[u8]) -> Result<Vec<u8>, WireError> {
    let needed = content.len() + 1;
    let bucket = PADDING_BUCKETS
        .iter()
        .copied()
        .find(|b| *b >= needed)
        .ok_or(WireError::LimitExceeded { what: "message", limit: PADDING_BUCKETS[PADDING_BUCKETS.len() - 1] - 1 })?;
    let mut out = Vec::with_capacity(bucket);
    out.extend_from_slice(content);
    out.push(0x80);
    out.resize(bucket, 0);
    Ok(out)
}

/// Strip padding; rejects inputs that are not a bucket size, lack the
/// marker, or use a larger bucket than the content needs (only the
/// canonical padding [`pad`] produces is accepted, so one plaintext has one
/// encoding and a sender cannot pick its frame's size class freely).
pub fn unpad(padded: &[u8]) -> Result<&[u8], WireError> {
    if !PADDING_BUCKETS.contains(&padded.len()) {
        return Err(WireError::BadPadding);
    }
    let marker = padded.iter().rposition(|b| *b != 0).ok_or(WireError::BadPadding)?;
    if padded[marker] != 0x80 {
        return Err(WireError::BadPadding);
    }
    if PADDING_BUCKETS.iter().any(|b| *b > marker && *b < padded.len()) {
        return Err(WireError::BadPadding);
    }
    Ok(&padded[..marker])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_fall_in_buckets() {
        assert_eq!(pad(b"").map(|p| p.len()), Ok(256));
        assert_eq!(pad(&[1; 255]).map(|p| p.len()), Ok(256));
        assert_eq!(pad(&[1; 256]).map(|p| p.len()), Ok(1024));
        assert!(pad(&[0; 64 * 1024]).is_err());
    }

    /// Found by the `pair_payload` fuzz target (its input is kept in
    /// fuzz/corpus/pair_payload/): 69 bytes of content padded to 1024.
    #[test]
    fn padding_to_a_larger_bucket_than_needed_is_refused() {
        let mut oversized = vec![7u8; 69];
        oversized.push(0x80);
        oversized.resize(1024, 0);
        assert_eq!(unpad(&oversized), Err(WireError::BadPadding));
        let mut exact = vec![7u8; 256];
        exact.push(0x80);
        exact.resize(1024, 0);
        assert_eq!(unpad(&exact).map(<[u8]>::len), Ok(256));
    }

    proptest! {
        #[test]
        fn round_trip(content in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let padded = pad(&content).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(PADDING_BUCKETS.contains(&padded.len()));
            prop_assert_eq!(unpad(&padded).ok(), Some(&content[..]));
        }

        #[test]
        fn unpad_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = unpad(&bytes);
        }
    }
}
