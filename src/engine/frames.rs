//! Frame layouts other than the group envelope (which lives in
//! `crypto::envelope`): pairwise, join and sync frames, and the payloads
//! carried inside pairwise and join sessions. Byte layouts are in
//! `protocol/SPEC.md`; every decoder here is total over arbitrary input.

use crate::crypto::ratchet::{KeyId, SenderKeyDistribution};
use crate::identity::{MemberId, PairwiseKey, SignedPairwiseKey};
use crate::wire::{self, Reader, WireError, Writer, frame_type};
use zeroize::Zeroizing;

/// Largest frame accepted on the circle topic (gossip and sync).
pub const MAX_GOSSIP_FRAME: usize = 256 * 1024;
/// Largest frame accepted on a direct (request-response) exchange.
pub const MAX_DIRECT_FRAME: usize = 4 * 1024 * 1024;
/// Most frames a sync request may list or a response may carry.
pub const MAX_SYNC_ITEMS: usize = 100_000;
pub const MAX_LOG_OPS: usize = 10_000;
pub const MAX_HEADS: usize = 16;
pub const TAG_LEN: usize = 16;
/// The largest padded pairwise payload (SPEC §5.3, §6.3): it rides in the
/// first message of a KK handshake, 32 + padded + 16 bytes, and a Noise
/// message is at most 65,535 bytes, so the 65,536 bucket never holds one.
pub const MAX_PAIR_PADDED: usize = 32 * 1024;

pub type Tag = [u8; TAG_LEN];

/// A decoded pairwise frame (protocol v2: every pairwise payload travels
/// in the first message of its own handshake, SPEC §6.1). `to_key` and
/// `from_key` name the recipient's and the sender's pairwise keys
/// (`engine::prekeys`) the handshake uses.
#[derive(Debug, PartialEq, Eq)]
pub struct PairFrame<'a> {
    pub to: Tag,
    pub from: Tag,
    pub epoch: u32,
    pub to_key: u32,
    pub noise: &'a [u8],
}

fn prefix(w: &mut Writer, kind: u8) {
    w.u8(wire::VERSION).u8(kind);
}

pub fn encode_hello(frame: &PairFrame<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(44 + frame.noise.len());
    prefix(&mut w, frame_type::PAIR_HELLO);
    w.raw(&frame.to).raw(&frame.from).u32(frame.epoch).u32(frame.to_key).raw(frame.noise);
    w.finish()
}

/// A chain announcement (SPEC §5.1a): `02 05 u32 epoch [16] from_tag
/// [12] nonce <ciphertext>`, the first 34 bytes its associated data.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainAnnounce<'a> {
    pub epoch: u32,
    pub from: Tag,
    pub nonce: [u8; 12],
    pub header: &'a [u8],
    pub ciphertext: &'a [u8],
}

pub const CHAIN_ANNOUNCE_HEADER: usize = 2 + 4 + 16 + 12;

pub fn chain_announce_header(epoch: u32, from: &Tag, nonce: &[u8; 12]) -> Vec<u8> {
    let mut w = Writer::with_capacity(CHAIN_ANNOUNCE_HEADER);
    prefix(&mut w, frame_type::CHAIN_ANNOUNCE);
    w.u32(epoch).raw(from).raw(nonce);
    w.finish()
}

pub fn parse_chain_announce(bytes: &[u8]) -> Result<ChainAnnounce<'_>, WireError> {
    if bytes.len() > MAX_GOSSIP_FRAME {
        return Err(WireError::TooLong(bytes.len()));
    }
    if wire::read_prefix(bytes)? != frame_type::CHAIN_ANNOUNCE {
        return Err(WireError::Invalid("not a chain announcement"));
    }
    let mut r = Reader::new(bytes.get(2..).ok_or(WireError::Truncated)?);
    let epoch = r.u32()?;
    let from = r.array()?;
    let nonce = r.array()?;
    Ok(ChainAnnounce { epoch, from, nonce, header: &bytes[..CHAIN_ANNOUNCE_HEADER], ciphertext: r.rest() })
}

