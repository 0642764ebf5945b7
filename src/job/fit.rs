//! The fit pass: every chunk of this worker's share is read, cleaned, and
//! folded into the fit state of every step (moments, counts, histograms:
//! `transform/steps.rs`); the dropped rows go to `_rejects/` when asked;
//! in spill mode the cleaned chunks go to the spill. Parsing, cleaning and
//! spilling run on threads of their own, a chunk or two apart.
//!
//! ```text
//! Source (chunks) ─► Cleaner ─► FitState (every step's accumulators)
//!   this thread      prep-fit ├─► _rejects/ (output.rejects)
//!                             └─► Spill (second_pass = spill / auto on CSV)
//!                                 prep-spill-writer
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use polars::prelude::*;

use crate::chunk::{FixedSchema, SourceChunk};
use crate::error::{PrepError, Result};
use crate::job::rejects::RejectWriter;
use crate::job::report::Progress;
use crate::pipeline::plan::{
    ImputeStrategy, InputFormat, InputPlan, Plan, ScaleMethod, SecondPass,
};
use crate::read::source::{format_of, Piece, Projection, ProjectionRule, Source};
use crate::storage::InputObject;
use crate::timings::{timed, Stage};
use crate::transform::clean::{CleanCounts, Cleaner};
use crate::transform::columns::{resolve, ResolvedColumns};
use crate::transform::steps::FitState;
use crate::write::sink::ShardInfo;
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
    pub state: FitState,
    pub counts: CleanCounts,
    /// `_rejects/` shards this worker wrote.
    pub rejects: Vec<ShardInfo>,
    pub bytes_in: u64,
    /// The cleaned chunks, when `second_pass = "spill"`.
    pub spill: Option<Spill>,
    /// The schema the pass fixed, so a re-read parses the same way.
    pub schema: Option<FixedSchema>,
}

pub fn cleaner_for(plan: &Plan, cols: &ResolvedColumns) -> Cleaner {
    Cleaner {
        null_checked: cols.null_checked.clone(),
        finite_checked: cols.finite_checked.clone(),
        non_finite: plan.clean.non_finite,
    }
}

