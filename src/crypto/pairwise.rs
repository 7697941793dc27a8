//! Pairwise Noise sessions over `snow`.
//!
//! Two uses, two patterns:
//!
//! * **Between members** (both static keys known from the roster):
//!   `Noise_KKpsk0_25519_ChaChaPoly_BLAKE2s`. Sessions are *one-way*: the
//!   sender of a direction is always the initiator, so two members never
//!   race to open the same session. The first message ([`KkInitiator`])
//!   already carries a payload, so a key distribution reaches an offline
//!   member as soon as any mailbox hands it over; the reply completes the
//!   session and later payloads travel under the transport keys.
//! * **First contact** (a joiner who knows no member keys yet):
//!   `Noise_XX_25519_ChaChaPoly_BLAKE2s`, see [`XxInitiator`] and
//!   [`XxResponder`].
//!
//! After a handshake the transport keys are taken out of snow
//! ([`Session`]) so they can be persisted; transport messages are
//! ChaCha20-Poly1305 with the explicit 64-bit nonce carried in the frame and
//! a sliding replay window on receipt, which tolerates gossip reordering.
//!
//! The prologue binds a protocol label, the circle id, the epoch and both
//! identities (KK), or the circle and the invite (XX). After every
//! handshake the remote static key is compared with the expected one.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CryptoError, aead, kdf};
use crate::entropy::{Entropy, random_array};
use crate::identity::{MemberId, NoiseSecret};
use crate::wire::{Reader, Writer};

pub const KK_PATTERN: &str = "Noise_KKpsk0_25519_ChaChaPoly_BLAKE2s";
pub const XX_PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
pub const LABEL_KK_PROLOGUE: &[u8] = b"kolo/v1/pairwise-kk";
pub const LABEL_XX_PROLOGUE: &[u8] = b"kolo/v1/join-xx";
pub const LABEL_SESSION_ID: &[u8] = b"kolo/v1/pair-session-id";
/// Largest Noise message snow handles.
const NOISE_MAX: usize = 65535;
/// Receive-side replay window, in nonces.
const WINDOW: u64 = 128;

pub type SessionId = [u8; 16];

/// Everything a KK prologue binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KkContext {
    pub circle_id: [u8; 32],
    pub epoch: u32,
    pub initiator: MemberId,
    pub responder: MemberId,
}

impl KkContext {
    pub fn prologue(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(LABEL_KK_PROLOGUE)
            .raw(&self.circle_id)
            .u32(self.epoch)
            .raw(self.initiator.as_bytes())
            .raw(self.responder.as_bytes());
        w.finish()
    }
}

/// The id both ends give a session: a hash of the first handshake message.
pub fn session_id(first_message: &[u8]) -> SessionId {
    let h = kdf::hash(LABEL_SESSION_ID, &[first_message]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    id
}

/// Snow's randomness, drawn from the caller's [`Entropy`] so the
/// simulation is reproducible: a SHA-256 counter generator seeded with 32
/// fresh bytes per handshake.
struct SeededRandom(crate::entropy::SeededEntropy);

impl snow::types::Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        use crate::entropy::Entropy as _;
        self.0.fill(dest);
        Ok(())
    }
}

struct Resolver {
    seed: std::sync::Mutex<Option<[u8; 32]>>,
    inner: snow::resolvers::DefaultResolver,
}

impl snow::resolvers::CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        let seed = self.seed.lock().ok()?.take()?;
        Some(Box::new(SeededRandom(crate::entropy::SeededEntropy::new(seed))))
    }
    fn resolve_dh(&self, c: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        self.inner.resolve_dh(c)
    }
    fn resolve_hash(&self, c: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        self.inner.resolve_hash(c)
    }
    fn resolve_cipher(&self, c: &snow::params::CipherChoice) -> Option<Box<dyn snow::types::Cipher>> {
        self.inner.resolve_cipher(c)
    }
}

fn builder(pattern: &str, rng: &mut dyn Entropy) -> Result<snow::Builder<'static>, CryptoError> {
    let params = pattern.parse().map_err(|_| CryptoError::Handshake("unknown noise pattern"))?;
    let resolver =
        Resolver { seed: std::sync::Mutex::new(Some(random_array(rng))), inner: snow::resolvers::DefaultResolver };
    Ok(snow::Builder::with_resolver(params, Box::new(resolver)))
}