/// What a member's previous chain signs in its announcement of a new one.
pub fn chain_announce_signed(circle_id: &[u8; 32], epoch: u32, payload: &[u8]) -> Vec<u8> {
    [crate::crypto::kdf::LABEL_CHAIN_ANNOUNCE, circle_id, &epoch.to_be_bytes(), payload].concat()
}

/// Length of the outer authenticator every pairwise frame ends with
/// (SPEC §6.2b): `u32 mac_epoch || [16] mac`.
pub const FRAME_MAC_TRAILER: usize = 4 + 16;

/// The per-epoch key every current member holds and uses to authenticate
/// pairwise frames to each other (SPEC §4.1).
pub fn frame_mac_key(circle_secret: &[u8; 32], circle_id: &[u8; 32], epoch: u32) -> zeroize::Zeroizing<[u8; 32]> {
    zeroize::Zeroizing::new(crate::crypto::kdf::derive(
        circle_id,
        circle_secret,
        crate::crypto::kdf::LABEL_FRAME_MAC,
        &[&epoch.to_be_bytes()],
    ))
}

fn frame_mac(key: &[u8; 32], authenticated: &[u8]) -> [u8; 16] {
    use hmac::{KeyInit, Mac};
    let mut out = [0u8; 16];
    if let Ok(mut m) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        m.update(authenticated);
        out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
    out
}

/// Append the outer authenticator under epoch `epoch`'s frame key.
pub fn add_frame_mac(mut frame: Vec<u8>, circle_secret: &[u8; 32], circle_id: &[u8; 32], epoch: u32) -> Vec<u8> {
    frame.extend_from_slice(&epoch.to_be_bytes());
    let mac = frame_mac(&frame_mac_key(circle_secret, circle_id, epoch), &frame);
    frame.extend_from_slice(&mac);
    frame
}

/// The epoch a pairwise frame's authenticator names, if it is long enough
/// to have one.
pub fn frame_mac_epoch(bytes: &[u8]) -> Option<u32> {
    let at = bytes.len().checked_sub(FRAME_MAC_TRAILER)?;
    let e: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(e))
}

/// Whether a pairwise frame's authenticator verifies under its epoch's key
/// (constant time).
pub fn frame_mac_valid(bytes: &[u8], circle_secret: &[u8; 32], circle_id: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    let Some(epoch) = frame_mac_epoch(bytes) else {
        return false;
    };
    let (authenticated, mac) = bytes.split_at(bytes.len() - 16);
    let expected = frame_mac(&frame_mac_key(circle_secret, circle_id, epoch), authenticated);
    bool::from(expected.ct_eq(mac))
}

/// Parse a pairwise frame (its authenticator is split off, not checked:
/// see [`frame_mac_valid`]).
pub fn parse_pair(bytes: &[u8]) -> Result<PairFrame<'_>, WireError> {
    if bytes.len() > MAX_GOSSIP_FRAME {
        return Err(WireError::TooLong(bytes.len()));
    }
    let kind = wire::read_prefix(bytes)?;
    let body_len = bytes.len().checked_sub(FRAME_MAC_TRAILER).ok_or(WireError::Truncated)?;
    let body = &bytes[..body_len];
    if body.len() < 2 {
        return Err(WireError::Truncated);
    }
    if kind != frame_type::PAIR_HELLO {
        return Err(WireError::UnknownType(kind));
    }
    let mut r = Reader::new(&body[2..]);
    Ok(PairFrame { to: r.array()?, from: r.array()?, epoch: r.u32()?, to_key: r.u32()?, noise: r.rest() })
}

/// What travels inside a pairwise session (padded to a bucket).
pub enum PairPayload {
    /// A sending chain for the recipient to read us with, the final
    /// counter of the chain it replaces, and our log heads (so a member
    /// missing operations can ask for them).
    /// A new sending chain. `context` is the sender's group context (SPEC
    /// §4.5); `owner_proof` is the chain signing key's signature binding
    /// the chain to its sender, epoch and context (`chain_owner_message`).
    SenderKey {
        distribution: SenderKeyDistribution,
        context: [u8; 32],
        owner_proof: [u8; 64],
        previous: Option<(KeyId, u32)>,
        heads: Vec<[u8; 32]>,
    },
    /// "Send me the membership log; I am missing operations."
    LogRequest,
    /// The membership log, genesis first.
    LogOps(Vec<Vec<u8>>),
    /// The secret of `epoch`, from its rekeyer (SPEC §5.1a); `raiser` is
    /// the operation that started the epoch.
    EpochKey { epoch: u32, raiser: [u8; 32], secret: zeroize::Zeroizing<[u8; 32]> },
    /// "Send me your current chain pairwise": the sender could not verify
    /// our chain announcement (it lacks the chain that signed it).
    ChainRequest,
}

