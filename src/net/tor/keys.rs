//! Key material for onion services, in the forms tor's control port takes.
//!
//! * The onion service key: an Ed25519 seed that kolo keeps in the
//!   encrypted profile (one per member per circle, random). Tor is given
//!   only the expanded secret key (`ED25519-V3:<base64>` in `ADD_ONION`),
//!   and with `Flags=DiscardPK` and no `HiddenServiceDir` it never writes
//!   it to its data directory.
//! * Client authorisation: an X25519 key pair derived from the circle's
//!   network key, so that every holder of the circle secret (every member,
//!   and so every invitee) can fetch the descriptor and nobody else can.

use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::kdf;
use crate::wire::text::{Case, base32, base64};

const CLIENT_AUTH_LABEL: &[u8] = b"kolo/v2/tor-client-auth";

/// A member's onion service key for one circle: a 32-byte Ed25519 seed.
/// Zeroized on drop; no `Debug`.
pub struct OnionKey(Zeroizing<[u8; 32]>);

impl OnionKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        OnionKey(Zeroizing::new(seed))
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.0
    }

    /// `ED25519-V3:<base64 of the 64-byte expanded secret key>`: SHA-512 of
    /// the seed with the scalar half clamped, as tor stores such keys.
    pub fn control_blob(&self) -> Zeroizing<String> {
        let mut expanded: [u8; 64] = Sha512::digest(self.0.as_slice()).into();
        expanded[0] &= 248;
        expanded[31] &= 127;
        expanded[31] |= 64;
        let blob = Zeroizing::new(format!("ED25519-V3:{}", base64(&expanded)));
        expanded.zeroize();
        blob
    }
}

/// The client-authorisation key pair of a circle's onions.
pub struct ClientAuth {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl ClientAuth {
    /// Derived from the circle id, which travels only in invites and
    /// inside the circle. Not from the network key: that changes with
    /// every removal (SPEC §2a), and members of different generations must
    /// agree on this key. What closes the network is the link handshake.
    pub fn for_circle(circle_id: &[u8; 32]) -> Self {
        let mut seed: [u8; 32] = kdf::derive(&[], circle_id, CLIENT_AUTH_LABEL, &[]);
        let secret = x25519_dalek::StaticSecret::from(seed);
        seed.zeroize();
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        ClientAuth { secret: Zeroizing::new(secret.to_bytes()), public }
    }

    /// `ClientAuthV3=` value: base32 of the public key.
    pub fn public_base32(&self) -> String {
        base32(&self.public, Case::Upper)
    }

    /// `ONION_CLIENT_AUTH_ADD` value: `x25519:<base64 of the secret key>`.
    pub fn secret_blob(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x25519:{}", base64(self.secret.as_slice())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn onion_blob_is_the_clamped_expanded_key() {
        let key = OnionKey::from_seed([7; 32]);
        let blob = key.control_blob();
        assert!(blob.starts_with("ED25519-V3:"));
        assert_eq!(blob.len(), "ED25519-V3:".len() + 88);
        // Same seed, same blob; another seed, another blob.
        assert_eq!(*blob, *OnionKey::from_seed([7; 32]).control_blob());
        assert_ne!(*blob, *OnionKey::from_seed([8; 32]).control_blob());
    }

    #[test]
    fn client_auth_is_per_circle() {
        let a = ClientAuth::for_circle(&[1; 32]);
        let b = ClientAuth::for_circle(&[2; 32]);
        assert_ne!(a.public_base32(), b.public_base32());
        assert_eq!(a.public_base32(), ClientAuth::for_circle(&[1; 32]).public_base32());
        assert!(a.secret_blob().starts_with("x25519:"));
    }
}
