//! The sender-key hash ratchet (design §3 "Group messages").
//!
//! Each member has, per epoch, one [`SendingChain`]: a 32-byte chain key
//! stepped forward by HKDF with distinct labels for the message key and the
//! next chain key, plus a fresh ed25519 signing key for that chain. Members
//! receive a copy of the chain's current state (a [`SenderKeyDistribution`])
//! over the pairwise channel and keep a [`ReceivingChain`].
//!
//! Receiving is split into *look up* (pure: computes the message key and the
//! state change it would make) and *commit* (applies it), so a frame that
//! fails any later check leaves the chain exactly as it was.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::CryptoError;
use super::kdf::{LABEL_CHAIN_STEP, LABEL_KEY_ID, LABEL_MESSAGE_KEY, derive, hash};
use crate::entropy::{Entropy, random_array};

/// How far ahead of the next expected counter a message may be.
pub const MAX_SKIP: u32 = 2000;
/// How many skipped (not yet received) message keys a chain may hold.
pub const MAX_STORED_SKIPPED: usize = 2000;

/// Identifies a sending chain on the wire: derived from its signing key,
/// so a distribution cannot pair one id with another key.
pub type KeyId = [u8; 16];

pub fn key_id_for(signing_public: &[u8; 32]) -> KeyId {
    let h = hash(LABEL_KEY_ID, &[signing_public]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    id
}

/// A one-time AEAD key and nonce. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MessageKey {
    pub key: [u8; 32],
    pub nonce: [u8; 12],
}

fn step(chain_key: &[u8; 32]) -> (MessageKey, [u8; 32]) {
    let mut material: [u8; 44] = derive(b"", chain_key, LABEL_MESSAGE_KEY, &[]);
    let mut mk = MessageKey { key: [0; 32], nonce: [0; 12] };
    mk.key.copy_from_slice(&material[..32]);
    mk.nonce.copy_from_slice(&material[32..]);
    material.zeroize();
    (mk, derive(b"", chain_key, LABEL_CHAIN_STEP, &[]))
}

/// The copy of a sending chain given to another member, pairwise.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderKeyDistribution {
    pub epoch: u32,
    pub signing_public: [u8; 32],
    pub chain_key: [u8; 32],
    pub counter: u32,
}

impl SenderKeyDistribution {
    pub fn key_id(&self) -> KeyId {
        key_id_for(&self.signing_public)
    }
}

/// Our own chain for one epoch.
#[derive(ZeroizeOnDrop)]
pub struct SendingChain {
    signing: SigningKey,
    chain_key: [u8; 32],
    /// Derived from the signing key once (it is on every frame and id).
    #[zeroize(skip)]
    key_id: KeyId,
    #[zeroize(skip)]
    epoch: u32,
    #[zeroize(skip)]
    next_counter: u32,
    #[zeroize(skip)]
    created_at_ms: u64,
}