impl PairPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        match self {
            PairPayload::SenderKey { distribution: d, context, owner_proof, previous, heads } => {
                w.u8(1).u32(d.epoch).raw(&d.signing_public).raw(&d.chain_key).u32(d.counter);
                w.raw(context).raw(owner_proof);
                match previous {
                    Some((id, last)) => w.u8(1).raw(id).u32(*last),
                    None => w.u8(0),
                };
                let heads = &heads[..heads.len().min(MAX_HEADS)];
                w.u8(heads.len() as u8);
                for h in heads {
                    w.raw(h);
                }
            }
            PairPayload::LogRequest => {
                w.u8(2);
            }
            PairPayload::LogOps(ops) => {
                encode_ops(w.u8(3), ops);
            }
            PairPayload::EpochKey { epoch, raiser, secret } => {
                w.u8(4).u32(*epoch).raw(raiser).raw(&secret[..]);
            }
            PairPayload::ChainRequest => {
                w.u8(5);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let payload = match r.u8()? {
            1 => {
                let distribution = SenderKeyDistribution {
                    epoch: r.u32()?,
                    signing_public: r.array()?,
                    chain_key: r.array()?,
                    counter: r.u32()?,
                };
                let context = r.array()?;
                let owner_proof = r.array()?;
                let previous = match r.u8()? {
                    0 => None,
                    1 => Some((r.array()?, r.u32()?)),
                    code => {
                        return Err(WireError::UnknownCode { what: "previous flag", code });
                    }
                };
                let n = r.u8()? as usize;
                if n > MAX_HEADS {
                    return Err(WireError::LimitExceeded { what: "heads", limit: MAX_HEADS });
                }
                let heads = (0..n).map(|_| r.array()).collect::<Result<_, _>>()?;
                PairPayload::SenderKey { distribution, context, owner_proof, previous, heads }
            }
            2 => PairPayload::LogRequest,
            3 => PairPayload::LogOps(decode_ops(&mut r)?),
            4 => PairPayload::EpochKey {
                epoch: r.u32()?,
                raiser: r.array()?,
                secret: zeroize::Zeroizing::new(r.array()?),
            },
            5 => PairPayload::ChainRequest,
            code => {
                return Err(WireError::UnknownCode { what: "pairwise payload", code });
            }
        };
        r.finish()?;
        Ok(payload)
    }
}

/// Most members' pairwise keys one welcome carries (a welcome fits far
/// fewer members than this).
pub const MAX_WELCOME_KEYS: usize = 512;
/// One welcome pairwise key entry: member, id, public key, signature.
pub const WELCOME_KEY_BYTES: usize = 32 + 4 + 32 + 64;

fn encode_ops(w: &mut Writer, ops: &[Vec<u8>]) {
    let ops = &ops[..ops.len().min(MAX_LOG_OPS)];
    w.u16(ops.len() as u16);
    for op in ops {
        w.bytes32(op);
    }
}

