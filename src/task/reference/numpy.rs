//! numpy's legacy `RandomState` (numpy ≥ 1.17, unchanged in 2.x): the draws the reference's
//! generators make through `np.random.*` after `np.random.seed(42)`, bit for bit.

use super::mt19937::Mt19937;

pub struct RandomState {
    mt: Mt19937,
}

/// The smallest all-ones bit mask covering `max`.
fn mask_of(max: u32) -> u32 {
    if max == 0 {
        0
    } else {
        u32::MAX >> max.leading_zeros()
    }
}

impl RandomState {
    /// `np.random.seed(seed)` for an integer seed in `0..2^32`.
    pub fn new(seed: u32) -> Self {
        RandomState {
            mt: Mt19937::from_u32(seed),
        }
    }

    /// `random_sample()`: 53 random bits from two 32-bit words.
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.mt.next_u32() >> 5) as f64;
        let b = (self.mt.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// Uniform in `0..=max` by masked rejection (numpy's `random_interval` and the legacy
    /// bounded-integer path); `max = 0` draws nothing.
    fn masked(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = mask_of(max);
        loop {
            let v = self.mt.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `randint(low, high)`: uniform in `low..high`.
    pub fn randint(&mut self, low: usize, high: usize) -> usize {
        debug_assert!(high > low && high - low - 1 <= u32::MAX as usize);
        low + self.masked((high - low - 1) as u32) as usize
    }

    /// `permutation(n)`: a Fisher–Yates shuffle of `0..n` from the top down.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut a: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.masked(i as u32) as usize;
            a.swap(i, j);
        }
        a
    }

    /// `choice(n, size, replace=False)`: the first `size` entries of a permutation.
    pub fn choice_distinct(&mut self, n: usize, size: usize) -> Vec<usize> {
        let mut p = self.permutation(n);
        p.truncate(size);
        p
    }

    /// `choice(len(p), p=p)`: one index drawn by inverting the normalised cumulative sum.
    pub fn choice_p(&mut self, cdf: &Cdf) -> usize {
        let u = self.random_sample();
        cdf.search_right(u)
    }

    /// `dirichlet(np.ones(k))`: `k` standard exponentials `−ln(1 − U)`, each times `1/Σ`.
    pub fn dirichlet_ones(&mut self, k: usize) -> Vec<f64> {
        let mut x: Vec<f64> = Vec::with_capacity(k);
        let mut acc = 0.0;
        for _ in 0..k {
            let e = -(1.0 - self.random_sample()).ln();
            x.push(e);
            acc += e;
        }
        let inv = 1.0 / acc;
        x.iter_mut().for_each(|v| *v *= inv);
        x
    }
}

/// The cumulative distribution numpy's `choice(..., p=p)` searches: `cumsum(p) / cumsum(p)[-1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cdf(Vec<f64>);

impl Cdf {
    pub fn new(p: &[f64]) -> Self {
        let mut acc = 0.0;
        let mut c: Vec<f64> = p
            .iter()
            .map(|&x| {
                acc += x;
                acc
            })
            .collect();
        let last = *c.last().expect("a distribution over at least one outcome");
        c.iter_mut().for_each(|v| *v /= last);
        Cdf(c)
    }

    /// `searchsorted(u, side='right')`: how many entries are ≤ `u`.
    fn search_right(&self, u: f64) -> usize {
        self.0.partition_point(|&c| c <= u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_their_maximum() {
        assert_eq!(mask_of(1), 1);
        assert_eq!(mask_of(9), 15);
        assert_eq!(mask_of(16), 31);
        assert_eq!(mask_of(4095), 4095);
    }

    #[test]
    fn degenerate_draws_consume_nothing() {
        let (mut a, mut b) = (RandomState::new(1), RandomState::new(1));
        assert_eq!(a.randint(3, 4), 3);
        assert_eq!(a.random_sample(), b.random_sample());
    }
}
