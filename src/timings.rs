//! Busy time per pipeline stage, for the run report (`busy_seconds`).
//!
//! The stages run on several threads at once (reader, parser, spill
//! writer, encoder, shard writer), so wall-clock phases (`seconds`) cannot
//! say which one a slow run spent its time in. Each stage adds the time its
//! calls took, summed over threads; the sum of all stages can exceed the wall
//! time (that is the parallelism), and a stage close to the wall time is the
//! one that bounds the run. Counters are process-wide: one run per process.
//!
//! With `PREP_TRACE=FILE`, every timed call is also kept as a span (thread,
//! stage, start, duration) and the process writes them to FILE at exit as
//! Chrome trace JSON (open it in `chrome://tracing` or ui.perfetto.dev): the
//! gaps on each thread's row are where it waited.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
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

/// Runs `f`, adding its duration to `stage` (and a span to the trace).
pub fn timed<T>(stage: Stage, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    NANOS[stage as usize].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    if let Some(trace) = trace() {
        trace.record(STAGES[stage as usize].1, t, took);
    }
    out
}

/// One timed call on one thread.
struct Span {
    thread: usize,
    name: &'static str,
    start: Instant,
    took: std::time::Duration,
}

/// The spans of this process, when `PREP_TRACE` asks for them.
pub struct Trace {
    path: std::path::PathBuf,
    origin: Instant,
    spans: Mutex<Vec<Span>>,
    threads: Mutex<Vec<String>>,
}

thread_local! {
    static THREAD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Trace {
    fn new(path: std::path::PathBuf) -> Trace {
        Trace {
            path,
            origin: Instant::now(),
            spans: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        }
    }

    fn thread_index(&self) -> usize {
        THREAD.with(|t| {
            *t.get().get_or_insert_with(|| {
                let mut names = self.threads.lock().expect("trace lock");
                let me = std::thread::current();
                names.push(me.name().unwrap_or("unnamed").to_string());
                let i = names.len() - 1;
                t.set(Some(i));
                i
            })
        })
    }

    fn record(&self, name: &'static str, start: Instant, took: std::time::Duration) {
        let thread = self.thread_index();
        self.spans.lock().expect("trace lock").push(Span {
            thread,
            name,
            start,
            took,
        });
    }

    /// Chrome trace JSON (`traceEvents`, times in microseconds).
    pub fn to_json(&self) -> serde_json::Value {
        let mut events: Vec<serde_json::Value> = self
            .threads
            .lock()
            .expect("trace lock")
            .iter()
            .enumerate()
            .map(|(i, n)| serde_json::json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": i, "args": {"name": n}}))
            .collect();
        for s in self.spans.lock().expect("trace lock").iter() {
            let ts = s.start.saturating_duration_since(self.origin).as_secs_f64() * 1e6;
            events.push(serde_json::json!({
                "ph": "X", "name": s.name, "pid": 1, "tid": s.thread,
                "ts": ts.round(), "dur": (s.took.as_secs_f64() * 1e6).round(),
            }));
        }
        serde_json::json!({"traceEvents": events, "displayTimeUnit": "ms"})
    }

    /// Writes the trace file; a failure is a warning, never the run's error.
    pub fn write(&self) {
        let bytes = serde_json::to_vec(&self.to_json()).expect("trace serializes");
        if let Err(e) = std::fs::write(&self.path, bytes) {
            tracing::warn!("could not write the trace {}: {e}", self.path.display());
        }
    }
}

/// The process's trace, if `PREP_TRACE` names a file.
pub fn trace() -> Option<&'static Trace> {
    static T: OnceLock<Option<Trace>> = OnceLock::new();
    T.get_or_init(|| crate::env::trace_file().map(Trace::new))
        .as_ref()
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
    fn a_trace_names_threads_and_spans_in_chrome_format() {
        let t = Trace::new("unused.json".into());
        let start = Instant::now();
        t.record("parse", start, std::time::Duration::from_micros(1500));
        std::thread::Builder::new()
            .name("prep-writer".into())
            .spawn({
                let t: &'static Trace = Box::leak(Box::new(t));
                move || {
                    t.record(
                        "write",
                        Instant::now(),
                        std::time::Duration::from_micros(10),
                    );
                    let v = t.to_json();
                    let ev = v["traceEvents"].as_array().unwrap();
                    let names: Vec<&str> = ev
                        .iter()
                        .filter(|e| e["ph"] == "M")
                        .map(|e| e["args"]["name"].as_str().unwrap())
                        .collect();
                    assert_eq!(names.len(), 2);
                    assert!(names.contains(&"prep-writer"));
                    let parse = ev.iter().find(|e| e["name"] == "parse").unwrap();
                    assert_eq!(parse["ph"], "X");
                    assert_eq!(parse["dur"], 1500.0);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn adds_time_to_the_named_stage() {
        timed(Stage::SpillRead, || {
            std::thread::sleep(std::time::Duration::from_millis(5))
        });
        assert!(snapshot()["spill_read"] >= 0.004);
    }
}
