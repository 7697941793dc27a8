//! Member identities and the keys bound to them.
//!
//! Owns: the member's long-term ed25519 identity key ([`IdentitySecret`],
//! public half [`MemberId`]), the per-circle x25519 Noise static key
//! ([`NoiseSecret`]) and the signature binding it, with the member's first
//! pairwise key, to the identity and the circle ([`NoiseBinding`]), the
//! signed announcements of later pairwise keys ([`SignedPairwiseKey`]),
//! fingerprints for naming members, and safety numbers for comparing keys
//! in person.
//!
//! Secrets zeroize on drop and implement neither `Debug` nor `Clone`-by-
//! accident: the only way to read their bytes is an explicitly named method.

mod safety;

pub use safety::{SafetyNumber, pair_safety_numbers, safety_number};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::entropy::{Entropy, random_array};

/// Domain label for the Noise-key binding signature (v2: it covers the
/// first pairwise key too).
pub const LABEL_NOISE_BINDING: &[u8] = b"kolo/v2/noise-binding";
/// Domain label for a member's signature over a later pairwise key.
pub const LABEL_PAIRWISE_KEY: &[u8] = b"kolo/v2/pairwise-key";
/// The id of the pairwise key a member's operation binds (SPEC §6.1). Id 0
/// is never a pairwise key: the bound static key is never one.
pub const FIRST_PAIRWISE_KEY_ID: u32 = 1;
/// Domain label for fingerprints.
pub const LABEL_FINGERPRINT: &[u8] = b"kolo/v1/fingerprint";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("not a valid ed25519 public key")]
    BadPublicKey,
    #[error("signature does not verify")]
    BadSignature,
}

/// A member's public identity: the ed25519 verifying key, 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct MemberId(pub [u8; 32]);

impl MemberId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short, human-comparable fingerprint of this identity.
    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Sha256::new().chain_update(LABEL_FINGERPRINT).chain_update(self.0).finalize();
        let mut out = [0u8; 10];
        out.copy_from_slice(&digest[..10]);
        Fingerprint(out)
    }

    /// Lowercase hex of the full key (used for id-prefix lookup).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Verify `signature` over `message` with this identity, strictly
    /// (rejects small-order keys and non-canonical signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), IdentityError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::BadPublicKey)?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(message, &sig).map_err(|_| IdentityError::BadSignature)
    }
}

impl std::fmt::Debug for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemberId({})", &self.to_hex()[..12])
    }
}

/// Ten bytes of a domain-separated hash of the identity key, shown as
/// `abcd-ef01-2345-6789-abcd`. Names members in lists and logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 10]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = hex(&self.0);
        let groups: Vec<&str> = (0..5).map(|i| &h[i * 4..i * 4 + 4]).collect();
        f.write_str(&groups.join("-"))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The member's long-term ed25519 signing key. Zeroized on drop; no `Debug`.
#[derive(ZeroizeOnDrop)]
pub struct IdentitySecret {
    key: SigningKey,
}

impl IdentitySecret {
    pub fn generate(rng: &mut dyn Entropy) -> Self {
        let mut seed: [u8; 32] = random_array(rng);
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self { key }
    }

    /// Rebuild from the 32-byte seed (as stored in the encrypted profile).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    /// The secret seed, for the encrypted store only.
    pub fn expose_seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn member_id(&self) -> MemberId {
        MemberId(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A member's x25519 static key for Noise in one circle. Zeroized on drop.
#[derive(ZeroizeOnDrop)]
pub struct NoiseSecret {
    secret: [u8; 32],
}

impl NoiseSecret {
    pub fn generate(rng: &mut dyn Entropy) -> Self {
        Self::from_bytes(random_array(rng))
    }

    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// The raw secret, for snow and the encrypted store only.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn public(&self) -> [u8; 32] {
        let s = x25519_dalek::StaticSecret::from(self.secret);
        x25519_dalek::PublicKey::from(&s).to_bytes()
    }

    pub fn duplicate(&self) -> Self {
        Self::from_bytes(self.secret)
    }
}

/// An identity's signature over its Noise static key for one circle and
/// its first pairwise key (id [`FIRST_PAIRWISE_KEY_ID`]):
/// `sig = Sign(identity, LABEL_NOISE_BINDING || circle_id || noise_public || first_pairwise)`.
///
/// Why the first pairwise key is here: pairwise frames are sealed to the
/// recipient's pairwise key, which is erased over time. Were the first one
/// the static key (which authenticates the member for as long as it is in
/// the circle and so is never erased), everything sent before the member
/// announced another would stay readable from any later copy of its
/// profile.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NoiseBinding {
    pub noise_public: [u8; 32],
    pub first_pairwise: [u8; 32],
    pub signature: [u8; 64],
}

impl NoiseBinding {
    fn message(circle_id: &[u8; 32], noise_public: &[u8; 32], first_pairwise: &[u8; 32]) -> Vec<u8> {
        [LABEL_NOISE_BINDING, circle_id, noise_public, first_pairwise].concat()
    }

