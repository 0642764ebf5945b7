//! Exact medians and quantiles in bounded memory (CONTRACT §9 "Quantiles").
//!
//! Every finite value maps to an order-preserving `u64` key ([`key`]). The
//! fit pass counts keys by their top 16 bits ([`Sketch`], mergeable across
//! chunks and workers). The target ranks then pin one bucket each; a
//! refinement pass over the cleaned rows either collects the values of a
//! bucket that holds few enough of them (then sorts them), or counts the
//! bucket's keys by their next 16 bits, and so on: after at most three
//! refinements a bucket is a single key. Memory is a few histograms of
//! 2^16 counts and at most `collect_limit` keys per pinned bucket, never a
//! column. The fill of an imputer is an extra weighted key (`extra`),
//! added once after the merge, so a scaler after an imputer sees the
//! imputed column without a pass of its own.
//!
//! The selected values then give `numpy.nanmedian` and
//! `numpy.nanpercentile(method = "linear")` bit for bit (`percentile.rs`).
//! `-0.0` counts as `0.0`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Bits per histogram level.
const LEVEL: u32 = 16;
const BUCKETS: usize = 1 << LEVEL;

/// Order-preserving key of a finite f64 (`-0.0` as `0.0`).
pub fn key(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// The value of a key.
pub fn value(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// One non-empty bucket: its index, count, smallest and largest key.
pub type Entry = (u32, u64, u64, u64);

/// Counts of keys per bucket, with each bucket's smallest and largest key
/// (a bucket holding one distinct value, as many duplicates at a median
/// do, then needs no refinement).
#[derive(Debug, Clone, PartialEq)]
struct Hist {
    counts: Vec<u64>,
    min: Vec<u64>,
    max: Vec<u64>,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; BUCKETS],
            min: vec![u64::MAX; BUCKETS],
            max: vec![0; BUCKETS],
        }
    }

    #[inline]
    fn add(&mut self, b: usize, k: u64, n: u64) {
        self.counts[b] += n;
        self.min[b] = self.min[b].min(k);
        self.max[b] = self.max[b].max(k);
    }

    fn entries(&self) -> Vec<Entry> {
        (0..BUCKETS)
            .filter(|b| self.counts[*b] > 0)
            .map(|b| (b as u32, self.counts[b], self.min[b], self.max[b]))
            .collect()
    }
}

/// Counts of keys by their top 16 bits (the fit pass's part).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    pub count: u64,
    hist: Option<Box<Hist>>,
}

impl Sketch {
    pub fn add(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let h = self.hist.get_or_insert_with(|| Box::new(Hist::new()));
        for v in values {
            let k = key(*v);
            h.add((k >> (64 - LEVEL)) as usize, k, 1);
        }
        self.count += values.len() as u64;
    }

    pub fn merge(&mut self, other: &Sketch) {
        let Some(o) = &other.hist else {
            return;
        };
        let h = self.hist.get_or_insert_with(|| Box::new(Hist::new()));
        for (b, n, lo, hi) in o.entries() {
            h.add(b as usize, lo, n);
            h.add(b as usize, hi, 0);
        }
        self.count += other.count;
    }

    fn entries(&self) -> Vec<Entry> {
        self.hist.as_ref().map(|h| h.entries()).unwrap_or_default()
    }
}

/// Sparse JSON form: `[[bucket, count, min key, max key], ...]` for the
/// non-empty buckets.
impl Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.entries().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let entries: Vec<Entry> = Vec::deserialize(d)?;
        let mut s = Sketch::default();
        for (b, n, lo, hi) in entries {
            if b as usize >= BUCKETS || n == 0 {
                return Err(serde::de::Error::custom("bad sketch bucket"));
            }
            let h = s.hist.get_or_insert_with(|| Box::new(Hist::new()));
            h.add(b as usize, lo, n);
            h.add(b as usize, hi, 0);
            s.count += n;
        }
        Ok(s)
    }
}

/// What a refinement pass computes for one pinned key range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub column: String,
    /// First key of the range.
    pub lo: u64,
    /// The range is `lo .. lo + 2^bits` (`bits` ≥ 16).
    pub bits: u32,
    /// Collect the keys (few enough), or count them by their next 16 bits.
    pub collect: bool,
}

impl Request {
    pub fn contains(&self, k: u64) -> bool {
        k >= self.lo && (k - self.lo) >> self.bits == 0
    }
}

