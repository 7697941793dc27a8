//! The group envelope: one sealed, signed frame per message, whatever the
//! circle's size.
//!
//! ```text
//! offset size field
//! 0      1    version (1)
//! 1      1    type (0x01 GROUP)
//! 2      16   key_id   sender chain id (not the member identity)
//! 18     4    epoch    u32 BE
//! 22     4    counter  u32 BE
//! 26     n    ciphertext = ChaCha20-Poly1305(mk, nonce, padded plaintext, ad = bytes 0..26)
//! 26+n   64   ed25519 signature by the chain's signing key over bytes 0..26+n
//! ```
//!
//! [`open`] performs the receiver's checks in the order of `protocol/SPEC.md`
//! and commits the chain only after everything passed.

use super::ratchet::{Advance, KeyId, ReceivingChain, SendingChain};
use super::{CryptoError, aead};
use crate::wire::{self, PADDING_BUCKETS, Reader, WireError, frame_type};

pub const HEADER_LEN: usize = 26;
pub const SIGNATURE_LEN: usize = 64;
pub const TAG_LEN: usize = 16;

/// The cleartext header of a group frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupHeader {
    pub key_id: KeyId,
    pub epoch: u32,
    pub counter: u32,
}

impl GroupHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = wire::VERSION;
        out[1] = frame_type::GROUP;
        out[2..18].copy_from_slice(&self.key_id);
        out[18..22].copy_from_slice(&self.epoch.to_be_bytes());
        out[22..26].copy_from_slice(&self.counter.to_be_bytes());
        out
    }
}

/// A group frame split into its parts, borrowed from the received bytes.
pub struct GroupFrame<'a> {
    pub header: GroupHeader,
    pub header_bytes: &'a [u8],
    pub ciphertext: &'a [u8],
    pub signed: &'a [u8],
    pub signature: [u8; 64],
}

/// Bounded decode: length cap, version, type, and a ciphertext length that
/// can only be a padded bucket plus the AEAD tag.
pub fn parse(bytes: &[u8]) -> Result<GroupFrame<'_>, WireError> {
    let kind = wire::read_prefix(bytes)?;
    if kind != frame_type::GROUP {
        return Err(WireError::UnknownType(kind));
    }
    if bytes.len() < HEADER_LEN + TAG_LEN + SIGNATURE_LEN {
        return Err(WireError::Truncated);
    }
    let ct_len = bytes.len() - HEADER_LEN - SIGNATURE_LEN;
    if !PADDING_BUCKETS.iter().any(|b| b + TAG_LEN == ct_len) {
        return Err(WireError::Invalid("ciphertext length is not a padding bucket"));
    }
    let mut r = Reader::new(&bytes[2..HEADER_LEN]);
    let header = GroupHeader { key_id: r.array()?, epoch: r.u32()?, counter: r.u32()? };
    let signed_len = bytes.len() - SIGNATURE_LEN;
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[signed_len..]);
    Ok(GroupFrame {
        header,
        header_bytes: &bytes[..HEADER_LEN],
        ciphertext: &bytes[HEADER_LEN..signed_len],
        signed: &bytes[..signed_len],
        signature,
    })
}

/// Seal an already padded plaintext under the next key of `chain`.
pub fn seal(chain: &mut SendingChain, padded: &[u8]) -> Result<(GroupHeader, Vec<u8>), CryptoError> {
    if !PADDING_BUCKETS.contains(&padded.len()) {
        return Err(WireError::BadPadding.into());
    }
    let (counter, mk) = chain.next_message_key()?;
    let header = GroupHeader { key_id: chain.key_id(), epoch: chain.epoch(), counter };
    let header_bytes = header.encode();
    let ciphertext = aead::seal(&mk.key, &mk.nonce, &header_bytes, padded)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + ciphertext.len() + SIGNATURE_LEN);
    frame.extend_from_slice(&header_bytes);
    frame.extend_from_slice(&ciphertext);
    let signature = chain.sign(&frame);
    frame.extend_from_slice(&signature);
    Ok((header, frame))
}

/// Open a parsed frame with the sender's chain and commit the chain.
pub fn open(chain: &mut ReceivingChain, frame: &GroupFrame<'_>) -> Result<Vec<u8>, CryptoError> {
    let (padded, advance) = open_uncommitted(chain, frame)?;
    chain.commit(advance);
    Ok(padded)
}

/// The receiver's cryptographic checks, in order: epoch and key id match
/// the chain, signature (before any ratchet work), counter window, AEAD
/// with the header as associated data. Nothing changes; the caller commits
/// the returned [`Advance`] once its own checks on the plaintext passed.
pub fn open_uncommitted(chain: &ReceivingChain, frame: &GroupFrame<'_>) -> Result<(Vec<u8>, Advance), CryptoError> {
    if frame.header.epoch != chain.epoch() || frame.header.key_id != chain.key_id() {
        return Err(WireError::Invalid("epoch or key id does not match the chain").into());
    }
    chain.verify(frame.signed, &frame.signature)?;
    chain.check_counter(frame.header.counter)?;
    let (mk, advance) = chain.look_up(frame.header.counter)?;
    let padded = aead::open(&mk.key, &mk.nonce, frame.header_bytes, frame.ciphertext)?;
    Ok((padded, advance))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::wire::{pad, unpad};
    use proptest::prelude::*;

    fn setup() -> (SendingChain, ReceivingChain) {
        let mut rng = SeededEntropy::from_u64(11);
        let s = SendingChain::generate(3, 0, &mut rng);
        let r = ReceivingChain::from_distribution(&s.distribution()).unwrap();
        (s, r)
    }

    #[test]
    fn seal_open_round_trip_and_size_bucket() {
        let (mut s, mut r) = setup();
        let (_, frame) = seal(&mut s, &pad(b"hello circle").unwrap()).unwrap();
        assert_eq!(frame.len(), HEADER_LEN + 256 + TAG_LEN + SIGNATURE_LEN);
        let parsed = parse(&frame).unwrap();
        let padded = open(&mut r, &parsed).unwrap();
        assert_eq!(unpad(&padded).unwrap(), b"hello circle");
        // Replay of the same frame is refused.
        assert!(matches!(open(&mut r, &parse(&frame).unwrap()), Err(CryptoError::Replay { .. })));
    }

    #[test]
    fn wrong_chain_is_refused() {
        let (mut s, _) = setup();
        let mut rng = SeededEntropy::from_u64(12);
        let other = SendingChain::generate(3, 0, &mut rng);
        let mut r = ReceivingChain::from_distribution(&other.distribution()).unwrap();
        let (_, frame) = seal(&mut s, &pad(b"x").unwrap()).unwrap();
        assert!(open(&mut r, &parse(&frame).unwrap()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Flipping any bit of any byte is rejected, and the chain is
        /// unchanged so the genuine frame still opens afterwards.
        #[test]
        fn any_tamper_rejected_state_unchanged(pos in 0usize..(HEADER_LEN + 256 + TAG_LEN + SIGNATURE_LEN), bit in 0u8..8) {
            let (mut s, mut r) = setup();
            let (_, frame) = seal(&mut s, &pad(b"canary").unwrap()).unwrap();
            let before = r.export();
            let mut bad = frame.clone();
            bad[pos] ^= 1 << bit;
            let result = parse(&bad).map_err(CryptoError::from).and_then(|f| open(&mut r, &f));
            prop_assert!(result.is_err());
            prop_assert_eq!(before, r.export());
            prop_assert!(open(&mut r, &parse(&frame).unwrap()).is_ok());
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }
    }
}
