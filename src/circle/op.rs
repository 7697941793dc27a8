//! Membership operations: their encoding, signatures and ids
//! (`protocol/SPEC.md` §4.2).

use ed25519_dalek::VerifyingKey;

use super::invite::InviteSecret;
use super::{CircleError, CircleId, OpId, Role, check_name};
use crate::crypto::kdf::{LABEL_CIRCLE_ID, LABEL_OP_ID, hash};
use crate::entropy::{Entropy, random_array};
use crate::identity::{IdentitySecret, MemberId, NoiseBinding, NoiseSecret};
use crate::wire::{Reader, WireError, Writer};

pub const OP_VERSION: u8 = 1;
pub const MAX_PARENTS: usize = 16;
const NAME_LIMIT: usize = 64;
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
    Join {
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
}

impl OpBody {
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
    w.raw(&b.noise_public).raw(&b.signature);
}

fn read_binding(r: &mut Reader<'_>) -> Result<NoiseBinding, WireError> {
    Ok(NoiseBinding { noise_public: r.array()?, signature: r.array()? })
}

fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, WireError> {
    let name = r.str16(what, NAME_LIMIT)?;
    check_name(&name, what).map_err(|_| WireError::Invalid(what))?;
    Ok(name)
}

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
            OpBody::Join { binding, display_name } => {
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
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != OP_VERSION {
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
        let body = match kind {
            1 => OpBody::Create {
                nonce: r.array()?,
                circle_name: read_name(&mut r, "circle name")?,
                max_disappear_secs: r.u32()?,
                binding: read_binding(&mut r)?,
                display_name: read_name(&mut r, "display name")?,
            },
            2 => OpBody::Add {
                member: MemberId(r.array()?),
                binding: read_binding(&mut r)?,
                display_name: read_name(&mut r, "display name")?,
                role: Role::from_code(r.u8()?)?,
            },
            3 => OpBody::Invite { invite_public: r.array()?, expires_at_ms: r.u64()?, role: Role::from_code(r.u8()?)? },
            4 => OpBody::Join { binding: read_binding(&mut r)?, display_name: read_name(&mut r, "display name")? },
            5 => OpBody::Remove { member: MemberId(r.array()?) },
            6 => OpBody::SetRole { member: MemberId(r.array()?), role: Role::from_code(r.u8()?)? },
            7 => OpBody::Rotate,
            8 => OpBody::SetDisappear { max_secs: r.u32()? },
            code => {
                return Err(WireError::UnknownCode { what: "operation kind", code }.into());
            }
        };
        let is_create = matches!(body, OpBody::Create { .. });
        if is_create != parents.is_empty() {
            return Err(WireError::Invalid("only the creation has no parents").into());
        }
        let signature = r.array()?;
        let invite_signature = match body {
            OpBody::Join { .. } => Some(r.array()?),
            _ => None,
        };
        r.finish()?;
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
    pub fn create(
        identity: &IdentitySecret,
        noise: &NoiseSecret,
        circle_name: &str,
        display_name: &str,
        max_disappear_secs: u32,
        now_ms: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(Op, CircleId), CircleError> {
        check_name(circle_name, "circle name")?;
        check_name(display_name, "display name")?;
        let nonce: [u8; 32] = random_array(rng);
        let circle_id = circle_id_of(&identity.member_id(), &nonce);
        let body = OpBody::Create {
            nonce,
            circle_name: circle_name.to_owned(),
            max_disappear_secs,
            binding: NoiseBinding::create(identity, &circle_id, noise),
            display_name: display_name.to_owned(),
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
        if let OpBody::Add { display_name, .. } = &body {
            check_name(display_name, "display name")?;
        }
        let mut parents = parents;
        parents.truncate(MAX_PARENTS);
        Ok(Self::sign_body(identity, circle_id, parents, body, now_ms))
    }

    /// A joiner's operation, signed by the joiner and by the invite key.
    pub fn sign_join(
        identity: &IdentitySecret,
        circle_id: &CircleId,
        invite: &InviteSecret,
        invite_op: OpId,
        binding: NoiseBinding,
        display_name: &str,
        now_ms: u64,
    ) -> Result<Op, CircleError> {
        Self::sign_join_with_parents(identity, circle_id, invite, vec![invite_op], binding, display_name, now_ms)
    }

    /// As [`Op::sign_join`], with more parents after the invite (the heads
    /// the joiner knows of).
    pub fn sign_join_with_parents(
        identity: &IdentitySecret,
        circle_id: &CircleId,
        invite: &InviteSecret,
        parents: Vec<OpId>,
        binding: NoiseBinding,
        display_name: &str,
        now_ms: u64,
    ) -> Result<Op, CircleError> {
        check_name(display_name, "display name")?;
        if parents.is_empty() || parents.len() > MAX_PARENTS {
            return Err(CircleError::WrongCircle);
        }
        let body = OpBody::Join { binding, display_name: display_name.to_owned() };
        let mut op = Self::sign_body(identity, circle_id, parents, body, now_ms);
        op.invite_signature = Some(invite.sign(&signed_message(LABEL_OP_INVITE_SIG, circle_id, &op.unsigned_bytes())));
        Ok(op)
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
        let (genesis, c) = Op::create(&id, &noise, "circle", "Ana", 60, 1, &mut rng).unwrap();
        let p = vec![genesis.id()];
        let invite = InviteSecret::generate(&mut rng);
        let other = IdentitySecret::generate(&mut rng);
        let other_noise = NoiseSecret::generate(&mut rng);
        let binding = NoiseBinding::create(&other, &c, &other_noise);
        let bodies = vec![
            OpBody::Add { member: other.member_id(), binding, display_name: "Bo".into(), role: Role::Member },
            OpBody::Invite { invite_public: invite.public(), expires_at_ms: 99, role: Role::Organiser },
            OpBody::Remove { member: other.member_id() },
            OpBody::SetRole { member: other.member_id(), role: Role::Organiser },
            OpBody::Rotate,
            OpBody::SetDisappear { max_secs: 3600 },
        ];
        let mut ops = vec![genesis];
        for b in bodies {
            ops.push(Op::sign(&id, &c, p.clone(), b, 2).unwrap());
        }
        let invite_id = ops[2].id();
        ops.push(Op::sign_join(&other, &c, &invite, invite_id, binding, "Bo", 3).unwrap());
        (c, ops, invite)
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
            assert!(back.verify_signatures(&[9; 32], invite_pk.as_ref()).is_err(), "bound to its circle");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Op::decode(&bytes);
        }

        #[test]
        fn any_tampered_byte_is_caught(which in 0usize..8, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (c, ops, invite) = sample_ops();
            let op = &ops[which % ops.len()];
            let mut bytes = op.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let invite_pk = matches!(op.body, OpBody::Join { .. }).then(|| invite.public());
            let caught = match Op::decode(&bytes) {
                Err(_) => true,
                Ok(back) => back.verify_signatures(&c, invite_pk.as_ref()).is_err(),
            };
            prop_assert!(caught);
        }
    }
}
