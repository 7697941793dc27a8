//! Randomness as an explicit input.
//!
//! The pure core never reaches for the operating system's random source
//! itself: every function that needs fresh secrets takes an [`Entropy`].
//! Adapters pass [`OsEntropy`]; the deterministic simulation and the test
//! vectors pass [`SeededEntropy`] so that runs can be replayed.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A source of cryptographically secure random bytes.
pub trait Entropy {
    fn fill(&mut self, out: &mut [u8]);

    fn array<const N: usize>(&mut self) -> [u8; N]
    where
        Self: Sized,
    {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }
}

/// Draws a fixed-size array from a `dyn Entropy`.
pub fn random_array<const N: usize>(rng: &mut dyn Entropy) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill(&mut out);
    out
}

/// The operating system's CSPRNG (`getrandom`). Used by adapters only.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        // getrandom only fails if the OS has no entropy source at all, in
        // which case continuing would be unsafe; fall back to aborting the
        // operation through a process abort rather than weak keys.
        if getrandom::fill(out).is_err() {
            std::process::abort();
        }
    }
}

/// A deterministic generator (SHA-256 in counter mode over a seed) for the
/// simulation, tests and vectors. Never used for real keys.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SeededEntropy {
    seed: [u8; 32],
    counter: u64,
}

impl SeededEntropy {
    pub fn new(seed: [u8; 32]) -> Self {
        Self { seed, counter: 0 }
    }

    pub fn from_u64(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        Self::new(s)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(b"kolo/v1/seeded-entropy")
                .chain_update(self.seed)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_deterministic_and_advances() {
        let mut a = SeededEntropy::from_u64(1);
        let mut b = SeededEntropy::from_u64(1);
        let x: [u8; 40] = a.array();
        let y: [u8; 40] = b.array();
        assert_eq!(x, y);
        let z: [u8; 40] = a.array();
        assert_ne!(x, z);
    }
}