/// The columns a quantile refinement pass reads (`job/refine.rs`): the
/// median-imputed and the robust-scaled ones.
pub fn refined_columns(plan: &Plan, cols: &ResolvedColumns) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (g, cs) in plan.impute.iter().zip(&cols.steps.impute) {
        if matches!(g.strategy, ImputeStrategy::Median) {
            out.extend(cs.iter().cloned());
        }
    }
    for (g, cs) in plan.scale.iter().zip(&cols.steps.scale) {
        if matches!(g.method, ScaleMethod::Robust { .. }) {
            out.extend(cs.iter().cloned());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The Parquet columns a pass decodes: `needed`, every column a step reads
/// (`with_steps`), the ones cleaning reads values of (non-finite checks,
/// null-checked floats, where NaN counts as missing); the other
/// null-checked columns are read for their nulls only. A pass that keeps
/// whole rows (spill, `_rejects/`) reads everything instead.
pub fn parquet_projection(plan: &Plan, with_steps: bool, needed: Vec<String>) -> ProjectionRule {
    let plan = plan.clone();
    Box::new(move |fixed: &FixedSchema| {
        let cols = resolve(&plan, &fixed.schema, &fixed.origin)?;
        let mut values = needed.clone();
        if with_steps {
            values.extend(cols.steps.inputs.iter().map(|(n, _)| n.clone()));
        }
        values.extend(cols.finite_checked.iter().cloned());
        values.extend(
            cols.null_checked
                .iter()
                .filter(|c| fixed.schema.get(c.as_str()).is_some_and(|d| d.is_float()))
                .cloned(),
        );
        values.sort();
        values.dedup();
        let nulls_only = cols
            .null_checked
            .iter()
            .filter(|c| !values.contains(c))
            .cloned()
            .collect();
        Ok(Projection { values, nulls_only })
    })
}

/// Spill (true) or re-read (false) for the passes after the fit.
pub fn spills(plan: &Plan, files: &[InputObject]) -> bool {
    match plan.input.second_pass {
        SecondPass::Spill => true,
        SecondPass::Reread => false,
        // Parquet decodes faster than Arrow IPC spills write and read back;
        // CSV parsing is slower than both (measured, README "Two passes").
        SecondPass::Auto => !files
            .iter()
            .all(|f| matches!(format_of(f, plan.input.format), Ok(InputFormat::Parquet))),
    }
}

/// Error a producer reports when its consumer thread stopped first; the
/// consumer's own error is the one shown.
pub fn consumer_gone() -> PrepError {
    PrepError::PipelineStopped
}

/// What the folding thread hands on: the columns (before the first chunk)
/// and the parsed chunks.
enum ToFold {
    Columns(ResolvedColumns, Cleaner),
    Chunk(SourceChunk),
}

/// What the folding thread learned.
struct Folded {
    resolved: Option<(ResolvedColumns, Cleaner)>,
    state: Option<FitState>,
    counts: CleanCounts,
    rejects: Option<RejectWriter>,
}

/// The fit pass: reads and cleans every chunk, folds it into every step's
/// fit state, writes the dropped rows to `rejects` (when given), and (in
/// spill mode) hands the cleaned chunks to a writer thread, so spilling
/// overlaps with parsing.
///
/// Three stages on their own threads, a chunk or two apart: this thread
/// reads and parses (parallel inside), `prep-fit` cleans and folds chunk
/// after chunk in input order, `prep-spill-writer` spills. Cleaning chunk
/// k while chunk k+1 is parsed keeps both cores busy: with both on this
/// thread, a core idled through every chunk's clean and fold (5M CSV:
/// 0.45 cores idle through the whole fit pass).
pub fn fit_pass(
    plan: &Plan,
    input: &PassInput,
    schema_hint: Option<FixedSchema>,
    rejects: Option<RejectWriter>,
) -> Result<Option<Fitted>> {
    let files = input.files;
    let spill_mode = spills(plan, files);
    // Without a spill or rejects, the fit needs only what the steps and
    // cleaning read (Parquet input: a text column only for its nulls).
    let projection =
        (!spill_mode && rejects.is_none()).then(|| parquet_projection(plan, true, Vec::new()));
    let mut source = input
        .source()
        .with_schema(schema_hint.clone())
        .with_projection(projection);
    let mut progress = Progress::new("fit", source.total_bytes(), input.quiet);
    let bytes_read = source.bytes_read.clone();

    let (read, folded, spill) = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<(DataFrame, Arc<Vec<String>>)>(2);
        let spiller = spill_mode.then(|| {
            std::thread::Builder::new()
                .name("prep-spill-writer".into())
                .spawn_scoped(scope, move || -> Result<Spill> {
                    let mut spill = Spill::new()?.with_memory_budget(plan.input.memory_budget());
                    for (mut df, keys) in rx {
                        timed(Stage::SpillWrite, || spill.write(&mut df, &keys))?;
                    }
                    Ok(spill)
                })
                .map_err(|e| PrepError::io("starting the spill writer thread", e))
        });
        let spiller = match spiller.transpose() {
            Ok(s) => s,
            Err(e) => return (Err(e), Ok(None), None),
        };
        let (fold_tx, fold_rx) = sync_channel::<ToFold>(1);
        let progress = &mut progress;
        let folder = std::thread::Builder::new()
            .name("prep-fit".into())
            .spawn_scoped(scope, move || -> Result<Folded> {
                let mut f = Folded {
                    resolved: None,
                    state: None,
                    counts: CleanCounts::default(),
                    rejects,
                };
                let mut keys: Option<Arc<Vec<String>>> = None;
                for msg in fold_rx {
                    let chunk = match msg {
                        ToFold::Columns(cols, cleaner) => {
                            f.state = Some(FitState::new(plan, &cols.steps));
                            f.resolved = Some((cols, cleaner));
                            continue;
                        }
                        ToFold::Chunk(chunk) => chunk,
                    };
                    let (cols, cleaner) = f.resolved.as_ref().expect("columns sent first");
                    // The refinement columns, once per pass (sent with every chunk).
                    let keys = keys
                        .get_or_insert_with(|| Arc::new(refined_columns(plan, cols)))
                        .clone();
                    let st = f.state.as_mut().expect("with the columns");
                    let cleaned = timed(Stage::Clean, || {
                        cleaner.clean(&chunk, files, f.rejects.is_some())
                    })?;
                    f.counts.add(&cleaned.counts);
                    if let Some(r) = f.rejects.as_mut() {
                        r.write(&chunk, &cleaned, files)?;
                    }
                    timed(Stage::Stats, || {
                        st.update(&cleaned.df, &cols.steps, &|i, c| {
                            chunk.locate(files, cleaned.origin(i), Some(c))
                        })
                    })?;
                    if spill_mode && tx.send((cleaned.df, keys)).is_err() {
                        return Err(consumer_gone());
                    }
                    progress.update(bytes_read.load(Ordering::Relaxed), f.counts.rows_in);
                }
                Ok(f)
            });
        let folder = match folder {
            Ok(h) => h,
            Err(e) => {
                return (
                    Err(PrepError::io("starting the fit thread", e)),
                    Ok(None),
                    None,
                )
            }
        };
        let send_columns = |schema: &FixedSchema| -> Result<()> {
            let cols = resolve(plan, &schema.schema, &schema.origin)?;
            let cleaner = cleaner_for(plan, &cols);
            fold_tx
                .send(ToFold::Columns(cols, cleaner))
                .map_err(|_| consumer_gone())
        };
        let read = (|| -> Result<()> {
            let mut columns_sent = false;
            if let Some(hint) = &schema_hint {
                send_columns(hint)?;
                columns_sent = true;
            }
            source.for_each_chunk(&mut |chunk, src| {
                if !columns_sent {
                    let schema = src
                        .schema
                        .as_ref()
                        .expect("schema fixed before the first chunk");
                    send_columns(schema)?;
                    columns_sent = true;
                }
                fold_tx
                    .send(ToFold::Chunk(chunk))
                    .map_err(|_| consumer_gone())
            })
        })();
        drop(fold_tx);
        let folded = folder.join().expect("fit thread panicked").map(Some);
        let spill = spiller.map(|h| h.join().expect("spill thread panicked"));
        (read, folded, spill)
    });
    progress.finish();
    // The root cause: a spill failure, then the fold's (its chunks come
    // before the one being parsed), then the read's.
    let stopped = |e: &PrepError| matches!(e, PrepError::PipelineStopped);
    let (folded, spill) = match (read, folded, spill) {
        (_, _, Some(Err(e))) => return Err(e),
        (_, Err(e), _) if !stopped(&e) => return Err(e),
        (Err(e), _, _) => return Err(e),
        (Ok(()), Err(e), _) => return Err(e),
        (Ok(()), Ok(folded), spill) => (folded, spill.transpose()?),
    };
    let Some(Folded {
        resolved,
        state,
        counts,
        rejects,
    }) = folded
    else {
        return Ok(None);
    };
    if let Some(s) = &spill {
        tracing::debug!(
            chunks = s.chunks(),
            file_bytes = s.bytes,
            memory_bytes = s.in_memory(),
            "spill written"
        );
    }
    let bytes_in = source.bytes_read.load(Ordering::Relaxed);
    let schema = source.schema.clone();
    let rejects = match rejects {
        Some(r) => r.finish()?,
        None => Vec::new(),
    };
    Ok(resolved.map(|(resolved, cleaner)| Fitted {
        resolved,
        cleaner,
        state: state.expect("with the columns"),
        counts,
        rejects,
        bytes_in,
        spill,
        schema,
    }))
}