impl SendingChain {
    pub fn generate(epoch: u32, now_ms: u64, rng: &mut dyn Entropy) -> Self {
        let mut seed: [u8; 32] = random_array(rng);
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let key_id = key_id_for(&signing.verifying_key().to_bytes());
        Self { signing, chain_key: random_array(rng), key_id, epoch, next_counter: 0, created_at_ms: now_ms }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn next_counter(&self) -> u32 {
        self.next_counter
    }

    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    pub fn signing_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The current state, for members who should read from now on.
    pub fn distribution(&self) -> SenderKeyDistribution {
        SenderKeyDistribution {
            epoch: self.epoch,
            signing_public: self.signing_public(),
            chain_key: self.chain_key,
            counter: self.next_counter,
        }
    }

    /// Take the next message key; the chain key moves on and the old one
    /// is overwritten (forward secrecy for our own sends).
    pub fn next_message_key(&mut self) -> Result<(u32, MessageKey), CryptoError> {
        let counter = self.next_counter;
        let next = counter.checked_add(1).ok_or(CryptoError::ChainExhausted)?;
        let (mk, mut next_chain) = step(&self.chain_key);
        self.chain_key.copy_from_slice(&next_chain);
        next_chain.zeroize();
        self.next_counter = next;
        Ok((counter, mk))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Check a signature made with this chain's signing key (our own
    /// frames, shown in the trainer view).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.signing.verifying_key().verify_strict(message, &sig).map_err(|_| CryptoError::BadSignature)
    }

    /// Serialize for the encrypted store: seed || chain key || epoch || counter || created.
    pub fn export(&self) -> Vec<u8> {
        let mut w = crate::wire::Writer::with_capacity(84);
        w.raw(&self.signing.to_bytes())
            .raw(&self.chain_key)
            .u32(self.epoch)
            .u32(self.next_counter)
            .u64(self.created_at_ms);
        w.finish()
    }

    pub fn import(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = crate::wire::Reader::new(bytes);
        let mut seed: [u8; 32] = r.array()?;
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let key_id = key_id_for(&signing.verifying_key().to_bytes());
        let chain = Self {
            signing,
            chain_key: r.array()?,
            key_id,
            epoch: r.u32()?,
            next_counter: r.u32()?,
            created_at_ms: r.u64()?,
        };
        r.finish()?;
        Ok(chain)
    }
}

/// What committing a looked-up message key will change.
pub struct Advance {
    counter: u32,
    /// New chain key and next counter, when the message is at or past `next`.
    forward: Option<([u8; 32], u32)>,
    /// Keys for counters skipped over, to keep for late messages.
    skipped: Vec<(u32, MessageKey)>,
}

impl Drop for Advance {
    fn drop(&mut self) {
        if let Some((ck, _)) = self.forward.as_mut() {
            ck.zeroize();
        }
    }
}

/// Another member's chain, as we received it.
#[derive(ZeroizeOnDrop)]
pub struct ReceivingChain {
    chain_key: [u8; 32],
    #[zeroize(skip)]
    signing_public: [u8; 32],
    /// Decompressed once, not on every frame (a point decompression is a
    /// field inversion's worth of work).
    #[zeroize(skip)]
    verifying: VerifyingKey,
    #[zeroize(skip)]
    key_id: KeyId,
    #[zeroize(skip)]
    epoch: u32,
    #[zeroize(skip)]
    next_counter: u32,
    /// Each `MessageKey` zeroizes itself when dropped.
    #[zeroize(skip)]
    skipped: BTreeMap<u32, MessageKey>,
}

impl ReceivingChain {
    pub fn from_distribution(d: &SenderKeyDistribution) -> Result<Self, CryptoError> {
        let verifying = VerifyingKey::from_bytes(&d.signing_public).map_err(|_| CryptoError::BadSignature)?;
        Ok(Self {
            chain_key: d.chain_key,
            signing_public: d.signing_public,
            verifying,
            key_id: key_id_for(&d.signing_public),
            epoch: d.epoch,
            next_counter: d.counter,
            skipped: BTreeMap::new(),
        })
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn next_counter(&self) -> u32 {
        self.next_counter
    }

    pub fn skipped_len(&self) -> usize {
        self.skipped.len()
    }

    /// Strict ed25519 verification under this chain's signing key.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.verifying.verify_strict(message, &sig).map_err(|_| CryptoError::BadSignature)
    }

    /// Cheap window check, done before any hashing.
    pub fn check_counter(&self, counter: u32) -> Result<(), CryptoError> {
        if counter < self.next_counter {
            if self.skipped.contains_key(&counter) {
                return Ok(());
            }
            return Err(CryptoError::Replay { counter });
        }
        if counter - self.next_counter > MAX_SKIP {
            return Err(CryptoError::TooFarAhead { counter, next: self.next_counter, limit: MAX_SKIP });
        }
        Ok(())
    }

    /// Compute the key for `counter` without changing the chain.
    pub fn look_up(&self, counter: u32) -> Result<(MessageKey, Advance), CryptoError> {
        self.check_counter(counter)?;
        if counter < self.next_counter {
            let stored = self.skipped.get(&counter).ok_or(CryptoError::Replay { counter })?;
            let mk = MessageKey { key: stored.key, nonce: stored.nonce };
            let advance = Advance { counter, forward: None, skipped: Vec::new() };
            return Ok((mk, advance));
        }
        let mut chain_key = self.chain_key;
        let mut skipped = Vec::new();
        let mut c = self.next_counter;
        loop {
            let (mk, next) = step(&chain_key);
            chain_key.copy_from_slice(&next);
            if c == counter {
                let advance = Advance { counter, forward: Some((chain_key, c.saturating_add(1))), skipped };
                chain_key.zeroize();
                return Ok((mk, advance));
            }
            skipped.push((c, mk));
            c += 1;
        }
    }

    /// Apply a looked-up advance after the message authenticated.
    pub fn commit(&mut self, mut advance: Advance) {
        self.skipped.remove(&advance.counter);
        if let Some((ck, next)) = advance.forward.as_ref() {
            self.chain_key.copy_from_slice(ck);
            self.next_counter = *next;
        }
        for (c, mk) in advance.skipped.drain(..) {
            self.skipped.insert(c, mk);
        }
        // Bound memory: forget the oldest skipped keys (those messages are
        // then undecryptable, which is the safe failure).
        while self.skipped.len() > MAX_STORED_SKIPPED {
            self.skipped.pop_first();
        }
    }

