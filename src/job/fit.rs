//! The fit pass: every chunk of this worker's share is read, cleaned, and
//! folded into the moments of the scaled columns; in spill mode the cleaned
//! chunks go to the spill on a thread of their own, so spilling overlaps
//! with parsing.
//!
//! ```text
//! Source (chunks) ─► Cleaner ─► Moments per scaled column
//!                           └─► Spill (second_pass = spill / auto on CSV)
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use polars::prelude::*;
use rayon::prelude::*;

use crate::chunk::FixedSchema;
use crate::error::{PrepError, Result};
use crate::job::report::Progress;
use crate::pipeline::plan::{InputFormat, InputPlan, Plan, SecondPass};
use crate::read::source::{format_of, Piece, Source};
use crate::storage::InputObject;
use crate::timings::{timed, Stage};
use crate::transform::clean::{CleanCounts, Cleaner};
use crate::transform::columns::{resolve, ResolvedColumns};
use crate::transform::stats::Moments;
use crate::write::spill::Spill;

/// What a pass reads: the job's objects, this worker's pieces of them, how
/// to parse them, and the stop flag.
pub struct PassInput<'a> {
    pub input: &'a InputPlan,
    pub files: &'a [InputObject],
    pub pieces: &'a [Piece],
    pub cancel: Arc<AtomicBool>,
    pub quiet: bool,
}

impl PassInput<'_> {
    pub fn source(&self) -> Source {
        Source::new(self.files.to_vec(), self.input, self.cancel.clone())
            .with_pieces(self.pieces.to_vec())
    }
}

/// What the fit pass learned.
pub struct Fitted {
    pub resolved: ResolvedColumns,
    pub cleaner: Cleaner,
    pub moments: Vec<Moments>,
    pub counts: CleanCounts,
    pub bytes_in: u64,
    /// The cleaned chunks, when `second_pass = "spill"`.
    pub spill: Option<Spill>,
    /// The schema the pass fixed, so a re-read parses the same way.
    pub schema: Option<FixedSchema>,
}

pub fn cleaner_for(plan: &Plan, cols: &ResolvedColumns) -> Cleaner {
    Cleaner {
        null_checked: cols.null_checked.clone(),
        scaled: cols.scaled.clone(),
        non_finite: plan.clean.non_finite,
    }
}

/// Collects the finite, non-null values of a column as f64.
fn finite_values(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let col = df
        .column(name)
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
    let f = col
        .cast(&DataType::Float64)
        .map_err(|e| PrepError::polars(format!("casting column `{name}` to float64"), e))?;
    let ca = f
        .f64()
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
    Ok(if ca.null_count() == 0 {
        ca.into_no_null_iter().filter(|v| !v.is_nan()).collect()
    } else {
        ca.iter().flatten().filter(|v| !v.is_nan()).collect()
    })
}

/// Error a producer reports when its consumer thread stopped first; the
/// consumer's own error is the one shown.
pub fn consumer_gone() -> PrepError {
    PrepError::PipelineStopped
}

/// The fit pass: reads and cleans every chunk, accumulates the moments of
/// the scaled columns, and (in spill mode) hands the cleaned chunks to a
/// writer thread, so spilling overlaps with parsing.
pub fn fit_pass(
    plan: &Plan,
    input: &PassInput,
    schema_hint: Option<FixedSchema>,
) -> Result<Option<Fitted>> {
    let files = input.files;
    let mut source = input.source().with_schema(schema_hint.clone());
    let mut resolved: Option<(ResolvedColumns, Cleaner)> = None;
    let mut moments: Vec<Moments> = Vec::new();
    if let Some(hint) = &schema_hint {
        let cols = resolve(plan, &hint.schema, &hint.origin)?;
        moments = vec![Moments::default(); cols.scaled.len()];
        resolved = Some((cols.clone(), cleaner_for(plan, &cols)));
    }
    let mut counts = CleanCounts::default();
    let mut progress = Progress::new("fit", source.total_bytes(), input.quiet);
    let spill_mode = match plan.input.second_pass {
        SecondPass::Spill => true,
        SecondPass::Reread => false,
        // Parquet decodes faster than Arrow IPC spills write and read back;
        // CSV parsing is slower than both (measured, README "Two passes").
        SecondPass::Auto => !files
            .iter()
            .all(|f| matches!(format_of(f, plan.input.format), Ok(InputFormat::Parquet))),
    };

    let (read, spill) = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<DataFrame>(2);
        let spiller = spill_mode.then(|| {
            scope.spawn(move || -> Result<Spill> {
                let mut spill = Spill::new()?;
                for mut df in rx {
                    timed(Stage::SpillWrite, || spill.write(&mut df))?;
                }
                Ok(spill)
            })
        });
        let read = source.for_each_chunk(&mut |chunk, src| {
            if resolved.is_none() {
                let schema = src
                    .schema
                    .as_ref()
                    .expect("schema fixed before the first chunk");
                let cols = resolve(plan, &schema.schema, &schema.origin)?;
                let cleaner = cleaner_for(plan, &cols);
                moments = vec![Moments::default(); cols.scaled.len()];
                resolved = Some((cols, cleaner));
            }
            let (cols, cleaner) = resolved.as_ref().expect("resolved above");
            let (df, c) = timed(Stage::Clean, || cleaner.apply(chunk, &src.files))?;
            counts.add(&c);
            timed(Stage::Stats, || -> Result<()> {
                let updates: Vec<Result<Vec<f64>>> = cols
                    .scaled
                    .par_iter()
                    .map(|c| finite_values(&df, c))
                    .collect();
                for (m, values) in moments.iter_mut().zip(updates) {
                    m.update(&values?);
                }
                Ok(())
            })?;
            if spill_mode && tx.send(df).is_err() {
                return Err(consumer_gone());
            }
            progress.update(src.bytes_read.load(Ordering::Relaxed), counts.rows_in);
            Ok(())
        });
        drop(tx);
        let spill = spiller.map(|h| h.join().expect("spill thread panicked"));
        (read, spill)
    });
    progress.finish();
    let spill = match (read, spill) {
        (_, Some(Err(e))) => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(()), spill) => spill.transpose()?,
    };
    let bytes_in = source.bytes_read.load(Ordering::Relaxed);
    let schema = source.schema.clone();
    Ok(resolved.map(|(resolved, cleaner)| Fitted {
        resolved,
        cleaner,
        moments,
        counts,
        bytes_in,
        spill,
        schema,
    }))
}