/// A refinement pass's answer for one [`Request`]: merge by concatenating
/// keys or adding counts (in worker order; keys are sorted before use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Keys(Vec<u64>),
    Counts(Vec<Entry>),
}

/// Per-request accumulator of a refinement pass over chunks.
pub struct Scan {
    pub requests: Vec<Request>,
    keys: Vec<Vec<u64>>,
    counts: Vec<Option<Hist>>,
}

impl Scan {
    pub fn new(requests: Vec<Request>) -> Scan {
        let keys = requests.iter().map(|_| Vec::new()).collect();
        let counts = requests
            .iter()
            .map(|r| (!r.collect).then(Hist::new))
            .collect();
        Scan {
            requests,
            keys,
            counts,
        }
    }

    /// Adds one chunk's observed values of request `i`'s column.
    pub fn add(&mut self, i: usize, values: &[f64]) {
        let r = &self.requests[i];
        for v in values {
            let k = key(*v);
            if !r.contains(k) {
                continue;
            }
            match &mut self.counts[i] {
                None => self.keys[i].push(k),
                Some(h) => h.add(((k - r.lo) >> (r.bits - LEVEL)) as usize, k, 1),
            }
        }
    }

    pub fn answers(self) -> Vec<Answer> {
        self.keys
            .into_iter()
            .zip(self.counts)
            .zip(&self.requests)
            .map(|((k, c), _)| match c {
                None => Answer::Keys(k),
                Some(h) => Answer::Counts(h.entries()),
            })
            .collect()
    }
}

/// Merges the answers of several workers, in worker order.
pub fn merge_answers(all: Vec<Vec<Answer>>) -> Vec<Answer> {
    let mut it = all.into_iter();
    let Some(mut acc) = it.next() else {
        return Vec::new();
    };
    for other in it {
        for (a, b) in acc.iter_mut().zip(other) {
            match (a, b) {
                (Answer::Keys(x), Answer::Keys(y)) => x.extend(y),
                (Answer::Counts(x), Answer::Counts(y)) => {
                    let mut m: BTreeMap<u32, (u64, u64, u64)> = x
                        .iter()
                        .map(|(b, n, lo, hi)| (*b, (*n, *lo, *hi)))
                        .collect();
                    for (b, n, lo, hi) in y {
                        let e = m.entry(b).or_insert((0, u64::MAX, 0));
                        *e = (e.0 + n, e.1.min(lo), e.2.max(hi));
                    }
                    *x = m
                        .into_iter()
                        .map(|(b, (n, lo, hi))| (b, n, lo, hi))
                        .collect();
                }
                _ => {}
            }
        }
    }
    acc
}

/// Runs one refinement pass over the cleaned rows for these requests.
pub trait Refine {
    fn refine(&mut self, requests: &[Request]) -> Result<Vec<Answer>>;
}

/// The sorted values of a column wanted at some ranks.
#[derive(Debug, Clone)]
pub struct Problem {
    pub column: String,
    pub sketch: Sketch,
    /// An imputer's fill: `count` more copies of `value`.
    pub extra: Option<(f64, u64)>,
    pub ranks: Vec<u64>,
}

impl Problem {
    pub fn n(&self) -> u64 {
        self.sketch.count + self.extra.map_or(0, |e| e.1)
    }
}

/// A pinned key range and the ranks inside it.
struct Pending {
    problem: usize,
    lo: u64,
    bits: u32,
    /// Values (observed and extra) with keys below `lo`.
    below: u64,
    /// Observed values inside the range.
    observed: u64,
    ranks: Vec<u64>,
}

/// A bucket of a histogram with the imputer's extra copies folded in.
struct Bucket {
    b: u64,
    total: u64,
    observed: u64,
    /// The one key the bucket holds, when it holds one distinct key.
    single: Option<u64>,
}

/// Buckets from a histogram's entries plus `extra` (its bucket, key, count).
fn buckets(entries: &[Entry], extra: Option<(u64, u64, u64)>) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = entries
        .iter()
        .map(|&(b, n, lo, hi)| Bucket {
            b: b as u64,
            total: n,
            observed: n,
            single: (lo == hi).then_some(lo),
        })
        .collect();
    if let Some((eb, ek, n)) = extra {
        match out.iter_mut().find(|x| x.b == eb) {
            Some(x) => {
                x.total += n;
                x.single = x.single.filter(|k| *k == ek);
            }
            None => {
                out.push(Bucket {
                    b: eb,
                    total: n,
                    observed: 0,
                    single: Some(ek),
                });
                out.sort_by_key(|x| x.b);
            }
        }
    }
    out
}

