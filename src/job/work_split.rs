//! The work of a job split N ways: contiguous ranges of the sorted input
//! objects, balanced by bytes, so output order still follows input order.
//! With fewer objects than workers, large objects are cut into pieces
//! (Parquet by row groups, uncompressed CSV by byte ranges).

use crate::error::Result;
use crate::pipeline::plan::{InputFormat, InputPlan};
use crate::read::parquet_input::ParquetInput;
use crate::read::source::{format_of, Part, Piece};
use crate::storage::{Compression, InputObject};

/// Splits the sorted objects into `n` contiguous ranges of about equal bytes.
pub fn split_by_bytes(files: &[InputObject], n: usize) -> Vec<std::ops::Range<usize>> {
    let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
    split_sizes(&sizes, n)
}

/// Splits items (in order) into `n` contiguous ranges of about equal total
/// size: the k-th cut is the item boundary closest to k/n of the total.
pub fn split_sizes(sizes: &[u64], n: usize) -> Vec<std::ops::Range<usize>> {
    let mut cum = vec![0u64];
    for s in sizes {
        cum.push(cum.last().expect("non-empty") + s);
    }
    let total = *cum.last().expect("non-empty") as f64;
    let mut bounds = vec![0usize];
    for k in 1..n {
        let target = total * k as f64 / n as f64;
        let lo = *bounds.last().expect("non-empty");
        let best = (lo..=sizes.len())
            .min_by(|&a, &b| {
                let da = (cum[a] as f64 - target).abs();
                let db = (cum[b] as f64 - target).abs();
                da.total_cmp(&db)
            })
            .unwrap_or(lo);
        bounds.push(best);
    }
    bounds.push(sizes.len());
    (0..n).map(|k| bounds[k]..bounds[k + 1]).collect()
}

/// The work items of a run split `n` ways: whole objects when there are at
/// least `n`; otherwise large objects are cut into pieces so that no worker
/// sits idle: Parquet by row groups, uncompressed CSV by byte ranges (aligned
/// to record boundaries when read).
pub fn plan_pieces(
    files: &[InputObject],
    input: &InputPlan,
    n: usize,
) -> Result<Vec<(Piece, u64)>> {
    let whole = |i: usize| {
        (
            Piece {
                file: i,
                part: Part::Whole,
            },
            files[i].size,
        )
    };
    if files.len() >= n {
        return Ok((0..files.len()).map(whole).collect());
    }
    let total: u64 = files.iter().map(|f| f.size).sum::<u64>().max(1);
    let mut items = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let want = ((n as f64 * f.size as f64 / total as f64).round() as usize).max(1);
        if want == 1 {
            items.push(whole(i));
            continue;
        }
        match format_of(f, input.format)? {
            InputFormat::Parquet => {
                let sizes = ParquetInput::open(f)?.row_group_sizes();
                for r in split_sizes(&sizes, want.min(sizes.len().max(1))) {
                    if !r.is_empty() {
                        let bytes = sizes[r.clone()].iter().sum();
                        items.push((
                            Piece {
                                file: i,
                                part: Part::RowGroups(r),
                            },
                            bytes,
                        ));
                    }
                }
            }
            InputFormat::Csv if Compression::of(&f.key) == Compression::None => {
                for k in 0..want as u64 {
                    let (a, b) = (f.size * k / want as u64, f.size * (k + 1) / want as u64);
                    items.push((
                        Piece {
                            file: i,
                            part: Part::Bytes(a..b),
                        },
                        b - a,
                    ));
                }
            }
            InputFormat::Csv => items.push(whole(i)), // compressed: one stream
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(sizes: &[u64]) -> Vec<InputObject> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| InputObject::local(format!("f{i}").into(), format!("f{i}"), *s))
            .collect()
    }

    #[test]
    fn splits_are_contiguous_cover_everything_and_balance_bytes() {
        let files = objs(&[10, 10, 10, 10, 10, 10, 10, 10]);
        assert_eq!(split_by_bytes(&files, 4), vec![0..2, 2..4, 4..6, 6..8]);
        let files = objs(&[100, 1, 1, 1, 1, 100]);
        let r = split_by_bytes(&files, 2);
        assert_eq!(r, vec![0..3, 3..6]);
        let files = objs(&[5, 5]);
        let r = split_by_bytes(&files, 4);
        assert_eq!(r.len(), 4);
        assert_eq!(r.iter().map(|x| x.len()).sum::<usize>(), 2);
        assert_eq!(
            r.iter().flat_map(|x| x.clone()).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}
