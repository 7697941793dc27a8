//! One-time, expiring invites (`protocol/SPEC.md` §4.4).
//!
//! An organiser signs an Invite operation holding the public half of a
//! fresh *invite key*; the invite code carries the secret half plus what a
//! joiner needs to reach the circle. Any member can then admit the joiner,
//! because the join is signed by the invite key and can be used once.

use ed25519_dalek::{Signer, SigningKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{CircleError, CircleId, OpId};
use crate::crypto::kdf::hash;
use crate::entropy::{Entropy, random_array};
use crate::identity::MemberId;
use crate::wire::text::{Case, base32, base32_decode};
use crate::wire::{Reader, Writer};

pub const INVITE_PREFIX: &str = "kolo1-";
const INVITE_VERSION: u8 = 2;
const LABEL_CHECKSUM: &[u8] = b"kolo/v1/invite-checksum";
const MAX_ADDRESSES: usize = 8;
const MAX_ADDRESS_LEN: usize = 200;

/// The invite key's secret half. Zeroized on drop; no `Debug`.
#[derive(ZeroizeOnDrop)]
pub struct InviteSecret {
    key: SigningKey,
}

impl InviteSecret {
    pub fn generate(rng: &mut dyn Entropy) -> Self {
        let mut seed: [u8; 32] = random_array(rng);
        let s = Self::from_seed(&seed);
        seed.zeroize();
        s
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    pub fn expose_seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The key's secret scalar, for the link handshake's invite proof
    /// (X25519 against the public key in Montgomery form, SPEC §2a).
    pub fn dh_scalar(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.key.to_scalar_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Everything a joiner needs. Holds a secret: no `Debug`.
pub struct InviteCode {
    pub circle_id: CircleId,
    pub network_key: [u8; 32],
    pub invite_op: OpId,
    pub secret: InviteSecret,
    pub expires_at_ms: u64,
    pub inviter: MemberId,
    pub addresses: Vec<String>,
}

impl InviteCode {
    /// The text form: `kolo1-` and base32.
    pub fn encode(&self) -> String {
        let mut w = Writer::with_capacity(256);
        let mut seed = self.secret.expose_seed();
        w.u8(INVITE_VERSION)
            .raw(&self.circle_id)
            .raw(&self.network_key)
            .raw(&self.invite_op)
            .raw(&seed)
            .u64(self.expires_at_ms)
            .raw(self.inviter.as_bytes());
        seed.zeroize();
        let addrs: Vec<&String> =
            self.addresses.iter().filter(|a| a.len() <= MAX_ADDRESS_LEN).take(MAX_ADDRESSES).collect();
        w.u8(addrs.len() as u8);
        for a in addrs {
            w.str16(a);
        }
        let mut bytes = w.finish();
        let sum = hash(LABEL_CHECKSUM, &[&bytes]);
        bytes.extend_from_slice(&sum[..4]);
        let text = format!("{INVITE_PREFIX}{}", base32(&bytes, Case::Lower));
        bytes.zeroize();
        text
    }

    /// Parse a pasted code; whitespace and case are ignored.
    pub fn parse(text: &str) -> Result<InviteCode, CircleError> {
        // The cleaned text holds the invite secret in base32: erased after.
        let mut cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        cleaned.make_ascii_lowercase();
        let result = match cleaned.strip_prefix(INVITE_PREFIX) {
            None => Err(CircleError::NotAnInvite),
            Some(body) => match base32_decode(body) {
                None => Err(CircleError::InviteCorrupt),
                Some(mut bytes) => {
                    let parsed = Self::parse_bytes(&bytes);
                    bytes.zeroize();
                    parsed
                }
            },
        };
        cleaned.zeroize();
        result
    }

    fn parse_bytes(bytes: &[u8]) -> Result<InviteCode, CircleError> {
        if bytes.len() < 5 {
            return Err(CircleError::InviteCorrupt);
        }
        let (content, sum) = bytes.split_at(bytes.len() - 4);
        if hash(LABEL_CHECKSUM, &[content])[..4] != *sum {
            return Err(CircleError::InviteCorrupt);
        }
        let mut r = Reader::new(content);
        let version = r.u8().map_err(|_| CircleError::InviteCorrupt)?;
        if version < INVITE_VERSION {
            return Err(CircleError::InviteOlder(version));
        }
        if version != INVITE_VERSION {
            return Err(CircleError::InviteVersion(version));
        }
        let parse = |r: &mut Reader<'_>| -> Result<InviteCode, crate::wire::WireError> {
            let circle_id = r.array()?;
            let network_key = r.array()?;
            let invite_op = r.array()?;
            let mut seed: [u8; 32] = r.array()?;
            let secret = InviteSecret::from_seed(&seed);
            seed.zeroize();
            let expires_at_ms = r.u64()?;
            let inviter = MemberId(r.array()?);
            let n = r.u8()? as usize;
            if n > MAX_ADDRESSES {
                return Err(crate::wire::WireError::LimitExceeded { what: "addresses", limit: MAX_ADDRESSES });
            }
            let addresses = (0..n).map(|_| r.str16("address", MAX_ADDRESS_LEN)).collect::<Result<_, _>>()?;
            Ok(InviteCode { circle_id, network_key, invite_op, secret, expires_at_ms, inviter, addresses })
        };
        let code = parse(&mut r).map_err(|_| CircleError::InviteCorrupt)?;
        r.finish().map_err(|_| CircleError::InviteCorrupt)?;
        Ok(code)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    fn code() -> InviteCode {
        let mut rng = SeededEntropy::from_u64(9);
        InviteCode {
            circle_id: [1; 32],
            network_key: [2; 32],
            invite_op: [3; 32],
            secret: InviteSecret::generate(&mut rng),
            expires_at_ms: 123,
            inviter: MemberId([4; 32]),
            addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        }
    }

    #[test]
    fn round_trip_whitespace_and_case() {
        let c = code();
        let text = c.encode();
        let back = InviteCode::parse(&text).unwrap();
        assert_eq!(back.circle_id, c.circle_id);
        assert_eq!(back.secret.public(), c.secret.public());
        assert_eq!(back.addresses, c.addresses);
        let messy = format!("  {}\n{} ", text[..20].to_uppercase(), &text[20..]);
        assert!(InviteCode::parse(&messy).is_ok());
    }

    #[test]
    fn typos_and_junk_are_named() {
        let text = code().encode();
        let mut chars: Vec<char> = text.chars().collect();
        let i = 30;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(InviteCode::parse(&typo), Err(CircleError::InviteCorrupt)));
        assert!(matches!(InviteCode::parse("hello"), Err(CircleError::NotAnInvite)));
        assert!(matches!(InviteCode::parse(&text[..40]), Err(CircleError::InviteCorrupt)));
        assert!(matches!(InviteCode::parse("kolo1-!!!"), Err(CircleError::InviteCorrupt)));
    }

    /// A code made of `content` and its correct checksum, so that the
    /// checks after the checksum are what is tested.
    fn with_checksum(mut content: Vec<u8>) -> String {
        let sum = hash(LABEL_CHECKSUM, &[&content]);
        content.extend_from_slice(&sum[..4]);
        format!("{INVITE_PREFIX}{}", base32(&content, Case::Lower))
    }

    /// The fixed fields of [`code`]'s binary form (version to inviter).
    fn fixed_fields() -> Vec<u8> {
        let text = code().encode();
        let bytes = base32_decode(&text[INVITE_PREFIX.len()..]).unwrap();
        bytes[..1 + 4 * 32 + 8 + 32].to_vec()
    }

    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

    fn corrupt(text: &str) -> bool {
        matches!(InviteCode::parse(text), Err(CircleError::InviteCorrupt))
    }

    /// SPEC §4.4's decoding rules, one by one.
    #[test]
    fn invite_decoding_is_strict() {
        let text = code().encode();
        // ASCII white space (not VT, not U+00A0) and case are ignored
        // anywhere, the prefix included.
        let spaced = format!("Ko lo1\t-\r\n{}\x0c", text[INVITE_PREFIX.len()..].to_uppercase());
        assert!(InviteCode::parse(&spaced).is_ok());
        assert!(corrupt(&format!("{}\u{b}{}", &text[..10], &text[10..])), "vertical tab");
        assert!(corrupt(&format!("{}\u{a0}{}", &text[..10], &text[10..])), "no-break space");
        assert!(matches!(InviteCode::parse(&format!("kolo2-{}", &text[6..])), Err(CircleError::NotAnInvite)));
        // Base32: no `=` padding, no impossible length, no non-zero trailing bits.
        assert!(corrupt(&format!("{text}======")));
        assert!(corrupt(&format!("{text}aa")), "a length no byte string has");
        let last = text.as_bytes()[text.len() - 1];
        let v = ALPHABET.iter().position(|a| *a == last).unwrap();
        let flipped = format!("{}{}", &text[..text.len() - 1], ALPHABET[v ^ 1] as char);
        assert!(corrupt(&flipped), "non-zero trailing bits");
        assert!(corrupt("kolo1-"), "empty");
        // Version: checked after the checksum.
        let mut older = fixed_fields();
        older[0] = 1;
        assert!(matches!(InviteCode::parse(&with_checksum(older)), Err(CircleError::InviteOlder(1))));
        let mut newer = fixed_fields();
        newer[0] = 3;
        assert!(matches!(InviteCode::parse(&with_checksum(newer)), Err(CircleError::InviteVersion(3))));
        // Addresses: at most 8, each at most 200 bytes of UTF-8; nothing after them.
        let mut none = fixed_fields();
        none.push(0);
        assert!(InviteCode::parse(&with_checksum(none.clone())).is_ok());
        let mut trailing = none;
        trailing.push(0);
        assert!(corrupt(&with_checksum(trailing)), "a byte after the addresses");
        let mut nine = fixed_fields();
        nine.push(9);
        for _ in 0..9 {
            nine.extend_from_slice(&[0, 1, b'a']);
        }
        assert!(corrupt(&with_checksum(nine)));
        let mut long = fixed_fields();
        long.extend_from_slice(&[1, 0, 201]);
        long.extend_from_slice(&[b'a'; 201]);
        assert!(corrupt(&with_checksum(long)));
        let mut not_utf8 = fixed_fields();
        not_utf8.extend_from_slice(&[1, 0, 1, 0xff]);
        assert!(corrupt(&with_checksum(not_utf8)));
        let mut short = fixed_fields();
        short.truncate(50);
        assert!(corrupt(&with_checksum(short)), "cut short");
    }

    proptest! {
        #[test]
        fn base32_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(base32_decode(&base32(&bytes, Case::Lower)), Some(bytes));
        }

        #[test]
        fn parse_never_panics(text in ".{0,300}") {
            let _ = InviteCode::parse(&text);
            let _ = InviteCode::parse(&format!("kolo1-{text}"));
        }
    }
}
