//! Safety numbers: a short code per identity key, compared in person.
//!
//! Each member's code is 30 decimal digits in six groups of five, derived
//! by iterating SHA-512 over the identity key (iteration makes a targeted
//! collision costlier). Two members compare the pair of codes; the pair is
//! presented in a fixed order (lower code first) so both screens match.

use sha2::{Digest, Sha512};

use super::MemberId;

const LABEL: &[u8] = b"kolo/v1/safety-number";
const ITERATIONS: u32 = 1024;

/// Thirty digits for one identity, grouped in six blocks of five.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct SafetyNumber(pub [u32; 6]);

impl std::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|g| format!("{g:05}")).collect();
        f.write_str(&parts.join(" "))
    }
}

/// The safety number of one identity key.
pub fn safety_number(member: &MemberId) -> SafetyNumber {
    let mut digest = Sha512::new().chain_update(LABEL).chain_update(member.0).finalize();
    for _ in 1..ITERATIONS {
        digest = Sha512::new().chain_update(digest).chain_update(member.0).finalize();
    }
    let mut groups = [0u32; 6];
    for (i, g) in groups.iter_mut().enumerate() {
        let chunk = &digest[i * 5..i * 5 + 5];
        let v = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        *g = (v % 100_000) as u32;
    }
    SafetyNumber(groups)
}

/// The pair of codes two members compare, in a canonical order.
pub fn pair_safety_numbers(a: &MemberId, b: &MemberId) -> (SafetyNumber, SafetyNumber) {
    let (x, y) = (safety_number(a), safety_number(b));
    if x <= y { (x, y) } else { (y, x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let a = MemberId([1; 32]);
        let b = MemberId([2; 32]);
        assert_eq!(safety_number(&a), safety_number(&a));
        assert_ne!(safety_number(&a), safety_number(&b));
        assert_eq!(pair_safety_numbers(&a, &b), pair_safety_numbers(&b, &a));
        let shown = safety_number(&a).to_string();
        assert_eq!(shown.len(), 35);
    }
}
