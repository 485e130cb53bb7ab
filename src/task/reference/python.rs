//! CPython's `random` module (3.x, `Random` with its Mersenne Twister): `seed(int)`,
//! `randint` and `choice`, bit for bit, as the reference's AR generator calls them.

use super::mt19937::Mt19937;

pub struct PyRandom {
    mt: Mt19937,
}

impl PyRandom {
    /// `random.seed(n)` for a non-negative integer: `init_by_array` over its 32-bit words.
    pub fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        PyRandom {
            mt: Mt19937::from_key(&key),
        }
    }

    /// `getrandbits(k)` for `1 ≤ k ≤ 32`: the top `k` bits of one word.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.mt.next_u32() >> (32 - k)
    }

    /// `_randbelow(n)`: `k = n.bit_length()` bits, redrawn until below `n` (so `n = 1` still
    /// draws until a 0 bit comes up, as CPython does).
    pub fn randbelow(&mut self, n: usize) -> usize {
        debug_assert!(n >= 1 && n <= u32::MAX as usize);
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `randint(a, b)`, both ends included.
    pub fn randint(&mut self, a: usize, b: usize) -> usize {
        a + self.randbelow(b - a + 1)
    }
}