/// Walks the buckets (in key order) to the one holding each rank; `push`
/// gets the bucket, the count below it and its ranks.
fn pin(
    buckets: &[Bucket],
    ranks: &[u64],
    below0: u64,
    mut push: impl FnMut(&Bucket, u64, Vec<u64>),
) {
    let mut below = below0;
    let mut ri = 0;
    for bk in buckets {
        let mut here = Vec::new();
        while ri < ranks.len() && ranks[ri] < below + bk.total {
            here.push(ranks[ri]);
            ri += 1;
        }
        if !here.is_empty() {
            push(bk, below, here);
        }
        below += bk.total;
    }
}

/// The value at rank `r` of `keys` (sorted) plus `extra` copies of key `ek`.
fn select(keys: &[u64], extra: Option<(u64, u64)>, r: u64) -> u64 {
    match extra {
        None => keys[r as usize],
        Some((ek, n)) => {
            let p = keys.partition_point(|k| *k < ek) as u64;
            if r < p {
                keys[r as usize]
            } else if r < p + n {
                ek
            } else {
                keys[(r - n) as usize]
            }
        }
    }
}

/// Finds the value at every rank of every problem, calling `refine` for
/// as many passes as needed (at most three; none for a rank whose bucket
/// holds one distinct value). Returns rank → value maps.
pub fn resolve(
    problems: &[Problem],
    collect_limit: u64,
    refine: &mut dyn Refine,
) -> Result<Vec<BTreeMap<u64, f64>>> {
    let mut out: Vec<BTreeMap<u64, f64>> = vec![BTreeMap::new(); problems.len()];
    let mut pending: Vec<Pending> = Vec::new();
    let top = 64 - LEVEL;
    for (pi, p) in problems.iter().enumerate() {
        let mut ranks = p.ranks.clone();
        ranks.sort_unstable();
        ranks.dedup();
        let extra = p
            .extra
            .filter(|e| e.1 > 0)
            .map(|(v, n)| (key(v) >> top, key(v), n));
        let bks = buckets(&p.sketch.entries(), extra);
        pin(&bks, &ranks, 0, |bk, below, ranks| match bk.single {
            Some(k) => {
                for r in ranks {
                    out[pi].insert(r, value(k));
                }
            }
            None => pending.push(Pending {
                problem: pi,
                lo: bk.b << top,
                bits: top,
                below,
                observed: bk.observed,
                ranks,
            }),
        });
    }
    while !pending.is_empty() {
        let requests: Vec<Request> = pending
            .iter()
            .map(|q| Request {
                column: problems[q.problem].column.clone(),
                lo: q.lo,
                bits: q.bits,
                collect: q.observed <= collect_limit,
            })
            .collect();
        let answers = refine.refine(&requests)?;
        let mut next = Vec::new();
        for ((q, req), ans) in pending.into_iter().zip(&requests).zip(answers) {
            let p = &problems[q.problem];
            let extra = p
                .extra
                .filter(|e| e.1 > 0)
                .map(|(v, n)| (key(v), n))
                .filter(|(ek, _)| req.contains(*ek));
            match ans {
                Answer::Keys(mut keys) => {
                    keys.sort_unstable();
                    for r in &q.ranks {
                        let k = select(&keys, extra, r - q.below);
                        out[q.problem].insert(*r, value(k));
                    }
                }
                Answer::Counts(c) => {
                    let shift = q.bits - LEVEL;
                    let extra = extra.map(|(ek, n)| ((ek - q.lo) >> shift, ek, n));
                    let bks = buckets(&c, extra);
                    pin(&bks, &q.ranks, q.below, |bk, below, ranks| {
                        let lo = q.lo + (bk.b << shift);
                        match bk.single.or((shift == 0).then_some(lo)) {
                            Some(k) => {
                                for r in ranks {
                                    out[q.problem].insert(r, value(k));
                                }
                            }
                            None => next.push(Pending {
                                problem: q.problem,
                                lo,
                                bits: shift,
                                below,
                                observed: bk.observed,
                                ranks,
                            }),
                        }
                    });
                }
            }
        }
        pending = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Refines over an in-memory column, split into "chunks".
    struct Mem<'a>(&'a [f64], usize);
    impl Refine for Mem<'_> {
        fn refine(&mut self, requests: &[Request]) -> Result<Vec<Answer>> {
            self.1 += 1;
            let mut scan = Scan::new(requests.to_vec());
            for chunk in self.0.chunks(7) {
                for i in 0..requests.len() {
                    scan.add(i, chunk);
                }
            }
            Ok(scan.answers())
        }
    }

    fn exact(
        values: &[f64],
        extra: Option<(f64, u64)>,
        ranks: &[u64],
        limit: u64,
    ) -> (Vec<f64>, usize) {
        let mut sketch = Sketch::default();
        for c in values.chunks(5) {
            sketch.add(c);
        }
        let p = Problem {
            column: "x".into(),
            sketch,
            extra,
            ranks: ranks.to_vec(),
        };
        let mut mem = Mem(values, 0);
        let got = resolve(&[p], limit, &mut mem).unwrap();
        (ranks.iter().map(|r| got[0][r]).collect(), mem.1)
    }

    fn sorted(values: &[f64], extra: Option<(f64, u64)>) -> Vec<f64> {
        let mut v = values.to_vec();
        if let Some((x, n)) = extra {
            v.extend(std::iter::repeat_n(x, n as usize));
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }

    #[test]
    fn keys_preserve_order_and_round_trip() {
        let vals = [
            f64::MIN,
            -1e300,
            -1.0,
            -1e-300,
            0.0,
            1e-300,
            1.0,
            1e9,
            f64::MAX,
        ];
        for w in vals.windows(2) {
            assert!(key(w[0]) < key(w[1]));
        }
        for v in vals {
            assert_eq!(value(key(v)), v);
        }
        assert_eq!(key(-0.0), key(0.0));
    }

    #[test]
    fn a_billion_plus_noise_needs_all_levels_and_stays_exact() {
        let v: Vec<f64> = (0..3000)
            .map(|i| 1e9 + ((i * 7919) % 1000) as f64 * 1e-6)
            .collect();
        let s = sorted(&v, None);
        let ranks = [0u64, 1499, 1500, 2999];
        let (got, passes) = exact(&v, None, &ranks, 0);
        assert_eq!(
            got,
            ranks.iter().map(|r| s[*r as usize]).collect::<Vec<_>>()
        );
        assert_eq!(passes, 3, "three 16-bit refinements reach single keys");
        let (got, passes) = exact(&v, None, &ranks, 1 << 20);
        assert_eq!(
            got,
            ranks.iter().map(|r| s[*r as usize]).collect::<Vec<_>>()
        );
        assert_eq!(passes, 1);
    }

    #[test]
    fn many_duplicates_at_the_median() {
        let mut v = vec![5.0; 1001];
        v.extend([1.0, 2.0, 9.0]);
        let (got, passes) = exact(
            &v,
            None,
            &crate::transform::percentile::median_ranks(v.len() as u64),
            0,
        );
        assert_eq!(got, vec![5.0, 5.0]);
        assert_eq!(passes, 0, "a bucket of one distinct value needs no pass");
    }

    #[test]
    fn extra_copies_count_as_values() {
        let v = [1.0, 2.0, 3.0, 10.0, 11.0];
        let e = Some((2.5, 4));
        let s = sorted(&v, e);
        for limit in [0, 100] {
            let ranks: Vec<u64> = (0..s.len() as u64).collect();
            let (got, _) = exact(&v, e, &ranks, limit);
            assert_eq!(got, s, "limit {limit}");
        }
    }

    proptest! {
        #[test]
        fn any_values_any_limit_give_the_sorted_ranks(
            values in prop::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0), Just(-0.0), Just(3.5)], 1..300),
            limit in prop::sample::select(vec![0u64, 3, 1000]),
            extra in prop::option::of((prop_oneof![Just(3.5), -10.0f64..10.0], 0u64..20)),
        ) {
            let s = sorted(&values, extra);
            let n = s.len() as u64;
            let ranks: Vec<u64> = [0, n / 3, n / 2, n - 1].into();
            let (got, passes) = exact(&values, extra, &ranks, limit);
            let want: Vec<f64> = ranks.iter().map(|r| s[*r as usize]).collect();
            // -0.0 is 0.0 to the keys.
            prop_assert_eq!(got.iter().map(|x| x + 0.0).collect::<Vec<_>>(), want.iter().map(|x| x + 0.0).collect::<Vec<_>>());
            prop_assert!(passes <= 3);
        }
    }
}
