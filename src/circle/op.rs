//! Membership operations: their encoding, signatures and ids
//! (`protocol/SPEC.md` §4.2).

use ed25519_dalek::VerifyingKey;

use super::invite::InviteSecret;
use super::{CircleError, CircleId, MAX_NAME_BYTES, OpId, Role, check_name};
use crate::crypto::kdf::{LABEL_CIRCLE_ID, LABEL_OP_ID, hash};
use crate::entropy::{Entropy, random_array};
use crate::identity::{IdentitySecret, MemberId, NoiseBinding, NoiseSecret};
use crate::wire::{Reader, WireError, Writer};

/// Version 2: Join carries its invite in the body and enters the log only
/// inside the inviter's Admit; parents are strictly ascending; Admit,
/// RevokeInvite and Rename exist; a binding carries the first pairwise key.
pub const OP_VERSION: u8 = 2;
pub const MAX_PARENTS: usize = 16;
const LABEL_OP_SIG: &[u8] = b"kolo/v1/op-sig";
const LABEL_OP_INVITE_SIG: &[u8] = b"kolo/v1/op-invite-sig";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpBody {
    Create {
        nonce: [u8; 32],
        circle_name: String,
        max_disappear_secs: u32,
        binding: NoiseBinding,
        display_name: String,
    },
    Add {
        member: MemberId,
        binding: NoiseBinding,
        display_name: String,
        role: Role,
    },
    Invite {
        invite_public: [u8; 32],
        expires_at_ms: u64,
        role: Role,
    },
    /// The joiner's request, signed by the joiner and by the invite key.
    /// It has no parents and never enters the log on its own: the inviter's
    /// [`OpBody::Admit`] carries it.
    Join {
        invite_op: OpId,
        binding: NoiseBinding,
        display_name: String,
    },
    Remove {
        member: MemberId,
    },
    SetRole {
        member: MemberId,
        role: Role,
    },
    Rotate,
    SetDisappear {
        max_secs: u32,
    },
    /// The inviter admits a joiner: `join` is the joiner's whole Join.
    Admit {
        join: Box<Op>,
    },
    RevokeInvite {
        invite_op: OpId,
    },
    /// The author changes its own display name.
    Rename {
        display_name: String,
    },
}

impl OpBody {
    /// Whether the epoch this operation starts begins a new network
    /// generation (SPEC §2a): removals and rotations, after which nobody
    /// outside the roster may keep the network's key.
    pub fn closes_network(&self) -> bool {
        matches!(self, OpBody::Remove { .. } | OpBody::Rotate)
    }

    fn code(&self) -> u8 {
        match self {
            OpBody::Create { .. } => 1,
            OpBody::Add { .. } => 2,
            OpBody::Invite { .. } => 3,
            OpBody::Join { .. } => 4,
            OpBody::Remove { .. } => 5,
            OpBody::SetRole { .. } => 6,
            OpBody::Rotate => 7,
            OpBody::SetDisappear { .. } => 8,
            OpBody::Admit { .. } => 9,
            OpBody::RevokeInvite { .. } => 10,
            OpBody::Rename { .. } => 11,
        }
    }
}

/// A signed membership operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub author: MemberId,
    pub timestamp_ms: u64,
    pub parents: Vec<OpId>,
    pub body: OpBody,
    pub signature: [u8; 64],
    pub invite_signature: Option<[u8; 64]>,
}

/// The circle id a creator and nonce define.
pub fn circle_id_of(creator: &MemberId, nonce: &[u8; 32]) -> CircleId {
    hash(LABEL_CIRCLE_ID, &[creator.as_bytes(), nonce])
}

fn signed_message(label: &[u8], circle_id: &CircleId, unsigned: &[u8]) -> Vec<u8> {
    [label, circle_id, unsigned].concat()
}

fn write_binding(w: &mut Writer, b: &NoiseBinding) {
    w.raw(&b.noise_public).raw(&b.first_pairwise).raw(&b.signature);
}