    pub fn create(
        identity: &IdentitySecret,
        circle_id: &[u8; 32],
        noise: &NoiseSecret,
        first_pairwise: &NoiseSecret,
    ) -> Self {
        let noise_public = noise.public();
        let first_pairwise = first_pairwise.public();
        let signature = identity.sign(&Self::message(circle_id, &noise_public, &first_pairwise));
        Self { noise_public, first_pairwise, signature }
    }

    pub fn verify(&self, member: &MemberId, circle_id: &[u8; 32]) -> Result<(), IdentityError> {
        member.verify(&Self::message(circle_id, &self.noise_public, &self.first_pairwise), &self.signature)
    }

    /// The first pairwise key as a signed key, for the same tables as later ones.
    pub fn first_key(&self) -> PairwiseKey {
        PairwiseKey { id: FIRST_PAIRWISE_KEY_ID, public: self.first_pairwise }
    }
}

/// A member's pairwise key as senders use it: its id and public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PairwiseKey {
    pub id: u32,
    pub public: [u8; 32],
}

/// A later pairwise key (id 2 and up) signed by its member, so that it can
/// be passed on (in a welcome) by someone else:
/// `sig = Sign(identity, LABEL_PAIRWISE_KEY || circle_id || u32 id || public)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SignedPairwiseKey {
    pub key: PairwiseKey,
    pub signature: [u8; 64],
}

impl SignedPairwiseKey {
    fn message(circle_id: &[u8; 32], key: &PairwiseKey) -> Vec<u8> {
        [LABEL_PAIRWISE_KEY, circle_id, &key.id.to_be_bytes(), &key.public].concat()
    }

    pub fn create(identity: &IdentitySecret, circle_id: &[u8; 32], id: u32, secret: &NoiseSecret) -> Self {
        let key = PairwiseKey { id, public: secret.public() };
        Self { key, signature: identity.sign(&Self::message(circle_id, &key)) }
    }

    /// Whether `member` signed this key for this circle (and it is not the
    /// first key, which only the binding carries).
    pub fn verify(&self, member: &MemberId, circle_id: &[u8; 32]) -> Result<(), IdentityError> {
        if self.key.id <= FIRST_PAIRWISE_KEY_ID {
            return Err(IdentityError::BadSignature);
        }
        member.verify(&Self::message(circle_id, &self.key), &self.signature)
    }
}

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn binding_verifies_only_for_its_circle_and_key() {
        let mut rng = SeededEntropy::from_u64(7);
        let id = IdentitySecret::generate(&mut rng);
        let other = IdentitySecret::generate(&mut rng);
        let noise = NoiseSecret::generate(&mut rng);
        let first = NoiseSecret::generate(&mut rng);
        let circle = [1u8; 32];
        let b = NoiseBinding::create(&id, &circle, &noise, &first);
        assert!(b.verify(&id.member_id(), &circle).is_ok());
        assert!(b.verify(&id.member_id(), &[2u8; 32]).is_err());
        assert!(b.verify(&other.member_id(), &circle).is_err());
        let mut tampered = b;
        tampered.noise_public[0] ^= 1;
        assert!(tampered.verify(&id.member_id(), &circle).is_err());
        let mut swapped = b;
        swapped.first_pairwise[0] ^= 1;
        assert!(swapped.verify(&id.member_id(), &circle).is_err(), "the first pairwise key is signed too");
    }

    #[test]
    fn a_signed_pairwise_key_verifies_only_for_its_member_circle_and_id() {
        let mut rng = SeededEntropy::from_u64(9);
        let id = IdentitySecret::generate(&mut rng);
        let other = IdentitySecret::generate(&mut rng);
        let circle = [1u8; 32];
        let k = SignedPairwiseKey::create(&id, &circle, 5, &NoiseSecret::generate(&mut rng));
        assert!(k.verify(&id.member_id(), &circle).is_ok());
        assert!(k.verify(&other.member_id(), &circle).is_err());
        assert!(k.verify(&id.member_id(), &[2u8; 32]).is_err());
        let mut later = k;
        later.key.id = 6;
        assert!(later.verify(&id.member_id(), &circle).is_err(), "the id is signed");
        let first = SignedPairwiseKey::create(&id, &circle, FIRST_PAIRWISE_KEY_ID, &NoiseSecret::generate(&mut rng));
        assert!(first.verify(&id.member_id(), &circle).is_err(), "the first key travels only in the binding");
    }

    #[test]
    fn seed_round_trip_and_fingerprint_format() {
        let mut rng = SeededEntropy::from_u64(8);
        let id = IdentitySecret::generate(&mut rng);
        let again = IdentitySecret::from_seed(&id.expose_seed());
        assert_eq!(id.member_id(), again.member_id());
        let fp = id.member_id().fingerprint().to_string();
        assert_eq!(fp.len(), 24);
        assert_eq!(fp.matches('-').count(), 4);
    }
}
