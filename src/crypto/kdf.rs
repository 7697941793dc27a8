//! Hashes and key derivations with domain-separation labels.
//!
//! All derivations are HKDF-SHA256 (RFC 5869) or SHA-256 over a label and
//! length-delimited parts; every label starts with `kolo/v1/`, or `kolo/v2/` for those
//! protocol v2 added.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

pub const LABEL_MESSAGE_KEY: &[u8] = b"kolo/v1/message-key";
pub const LABEL_CHAIN_STEP: &[u8] = b"kolo/v1/chain-step";
pub const LABEL_KEY_ID: &[u8] = b"kolo/v1/sender-key-id";
pub const LABEL_TOPIC: &[u8] = b"kolo/v1/topic";
pub const LABEL_NETWORK_KEY: &[u8] = b"kolo/v1/network-key";
pub const LABEL_PAIR_PSK: &[u8] = b"kolo/v1/pair-psk";
pub const LABEL_PAIR_TAG: &[u8] = b"kolo/v1/pair-tag";
pub const LABEL_MESSAGE_ID: &[u8] = b"kolo/v1/message-id";
pub const LABEL_FRAME_ID: &[u8] = b"kolo/v1/frame-id";
pub const LABEL_OP_ID: &[u8] = b"kolo/v1/op-id";
pub const LABEL_CIRCLE_ID: &[u8] = b"kolo/v1/circle-id";
/// A member's view of the roster (SPEC §4.5).
pub const LABEL_GROUP_CONTEXT: &[u8] = b"kolo/v2/group-context";
/// A chain signing key's proof that it belongs to its sender (SPEC §6.3).
pub const LABEL_CHAIN_OWNER: &[u8] = b"kolo/v2/chain-owner";
/// The per-epoch key of pairwise frames' outer authenticator (v2, SPEC §4.1).
pub const LABEL_FRAME_MAC: &[u8] = b"kolo/v2/frame-mac";
/// What the invite key signs in a JOIN_HELLO (protocol v2, SPEC §8).
pub const LABEL_JOIN_HELLO: &[u8] = b"kolo/v2/join-hello";
/// A JOIN_HELLO's tag keyed by the joiner's Join operation (SPEC §8).
pub const LABEL_JOIN_TAG: &[u8] = b"kolo/v2/join-tag";
/// An epoch's pairwise secret (topic, tags, psks, frame key), from its epoch secret.
pub const LABEL_EPOCH_META: &[u8] = b"kolo/v2/epoch-meta";
/// A member's key for announcing its chain of an epoch, from the epoch secret.
pub const LABEL_CHAIN_ANNOUNCE_KEY: &[u8] = b"kolo/v2/chain-announce-key";
/// What the previous chain signs in a chain announcement.
pub const LABEL_CHAIN_ANNOUNCE: &[u8] = b"kolo/v2/chain-announce";
/// A network generation's key, from its closing epoch's meta (SPEC §2a).
pub const LABEL_GENERATION_KEY: &[u8] = b"kolo/v2/network-key";
/// A link's two stream keys, from the network key and both nonces (SPEC §2a).
pub const LABEL_LINK_STREAM: &[u8] = b"kolo/v2/link-stream";
/// A link's member proof and the proven stream keys (SPEC §2a).
pub const LABEL_LINK_PROOF: &[u8] = b"kolo/v2/link-proof";

/// SHA-256 over `label` followed by each part with a u32 length prefix,
/// so that no two different part lists hash the same bytes.
pub fn hash(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((label.len() as u32).to_be_bytes());
    h.update(label);
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// HKDF-SHA256 with an optional salt; `info` is the label followed by
/// the context parts, each length-prefixed as in [`hash`].
pub fn derive<const N: usize>(salt: &[u8], ikm: &[u8], label: &[u8], context: &[&[u8]]) -> [u8; N] {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut info = Vec::with_capacity(label.len() + 8);
    info.extend_from_slice(&(label.len() as u32).to_be_bytes());
    info.extend_from_slice(label);
    for p in context {
        info.extend_from_slice(&(p.len() as u32).to_be_bytes());
        info.extend_from_slice(p);
    }
    let mut out = [0u8; N];
    // N is a compile-time constant far below HKDF's 255*32 byte limit.
    if hk.expand(&info, &mut out).is_err() {
        out.zeroize();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unambiguous() {
        assert_ne!(hash(b"l", &[b"ab", b"c"]), hash(b"l", &[b"a", b"bc"]));
        assert_ne!(hash(b"l1", &[b"x"]), hash(b"l2", &[b"x"]));
    }

    #[test]
    fn derive_separates_labels() {
        let a: [u8; 32] = derive(b"", b"ikm", LABEL_MESSAGE_KEY, &[]);
        let b: [u8; 32] = derive(b"", b"ikm", LABEL_CHAIN_STEP, &[]);
        assert_ne!(a, b);
    }
}
