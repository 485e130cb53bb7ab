//! The iteration order of `list(set(xs))` for small non-negative integers in CPython 3.7–3.13:
//! the reference draws from such lists, so their order decides which element a draw picks.
//!
//! An int hashes to itself; a set starts with 8 slots, probes slot `h & mask`, then up to 9
//! following slots, then jumps with `i = 5i + 1 + perturb` (perturb shifted right by 5 each
//! time); after an insertion that fills 3/5 of the table it grows to the smallest power of two
//! above 4 × the entries, re-inserting in slot order. Iteration walks the slots.

const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;

fn insert_clean(table: &mut [Option<usize>], x: usize) {
    let mask = table.len() - 1;
    let mut perturb = x;
    let mut i = x & mask;
    loop {
        let probes = if i + LINEAR_PROBES <= mask {
            LINEAR_PROBES
        } else {
            0
        };
        if let Some(slot) = table[i..=i + probes].iter_mut().find(|s| s.is_none()) {
            *slot = Some(x);
            return;
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & mask;
    }
}

fn contains(table: &[Option<usize>], x: usize) -> bool {
    table.contains(&Some(x))
}

/// `list(set(xs))`.
pub fn set_order(xs: &[usize]) -> Vec<usize> {
    let mut table: Vec<Option<usize>> = vec![None; 8];
    let mut used = 0usize;
    for &x in xs {
        if contains(&table, x) {
            continue;
        }
        insert_clean(&mut table, x);
        used += 1;
        let mask = table.len() - 1;
        if used * 5 >= mask * 3 {
            let min_used = if used > 50_000 { used * 2 } else { used * 4 };
            let mut size = 8;
            while size <= min_used {
                size <<= 1;
            }
            let old = std::mem::replace(&mut table, vec![None; size]);
            for y in old.into_iter().flatten() {
                insert_clean(&mut table, y);
            }
        }
    }
    table.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders printed by CPython 3.11 for these lists.
    #[test]
    fn small_sets_iterate_by_slot() {
        assert_eq!(set_order(&[5, 12, 30]), [12, 5, 30]);
        assert_eq!(set_order(&[3, 1, 2, 1]), [1, 2, 3]);
    }
}
