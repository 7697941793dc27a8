//! The link handshake's cryptography (protocol v2, SPEC §2a): what every
//! connection of a circle's network passes before libp2p's Noise runs.
//!
//! Owns: the per-connection stream keys derived from a network key and
//! both sides' nonces, the stream cipher, and the proof every link
//! requires. The I/O lives in
//! `net::link`; this module is pure so that vectors can reproduce it.
//!
//! Why a link layer of our own rather than libp2p's pnet: pnet knows one
//! key. When a removal or rotation starts a new network generation, a
//! member who was offline still holds only the old key, and so does the
//! removed member; and every invite carries the current one. The listener
//! tells them apart by asking, on every link, for a proof that the dialer
//! holds the per-circle Noise static key of a current member (or, for a
//! joiner, the key of an invite that is still open); the removed member
//! cannot give one, and an invite holder is known as a joiner.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

use super::kdf::{LABEL_LINK_PROOF, LABEL_LINK_STREAM, derive};
use crate::identity::NoiseSecret;

/// Each side's random nonce, sent in clear first.
pub const NONCE_LEN: usize = 24;
/// The dialer's first encrypted bytes: the listener finds the dialer's
/// network key by which of its keys decrypts them to this.
pub const MAGIC: [u8; 16] = *b"kolo link v2\0\0\0\0";
/// Listener's status byte: admitted, after a valid proof.
pub const STATUS_ADMITTED: u8 = 0;
/// Listener's status byte, the first one on every link: a proof is needed
/// (a member's or an open invite's), and a 32-byte challenge follows.
pub const STATUS_PROVE: u8 = 1;
/// Listener's status byte: the proof failed (not a current member, or a
/// wrong key); the listener closes.
pub const STATUS_REFUSED: u8 = 2;
/// Listener's status byte: the proof names an invite this member has not
/// heard of yet (the Invite operation is still on its way); others may
/// know it. The listener closes.
pub const STATUS_UNKNOWN_INVITE: u8 = 3;
/// Listener's status byte: the dialer proved an invite that is closed for
/// good; one byte follows, the JOIN_REFUSED reason of SPEC §8 (`01` used,
/// `02` expired, `04` revoked or its author no longer an organiser).
pub const STATUS_INVITE_CLOSED: u8 = 4;
/// The reasons that follow [`STATUS_INVITE_CLOSED`], which JOIN_REFUSED
/// (§8) uses too: used, expired, revoked (or its author can no longer
/// invite, v2 §4.4).
pub const REFUSED_USED: u8 = 1;
pub const REFUSED_EXPIRED: u8 = 2;
pub const REFUSED_REVOKED: u8 = 4;
/// A proof by a current member's per-circle Noise static key.
pub const PROOF_MEMBER: u8 = 1;
/// A proof by an open invite's key (a joiner).
pub const PROOF_INVITE: u8 = 2;

/// The two directions' stream keys of one link.
pub struct StreamKeys {
    pub dialer_to_listener: Zeroizing<[u8; 32]>,
    pub listener_to_dialer: Zeroizing<[u8; 32]>,
}

impl StreamKeys {
    fn split(material: &[u8]) -> Self {
        let mut d = Zeroizing::new([0u8; 32]);
        let mut l = Zeroizing::new([0u8; 32]);
        d.copy_from_slice(&material[..32]);
        l.copy_from_slice(&material[32..64]);
        Self { dialer_to_listener: d, listener_to_dialer: l }
    }
}

/// The stream keys a link starts with:
/// `HKDF(salt = circle_id, ikm = network_key, "kolo/v2/link-stream", dialer_nonce, listener_nonce)`,
/// 64 bytes, dialer-to-listener first.
pub fn stream_keys(
    network_key: &[u8; 32],
    circle_id: &[u8; 32],
    dialer_nonce: &[u8; NONCE_LEN],
    listener_nonce: &[u8; NONCE_LEN],
) -> StreamKeys {
    let material: Zeroizing<[u8; 64]> =
        Zeroizing::new(derive(circle_id, network_key, LABEL_LINK_STREAM, &[dialer_nonce, listener_nonce]));
    StreamKeys::split(&material[..])
}