fn decode_ops(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, WireError> {
    let n = r.u16()? as usize;
    if n > MAX_LOG_OPS {
        return Err(WireError::LimitExceeded { what: "operations", limit: MAX_LOG_OPS });
    }
    (0..n).map(|_| r.bytes32("op", super::message::MAX_OP).map(<[u8]>::to_vec)).collect()
}

/// A decoded direct (request-response) frame.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectFrame<'a> {
    JoinHello {
        invite_op: [u8; 32],
        /// Ed25519 by the invite key over [`join_hello_signed`].
        invite_proof: [u8; 64],
        /// Keyed by the id of the joiner's Join operation: lets a joiner
        /// whose invite its own Join already used start over (§8).
        join_tag: [u8; 32],
        noise: &'a [u8],
    },
    JoinReply {
        noise: &'a [u8],
    },
    JoinRequest {
        noise: &'a [u8],
    },
    JoinAnswer {
        nonce: u64,
        header: &'a [u8],
        ciphertext: &'a [u8],
    },
    /// Authenticated under the frame key (SPEC §7); the check is the
    /// engine's ([`frame_mac_valid`] over the whole frame).
    /// A member's refusal of a JOIN_HELLO (SPEC §8): nothing identifying.
    JoinRefused {
        invite_op: [u8; 32],
        reason: u8,
    },
    SyncRequest {
        sent_at_ms: u64,
        have: Vec<[u8; 8]>,
    },
    SyncResponse {
        frames: Vec<&'a [u8]>,
    },
    /// A pairwise frame (§6) handed to its recipient directly instead of
    /// through the topic: the same bytes, handled as if gossiped.
    Pairwise {
        frame: &'a [u8],
    },
}

pub fn encode_join_hello(invite_op: &[u8; 32], invite_proof: &[u8; 64], join_tag: &[u8; 32], noise: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    prefix(&mut w, frame_type::JOIN_HELLO);
    w.raw(invite_op).raw(invite_proof).raw(join_tag).raw(noise);
    w.finish()
}

/// What the invite key signs in a JOIN_HELLO (SPEC §8).
pub fn join_hello_signed(circle_id: &[u8; 32], invite_op: &[u8; 32], join_tag: &[u8; 32], noise: &[u8]) -> Vec<u8> {
    [crate::crypto::kdf::LABEL_JOIN_HELLO, circle_id, invite_op, join_tag, noise].concat()
}

/// The JOIN_HELLO's `join_tag`: the id of the joiner's Join operation,
/// hashed with the handshake's first message (SPEC §8).
pub fn join_tag(join_op_id: &[u8; 32], noise: &[u8]) -> [u8; 32] {
    crate::crypto::kdf::hash(crate::crypto::kdf::LABEL_JOIN_TAG, &[join_op_id, noise])
}

pub fn encode_join_noise(kind: u8, noise: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    prefix(&mut w, kind);
    w.raw(noise);
    w.finish()
}

/// JOIN_REFUSED reasons (SPEC §8); the link's closed-invite status gives
/// the same codes (§2a).
pub use crate::crypto::link::{REFUSED_EXPIRED, REFUSED_REVOKED, REFUSED_USED};
pub const REFUSED_UNPROVEN: u8 = 3;

pub fn encode_join_refused(invite_op: &[u8; 32], reason: u8) -> Vec<u8> {
    let mut w = Writer::new();
    prefix(&mut w, frame_type::JOIN_REFUSED);
    w.raw(invite_op).u8(reason);
    w.finish()
}

pub fn join_answer_header(nonce: u64) -> Vec<u8> {
    let mut w = Writer::new();
    prefix(&mut w, frame_type::JOIN_ANSWER);
    w.u64(nonce);
    w.finish()
}

/// A SYNC_REQUEST without its authenticator (add it with [`add_frame_mac`]).
pub fn encode_sync_request(sent_at_ms: u64, have: &[[u8; 8]]) -> Vec<u8> {
    let have = &have[..have.len().min(MAX_SYNC_ITEMS)];
    let mut w = Writer::with_capacity(14 + have.len() * 8 + FRAME_MAC_TRAILER);
    prefix(&mut w, frame_type::SYNC_REQUEST);
    w.u64(sent_at_ms);
    w.u32(have.len() as u32);
    for h in have {
        w.raw(h);
    }
    w.finish()
}

pub fn encode_sync_response(frames: &[&[u8]]) -> Vec<u8> {
    let mut w = Writer::new();
    prefix(&mut w, frame_type::SYNC_RESPONSE);
    w.u32(frames.len() as u32);
    for f in frames {
        w.bytes32(f);
    }
    w.finish()
}

