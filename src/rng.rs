//! Deterministic random numbers: xoshiro256** seeded through splitmix64.
//! One global seed (set by `kerust.utils.set_random_seed`) hands out a seed to every model it builds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static SEED_STATE: AtomicU64 = AtomicU64::new(0);
static SEEDED: AtomicU64 = AtomicU64::new(0);

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reset the global seed: every model built afterwards is reproducible.
pub fn set_global_seed(seed: u64) {
    SEED_STATE.store(seed, Ordering::SeqCst);
    SEEDED.store(1, Ordering::SeqCst);
}

/// The next seed for a new model: from the global seed when one was set, else from the clock.
pub fn next_seed() -> u64 {
    if SEEDED.load(Ordering::SeqCst) == 1 {
        let mut s = SEED_STATE.load(Ordering::SeqCst);
        let out = splitmix64(&mut s);
        SEED_STATE.store(s, Ordering::SeqCst);
        out
    } else {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut s = nanos ^ SEED_STATE.fetch_add(1, Ordering::SeqCst).rotate_left(32);
        splitmix64(&mut s)
    }
}

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) as f64 (53 bits).
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        loop {
            let u1 = self.uniform_f64();
            if u1 > 0.0 {
                let u2 = self.uniform_f64();
                return ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32;
            }
        }
    }

    /// Standard normal truncated to [-2, 2] by redrawing, as Keras's truncated normal.
    pub fn truncated_normal(&mut self) -> f32 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return z;
            }
        }
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A child generator, so that independent streams (init, shuffle, dropout) stay independent.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// A stream for builds whose weights are thrown away (shape inference, the scratch build of a shared layer's
    /// later call): initializers see it and return zeros without drawing, so no weight is computed. `new` never
    /// makes this all-zero state (splitmix64 of any seed is not four zeros).
    pub fn shape_only() -> Rng {
        Rng { s: [0; 4] }
    }

    pub fn is_shape_only(&self) -> bool {
        self.s == [0; 4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_only_streams_are_never_made_by_seeds_and_give_zero_weights() {
        for seed in [0u64, 1, 42, u64::MAX] {
            assert!(!Rng::new(seed).is_shape_only());
        }
        let init =
            crate::initializers::Initializer::from_value(&serde_json::json!("glorot_uniform"))
                .unwrap();
        let w = init.fill(&[3, 4], &mut Rng::shape_only()).unwrap();
        assert_eq!(w, vec![0.0; 12]);
        assert!(init
            .fill(&[3, 4], &mut Rng::new(1))
            .unwrap()
            .iter()
            .any(|v| *v != 0.0));
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let z = r.normal() as f64;
            s += z;
            s2 += z * z;
        }
        assert!((s / n as f64).abs() < 0.01);
        assert!((s2 / n as f64 - 1.0).abs() < 0.02);
        let mean_u: f64 = (0..n).map(|_| r.uniform() as f64).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01);
    }

    #[test]
    fn shuffle_is_permutation() {
        let mut r = Rng::new(3);
        let mut v: Vec<usize> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
