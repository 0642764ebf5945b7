//! numpy's median and linear percentile from the sorted values at a few
//! ranks (found exactly by `quantile.rs`): `numpy.nanmedian` (the middle
//! value, or `(a + b) / 2` of the two middle ones) and
//! `numpy.nanpercentile(method="linear")` with numpy's `_lerp`, bit for bit.

use std::collections::BTreeMap;

/// The ranks `numpy.nanmedian` reads for `n` values.
pub fn median_ranks(n: u64) -> Vec<u64> {
    if n % 2 == 1 {
        vec![n / 2]
    } else {
        vec![n / 2 - 1, n / 2]
    }
}

/// `numpy.nanmedian` from the values at [`median_ranks`].
pub fn median_of(n: u64, at: &BTreeMap<u64, f64>) -> f64 {
    if n % 2 == 1 {
        at[&(n / 2)]
    } else {
        let (a, b) = (at[&(n / 2 - 1)], at[&(n / 2)]);
        // numpy's (a + b) / 2, also where a + b overflows (|x| ~ 1e308):
        // a / 2 + b / 2 is the same number when the sum is finite.
        let sum = a + b;
        if sum.is_finite() {
            sum / 2.0
        } else {
            a / 2.0 + b / 2.0
        }
    }
}

/// The virtual index of percentile `q` (0..=100) among `n` values.
fn virtual_index(n: u64, q: f64) -> f64 {
    (n - 1) as f64 * (q / 100.0)
}

/// The ranks `numpy.nanpercentile(method="linear")` reads.
pub fn percentile_ranks(n: u64, q: f64) -> Vec<u64> {
    let h = virtual_index(n, q);
    if h >= (n - 1) as f64 {
        return vec![n - 1];
    }
    let lo = h.floor() as u64;
    vec![lo, lo + 1]
}

/// `numpy.nanpercentile(method="linear")` from the values at
/// [`percentile_ranks`], with numpy's `_lerp`.
pub fn percentile_of(n: u64, q: f64, at: &BTreeMap<u64, f64>) -> f64 {
    let h = virtual_index(n, q);
    if h >= (n - 1) as f64 {
        return at[&(n - 1)];
    }
    let lo = h.floor();
    let (a, b) = (at[&(lo as u64)], at[&(lo as u64 + 1)]);
    let g = h - lo;
    let diff = b - a;
    if g >= 0.5 {
        b - diff * (1.0 - g)
    } else {
        a + diff * g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentile_follow_numpy() {
        let at: BTreeMap<u64, f64> = [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)].into();
        assert_eq!(median_of(4, &at), 3.0);
        let huge: BTreeMap<u64, f64> = [(0, 1e308), (1, 1.7e308)].into();
        assert_eq!(median_of(2, &huge), 1.35e308);
        assert_eq!(percentile_of(4, 25.0, &at), 1.75);
        assert_eq!(percentile_of(4, 75.0, &at), 5.0);
        assert_eq!(percentile_of(4, 100.0, &at), 8.0);
        assert_eq!(percentile_of(4, 0.0, &at), 1.0);
        assert_eq!(percentile_ranks(1, 50.0), vec![0]);
    }
}
