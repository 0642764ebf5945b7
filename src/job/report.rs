//! The run report (`_SUCCESS`), the final summary line, and progress output.
//!
//! Progress is an indicatif bar on stderr when stderr is a terminal, a plain
//! log line every few seconds otherwise, and nothing with `--quiet`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::transform::clean::CleanCounts;

#[derive(Debug, Clone, Serialize)]
pub struct RowsDropped {
    pub nulls: u64,
    pub non_finite: u64,
    pub nulls_by_column: BTreeMap<String, u64>,
}

/// The JSON written to `_SUCCESS`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub status: String,
    pub pipeline: String,
    pub prep_version: String,
    pub input_uri: String,
    pub output_uri: String,
    pub input_objects: usize,
    pub rows_read: u64,
    pub rows_dropped: RowsDropped,
    pub rows_written: u64,
    pub shards: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Seconds per phase: fit, transform, finalize, total.
    pub seconds: BTreeMap<String, f64>,
    /// Busy seconds per stage, summed over threads (see `timings.rs`): the
    /// stage nearest the wall time is the one that bounds the run.
    pub busy_seconds: BTreeMap<String, f64>,
    pub rows_per_second: f64,
    /// Scale-out: the attempt of the job this `_SUCCESS` completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// With `output.rejects = true`: rows and shards under `_rejects/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejects: Option<crate::job::rejects::RejectsReport>,
}

impl RunReport {
    pub fn dropped(counts: &CleanCounts) -> RowsDropped {
        RowsDropped {
            nulls: counts.dropped_nulls,
            non_finite: counts.dropped_non_finite,
            nulls_by_column: counts.nulls_by_column.clone(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("report serializes");
        v.push(b'\n');
        v
    }

    /// One line for humans at the end of a run.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} rows read, {} dropped ({} nulls, {} non-finite), {} written to {} shard(s) in {:.2}s ({:.0} rows/s)",
            self.pipeline,
            self.rows_read,
            self.rows_dropped.nulls + self.rows_dropped.non_finite,
            self.rows_dropped.nulls,
            self.rows_dropped.non_finite,
            self.rows_written,
            self.shards,
            self.seconds.get("total").copied().unwrap_or_default(),
            self.rows_per_second
        )
    }
}

/// Per-phase progress on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Whether the bar counts bytes (reading) or rows (writing).
    bytes_unit: bool,
    quiet: bool,
    phase: String,
    /// Bytes or rows, as `bytes_unit` says.
    total: u64,
    started: Instant,
    last_log: Instant,
    every: Duration,
}

impl Progress {
    /// Progress counted in rows (the transform pass knows its row total).
    pub fn rows(phase: &str, total_rows: u64, quiet: bool) -> Self {
        Progress::with_unit(phase, total_rows, quiet, false)
    }

    /// Progress counted in input bytes.
    pub fn new(phase: &str, total_bytes: u64, quiet: bool) -> Self {
        Progress::with_unit(phase, total_bytes, quiet, true)
    }

    fn with_unit(phase: &str, total: u64, quiet: bool, bytes_unit: bool) -> Self {
        let interactive = !quiet && std::io::stderr().is_terminal();
        let bar = interactive.then(|| {
            let template = if bytes_unit {
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta}"
            } else {
                "{prefix:>9} [{bar:30}] {human_pos}/{human_len} rows ETA {eta}"
            };
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(phase.to_string());
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar
        });
        let every = crate::env::progress_interval();
        Progress {
            bar,
            bytes_unit,
            quiet,
            phase: phase.to_string(),
            total,
            started: Instant::now(),
            last_log: Instant::now(),
            every,
        }
    }

    pub fn update(&mut self, bytes: u64, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes.min(self.total));
            if self.bytes_unit {
                bar.set_message(format!("{rows} rows"));
            }
            return;
        }
        if self.quiet || self.last_log.elapsed() < self.every {
            return;
        }
        self.last_log = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = if self.total > 0 {
            100.0 * bytes as f64 / self.total as f64
        } else {
            0.0
        };
        let rate = (rows as f64 / secs).round();
        if self.bytes_unit {
            tracing::info!(
                phase = %self.phase,
                bytes,
                total_bytes = self.total,
                rows,
                rows_per_second = rate,
                "{} {:.0}%: {} rows, {} of {}",
                self.phase,
                pct.min(100.0),
                rows,
                bytesize::ByteSize(bytes),
                bytesize::ByteSize(self.total)
            );
        } else {
            tracing::info!(
                phase = %self.phase,
                rows,
                total_rows = self.total,
                rows_per_second = rate,
                "{} {:.0}%: {} of {} rows",
                self.phase,
                pct.min(100.0),
                rows,
                self.total
            );
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
