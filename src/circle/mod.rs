//! Circles: the membership log and everything derived from a circle's
//! secret.
//!
//! Owns: signed membership operations ([`op`]), the log that resolves them
//! into a roster with a deterministic rule for concurrent changes
//! ([`log`]), invites and invite codes ([`invite`]), and the derivations of
//! the network key, gossip topics, pairwise pre-shared keys and tags from
//! the circle secret. Pure: time is a parameter, randomness an
//! [`Entropy`](crate::entropy::Entropy).

pub mod invite;
pub mod log;
pub mod op;

pub use invite::{InviteCode, InviteSecret};
pub use log::{Action, CircleLog, InsertOutcome, InviteStatus, MemberRecord, MembershipChange};
pub use op::{Op, OpBody};

use crate::crypto::kdf::{LABEL_NETWORK_KEY, LABEL_PAIR_PSK, LABEL_PAIR_TAG, LABEL_TOPIC, derive};
use crate::identity::{MemberId, hex};
use crate::wire::WireError;

pub type CircleId = [u8; 32];
pub type OpId = [u8; 32];

/// A member's authority in a circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Member,
    Organiser,
}

impl Role {
    pub fn code(self) -> u8 {
        match self {
            Role::Member => 1,
            Role::Organiser => 2,
        }
    }

    pub fn from_code(code: u8) -> Result<Self, WireError> {
        match code {
            1 => Ok(Role::Member),
            2 => Ok(Role::Organiser),
            code => Err(WireError::UnknownCode { what: "role", code }),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Organiser => "organiser",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CircleError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("operation signature does not verify")]
    BadSignature,
    #[error("a member's Noise key binding does not verify")]
    BadBinding,
    #[error("the first operation of a circle must be its creation")]
    NotGenesis,
    #[error("operation belongs to another circle or refers to an unknown invite")]
    WrongCircle,
    #[error("the membership log is full")]
    LogFull,
    #[error("invalid {0}: names are 1 to 64 bytes without control characters")]
    InvalidName(&'static str),
    #[error("this is not a kolo invite (it should start with \"kolo1-\")")]
    NotAnInvite,
    #[error("this invite is damaged (a typo, or cut short)")]
    InviteCorrupt,
    #[error("this invite is from a newer version of kolo (format {0})")]
    InviteVersion(u8),
}

/// The closed network's pre-shared key.
pub fn network_key(circle_secret: &[u8; 32], circle_id: &CircleId) -> [u8; 32] {
    derive(circle_id, circle_secret, LABEL_NETWORK_KEY, &[])
}

/// The gossip topic of an epoch: opaque to anyone without the circle secret.
pub fn topic(circle_secret: &[u8; 32], circle_id: &CircleId, epoch: u32) -> String {
    let t: [u8; 32] = derive(circle_id, circle_secret, LABEL_TOPIC, &[&epoch.to_be_bytes()]);
    format!("kolo/{}", hex(&t[..16]))
}

/// The pre-shared key of the Noise KK sessions between `a` and `b` (order-free).
pub fn pair_psk(circle_secret: &[u8; 32], circle_id: &CircleId, a: &MemberId, b: &MemberId) -> [u8; 32] {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    derive(circle_id, circle_secret, LABEL_PAIR_PSK, &[lo.as_bytes(), hi.as_bytes()])
}

/// How pairwise frames name `member` without revealing its identity.
pub fn pair_tag(circle_secret: &[u8; 32], circle_id: &CircleId, member: &MemberId) -> [u8; 16] {
    let t: [u8; 32] = derive(circle_id, circle_secret, LABEL_PAIR_TAG, &[member.as_bytes()]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&t[..16]);
    out
}

/// Names are 1..=64 bytes of UTF-8 without control characters.
pub fn check_name(name: &str, what: &'static str) -> Result<(), CircleError> {
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(CircleError::InvalidName(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_separate_epochs_secrets_and_members() {
        let (s1, s2, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_ne!(topic(&s1, &c, 1), topic(&s1, &c, 2));
        assert_ne!(topic(&s1, &c, 1), topic(&s2, &c, 1));
        assert!(topic(&s1, &c, 1).starts_with("kolo/"));
        let (a, b) = (MemberId([4; 32]), MemberId([5; 32]));
        assert_eq!(pair_psk(&s1, &c, &a, &b), pair_psk(&s1, &c, &b, &a));
        assert_ne!(pair_tag(&s1, &c, &a), pair_tag(&s1, &c, &b));
        assert_ne!(network_key(&s1, &c), network_key(&s2, &c));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("Ana María", "name").is_ok());
        assert!(check_name("", "name").is_err());
        assert!(check_name("a\nb", "name").is_err());
        assert!(check_name(&"x".repeat(65), "name").is_err());
    }
}