fn hs_err(_: snow::Error) -> CryptoError {
    CryptoError::Handshake("noise message rejected")
}

fn write(hs: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; NOISE_MAX];
    let n = hs.write_message(payload, &mut buf).map_err(hs_err)?;
    buf.truncate(n);
    Ok(buf)
}

fn read(hs: &mut snow::HandshakeState, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if message.len() > NOISE_MAX {
        return Err(CryptoError::Handshake("noise message too long"));
    }
    let mut buf = vec![0u8; NOISE_MAX];
    let n = hs.read_message(message, &mut buf).map_err(hs_err)?;
    buf.truncate(n);
    Ok(buf)
}

fn remote_static_of(hs: &snow::HandshakeState) -> Result<[u8; 32], CryptoError> {
    hs.get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or(CryptoError::Handshake("no remote static key"))
}

fn into_session(mut hs: snow::HandshakeState, id: SessionId) -> Result<Session, CryptoError> {
    if !hs.is_handshake_finished() {
        return Err(CryptoError::SessionState);
    }
    let initiator = hs.is_initiator();
    let (mut k1, mut k2) = hs.dangerously_get_raw_split();
    let session = if initiator { Session::new(id, k1, k2) } else { Session::new(id, k2, k1) };
    k1.zeroize();
    k2.zeroize();
    Ok(session)
}

/// A KK handshake state for either side, with the prologue and psk bound.
fn kk_handshake(
    local: &NoiseSecret,
    remote_static: &[u8; 32],
    psk: &[u8; 32],
    context: &KkContext,
    initiator: bool,
    rng: &mut dyn Entropy,
) -> Result<snow::HandshakeState, CryptoError> {
    let prologue = context.prologue();
    let b = builder(KK_PATTERN, rng)?
        .local_private_key(local.expose_bytes())
        .and_then(|b| b.remote_public_key(remote_static))
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.psk(0, psk))
        .map_err(hs_err)?;
    if initiator { b.build_initiator() } else { b.build_responder() }.map_err(hs_err)
}

/// The sending side of a KK handshake, waiting for the reply.
pub struct KkInitiator {
    hs: snow::HandshakeState,
    id: SessionId,
    expected_remote: [u8; 32],
}

impl KkInitiator {
    /// Start a session to `remote_static`; `payload` rides in the first message.
    pub fn start(
        local: &NoiseSecret,
        remote_static: &[u8; 32],
        psk: &[u8; 32],
        context: &KkContext,
        payload: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(Self, Vec<u8>), CryptoError> {
        let mut hs = kk_handshake(local, remote_static, psk, context, true, rng)?;
        let message = write(&mut hs, payload)?;
        let id = session_id(&message);
        Ok((Self { hs, id, expected_remote: *remote_static }, message))
    }

    pub fn session_id(&self) -> SessionId {
        self.id
    }

    /// Complete with the responder's reply; returns the session and the
    /// reply's payload.
    pub fn finish(mut self, reply: &[u8]) -> Result<(Session, Vec<u8>), CryptoError> {
        let payload = read(&mut self.hs, reply)?;
        if remote_static_of(&self.hs)? != self.expected_remote {
            return Err(CryptoError::WrongRemoteKey);
        }
        Ok((into_session(self.hs, self.id)?, payload))
    }
}

/// Answer a KK first message: returns the session, the first message's
/// payload, and the reply to send back.
pub fn kk_respond(
    local: &NoiseSecret,
    remote_static: &[u8; 32],
    psk: &[u8; 32],
    context: &KkContext,
    first_message: &[u8],
    reply_payload: &[u8],
    rng: &mut dyn Entropy,
) -> Result<(Session, Vec<u8>, Vec<u8>), CryptoError> {
    let mut hs = kk_handshake(local, remote_static, psk, context, false, rng)?;
    let payload = read(&mut hs, first_message)?;
    if remote_static_of(&hs)? != *remote_static {
        return Err(CryptoError::WrongRemoteKey);
    }
    let reply = write(&mut hs, reply_payload)?;
    let id = session_id(first_message);
    Ok((into_session(hs, id)?, payload, reply))
}

/// An XX handshake state for either side, with the join prologue bound.
fn xx_handshake(
    local: &NoiseSecret,
    circle_id: &[u8; 32],
    invite_op: &[u8; 32],
    initiator: bool,
    rng: &mut dyn Entropy,
) -> Result<snow::HandshakeState, CryptoError> {
    let mut w = Writer::new();
    w.raw(LABEL_XX_PROLOGUE).raw(circle_id).raw(invite_op);
    let prologue = w.finish();
    let b = builder(XX_PATTERN, rng)?
        .local_private_key(local.expose_bytes())
        .and_then(|b| b.prologue(&prologue))
        .map_err(hs_err)?;
    if initiator { b.build_initiator() } else { b.build_responder() }.map_err(hs_err)
}

/// The joiner's side of first contact.
pub struct XxInitiator {
    hs: snow::HandshakeState,
    id: SessionId,
}

impl XxInitiator {
    pub fn start(
        local: &NoiseSecret,
        circle_id: &[u8; 32],
        invite_op: &[u8; 32],
        rng: &mut dyn Entropy,
    ) -> Result<(Self, Vec<u8>), CryptoError> {
        let mut hs = xx_handshake(local, circle_id, invite_op, true, rng)?;
        let message = write(&mut hs, &[])?;
        let id = session_id(&message);
        Ok((Self { hs, id }, message))
    }

