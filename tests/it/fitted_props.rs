//! Property (issue 14): any chunking and any split of the input between
//! files and workers gives the same `transform.json` and rows as one run
//! with the default chunking. Exact for every step but the standard
//! scaler's moments (within 1e-12 relative: Chan's merge adds in another
//! order); the quantile steps (robust, median imputer) are exact ranks, so
//! they must not move by one bit. Quantiles equal a full sort: the
//! property test in `src/transform/quantile.rs`.

use crate::common::*;
use crate::fitted::{assert_same_artifact, case_csv, rows_in, run, split, workers_with};

/// Deterministic choices (xorshift), so a failure names a reproducible case.
struct Pick(u64);
impl Pick {
    fn of<T: Copy>(&mut self, from: &[T]) -> T {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        from[(self.0 % from.len() as u64) as usize]
    }
}

#[test]
fn any_chunking_and_any_worker_split_give_the_same_transform_json() {
    let mut pick = Pick(0x2545_f491_4f6c_dd1d);
    for name in ["tabular", "scalers", "imputed"] {
        let c = Case::new();
        let single = c.path("single");
        run(name, &case_csv(name), &single, &[]).success();
        let want = read_json(&single.join("transform.json"));
        let want_rows = rows_in(&single);
        for round in 0..3 {
            let chunk_rows = pick.of(&[1usize, 2, 7, 64, 333, 100_000]);
            let files = pick.of(&[1usize, 2, 5]);
            let n = pick.of(&[1usize, 2, 3, 4]);
            let label = format!("{name}: chunk_rows={chunk_rows}, {files} file(s), {n} worker(s)");
            let input = c.path(&format!("in-{round}"));
            split(&case_csv(name), &input, files);
            let out = c.path(&format!("out-{round}"));
            let sets = vec![format!("input.chunk_rows={chunk_rows}")];
            if n == 1 {
                run(name, &input, &out, &sets).success();
            } else {
                workers_with(name, &input, &out, n, "all", &sets);
            }
            eprintln!("checking {label}");
            assert_same_artifact(&want, &read_json(&out.join("transform.json")));
            assert_rows_close(&want_rows, &rows_in(&out));
        }
    }
}
