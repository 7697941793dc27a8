//! Text encodings of bytes (RFC 4648): base32 without padding, for invite
//! codes and onion addresses, and base64 with padding, for tor's control
//! port and terminal clipboard writes. One implementation for all of them;
//! the decoders are strict (one text per byte string), as SPEC §1.1 asks.

use zeroize::Zeroize;

const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const BASE32_UPPER: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Which alphabet base32 writes: lower case (invites, onion addresses) or
/// upper case (what tor's control port prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Lower,
    Upper,
}

/// RFC 4648 base32 without padding. The bit buffer is erased after use:
/// invite codes carry a secret.
pub fn base32(bytes: &[u8], case: Case) -> String {
    let alphabet = match case {
        Case::Lower => BASE32_LOWER,
        Case::Upper => BASE32_UPPER,
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(alphabet[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(alphabet[((buffer << (5 - bits)) & 31) as usize]));
    }
    buffer.zeroize();
    out
}

/// Inverse of [`base32`] in lower case; `None` on a character outside the
/// alphabet (`=` included), an impossible length, or non-zero bits after
/// the last whole byte.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    // Sized once, so no reallocation leaves copies; erased on failure.
    let mut out = Vec::with_capacity(text.len() * 5 / 8 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    let mut ok = true;
    for c in text.bytes() {
        let Some(v) = BASE32_LOWER.iter().position(|a| *a == c) else {
            ok = false;
            break;
        };
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    ok &= buffer == 0 && bits < 5;
    buffer.zeroize();
    if !ok {
        out.zeroize();
        return None;
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let mut n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
        n.zeroize();
    }
    out
}

/// Inverse of [`base64`]: `None` on a character outside the alphabet, a
/// length that is not a multiple of 4, padding anywhere but at the end,
/// or non-zero bits in the last character before the padding.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|c| **c == b'=').count();
    if padding > 2 {
        return None;
    }
    let body = &bytes[..bytes.len() - padding];
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &c in body {
        let v = BASE64.iter().position(|a| *a == c)? as u32;
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    let ok = buffer == 0;
    buffer.zeroize();
    ok.then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b"", Case::Lower), "");
        assert_eq!(base32(b"f", Case::Upper), "MY");
        assert_eq!(base32(b"fo", Case::Upper), "MZXQ");
        assert_eq!(base32(b"foo", Case::Upper), "MZXW6");
        assert_eq!(base32(b"foob", Case::Upper), "MZXW6YQ");
        assert_eq!(base32(b"fooba", Case::Upper), "MZXW6YTB");
        assert_eq!(base32(b"foobar", Case::Lower), "mzxw6ytboi");
        // An onion address is 35 bytes: 56 characters; a client-auth key 32: 52.
        assert_eq!(base32(&[0u8; 35], Case::Lower).len(), 56);
        assert_eq!(base32(&[0u8; 32], Case::Upper).len(), 52);
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("my"), Some(b"f".to_vec()));
        assert_eq!(base32_decode("mz"), None, "non-zero trailing bits");
        assert_eq!(base32_decode("m"), None, "impossible length");
        assert_eq!(base32_decode("my======"), None, "padding");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, text) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(plain.as_bytes()), text);
            assert_eq!(base64_decode(text).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64(&[0u8; 64]).len(), 88);
        assert_eq!(base64_decode("Zh=="), None, "non-zero trailing bits");
        assert_eq!(base64_decode("Zg="), None, "length");
        assert_eq!(base64_decode("Z=g="), None, "padding inside");
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(base32_decode(&base32(&bytes, Case::Lower)), Some(bytes.clone()));
            prop_assert_eq!(base64_decode(&base64(&bytes)), Some(bytes));
        }
    }
}
