//! Mergeable moments per column: count, mean and M2, numerically stable.
//!
//! Each column is accumulated relative to a shift (its first value), so a
//! column like 1e9 + noise of 1e-3 keeps its precision: the shifted values
//! are small, so neither the sum nor M2 loses the noise to cancellation. A
//! chunk is summarised with a two-pass (mean, then squared deviations), and
//! chunk summaries are combined with Chan et al.'s parallel update in a fixed
//! order, so results do not depend on the chunk size beyond rounding.
//!
//! The mean itself is `(shift · n + Σ(x − shift)) / n`, evaluated with
//! error-free products and sums (double-double): the shifted sums are
//! pairwise within a chunk and added across chunks with Neumaier's
//! compensation. `shift + shifted mean` lost the digits of a mean far
//! smaller than the first value (1e6, -1e6, 1 gave 0.33333333337, not 1/3);
//! a plain sum of the values lost a constant column's exactness (200
//! copies of 6.4e18 had a mean one ulp off, so `x − mean` was 1024).

use serde::{Deserialize, Serialize};

/// Moments of one column over the rows seen so far (nulls and NaN skipped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub count: u64,
    /// The reference value subtracted before accumulating.
    pub shift: f64,
    /// Mean of `x - shift`.
    pub shifted_mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Σ(x − shift), pairwise per chunk, the chunks' sums added with
    /// Neumaier's compensation, and that compensation.
    #[serde(default)]
    pub shifted_sum: f64,
    #[serde(default)]
    pub shifted_sum_error: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            count: 0,
            shift: 0.0,
            shifted_mean: 0.0,
            m2: 0.0,
            shifted_sum: 0.0,
            shifted_sum_error: 0.0,
        }
    }
}

/// Adds `x` to the compensated sum `(sum, error)` (Neumaier's variant of
/// Kahan summation: also right when `x` is larger than the sum so far).
#[inline]
fn add_compensated(sum: &mut f64, error: &mut f64, x: f64) {
    let t = *sum + x;
    *error += if sum.abs() >= x.abs() {
        (*sum - t) + x
    } else {
        (x - t) + *sum
    };
    *sum = t;
}

/// `a + b` as an unevaluated sum `(s, e)`: `s` rounded, `e` exactly what
/// rounding lost (Knuth's TwoSum).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `a · b` as `(p, e)`, `e` exactly what rounding lost (one fused
/// multiply-add).
#[inline]
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// Pairwise sum: error grows with log(n), not n.
fn pairwise_sum(v: &[f64]) -> f64 {
    if v.len() <= 128 {
        let mut acc = [0.0f64; 4];
        let mut chunks = v.chunks_exact(4);
        for c in &mut chunks {
            acc[0] += c[0];
            acc[1] += c[1];
            acc[2] += c[2];
            acc[3] += c[3];
        }
        let rest: f64 = chunks.remainder().iter().sum();
        return (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest;
    }
    let mid = v.len() / 2;
    pairwise_sum(&v[..mid]) + pairwise_sum(&v[mid..])
}

impl Moments {
    /// `n` copies of `value` (an imputer's fill joining a column's moments).
    pub fn repeated(value: f64, n: u64) -> Moments {
        Moments {
            count: n,
            shift: value,
            ..Moments::default()
        }
    }

    /// `(shift · n + Σ(x − shift)) / n`, rounded once: the shift's product
    /// and the sums are carried exactly (double-double), and the quotient
    /// corrected by its remainder. A constant column's mean is its value,
    /// and a mean far below the shift keeps its digits.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return self.shift + self.shifted_mean;
        }
        let n = self.count as f64;
        let (p, p_error) = two_product(self.shift, n);
        let (t, t_error) = two_sum(p, self.shifted_sum);
        let (hi, lo) = two_sum(t, t_error + p_error + self.shifted_sum_error);
        let q = hi / n;
        let mean = q + ((-q).mul_add(n, hi) + lo) / n;
        if mean.is_finite() {
            mean
        } else {
            // shift · n overflows (|x| near 1e308): the shifted mean still
            // holds.
            self.shift + self.shifted_mean
        }
    }

    /// Population variance (ddof = 0).
    pub fn var(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.m2 / self.count as f64
        }
    }

    /// Adds a batch of finite values (callers drop nulls/NaN first).
    pub fn update(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        if self.count == 0 {
            self.shift = values[0];
        }
        let shift = self.shift;
        let mut shifted: Vec<f64> = values.iter().map(|x| x - shift).collect();
        let n = shifted.len() as f64;
        let shifted_sum = pairwise_sum(&shifted);
        let mean = shifted_sum / n;
        for d in shifted.iter_mut() {
            let e = *d - mean;
            *d = e * e;
        }
        let m2 = pairwise_sum(&shifted);
        self.merge(&Moments {
            count: values.len() as u64,
            shift,
            shifted_mean: mean,
            m2,
            shifted_sum,
            shifted_sum_error: 0.0,
        });
    }

    /// Chan et al.'s parallel update. `other` may use a different shift: it is
    /// re-based onto ours first (shifts of one column are close, so the
    /// difference is exact or nearly so).
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let other_mean = other.shifted_mean + (other.shift - self.shift);
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        let delta = other_mean - self.shifted_mean;
        self.shifted_mean += delta * (nb / n);
        self.m2 += other.m2 + delta * delta * (na * nb / n);
        self.count += other.count;
        // Σ(x − other.shift) re-based onto our shift: + (other.shift −
        // shift) · other.count, every piece carried exactly.
        let (d, d_error) = two_sum(other.shift, -self.shift);
        let (r, r_error) = two_product(d, nb);
        for x in [other.shifted_sum, r] {
            add_compensated(&mut self.shifted_sum, &mut self.shifted_sum_error, x);
        }
        self.shifted_sum_error += other.shifted_sum_error + r_error + d_error * nb;
    }
}

