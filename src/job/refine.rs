//! Quantile refinement passes (CONTRACT §9 "Quantiles"): between the fit
//! and the transform pass, the exact median / quantile search of
//! `transform/quantile.rs` asks for passes over the cleaned rows. Each pass
//! reads this worker's rows again (the spill, kept for the transform pass,
//! or a re-read), counts or collects the keys of the pinned ranges, and in
//! scale-out exchanges the answers through `_work/refine-rRR-wIIII.json`
//! (an extra barrier round), merged in worker order, so every worker ends
//! with the same values.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::job::barrier::Barrier;
use crate::job::fit::{parquet_projection, Fitted, PassInput};
use crate::job::transform::interrupted;
use crate::pipeline::plan::Plan;
use crate::timings::{timed, Stage};
use crate::transform::quantile::{merge_answers, Answer, Refine, Request, Scan};
use crate::transform::values::observed;

/// Keys a single run collects per pinned range before it counts instead.
pub const SOLO_COLLECT: u64 = 1 << 20;
/// The same for workers, whose answers travel through `_work/`.
pub const SHARED_COLLECT: u64 = 1 << 16;

/// Refinement passes over this worker's cleaned rows.
pub struct PassRefine<'a> {
    pub plan: &'a Plan,
    pub input: &'a PassInput<'a>,
    pub fitted: &'a Fitted,
    pub barrier: &'a Barrier,
    pub round: usize,
}

impl PassRefine<'_> {
    fn scan(&self, requests: &[Request]) -> Result<Vec<Answer>> {
        let mut scan = Scan::new(requests.to_vec());
        let mut add = |df: &polars::prelude::DataFrame| -> Result<()> {
            let mut cache: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for (i, r) in requests.iter().enumerate() {
                if !cache.contains_key(r.column.as_str()) {
                    cache.insert(r.column.as_str(), observed(df, &r.column)?.0);
                }
                scan.add(i, &cache[r.column.as_str()]);
            }
            Ok(())
        };
        match &self.fitted.spill {
            Some(spill) => {
                let mut columns: Vec<String> = requests.iter().map(|r| r.column.clone()).collect();
                columns.sort();
                columns.dedup();
                for i in 0..spill.chunks() {
                    if self.input.cancel.load(Ordering::Relaxed) {
                        return Err(interrupted());
                    }
                    let df = timed(Stage::SpillRead, || spill.read_columns(i, &columns))?;
                    add(&df)?;
                }
            }
            None => {
                let columns = requests.iter().map(|r| r.column.clone()).collect();
                let mut source = self
                    .input
                    .source()
                    .with_schema(self.fitted.schema.clone())
                    .with_projection(Some(parquet_projection(self.plan, false, columns)));
                let cleaner = &self.fitted.cleaner;
                source.for_each_chunk(&mut |chunk, src| {
                    let c = timed(Stage::Clean, || cleaner.clean(&chunk, &src.files, false))?;
                    add(&c.df)
                })?;
            }
        }
        Ok(scan.answers())
    }
}

impl Refine for PassRefine<'_> {
    fn refine(&mut self, requests: &[Request]) -> Result<Vec<Answer>> {
        self.round += 1;
        tracing::info!(
            round = self.round,
            ranges = requests.len(),
            "exact quantiles: refinement pass {} over {} key range(s)",
            self.round,
            requests.len()
        );
        let own = self.scan(requests)?;
        let all = self.barrier.exchange(self.round, own, &self.input.cancel)?;
        Ok(merge_answers(all))
    }
}