/// A member proof: the tag the dialer sends, and the stream keys both
/// sides switch to once it is accepted (so that a peer relaying the
/// proof between two others cannot use the link it bought with it).
pub struct Proof {
    pub tag: [u8; 32],
    pub keys: StreamKeys,
}

/// What the link's nonces and the challenge bind a proof to.
pub struct ProofContext<'a> {
    pub network_key: &'a [u8; 32],
    pub circle_id: &'a [u8; 32],
    pub dialer_nonce: &'a [u8; NONCE_LEN],
    pub listener_nonce: &'a [u8; NONCE_LEN],
    pub challenge: &'a [u8; 32],
}

/// `HKDF(salt = network_key, ikm = X25519(dialer's key, challenge),
/// "kolo/v2/link-proof", circle_id, dialer_nonce, listener_nonce,
/// challenge, kind, id)`, 96 bytes: tag, then the proven stream keys.
/// `kind` is [`PROOF_MEMBER`] (`id` the member id) or [`PROOF_INVITE`]
/// (`id` the invite operation's id). `None` for a non-contributory shared
/// secret (a low-order challenge or key).
pub fn proof(context: &ProofContext<'_>, kind: u8, id: &[u8; 32], shared: &[u8; 32]) -> Option<Proof> {
    if shared.iter().all(|b| *b == 0) {
        return None;
    }
    let material: Zeroizing<[u8; 96]> = Zeroizing::new(derive(
        context.network_key,
        shared,
        LABEL_LINK_PROOF,
        &[context.circle_id, context.dialer_nonce, context.listener_nonce, context.challenge, &[kind], id],
    ));
    let mut tag = [0u8; 32];
    tag.copy_from_slice(&material[..32]);
    Some(Proof { tag, keys: StreamKeys::split(&material[32..]) })
}

/// The dialer's side of the shared secret: X25519(its Noise static, challenge).
pub fn dialer_shared(noise: &NoiseSecret, challenge: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let secret = x25519_dalek::StaticSecret::from(*noise.expose_bytes());
    Zeroizing::new(secret.diffie_hellman(&x25519_dalek::PublicKey::from(*challenge)).to_bytes())
}

/// The dialer's side for an invite: X25519 with the invite key's secret
/// scalar (the Ed25519 key's, so the invite operation's public key is its
/// public half, in Montgomery form).
pub fn invite_shared(invite_scalar: &[u8; 32], challenge: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(x25519_dalek::x25519(*invite_scalar, *challenge))
}

/// An invite operation's public key (Ed25519) as the X25519 key the
/// listener checks an invite proof against; `None` if it is not a point.
pub fn invite_dh_public(invite_public: &[u8; 32]) -> Option<[u8; 32]> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(invite_public).ok()?;
    Some(key.to_montgomery().to_bytes())
}

/// The listener's challenge: a fresh X25519 key pair, used for one link.
pub struct Challenge {
    secret: x25519_dalek::StaticSecret,
    pub public: [u8; 32],
}

impl Challenge {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(seed);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }

    /// The listener's side: X25519(challenge secret, member's Noise public).
    pub fn shared_with(&self, member_noise_public: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.diffie_hellman(&x25519_dalek::PublicKey::from(*member_noise_public)).to_bytes())
    }
}

/// One direction's stream cipher: ChaCha20 under a per-link key with a
/// zero nonce (every link key is used for one stream only). The key state
/// (the cipher core) is erased on drop: chacha20's `zeroize` feature.
pub struct LinkCipher(ChaCha20);