    /// Read the member's reply: returns its static key and payload. The
    /// caller checks the key against the member's signed binding.
    pub fn read_reply(&mut self, reply: &[u8]) -> Result<([u8; 32], Vec<u8>), CryptoError> {
        let payload = read(&mut self.hs, reply)?;
        Ok((remote_static_of(&self.hs)?, payload))
    }

    /// Send our static key and the join request; the session follows.
    pub fn finish(mut self, payload: &[u8]) -> Result<(Session, Vec<u8>), CryptoError> {
        let message = write(&mut self.hs, payload)?;
        Ok((into_session(self.hs, self.id)?, message))
    }
}

/// A member's side of first contact.
pub struct XxResponder {
    hs: snow::HandshakeState,
    id: SessionId,
}

impl XxResponder {
    pub fn respond(
        local: &NoiseSecret,
        circle_id: &[u8; 32],
        invite_op: &[u8; 32],
        first_message: &[u8],
        payload: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(Self, Vec<u8>), CryptoError> {
        let mut hs = xx_handshake(local, circle_id, invite_op, false, rng)?;
        // SPEC §8: message 1 is the joiner's ephemeral key alone.
        if !read(&mut hs, first_message)?.is_empty() {
            return Err(CryptoError::Handshake("join hello carries a payload"));
        }
        let reply = write(&mut hs, payload)?;
        Ok((Self { hs, id: session_id(first_message) }, reply))
    }

    /// Read the joiner's final message: its static key, payload, and the session.
    pub fn finish(mut self, message: &[u8]) -> Result<([u8; 32], Vec<u8>, Session), CryptoError> {
        let payload = read(&mut self.hs, message)?;
        let remote = remote_static_of(&self.hs)?;
        Ok((remote, payload, into_session(self.hs, self.id)?))
    }
}

/// Transport keys of a finished handshake, with explicit nonces and a
/// sliding replay window so frames may arrive in any order.
#[derive(ZeroizeOnDrop)]
pub struct Session {
    #[zeroize(skip)]
    id: SessionId,
    send_key: [u8; 32],
    recv_key: [u8; 32],
    #[zeroize(skip)]
    next_send: u64,
    /// Highest nonce accepted so far, plus one (0 = none yet).
    #[zeroize(skip)]
    recv_top: u64,
    /// Bit i set = nonce `recv_top - 1 - i` was accepted.
    #[zeroize(skip)]
    recv_seen: u128,
}

fn nonce_bytes(n: u64) -> [u8; 12] {
    // Noise's ChaChaPoly nonce: 32 zero bits then the counter little-endian.
    let mut out = [0u8; 12];
    out[4..].copy_from_slice(&n.to_le_bytes());
    out
}

impl Session {
    fn new(id: SessionId, send_key: [u8; 32], recv_key: [u8; 32]) -> Self {
        Self { id, send_key, recv_key, next_send: 0, recv_top: 0, recv_seen: 0 }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The nonce the next [`Session::seal`] will use (frames name it in
    /// their authenticated header).
    pub fn next_nonce(&self) -> u64 {
        self.next_send
    }

    /// Encrypt under the next nonce; `ad` is the frame header.
    pub fn seal(&mut self, ad: &[u8], payload: &[u8]) -> Result<(u64, Vec<u8>), CryptoError> {
        let nonce = self.next_send;
        if nonce == u64::MAX {
            return Err(CryptoError::ChainExhausted);
        }
        let ct = aead::seal(&self.send_key, &nonce_bytes(nonce), ad, payload)?;
        self.next_send += 1;
        Ok((nonce, ct))
    }

    fn window_check(&self, nonce: u64) -> Result<(), CryptoError> {
        let replay = CryptoError::Replay { counter: nonce.min(u64::from(u32::MAX)) as u32 };
        if nonce >= self.recv_top {
            return Ok(());
        }
        let age = self.recv_top - 1 - nonce;
        if age >= WINDOW || self.recv_seen & (1u128 << age) != 0 {
            return Err(replay);
        }
        Ok(())
    }

    /// Decrypt; rejects replays and nonces older than the window. The
    /// window moves only after the AEAD check passed.
    pub fn open(&mut self, ad: &[u8], nonce: u64, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.window_check(nonce)?;
        let plaintext = aead::open(&self.recv_key, &nonce_bytes(nonce), ad, ciphertext)?;
        if nonce >= self.recv_top {
            let shift = nonce + 1 - self.recv_top;
            self.recv_seen = if shift >= WINDOW { 0 } else { self.recv_seen << shift };
            self.recv_top = nonce + 1;
            self.recv_seen |= 1;
        } else {
            self.recv_seen |= 1u128 << (self.recv_top - 1 - nonce);
        }
        Ok(plaintext)
    }

    /// Serialize for the encrypted store.
    pub fn export(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(112);
        w.raw(&self.id)
            .raw(&self.send_key)
            .raw(&self.recv_key)
            .u64(self.next_send)
            .u64(self.recv_top)
            .raw(&self.recv_seen.to_be_bytes());
        w.finish()
    }

    pub fn import(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(bytes);
        let s = Self {
            id: r.array()?,
            send_key: r.array()?,
            recv_key: r.array()?,
            next_send: r.u64()?,
            recv_top: r.u64()?,
            recv_seen: u128::from_be_bytes(r.array()?),
        };
        r.finish()?;
        Ok(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::identity::IdentitySecret;

    struct Party {
        id: MemberId,
        noise: NoiseSecret,
    }

    fn party(rng: &mut SeededEntropy) -> Party {
        Party { id: IdentitySecret::generate(rng).member_id(), noise: NoiseSecret::generate(rng) }
    }

    fn ctx(a: &Party, b: &Party) -> KkContext {
        KkContext { circle_id: [9; 32], epoch: 2, initiator: a.id, responder: b.id }
    }

    #[test]
    fn kk_round_trip_both_directions() {
        let mut rng = SeededEntropy::from_u64(21);
        let (a, b) = (party(&mut rng), party(&mut rng));
        let psk = [5u8; 32];
        let (init, hello) =
            KkInitiator::start(&a.noise, &b.noise.public(), &psk, &ctx(&a, &b), b"key1", &mut rng).unwrap();
        let (mut b_sess, payload, reply) =
            kk_respond(&b.noise, &a.noise.public(), &psk, &ctx(&a, &b), &hello, b"", &mut rng).unwrap();
        assert_eq!(payload, b"key1");
        let (mut a_sess, _) = init.finish(&reply).unwrap();
        assert_eq!(a_sess.id(), b_sess.id());
        let (n0, c0) = a_sess.seal(b"hdr", b"m0").unwrap();
        let (n1, c1) = a_sess.seal(b"hdr", b"m1").unwrap();
        // Out of order, then a replay.
        assert_eq!(b_sess.open(b"hdr", n1, &c1).unwrap(), b"m1");
        assert_eq!(b_sess.open(b"hdr", n0, &c0).unwrap(), b"m0");
        assert!(matches!(b_sess.open(b"hdr", n0, &c0), Err(CryptoError::Replay { .. })));
        // Wrong associated data fails and does not consume the nonce.
        let (n2, c2) = a_sess.seal(b"hdr", b"m2").unwrap();
        assert!(b_sess.open(b"other", n2, &c2).is_err());
        assert_eq!(b_sess.open(b"hdr", n2, &c2).unwrap(), b"m2");
        let (n, c) = b_sess.seal(b"h", b"back").unwrap();
        assert_eq!(a_sess.open(b"h", n, &c).unwrap(), b"back");
    }

    #[test]
    fn kk_refuses_wrong_static_key_prologue_or_psk() {
        let mut rng = SeededEntropy::from_u64(22);
        let (a, b, mallory) = (party(&mut rng), party(&mut rng), party(&mut rng));
        let psk = [5u8; 32];
        let (_, hello) =
            KkInitiator::start(&mallory.noise, &b.noise.public(), &psk, &ctx(&a, &b), b"x", &mut rng).unwrap();
        // B expects A's static key: Mallory's handshake fails.
        assert!(kk_respond(&b.noise, &a.noise.public(), &psk, &ctx(&a, &b), &hello, b"", &mut rng).is_err());
        let (_, hello) = KkInitiator::start(&a.noise, &b.noise.public(), &psk, &ctx(&a, &b), b"x", &mut rng).unwrap();
        let mut other_circle = ctx(&a, &b);
        other_circle.circle_id = [1; 32];
        assert!(kk_respond(&b.noise, &a.noise.public(), &psk, &other_circle, &hello, b"", &mut rng).is_err());
        let mut other_epoch = ctx(&a, &b);
        other_epoch.epoch = 3;
        assert!(kk_respond(&b.noise, &a.noise.public(), &psk, &other_epoch, &hello, b"", &mut rng).is_err());
        assert!(kk_respond(&b.noise, &a.noise.public(), &[6; 32], &ctx(&a, &b), &hello, b"", &mut rng).is_err());
    }

    #[test]
    fn xx_first_contact() {
        let mut rng = SeededEntropy::from_u64(23);
        let (joiner, member) = (party(&mut rng), party(&mut rng));
        let (circle, invite) = ([1u8; 32], [2u8; 32]);
        let (mut init, m1) = XxInitiator::start(&joiner.noise, &circle, &invite, &mut rng).unwrap();
        let (resp, m2) = XxResponder::respond(&member.noise, &circle, &invite, &m1, b"proof", &mut rng).unwrap();
        let (member_static, p2) = init.read_reply(&m2).unwrap();
        assert_eq!(member_static, member.noise.public());
        assert_eq!(p2, b"proof");
        let (mut js, m3) = init.finish(b"join").unwrap();
        let (joiner_static, p3, mut ms) = resp.finish(&m3).unwrap();
        assert_eq!(joiner_static, joiner.noise.public());
        assert_eq!(p3, b"join");
        let (n, c) = ms.seal(b"", b"welcome").unwrap();
        assert_eq!(js.open(b"", n, &c).unwrap(), b"welcome");
        // A different invite in the prologue fails.
        let (_, m1) = XxInitiator::start(&joiner.noise, &circle, &invite, &mut rng).unwrap();
        let (_, m2) = XxResponder::respond(&member.noise, &circle, &[3; 32], &m1, b"", &mut rng).unwrap();
        let (mut init2, _) = XxInitiator::start(&joiner.noise, &circle, &invite, &mut rng).unwrap();
        assert!(init2.read_reply(&m2).is_err());
        // Message 1 with a payload is refused (SPEC §8: the ephemeral alone).
        let mut hs = xx_handshake(&joiner.noise, &circle, &invite, true, &mut rng).unwrap();
        let m1 = write(&mut hs, b"extra").unwrap();
        assert!(XxResponder::respond(&member.noise, &circle, &invite, &m1, b"", &mut rng).is_err());
    }

    #[test]
    fn session_export_round_trip_and_window() {
        let mut rng = SeededEntropy::from_u64(24);
        let (a, b) = (party(&mut rng), party(&mut rng));
        let psk = [0u8; 32];
        let (init, hello) = KkInitiator::start(&a.noise, &b.noise.public(), &psk, &ctx(&a, &b), b"", &mut rng).unwrap();
        let (mut bs, _, reply) =
            kk_respond(&b.noise, &a.noise.public(), &psk, &ctx(&a, &b), &hello, b"", &mut rng).unwrap();
        let (mut a_s, _) = init.finish(&reply).unwrap();
        let old: Vec<(u64, Vec<u8>)> = (0..200).map(|_| a_s.seal(b"", b"m").unwrap()).collect();
        bs.open(b"", old[199].0, &old[199].1).unwrap();
        // Older than the window: refused as a possible replay.
        assert!(bs.open(b"", old[0].0, &old[0].1).is_err());
        assert!(bs.open(b"", old[150].0, &old[150].1).is_ok());
        let restored = Session::import(&bs.export()).unwrap();
        assert_eq!(restored.export(), bs.export());
    }
}