pub fn parse_direct(bytes: &[u8]) -> Result<DirectFrame<'_>, WireError> {
    // Direct frames have their own cap: a catch-up answer (or the summary
    // of a large store) is far longer than one gossip frame may be.
    let kind = wire::read_prefix_within(bytes, MAX_DIRECT_FRAME)?;
    let mut r = Reader::new(&bytes[2..]);
    let frame = match kind {
        frame_type::JOIN_HELLO => DirectFrame::JoinHello {
            invite_op: r.array()?,
            invite_proof: r.array()?,
            join_tag: r.array()?,
            noise: r.rest(),
        },
        frame_type::JOIN_REPLY => DirectFrame::JoinReply { noise: r.rest() },
        frame_type::JOIN_REQUEST => DirectFrame::JoinRequest { noise: r.rest() },
        frame_type::JOIN_REFUSED => {
            let invite_op = r.array()?;
            let reason = r.u8()?;
            if !(REFUSED_USED..=REFUSED_REVOKED).contains(&reason) {
                return Err(WireError::UnknownCode { what: "join refusal reason", code: reason });
            }
            r.finish()?;
            DirectFrame::JoinRefused { invite_op, reason }
        }
        frame_type::JOIN_ANSWER => {
            DirectFrame::JoinAnswer { nonce: r.u64()?, header: &bytes[..10], ciphertext: r.rest() }
        }
        frame_type::SYNC_REQUEST => {
            let body_len = bytes.len().checked_sub(FRAME_MAC_TRAILER).ok_or(WireError::Truncated)?;
            let mut r = Reader::new(bytes.get(2..body_len).ok_or(WireError::Truncated)?);
            let sent_at_ms = r.u64()?;
            let n = r.u32()? as usize;
            if n > MAX_SYNC_ITEMS {
                return Err(WireError::LimitExceeded { what: "sync list", limit: MAX_SYNC_ITEMS });
            }
            let have = (0..n).map(|_| r.array()).collect::<Result<_, _>>()?;
            r.finish()?;
            DirectFrame::SyncRequest { sent_at_ms, have }
        }
        frame_type::SYNC_RESPONSE => {
            let n = r.u32()? as usize;
            if n > MAX_SYNC_ITEMS {
                return Err(WireError::LimitExceeded { what: "sync frames", limit: MAX_SYNC_ITEMS });
            }
            let frames = (0..n).map(|_| r.bytes32("frame", MAX_GOSSIP_FRAME)).collect::<Result<_, _>>()?;
            r.finish()?;
            DirectFrame::SyncResponse { frames }
        }
        frame_type::PAIR_HELLO => {
            parse_pair(bytes)?;
            DirectFrame::Pairwise { frame: bytes }
        }
        other => return Err(WireError::UnknownType(other)),
    };
    Ok(frame)
}

/// Inside the join session, from member to joiner.
pub enum JoinAnswer {
    /// `circle_secret` gives the network key; `epoch_meta` is the pairwise
    /// secret of the epoch the admission started (`raiser` is the Admit).
    /// `chain` is the admitter's SenderKey payload (§6.3), so the joiner
    /// reads the admitter from the welcome on, whatever reaches it first.
    /// The secrets are erased when the answer is dropped, on the
    /// admitter's side as on the joiner's. `pairwise_keys` are the
    /// members' newest pairwise keys the admitter knows of (its own
    /// included), each signed by its member, so that the joiner's first
    /// chain goes to keys their members erase in time (SPEC §6.1).
    Welcome {
        circle_secret: Zeroizing<[u8; 32]>,
        epoch: u32,
        raiser: [u8; 32],
        epoch_meta: Zeroizing<[u8; 32]>,
        chain: Zeroizing<Vec<u8>>,
        ops: Vec<Vec<u8>>,
        pairwise_keys: Vec<(MemberId, SignedPairwiseKey)>,
    },
    /// `fatal`: no member will admit with this invite (used, expired);
    /// otherwise another member may.
    Refused { fatal: bool, reason: String },
}