impl LinkCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(ChaCha20::new(key.into(), &[0u8; 12].into()))
    }

    /// Encrypt or decrypt `buf` in place (the keystream continues).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn context<'a>(key: &'a [u8; 32], challenge: &'a [u8; 32]) -> ProofContext<'a> {
        ProofContext {
            network_key: key,
            circle_id: &[9; 32],
            dialer_nonce: &[1; 24],
            listener_nonce: &[2; 24],
            challenge,
        }
    }

    #[test]
    fn both_sides_compute_the_same_proof_and_only_the_member_can() {
        let member = NoiseSecret::from_bytes([5; 32]);
        let challenge = Challenge::from_seed([6; 32]);
        let ctx = context(&[7; 32], &challenge.public);
        let dialer = proof(&ctx, PROOF_MEMBER, &[3; 32], &dialer_shared(&member, &challenge.public)).unwrap();
        let listener = proof(&ctx, PROOF_MEMBER, &[3; 32], &challenge.shared_with(&member.public())).unwrap();
        assert_eq!(dialer.tag, listener.tag);
        assert_eq!(*dialer.keys.dialer_to_listener, *listener.keys.dialer_to_listener);
        let other = NoiseSecret::from_bytes([8; 32]);
        let forged = proof(&ctx, PROOF_MEMBER, &[3; 32], &dialer_shared(&other, &challenge.public)).unwrap();
        assert_ne!(forged.tag, listener.tag);
        // Bound to the member id claimed and to the link's nonces.
        assert_ne!(
            proof(&ctx, PROOF_MEMBER, &[4; 32], &challenge.shared_with(&member.public())).unwrap().tag,
            listener.tag
        );
        let other_link = ProofContext { dialer_nonce: &[0; 24], ..context(&[7; 32], &challenge.public) };
        assert_ne!(
            proof(&other_link, PROOF_MEMBER, &[3; 32], &challenge.shared_with(&member.public())).unwrap().tag,
            listener.tag
        );
    }

    #[test]
    fn an_invite_key_proves_against_the_invite_operations_public_key() {
        let invite = crate::circle::InviteSecret::from_seed(&[12; 32]);
        let challenge = Challenge::from_seed([6; 32]);
        let ctx = context(&[7; 32], &challenge.public);
        let dialer = proof(&ctx, PROOF_INVITE, &[3; 32], &invite_shared(&invite.dh_scalar(), &challenge.public));
        let public = invite_dh_public(&invite.public()).unwrap();
        let listener = proof(&ctx, PROOF_INVITE, &[3; 32], &challenge.shared_with(&public));
        assert_eq!(dialer.unwrap().tag, listener.as_ref().unwrap().tag);
        // A member proof with the same bytes is another proof.
        let as_member = proof(&ctx, PROOF_MEMBER, &[3; 32], &challenge.shared_with(&public)).unwrap();
        assert_ne!(as_member.tag, listener.unwrap().tag);
    }

    #[test]
    fn the_stream_cipher_erases_its_key_on_drop() {
        fn erased_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        erased_on_drop::<chacha20::ChaChaCore<chacha20::R20, chacha20::variants::Ietf>>();
    }

    #[test]
    fn a_low_order_challenge_gives_no_proof() {
        let member = NoiseSecret::from_bytes([5; 32]);
        let zero = [0u8; 32];
        assert!(proof(&context(&[7; 32], &zero), PROOF_MEMBER, &[3; 32], &dialer_shared(&member, &zero)).is_none());
    }

    #[test]
    fn stream_keys_differ_by_direction_key_and_nonce() {
        let a = stream_keys(&[1; 32], &[2; 32], &[3; 24], &[4; 24]);
        assert_ne!(*a.dialer_to_listener, *a.listener_to_dialer);
        assert_ne!(*stream_keys(&[9; 32], &[2; 32], &[3; 24], &[4; 24]).dialer_to_listener, *a.dialer_to_listener);
        assert_ne!(*stream_keys(&[1; 32], &[2; 32], &[3; 24], &[5; 24]).dialer_to_listener, *a.dialer_to_listener);
    }
}