fn read_binding(r: &mut Reader<'_>) -> Result<NoiseBinding, WireError> {
    Ok(NoiseBinding { noise_public: r.array()?, first_pairwise: r.array()?, signature: r.array()? })
}

/// A name on the wire must already be in the normal form `check_name`
/// gives, so every member shows and compares the same string.
fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, WireError> {
    let name = r.str16(what, MAX_NAME_BYTES)?;
    match check_name(&name, what) {
        Ok(normal) if normal == name => Ok(name),
        _ => Err(WireError::Invalid(what)),
    }
}

/// The longest encoded operation (an Admit carrying a Join with two
/// 256-byte names is far below it).
pub const MAX_OP_BYTES: usize = 4096;

impl Op {
    /// Everything the signatures cover.
    fn unsigned_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.u8(OP_VERSION).u8(self.body.code()).raw(self.author.as_bytes()).u64(self.timestamp_ms);
        w.u8(self.parents.len().min(MAX_PARENTS) as u8);
        for p in self.parents.iter().take(MAX_PARENTS) {
            w.raw(p);
        }
        match &self.body {
            OpBody::Create { nonce, circle_name, max_disappear_secs, binding, display_name } => {
                w.raw(nonce).str16(circle_name).u32(*max_disappear_secs);
                write_binding(&mut w, binding);
                w.str16(display_name);
            }
            OpBody::Add { member, binding, display_name, role } => {
                w.raw(member.as_bytes());
                write_binding(&mut w, binding);
                w.str16(display_name).u8(role.code());
            }
            OpBody::Invite { invite_public, expires_at_ms, role } => {
                w.raw(invite_public).u64(*expires_at_ms).u8(role.code());
            }
            OpBody::Join { invite_op, binding, display_name } => {
                w.raw(invite_op);
                write_binding(&mut w, binding);
                w.str16(display_name);
            }
            OpBody::Remove { member } => {
                w.raw(member.as_bytes());
            }
            OpBody::SetRole { member, role } => {
                w.raw(member.as_bytes()).u8(role.code());
            }
            OpBody::Rotate => {}
            OpBody::SetDisappear { max_secs } => {
                w.u32(*max_secs);
            }
            OpBody::Admit { join } => {
                w.bytes16(&join.encode());
            }
            OpBody::RevokeInvite { invite_op } => {
                w.raw(invite_op);
            }
            OpBody::Rename { display_name } => {
                w.str16(display_name);
            }
        }
        w.finish()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.unsigned_bytes();
        bytes.extend_from_slice(&self.signature);
        if let Some(s) = &self.invite_signature {
            bytes.extend_from_slice(s);
        }
        bytes
    }

    pub fn id(&self) -> OpId {
        hash(LABEL_OP_ID, &[&self.encode()])
    }

    pub fn decode(bytes: &[u8]) -> Result<Op, CircleError> {
        if bytes.len() > MAX_OP_BYTES {
            return Err(WireError::LimitExceeded { what: "operation bytes", limit: MAX_OP_BYTES }.into());
        }
        let mut r = Reader::new(bytes);
        let op = Self::read(&mut r, true)?;
        r.finish()?;
        Ok(op)
    }

    /// Decode one operation from `r`; `nested_allowed` is false inside an
    /// Admit, whose Join carries no further operation.
    fn read(r: &mut Reader<'_>, nested_allowed: bool) -> Result<Op, CircleError> {
        let version = r.u8()?;
        if version != OP_VERSION {
            if version < OP_VERSION {
                return Err(CircleError::OlderVersion(version));
            }
            return Err(WireError::UnknownCode { what: "operation version", code: version }.into());
        }
        let kind = r.u8()?;
        let author = MemberId(r.array()?);
        let timestamp_ms = r.u64()?;
        let n = r.u8()? as usize;
        if n > MAX_PARENTS {
            return Err(WireError::LimitExceeded { what: "parents", limit: MAX_PARENTS }.into());
        }
        let parents: Vec<OpId> = (0..n).map(|_| r.array()).collect::<Result<_, _>>()?;
        if parents.windows(2).any(|w| w[0] >= w[1]) {
            return Err(WireError::Invalid("parents must be distinct and in ascending order").into());
        }
        let body = match kind {
            1 => OpBody::Create {
                nonce: r.array()?,
                circle_name: read_name(r, "circle name")?,
                max_disappear_secs: r.u32()?,
                binding: read_binding(r)?,
                display_name: read_name(r, "display name")?,
            },
            2 => OpBody::Add {
                member: MemberId(r.array()?),
                binding: read_binding(r)?,
                display_name: read_name(r, "display name")?,
                role: Role::from_code(r.u8()?)?,
            },
            3 => OpBody::Invite { invite_public: r.array()?, expires_at_ms: r.u64()?, role: Role::from_code(r.u8()?)? },
            4 => OpBody::Join {
                invite_op: r.array()?,
                binding: read_binding(r)?,
                display_name: read_name(r, "display name")?,
            },
            5 => OpBody::Remove { member: MemberId(r.array()?) },
            6 => OpBody::SetRole { member: MemberId(r.array()?), role: Role::from_code(r.u8()?)? },
            7 => OpBody::Rotate,
            8 => OpBody::SetDisappear { max_secs: r.u32()? },
            9 if nested_allowed => {
                let bytes = r.bytes16("admitted join", MAX_OP_BYTES)?;
                let mut inner = Reader::new(bytes);
                let join = Self::read(&mut inner, false)?;
                inner.finish()?;
                if !matches!(join.body, OpBody::Join { .. }) {
                    return Err(WireError::Invalid("an admit carries a join").into());
                }
                OpBody::Admit { join: Box::new(join) }
            }
            10 => OpBody::RevokeInvite { invite_op: r.array()? },
            11 => OpBody::Rename { display_name: read_name(r, "display name")? },
            code => {
                return Err(WireError::UnknownCode { what: "operation kind", code }.into());
            }
        };
        let parentless = matches!(body, OpBody::Create { .. } | OpBody::Join { .. });
        if parentless != parents.is_empty() {
            return Err(WireError::Invalid("only a creation or a join has no parents").into());
        }
        let signature = r.array()?;
        let invite_signature = match body {
            OpBody::Join { .. } => Some(r.array()?),
            _ => None,
        };
        Ok(Op { author, timestamp_ms, parents, body, signature, invite_signature })
    }

    /// Check the author's signature only.
    pub fn verify_author(&self, circle_id: &CircleId) -> Result<(), CircleError> {
        self.author
            .verify(&signed_message(LABEL_OP_SIG, circle_id, &self.unsigned_bytes()), &self.signature)
            .map_err(|_| CircleError::BadSignature)
    }

    /// Check the author's signature (and, for a Join, the invite key's).
    pub fn verify_signatures(&self, circle_id: &CircleId, invite_public: Option<&[u8; 32]>) -> Result<(), CircleError> {
        self.verify_author(circle_id)?;
        let unsigned = self.unsigned_bytes();
        if let OpBody::Join { .. } = self.body {
            let (Some(public), Some(sig)) = (invite_public, self.invite_signature.as_ref()) else {
                return Err(CircleError::BadSignature);
            };
            let key = VerifyingKey::from_bytes(public).map_err(|_| CircleError::BadSignature)?;
            key.verify_strict(
                &signed_message(LABEL_OP_INVITE_SIG, circle_id, &unsigned),
                &ed25519_dalek::Signature::from_bytes(sig),
            )
            .map_err(|_| CircleError::BadSignature)?;
        }
        Ok(())
    }

    /// The circle's first operation; returns it with the new circle's id.
    #[allow(clippy::too_many_arguments)] // Every field of the genesis, and the keys it binds.
    pub fn create(
        identity: &IdentitySecret,
        noise: &NoiseSecret,
        first_pairwise: &NoiseSecret,
        circle_name: &str,
        display_name: &str,
        max_disappear_secs: u32,
        now_ms: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(Op, CircleId), CircleError> {
        let circle_name = check_name(circle_name, "circle name")?;
        let display_name = check_name(display_name, "display name")?;
        let nonce: [u8; 32] = random_array(rng);
        let circle_id = circle_id_of(&identity.member_id(), &nonce);
        let body = OpBody::Create {
            nonce,
            circle_name,
            max_disappear_secs,
            binding: NoiseBinding::create(identity, &circle_id, noise, first_pairwise),
            display_name,
        };
        let op = Self::sign_body(identity, &circle_id, Vec::new(), body, now_ms);
        Ok((op, circle_id))
    }

    fn sign_body(identity: &IdentitySecret, circle_id: &CircleId, parents: Vec<OpId>, body: OpBody, now_ms: u64) -> Op {
        let mut op = Op {
            author: identity.member_id(),
            timestamp_ms: now_ms,
            parents,
            body,
            signature: [0; 64],
            invite_signature: None,
        };
        op.signature = identity.sign(&signed_message(LABEL_OP_SIG, circle_id, &op.unsigned_bytes()));
        op
    }

    /// Sign any operation but Create and Join.
    pub fn sign(
        identity: &IdentitySecret,
        circle_id: &CircleId,
        parents: Vec<OpId>,
        body: OpBody,
        now_ms: u64,
    ) -> Result<Op, CircleError> {
        if matches!(body, OpBody::Create { .. } | OpBody::Join { .. }) || parents.is_empty() {
            return Err(CircleError::NotGenesis);
        }
        let body = match body {
            OpBody::Add { member, binding, display_name, role } => {
                OpBody::Add { member, binding, display_name: check_name(&display_name, "display name")?, role }
            }
            OpBody::Rename { display_name } => {
                OpBody::Rename { display_name: check_name(&display_name, "display name")? }
            }
            other => other,
        };
        let mut parents = parents;
        parents.sort_unstable();
        parents.dedup();
        // More heads than fit: the rest stay heads, merged by a later
        // operation (this one is concurrent with them).
        parents.truncate(MAX_PARENTS);
        Ok(Self::sign_body(identity, circle_id, parents, body, now_ms))
    }

    /// A joiner's request, signed by the joiner and by the invite key. It
    /// has no parents: it names its invite and enters the log only inside
    /// the inviter's Admit.
    pub fn sign_join(
        identity: &IdentitySecret,
        circle_id: &CircleId,
        invite: &InviteSecret,
        invite_op: OpId,
        binding: NoiseBinding,
        display_name: &str,
        now_ms: u64,
    ) -> Result<Op, CircleError> {
        let display_name = check_name(display_name, "display name")?;
        let body = OpBody::Join { invite_op, binding, display_name };
        let mut op = Self::sign_body(identity, circle_id, Vec::new(), body, now_ms);
        op.invite_signature = Some(invite.sign(&signed_message(LABEL_OP_INVITE_SIG, circle_id, &op.unsigned_bytes())));
        Ok(op)
    }

    /// The invite a Join names, or the invite of the Join an Admit carries.
    pub fn invite_of(&self) -> Option<OpId> {
        match &self.body {
            OpBody::Join { invite_op, .. } => Some(*invite_op),
            OpBody::Admit { join } => join.invite_of(),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    fn sample_ops() -> (CircleId, Vec<Op>, InviteSecret) {
        let mut rng = SeededEntropy::from_u64(1);
        let id = IdentitySecret::generate(&mut rng);
        let noise = NoiseSecret::generate(&mut rng);
        let (genesis, c) = Op::create(&id, &noise, &noise, "circle", "Ana", 60, 1, &mut rng).unwrap();
        let p = vec![genesis.id()];
        let invite = InviteSecret::generate(&mut rng);
        let other = IdentitySecret::generate(&mut rng);
        let other_noise = NoiseSecret::generate(&mut rng);
        let binding = NoiseBinding::create(&other, &c, &other_noise, &other_noise);
        let bodies = vec![
            OpBody::Add { member: other.member_id(), binding, display_name: "Bo".into(), role: Role::Member },
            OpBody::Invite { invite_public: invite.public(), expires_at_ms: 99, role: Role::Organiser },
            OpBody::Remove { member: other.member_id() },
            OpBody::SetRole { member: other.member_id(), role: Role::Organiser },
            OpBody::Rotate,
            OpBody::SetDisappear { max_secs: 3600 },
            OpBody::Rename { display_name: "Ana B".into() },
        ];
        let mut ops = vec![genesis];
        for b in bodies {
            ops.push(Op::sign(&id, &c, p.clone(), b, 2).unwrap());
        }
        let invite_id = ops[2].id();
        ops.push(Op::sign(&id, &c, p.clone(), OpBody::RevokeInvite { invite_op: invite_id }, 2).unwrap());
        let join = Op::sign_join(&other, &c, &invite, invite_id, binding, "Bo", 3).unwrap();
        ops.push(Op::sign(&id, &c, vec![invite_id], OpBody::Admit { join: Box::new(join.clone()) }, 4).unwrap());
        ops.push(join);
        (c, ops, invite)
    }

    #[test]
    fn decoding_is_strict() {
        let (_, ops, _) = sample_ops();
        // Trailing bytes.
        let mut bytes = ops[1].encode();
        bytes.push(0);
        assert!(Op::decode(&bytes).is_err());
        // An older format is named as such.
        let mut old = ops[1].encode();
        old[0] = 1;
        assert_eq!(Op::decode(&old), Err(CircleError::OlderVersion(1)));
        // Unknown role.
        let mut role = ops[4].encode();
        let at = role.len() - 64 - 1;
        role[at] = 3;
        assert!(Op::decode(&role).is_err());
        // A name that is not in normal form (full-width letters).
        let mut rng = SeededEntropy::from_u64(2);
        let id = IdentitySecret::generate(&mut rng);
        let mut op = ops[7].clone();
        op.body = OpBody::Rename { display_name: "Ａｎａ".into() };
        op.author = id.member_id();
        assert!(Op::decode(&op.encode()).is_err());
    }

    #[test]
    fn parents_are_sorted_and_distinct() {
        let (c, ops, _) = sample_ops();
        let mut rng = SeededEntropy::from_u64(3);
        let id = IdentitySecret::generate(&mut rng);
        let (a, b) = (ops[1].id(), ops[2].id());
        let op = Op::sign(&id, &c, vec![b, a, b], OpBody::Rotate, 5).unwrap();
        let mut sorted = vec![a, b];
        sorted.sort();
        assert_eq!(op.parents, sorted);
        let mut unsorted = op.clone();
        unsorted.parents.reverse();
        assert!(Op::decode(&unsorted.encode()).is_err());
    }

    #[test]
    fn every_kind_round_trips_and_verifies() {
        let (c, ops, invite) = sample_ops();
        for op in &ops {
            let back = Op::decode(&op.encode()).unwrap();
            assert_eq!(&back, op);
            assert_eq!(back.id(), op.id());
            let invite_pk = matches!(op.body, OpBody::Join { .. }).then(|| invite.public());
            assert!(back.verify_signatures(&c, invite_pk.as_ref()).is_ok());
            if let OpBody::Admit { join } = &back.body {
                assert!(join.verify_signatures(&c, Some(&invite.public())).is_ok());
            }
            assert!(back.verify_signatures(&[9; 32], invite_pk.as_ref()).is_err(), "bound to its circle");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Op::decode(&bytes);
        }

        #[test]
        fn any_tampered_byte_is_caught(which in 0usize..11, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (c, ops, invite) = sample_ops();
            let op = &ops[which % ops.len()];
            let mut bytes = op.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let invite_pk = matches!(op.body, OpBody::Join { .. }).then(|| invite.public());
            let caught = match Op::decode(&bytes) {
                Err(_) => true,
                Ok(back) => {
                    back.verify_signatures(&c, invite_pk.as_ref()).is_err()
                        || match &back.body {
                            OpBody::Admit { join } => join.verify_signatures(&c, Some(&invite.public())).is_err(),
                            _ => false,
                        }
                }
            };
            prop_assert!(caught);
        }
    }
}
