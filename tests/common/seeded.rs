//! A small seeded random source for fault schedules: the seed is printed,
//! and `KOLO_FAULT_SEED=<n>` replays a run.

pub struct Rng(u64);

impl Rng {
    /// From `KOLO_FAULT_SEED` if set, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("KOLO_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("{test}: seed {seed} (replay with KOLO_FAULT_SEED={seed})");
        Rng(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// splitmix64.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
