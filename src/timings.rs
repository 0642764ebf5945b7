//! Busy time per pipeline stage, for the run report (`busy_seconds`).
//!
//! The stages run on several threads at once (reader, parser, spill
//! writer, encoder, shard writer), so wall-clock phases (`seconds`) cannot
//! say which one a slow run spent its time in. Each stage adds the time its
//! calls took, summed over threads; the sum of all stages can exceed the wall
//! time (that is the parallelism), and a stage close to the wall time is the
//! one that bounds the run. Counters are process-wide: one run per process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Reading and splitting CSV into records; decoding Parquet slices.
    Read,
    /// CSV records → columns.
    Parse,
    /// Dropping rows with nulls (and non-finite values).
    Clean,
    /// Accumulating moments.
    Stats,
    SpillWrite,
    SpillRead,
    /// Applying the scaler, projecting and renaming.
    Scale,
    /// Encoding rows (JSONL/CSV) or Parquet pages, with compression.
    Encode,
    /// Writing shard bytes (local file or upload).
    Write,
}

const STAGES: [(Stage, &str); 9] = [
    (Stage::Read, "read"),
    (Stage::Parse, "parse"),
    (Stage::Clean, "clean"),
    (Stage::Stats, "stats"),
    (Stage::SpillWrite, "spill_write"),
    (Stage::SpillRead, "spill_read"),
    (Stage::Scale, "scale"),
    (Stage::Encode, "encode"),
    (Stage::Write, "write"),
];

static NANOS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// Runs `f`, adding its duration to `stage`.
pub fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    NANOS[stage as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// Seconds per stage so far, for stages that ran.
pub fn snapshot() -> BTreeMap<String, f64> {
    STAGES
        .iter()
        .filter_map(|(stage, name)| {
            let ns = NANOS[*stage as usize].load(Ordering::Relaxed);
            (ns > 0).then(|| (name.to_string(), (ns as f64 / 1e9 * 1e3).round() / 1e3))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_time_to_the_named_stage() {
        timed(Stage::SpillRead, || {
            std::thread::sleep(std::time::Duration::from_millis(5))
        });
        assert!(snapshot()["spill_read"] >= 0.004);
    }
}