    /// Serialize for the encrypted store.
    pub fn export(&self) -> Vec<u8> {
        let mut w = crate::wire::Writer::new();
        w.raw(&self.chain_key)
            .raw(&self.signing_public)
            .u32(self.epoch)
            .u32(self.next_counter)
            .u32(self.skipped.len() as u32);
        for (c, mk) in &self.skipped {
            w.u32(*c).raw(&mk.key).raw(&mk.nonce);
        }
        w.finish()
    }

    pub fn import(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = crate::wire::Reader::new(bytes);
        let chain_key = r.array()?;
        let signing_public: [u8; 32] = r.array()?;
        let verifying = VerifyingKey::from_bytes(&signing_public).map_err(|_| CryptoError::BadSignature)?;
        let mut chain = Self {
            chain_key,
            signing_public,
            verifying,
            key_id: key_id_for(&signing_public),
            epoch: r.u32()?,
            next_counter: r.u32()?,
            skipped: BTreeMap::new(),
        };
        let n = r.u32()? as usize;
        if n > MAX_STORED_SKIPPED {
            return Err(crate::wire::WireError::Invalid("too many skipped keys").into());
        }
        for _ in 0..n {
            let c = r.u32()?;
            let mk = MessageKey { key: r.array()?, nonce: r.array()? };
            chain.skipped.insert(c, mk);
        }
        r.finish()?;
        Ok(chain)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    fn pair() -> (SendingChain, ReceivingChain) {
        let mut rng = SeededEntropy::from_u64(3);
        let s = SendingChain::generate(1, 0, &mut rng);
        let r = ReceivingChain::from_distribution(&s.distribution()).unwrap();
        (s, r)
    }

    #[test]
    fn in_order_keys_match() {
        let (mut s, mut r) = pair();
        for _ in 0..5 {
            let (c, mk) = s.next_message_key().unwrap();
            let (rk, adv) = r.look_up(c).unwrap();
            assert_eq!(mk.key, rk.key);
            r.commit(adv);
        }
        assert_eq!(r.next_counter(), 5);
        assert_eq!(r.skipped_len(), 0);
    }

    #[test]
    fn replay_and_far_ahead_rejected() {
        let (mut s, mut r) = pair();
        let (c, _) = s.next_message_key().unwrap();
        let (_, adv) = r.look_up(c).unwrap();
        r.commit(adv);
        assert_eq!(r.look_up(c).err(), Some(CryptoError::Replay { counter: 0 }));
        assert!(matches!(r.look_up(1_000_000), Err(CryptoError::TooFarAhead { .. })));
    }

    #[test]
    fn look_up_alone_changes_nothing() {
        let (_s, r) = pair();
        let before = r.export();
        let _ = r.look_up(10).unwrap();
        assert_eq!(before, r.export());
    }

    #[test]
    fn late_distribution_cannot_read_earlier_messages() {
        let mut rng = SeededEntropy::from_u64(4);
        let mut s = SendingChain::generate(1, 0, &mut rng);
        let (_, first) = s.next_message_key().unwrap();
        let r = ReceivingChain::from_distribution(&s.distribution()).unwrap();
        assert!(r.look_up(0).is_err());
        let (k1, _) = r.look_up(1).unwrap();
        assert_ne!(k1.key, first.key);
    }

    #[test]
    fn export_import_round_trip() {
        let (mut s, mut r) = pair();
        for _ in 0..3 {
            s.next_message_key().unwrap();
        }
        let (_, adv) = r.look_up(2).unwrap();
        r.commit(adv);
        let r2 = ReceivingChain::import(&r.export()).unwrap();
        assert_eq!(r2.export(), r.export());
        let s2 = SendingChain::import(&s.export()).unwrap();
        assert_eq!(s2.export(), s.export());
        assert!(ReceivingChain::import(&r.export()[..10]).is_err());
    }

    proptest! {
        /// Any delivery order within the skip window yields every key once.
        #[test]
        fn out_of_order_with_gaps(order in Just((0u32..40).collect::<Vec<_>>()).prop_shuffle(),
                                  drop_mask in proptest::collection::vec(any::<bool>(), 40)) {
            let (mut s, mut r) = pair();
            let keys: Vec<[u8; 32]> = (0..40).map(|_| s.next_message_key().unwrap().1.key).collect();
            for c in order {
                if drop_mask[c as usize] { continue; }
                let (mk, adv) = r.look_up(c).unwrap();
                prop_assert_eq!(mk.key, keys[c as usize]);
                r.commit(adv);
                prop_assert!(r.look_up(c).is_err(), "second use must be a replay");
            }
        }

        #[test]
        fn import_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ReceivingChain::import(&bytes);
            let _ = SendingChain::import(&bytes);
        }
    }
}