/// scikit-learn's `_is_constant_feature`: a variance within rounding noise of
/// zero counts as zero, so the column is not blown up.
pub fn is_constant(var: f64, mean: f64, n: u64) -> bool {
    let eps = f64::EPSILON;
    let n = n as f64;
    let upper = n * eps * var + (n * mean * eps).powi(2);
    var <= upper
}

/// `scale_` as scikit-learn computes it: sqrt(var), or 1 for a (near-)constant
/// column or one whose scale is below 10 * eps.
pub fn scale_of(m: &Moments) -> f64 {
    let var = m.var();
    if m.count == 0 || is_constant(var, m.mean(), m.count) {
        return 1.0;
    }
    let s = var.sqrt();
    if s < 10.0 * f64::EPSILON {
        1.0
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_pass(v: &[f64]) -> Moments {
        let mut m = Moments::default();
        m.update(v);
        m
    }

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / a.abs().max(b.abs())
        }
    }

    #[test]
    fn matches_textbook_values() {
        let m = one_pass(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.mean(), 2.5);
        assert_eq!(m.var(), 1.25);
    }

    #[test]
    fn large_offset_with_tiny_noise_keeps_precision() {
        // 1e9 + noise of 1e-3: exact mean 1e9 + 0.0005, exact var 1.25e-7 * 4/4
        let base = 1e9;
        let noise = [0.0, 0.001, -0.001, 0.0005, -0.0005, 0.0];
        let values: Vec<f64> = (0..6000).map(|i| base + noise[i % 6]).collect();
        let mut m = Moments::default();
        for c in values.chunks(7) {
            m.update(c);
        }
        let exact: Vec<f64> = noise.iter().map(|x| base + x).collect();
        let d: Vec<f64> = exact.iter().map(|x| x - base).collect();
        let mean_d = d.iter().sum::<f64>() / 6.0;
        let var = d.iter().map(|x| (x - mean_d).powi(2)).sum::<f64>() / 6.0;
        assert!(rel(m.var(), var) < 1e-9, "{} vs {}", m.var(), var);
        assert!(rel(m.mean(), base + mean_d) < 1e-15);
    }

    #[test]
    fn a_mean_far_below_the_first_value_keeps_every_digit() {
        let m = one_pass(&[1e6, -1e6, 1.0]);
        assert_eq!(m.mean(), 1.0 / 3.0);
        // Integers (exact in f64) with large cancellations, in chunks of
        // every size: the mean is the exact sum (i128) divided by n.
        let values: Vec<f64> = (0..30_000i64)
            .map(|i| {
                ((i * 7919) % 1_000_003 - 500_000) as f64 * if i % 2 == 0 { 1e6 } else { -1e6 }
            })
            .collect();
        let exact = values.iter().map(|&x| x as i128).sum::<i128>() as f64 / values.len() as f64;
        for chunk in [1, 7, 777, 30_000] {
            let mut m = Moments::default();
            for c in values.chunks(chunk) {
                m.update(c);
            }
            assert!(
                rel(m.mean(), exact) < 1e-15,
                "chunks of {chunk}: {} vs {exact}",
                m.mean()
            );
        }
        // A sum that overflows still has its (shifted) mean.
        assert_eq!(one_pass(&[1e308, 1.7e308]).mean(), 1.35e308);
        assert_eq!(Moments::repeated(2.5, 4).mean(), 2.5);
        // A constant column's mean is its value, however it is chunked or
        // merged (a plain sum of 200 copies of 6.4e18 was one ulp off).
        let v = 6_374_628_540_732_951_552.0f64;
        for chunk in [1, 7, 200] {
            let mut m = Moments::default();
            for c in [v; 200].chunks(chunk) {
                let mut part = Moments::default();
                part.update(c);
                m.merge(&part);
            }
            assert_eq!(m.mean(), v, "chunks of {chunk}");
        }
        // Partials with other shifts (workers) re-base exactly.
        let (mut a, mut b) = (one_pass(&[1e6, -1e6]), one_pass(&[1.0]));
        a.merge(&b);
        assert_eq!(a.mean(), 1.0 / 3.0);
        b.merge(&one_pass(&[1e6, -1e6]));
        assert_eq!(b.mean(), 1.0 / 3.0);
    }

    #[test]
    fn constant_columns_get_scale_one() {
        assert_eq!(scale_of(&one_pass(&[3.3; 100])), 1.0);
        let near: Vec<f64> = (0..1000).map(|i| 1e6 + 1e-10 * (i % 2) as f64).collect();
        assert_eq!(scale_of(&one_pass(&near)), 1.0);
        assert!((scale_of(&one_pass(&[0.0, 2.0])) - 1.0).abs() < 1e-15);
    }

    /// Means agree to 1e-12 relative to the column's magnitude (|mean| + std),
    /// which is what matters once a value is standardized.
    fn close_mean(a: &Moments, b: &Moments) -> bool {
        let size = a.mean().abs() + a.var().sqrt();
        (a.mean() - b.mean()).abs() <= 1e-12 * size
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_statistics(
            values in prop::collection::vec(-1e6f64..1e6, 1..400),
            chunk in 1usize..50,
            offset in prop::sample::select(vec![0.0, 1e3, 1e9]),
        ) {
            let values: Vec<f64> = values.iter().map(|v| v + offset).collect();
            let whole = one_pass(&values);
            let mut chunked = Moments::default();
            for c in values.chunks(chunk) {
                chunked.update(c);
            }
            prop_assert_eq!(whole.count, chunked.count);
            prop_assert!(close_mean(&whole, &chunked));
            prop_assert!((whole.var() - chunked.var()).abs() <= 1e-10 * whole.var().max(1e-300) + 1e-18);
        }

        #[test]
        fn merging_partials_in_any_split_equals_one_pass(
            values in prop::collection::vec(-1e3f64..1e3, 2..300),
            cuts in prop::collection::vec(0usize..300, 0..5),
        ) {
            let whole = one_pass(&values);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % values.len()).collect();
            cuts.push(0);
            cuts.push(values.len());
            cuts.sort();
            let mut merged = Moments::default();
            for w in cuts.windows(2) {
                merged.merge(&one_pass(&values[w[0]..w[1]]));
            }
            prop_assert!(close_mean(&whole, &merged));
            prop_assert!((whole.var() - merged.var()).abs() <= 1e-10 * whole.var() + 1e-18);
        }
    }
}
