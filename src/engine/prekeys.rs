//! Rotating pairwise keys (protocol v2, SPEC §6.1): each member's X25519
//! key for the pairwise channel of one circle, numbered from 1 (the key
//! its Create, Add or Join operation binds to its identity beside its
//! static key) and replaced over time; and the newest key each other
//! member announced, with its signature so that it can be passed on.
//!
//! Why: a pairwise frame can be opened by whoever holds the recipient's
//! key. A key that never changes lets a copy of the profile open every
//! key distribution ever sent to it (no healing) and every one captured
//! off the network before (no forward secrecy). So a member replaces its
//! key soon after it opened key material with it, and after its own
//! scheduled update, announces the new public key to the circle, and
//! erases the old one at the circle's horizon (its disappearing maximum,
//! or the frame retention).

use std::collections::HashMap;

use crate::entropy::Entropy;
use crate::identity::{FIRST_PAIRWISE_KEY_ID, MemberId, NoiseBinding, NoiseSecret, PairwiseKey, SignedPairwiseKey};

/// Most replaced keys kept (waiting for their horizon) at once.
pub const MAX_RETIRED_PREKEYS: usize = 8;
/// A key that opened key material is replaced at most this long after.
pub const MAX_PREKEY_AGE_AFTER_USE_MS: u64 = 3600 * 1000;

/// One of our keys.
pub struct Prekey {
    pub id: u32,
    pub secret: NoiseSecret,
    /// When it became current (or, for a replaced one, when it was replaced).
    pub since_ms: u64,
}

/// Our keys for one circle: the current one and replaced ones not yet erased.
pub struct Prekeys {
    pub current: Prekey,
    pub retired: Vec<Prekey>,
    /// When the current key first opened key material (none yet: no
    /// reason to replace it).
    pub used_at_ms: Option<u64>,
}

impl Prekeys {
    /// Key 1: the one our operation binds beside our static key.
    pub fn new(first: NoiseSecret, now_ms: u64) -> Self {
        let current = Prekey { id: FIRST_PAIRWISE_KEY_ID, secret: first, since_ms: now_ms };
        Self { current, retired: Vec::new(), used_at_ms: None }
    }

    /// Our key with this id, if we still hold it.
    pub fn get(&self, id: u32) -> Option<&NoiseSecret> {
        if self.current.id == id {
            return Some(&self.current.secret);
        }
        self.retired.iter().find(|k| k.id == id).map(|k| &k.secret)
    }

    /// Note that the key `id` opened key material now.
    pub fn note_used(&mut self, id: u32, now_ms: u64) {
        if id == self.current.id {
            self.used_at_ms.get_or_insert(now_ms);
        }
    }

    /// Whether the current key should be replaced now: it opened key
    /// material at least `after_ms` ago.
    pub fn due(&self, now_ms: u64, after_ms: u64) -> bool {
        self.used_at_ms.is_some_and(|t| now_ms.saturating_sub(t) >= after_ms)
    }

    /// Make a fresh key current; the old one waits for its horizon.
    /// Returns the new key's id and public key (to announce).
    pub fn rotate(&mut self, now_ms: u64, rng: &mut dyn Entropy) -> (u32, [u8; 32]) {
        let id = self.current.id.saturating_add(1);
        let fresh = Prekey { id, secret: NoiseSecret::generate(rng), since_ms: now_ms };
        let mut old = std::mem::replace(&mut self.current, fresh);
        old.since_ms = now_ms;
        self.retired.push(old);
        while self.retired.len() > MAX_RETIRED_PREKEYS {
            self.retired.remove(0);
        }
        self.used_at_ms = None;
        (id, self.current.secret.public())
    }

    /// Erase replaced keys older than `horizon_ms` (dropping a
    /// `NoiseSecret` zeroizes it). Returns whether any went.
    pub fn erase_older_than(&mut self, now_ms: u64, horizon_ms: u64) -> bool {
        let before = self.retired.len();
        self.retired.retain(|k| now_ms.saturating_sub(k.since_ms) < horizon_ms);
        self.retired.len() != before
    }
}

/// The newest pairwise key each other member announced (signed by it).
#[derive(Default)]
pub struct PeerPrekeys {
    pub keys: HashMap<MemberId, SignedPairwiseKey>,
}

impl PeerPrekeys {
    /// The key to use for `member`: its newest announced, else the first
    /// one its operation bound (id 1). Never its static key.
    pub fn current(&self, member: &MemberId, binding: &NoiseBinding) -> PairwiseKey {
        self.keys.get(member).map(|k| k.key).unwrap_or_else(|| binding.first_key())
    }

    /// Record a signed key (checked by the caller); older or repeated ids
    /// are ignored.
    pub fn announce(&mut self, member: MemberId, key: SignedPairwiseKey) -> bool {
        match self.keys.get(&member) {
            Some(known) if known.key.id >= key.key.id => false,
            _ if key.key.id <= FIRST_PAIRWISE_KEY_ID => false,
            _ => {
                self.keys.insert(member, key);
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn a_replaced_key_is_erased_at_its_horizon_and_only_used_keys_are_due() {
        let mut rng = SeededEntropy::from_u64(1);
        let mut keys = Prekeys::new(NoiseSecret::generate(&mut rng), 0);
        assert!(keys.get(0).is_none(), "id 0 is never a pairwise key");
        assert!(!keys.due(10_000, 1000), "an unused key is not replaced");
        keys.note_used(1, 100);
        assert!(!keys.due(500, 1000));
        assert!(keys.due(1100, 1000));
        let (id, public) = keys.rotate(1100, &mut rng);
        assert_eq!(id, 2);
        assert_eq!(keys.get(2).unwrap().public(), public);
        assert!(keys.get(1).is_some(), "the old key stays for frames in flight");
        assert!(!keys.erase_older_than(1500, 1000));
        assert!(keys.erase_older_than(2100, 1000));
        assert!(keys.get(1).is_none(), "erased at its horizon");
    }

    #[test]
    fn peers_keys_only_move_forward() {
        let mut peers = PeerPrekeys::default();
        let m = MemberId([1; 32]);
        let binding = NoiseBinding { noise_public: [8; 32], first_pairwise: [9; 32], signature: [0; 64] };
        let signed = |id, public| SignedPairwiseKey { key: PairwiseKey { id, public }, signature: [0; 64] };
        assert_eq!(peers.current(&m, &binding), PairwiseKey { id: 1, public: [9; 32] }, "the bound first key");
        assert!(peers.announce(m, signed(3, [3; 32])));
        assert!(!peers.announce(m, signed(2, [2; 32])), "an older announcement is a replay");
        assert!(!peers.announce(m, signed(3, [4; 32])));
        assert_eq!(peers.current(&m, &binding), PairwiseKey { id: 3, public: [3; 32] });
    }
}
