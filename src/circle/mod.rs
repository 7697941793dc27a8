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
pub use log::{Action, CircleLog, ClosedInvite, InsertOutcome, InviteStatus, MemberRecord, MembershipChange};
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
    #[error("invalid {0}: names are 1 to 64 characters, without control, zero-width or text-direction characters")]
    InvalidName(&'static str),
    #[error("this was made by an older version of kolo (operation format {0}); this kolo speaks format 2")]
    OlderVersion(u8),
    #[error("operation refused: {0}")]
    Unauthorised(&'static str),
    #[error("operation refused: its author has made as many operations as a circle accepts from one member")]
    QuotaExceeded,
    #[error("operation refused as backdated: it ignores membership changes every current member had already seen")]
    Backdated,
    #[error("this is not a kolo invite (it should start with \"kolo1-\")")]
    NotAnInvite,
    #[error("this invite is damaged (a typo, or cut short)")]
    InviteCorrupt,
    #[error("this invite is from a newer version of kolo (format {0})")]
    InviteVersion(u8),
    #[error("this invite was made by an older kolo (format {0}); ask for a new one from an up-to-date kolo")]
    InviteOlder(u8),
}

/// The closed network's pre-shared key.
pub fn network_key(circle_secret: &[u8; 32], circle_id: &CircleId) -> [u8; 32] {
    derive(circle_id, circle_secret, LABEL_NETWORK_KEY, &[])
}

/// The network key of the generation a closing epoch (one started by a
/// Remove or Rotate) begins (SPEC §2a). Generation 0's is [`network_key`]
/// of the circle secret.
pub fn generation_network_key(epoch_meta: &[u8; 32], circle_id: &CircleId, epoch: u32) -> [u8; 32] {
    derive(circle_id, epoch_meta, crate::crypto::kdf::LABEL_GENERATION_KEY, &[&epoch.to_be_bytes()])
}

/// An epoch's pairwise secret (SPEC §5.1a): what the topic, pair tags,
/// pair psks and frame key of that epoch derive from, in place of the
/// circle secret of v1. `epoch_secret` is the 32 random bytes the
/// epoch's rekeyer chose; `raiser` the operation that started the epoch.
pub fn epoch_meta(epoch_secret: &[u8; 32], circle_id: &CircleId, epoch: u32, raiser: &[u8; 32]) -> [u8; 32] {
    derive(circle_id, epoch_secret, crate::crypto::kdf::LABEL_EPOCH_META, &[&epoch.to_be_bytes(), raiser])
}

/// The key `member` seals its chain announcement of `epoch` with (SPEC §5.1a).
pub fn chain_announce_key(epoch_secret: &[u8; 32], circle_id: &CircleId, epoch: u32, member: &MemberId) -> [u8; 32] {
    derive(
        circle_id,
        epoch_secret,
        crate::crypto::kdf::LABEL_CHAIN_ANNOUNCE_KEY,
        &[&epoch.to_be_bytes(), member.as_bytes()],
    )
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

/// Longest name in characters, after normalisation.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest name in bytes of UTF-8 (64 characters of at most 4 bytes).
pub const MAX_NAME_BYTES: usize = 256;

/// Characters a name may not hold: controls, and the invisible ones that
/// make two different names look the same or reorder what is around them
/// (zero-width characters, joiners, bidi controls, variation selectors,
/// fillers, tags). Emoji sequences that need a zero-width joiner are
/// therefore refused too: we prefer that to invisible look-alikes.
fn forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF)
}

/// Check a display or circle name and return its normal form: Unicode
/// NFKC, surrounding white space trimmed, 1 to 64 characters, none of
/// them a control or an invisible formatting character. Names on the
/// wire must already be in this form.
pub fn check_name(name: &str, what: &'static str) -> Result<String, CircleError> {
    use unicode_normalization::UnicodeNormalization;
    let normal: String = name.nfkc().collect::<String>().trim().to_owned();
    let chars = normal.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || normal.len() > MAX_NAME_BYTES || normal.chars().any(forbidden_in_name) {
        return Err(CircleError::InvalidName(what));
    }
    Ok(normal)
}

/// What a name looks like, for spotting look-alikes: the Unicode
/// confusable skeleton (UTS #39) of its lower-case form. Two names with the
/// same skeleton ("Ana" and "Аna" with a Cyrillic А, "rn" and "m") are
/// marked in every member list.
pub fn name_skeleton(name: &str) -> String {
    let lower = name.to_lowercase();
    let skeleton: String = unicode_security::confusable_detection::skeleton(&lower).collect();
    skeleton.to_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
    fn names_are_checked_and_normalised() {
        assert_eq!(check_name("Ana María", "name").unwrap(), "Ana María");
        assert!(check_name("", "name").is_err());
        assert!(check_name("   ", "name").is_err());
        assert!(check_name("a\nb", "name").is_err());
        assert!(check_name(&"x".repeat(65), "name").is_err());
        assert!(check_name(&"é".repeat(64), "name").is_ok(), "64 characters of two bytes each");
        // Zero-width, bidi and escape characters are refused.
        for bad in ["Ana\u{200B}", "\u{202E}anA", "Ana\u{2066}", "A\u{1b}[2Jna", "Ana\u{FE0F}", "An\u{AD}a"] {
            assert!(check_name(bad, "name").is_err(), "{bad:?}");
        }
        // NFKC: a full-width or composed form becomes the plain one.
        assert_eq!(check_name("Ａｎａ", "name").unwrap(), "Ana");
        assert_eq!(check_name("Jose\u{301}", "name").unwrap(), "José");
        assert_eq!(check_name("  Bo  ", "name").unwrap(), "Bo");
    }

    #[test]
    fn look_alike_names_share_a_skeleton() {
        assert_eq!(name_skeleton("Ana"), name_skeleton("\u{410}na"), "Cyrillic A");
        assert_eq!(name_skeleton("Ana"), name_skeleton("ana"));
        assert_eq!(name_skeleton("paypal"), name_skeleton("paypa1"));
        assert_ne!(name_skeleton("Ana"), name_skeleton("Bo"));
    }
}