impl JoinAnswer {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            JoinAnswer::Welcome { circle_secret, epoch, raiser, epoch_meta, chain, ops, pairwise_keys } => {
                encode_ops(
                    w.u8(1).raw(&**circle_secret).u32(*epoch).raw(raiser).raw(&**epoch_meta).bytes32(chain),
                    ops,
                );
                let keys = &pairwise_keys[..pairwise_keys.len().min(MAX_WELCOME_KEYS)];
                w.u16(keys.len() as u16);
                for (member, k) in keys {
                    w.raw(member.as_bytes()).u32(k.key.id).raw(&k.key.public).raw(&k.signature);
                }
            }
            JoinAnswer::Refused { fatal, reason } => {
                w.u8(2).u8(u8::from(*fatal)).str16(reason);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let answer = match r.u8()? {
            1 => JoinAnswer::Welcome {
                circle_secret: Zeroizing::new(r.array()?),
                epoch: r.u32()?,
                raiser: r.array()?,
                epoch_meta: Zeroizing::new(r.array()?),
                chain: Zeroizing::new(r.bytes32("chain", 4096)?.to_vec()),
                ops: decode_ops(&mut r)?,
                pairwise_keys: {
                    let n = r.u16()? as usize;
                    if n > MAX_WELCOME_KEYS {
                        return Err(WireError::LimitExceeded {
                            what: "welcome pairwise keys",
                            limit: MAX_WELCOME_KEYS,
                        });
                    }
                    let mut keys = Vec::with_capacity(n);
                    for _ in 0..n {
                        let member = MemberId(r.array()?);
                        let key = PairwiseKey { id: r.u32()?, public: r.array()? };
                        keys.push((member, SignedPairwiseKey { key, signature: r.array()? }));
                    }
                    keys
                },
            },
            2 => {
                let fatal = match r.u8()? {
                    0 => false,
                    1 => true,
                    code => return Err(WireError::UnknownCode { what: "join refusal flag", code }),
                };
                JoinAnswer::Refused { fatal, reason: r.str16("reason", 500)? }
            }
            code => {
                return Err(WireError::UnknownCode { what: "join answer", code });
            }
        };
        r.finish()?;
        Ok(answer)
    }
}

/// The member's proof in the XX reply: its identity and the signature
/// binding the static key it just used (and its first pairwise key, which
/// the signature covers) to that identity.
pub struct MemberProof {
    pub member: [u8; 32],
    pub first_pairwise: [u8; 32],
    pub binding_signature: [u8; 64],
}

impl MemberProof {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.raw(&self.member).raw(&self.first_pairwise).raw(&self.binding_signature);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let proof = Self { member: r.array()?, first_pairwise: r.array()?, binding_signature: r.array()? };
        r.finish()?;
        Ok(proof)
    }
}

