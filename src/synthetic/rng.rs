//! A keyed SplitMix64: every value depends on (seed, key), never on generation order.

/// SplitMix64: tiny, fast and statistically fine for synthetic data; no crate needed.
pub(super) struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A stream that depends only on the seed and the key, never on generation order.
    pub(super) fn keyed(seed: u64, key: &[u64]) -> Self {
        let state = key.iter().fold(mix64(seed), |acc, &k| {
            mix64(acc ^ mix64(k.wrapping_add(GOLDEN_GAMMA)))
        });
        Self { state }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` (multiply-shift; its bias is far below what matters here).
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(super) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}