/// What a chain signing key signs to prove the chain is `owner`'s, for
/// `epoch`, under `context` (SPEC §6.3): without it another member could
/// hand out someone else's chain as its own and so silence them.
pub fn chain_owner_message(
    circle_id: &[u8; 32],
    owner: &crate::identity::MemberId,
    epoch: u32,
    context: &[u8; 32],
) -> Vec<u8> {
    [crate::crypto::kdf::LABEL_CHAIN_OWNER, circle_id, owner.as_bytes(), &epoch.to_be_bytes(), context].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello() -> Vec<u8> {
        encode_hello(&PairFrame { to: [1; 16], from: [2; 16], epoch: 7, to_key: 3, noise: b"noise" })
    }

    #[test]
    fn pair_frames_round_trip() {
        let (secret, circle) = ([5u8; 32], [6u8; 32]);
        let f = add_frame_mac(hello(), &secret, &circle, 7);
        assert_eq!(
            parse_pair(&f).unwrap(),
            PairFrame { to: [1; 16], from: [2; 16], epoch: 7, to_key: 3, noise: b"noise" }
        );
        assert!(frame_mac_valid(&f, &secret, &circle));
        assert_eq!(frame_mac_epoch(&f), Some(7));
        // v1's session frames (reply, data) are not part of protocol v2.
        let mut reply = f.clone();
        reply[1] = frame_type::PAIR_REPLY;
        assert!(matches!(parse_pair(&reply), Err(WireError::UnknownType(0x03))));
    }

    /// The authenticator: every byte is covered, the key is the circle's
    /// and the epoch's, and anything short of a trailer is refused.
    #[test]
    fn the_frame_authenticator_covers_every_byte_and_needs_the_circle_secret() {
        let (secret, circle) = ([5u8; 32], [6u8; 32]);
        let f = add_frame_mac(hello(), &secret, &circle, 4);
        assert!(frame_mac_valid(&f, &secret, &circle));
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x01;
            assert!(!frame_mac_valid(&g, &secret, &circle), "byte {i}");
        }
        assert!(!frame_mac_valid(&f, &[9u8; 32], &circle), "another circle secret");
        assert!(!frame_mac_valid(&f, &secret, &[9u8; 32]), "another circle");
        assert!(!frame_mac_valid(&f[..10], &secret, &circle));
        assert!(!frame_mac_valid(&[], &secret, &circle));
        assert!(parse_pair(&f[..FRAME_MAC_TRAILER + 1]).is_err());
    }

    #[test]
    fn payloads_round_trip() {
        let p = PairPayload::SenderKey {
            distribution: SenderKeyDistribution { epoch: 2, signing_public: [3; 32], chain_key: [4; 32], counter: 5 },
            context: [9; 32],
            owner_proof: [10; 64],
            previous: Some(([6; 16], 7)),
            heads: vec![[8; 32]],
        };
        let bytes = p.encode();
        match PairPayload::decode(&bytes).unwrap() {
            PairPayload::SenderKey { distribution, previous, heads, .. } => {
                assert_eq!(distribution.counter, 5);
                assert_eq!(previous, Some(([6; 16], 7)));
                assert_eq!(heads, vec![[8; 32]]);
            }
            _ => panic!("wrong kind"),
        }
        let ops = PairPayload::LogOps(vec![vec![1, 2], vec![3]]).encode();
        assert!(matches!(PairPayload::decode(&ops).unwrap(), PairPayload::LogOps(v) if v.len() == 2));
        let w = JoinAnswer::Welcome {
            circle_secret: Zeroizing::new([1; 32]),
            epoch: 2,
            raiser: [3; 32],
            epoch_meta: Zeroizing::new([4; 32]),
            chain: Zeroizing::new(vec![5]),
            ops: vec![vec![9]],
            pairwise_keys: vec![(
                MemberId([6; 32]),
                SignedPairwiseKey { key: PairwiseKey { id: 4, public: [7; 32] }, signature: [8; 64] },
            )],
        }
        .encode();
        match JoinAnswer::decode(&w).unwrap() {
            JoinAnswer::Welcome { pairwise_keys, .. } => {
                assert_eq!(pairwise_keys.len(), 1);
                assert_eq!(pairwise_keys[0].1.key, PairwiseKey { id: 4, public: [7; 32] });
            }
            JoinAnswer::Refused { .. } => panic!("a welcome"),
        }
        let s = add_frame_mac(encode_sync_request(77, &[[1; 8], [2; 8]]), &[5; 32], &[6; 32], 2);
        assert_eq!(parse_direct(&s).unwrap(), DirectFrame::SyncRequest { sent_at_ms: 77, have: vec![[1; 8], [2; 8]] });
        assert!(frame_mac_valid(&s, &[5; 32], &[6; 32]));
        let s = encode_sync_response(&[b"a", b"bc"]);
        assert_eq!(parse_direct(&s).unwrap(), DirectFrame::SyncResponse { frames: vec![b"a", b"bc"] });
    }

    /// Strict decoding (SPEC §1): a refusal reason or flag outside its
    /// set is an error, never read as some default.
    #[test]
    fn codes_outside_their_set_are_refused() {
        for reason in [REFUSED_USED, REFUSED_EXPIRED, REFUSED_UNPROVEN, REFUSED_REVOKED] {
            assert!(parse_direct(&encode_join_refused(&[1; 32], reason)).is_ok());
        }
        for reason in [0u8, 5, 255] {
            assert!(parse_direct(&encode_join_refused(&[1; 32], reason)).is_err(), "reason {reason}");
        }
        let refused = JoinAnswer::Refused { fatal: true, reason: "no".into() }.encode();
        assert!(JoinAnswer::decode(&refused).is_ok());
        let mut odd = refused.clone();
        odd[1] = 2;
        assert!(JoinAnswer::decode(&odd).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_pair(&bytes);
            let _ = parse_direct(&bytes);
            let _ = PairPayload::decode(&bytes);
            let _ = JoinAnswer::decode(&bytes);
            let _ = MemberProof::decode(&bytes);
            let _ = parse_chain_announce(&bytes);
        }
    }
}
