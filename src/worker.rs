//! Scale-out (CONTRACT §6): N workers, no coordinator, coordinating through
//! objects under `<output>/_work/`.
//!
//! ```text
//! worker i:  fit its byte-balanced range ─► _work/partial-wIIII.json
//!            wait for all N partials ─► Chan-merge in worker order ─► scaler
//!            (worker 0 writes scaler.json)
//!            transform its range ─► part-wIIII-NNNNN.ext ─► _work/done-wIIII.json
//! worker 0:  wait for all N done markers ─► manifest.json ─► _SUCCESS
//! ```
//! Every marker carries a fingerprint of the pipeline and the input listing,
//! so markers of an older, different run are ignored rather than merged,
//! and a restarted worker (same index) simply replaces its own objects.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::clean::{nothing_left, CleanCounts};
use crate::error::{DataLocation, PrepError, Result};
use crate::parquet_input::ParquetInput;
use crate::plan::InputFormat;
use crate::plan::Plan;
use crate::run::{
    cleaner_for, fit_pass, run_report, scaler_source, sink_options, transform_pass, Fitted,
    RunOptions,
};
use crate::scaler::Scaler;
use crate::sink::{manifest_json, ShardInfo};
use crate::source::{format_of, Part, Piece, Source};
use crate::stats::Moments;
use crate::store::{list_inputs, put_uri, without_output, InputObject, OutputDir};

/// This process's place among the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    All,
    Fit,
    Transform,
}

fn usage(message: impl Into<String>, hint: &str) -> PrepError {
    PrepError::Usage {
        message: message.into(),
        hint: Some(hint.to_string()),
    }
}

const AUTO_HINT: &str = "pass --worker I/N, or run under SageMaker Processing (resourceconfig.json), a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + PREP_WORKERS) or an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX + PREP_WORKERS)";

fn parse_pair(index: &str, count: &str, source: &str) -> Result<WorkerId> {
    let index: usize = index.trim().parse().map_err(|_| {
        usage(
            format!("{source}: worker index `{index}` is not a number"),
            AUTO_HINT,
        )
    })?;
    let count: usize = count.trim().parse().map_err(|_| {
        usage(
            format!("{source}: worker count `{count}` is not a number"),
            AUTO_HINT,
        )
    })?;
    if count == 0 || index >= count {
        return Err(usage(
            format!("{source}: worker {index} of {count} is out of range (indexes are 0-based, below the count)"),
            AUTO_HINT,
        ));
    }
    Ok(WorkerId { index, count })
}

#[derive(Deserialize)]
struct ResourceConfig {
    current_host: String,
    hosts: Vec<String>,
}

/// `--worker I/N` or `--worker auto`; `None` when not given.
pub fn resolve_worker(arg: Option<&str>) -> Result<Option<WorkerId>> {
    let Some(arg) = arg else { return Ok(None) };
    if arg != "auto" {
        let (i, n) = arg.split_once('/').ok_or_else(|| {
            usage(
                format!("--worker `{arg}` is not I/N or auto"),
                "example: --worker 0/4",
            )
        })?;
        return parse_pair(i, n, "--worker").map(Some);
    }
    let dir =
        std::env::var("PREP_SAGEMAKER_CONFIG_DIR").unwrap_or_else(|_| "/opt/ml/config".into());
    let rc_path = std::path::Path::new(&dir).join("resourceconfig.json");
    if rc_path.exists() {
        let text = std::fs::read_to_string(&rc_path)
            .map_err(|e| usage(format!("cannot read {}: {e}", rc_path.display()), AUTO_HINT))?;
        let rc: ResourceConfig = serde_json::from_str(&text).map_err(|e| {
            usage(
                format!(
                    "{} is not a SageMaker resource config: {e}",
                    rc_path.display()
                ),
                AUTO_HINT,
            )
        })?;
        let index = rc
            .hosts
            .iter()
            .position(|h| *h == rc.current_host)
            .ok_or_else(|| {
                usage(
                    format!(
                        "{}: current_host `{}` is not in hosts {:?}",
                        rc_path.display(),
                        rc.current_host,
                        rc.hosts
                    ),
                    AUTO_HINT,
                )
            })?;
        return Ok(Some(WorkerId {
            index,
            count: rc.hosts.len(),
        }));
    }
    for var in ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
        if let Ok(index) = std::env::var(var) {
            let count = std::env::var("PREP_WORKERS").map_err(|_| {
                usage(
                    format!("{var} is set but PREP_WORKERS is not"),
                    "set PREP_WORKERS to the number of workers (the Job's completions / the array size)",
                )
            })?;
            return parse_pair(&index, &count, var).map(Some);
        }
    }
    Err(usage("--worker auto found no worker identity", AUTO_HINT))
}

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
    input: &crate::plan::InputPlan,
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
        let key = f.key.to_ascii_lowercase();
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
            InputFormat::Csv
                if !(key.ends_with(".gz") || key.ends_with(".zst") || key.ends_with(".zstd")) =>
            {
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

/// Partial statistics of one worker (`_work/partial-wIIII.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    pub fingerprint: String,
    pub worker: usize,
    pub workers: usize,
    pub feature_names: Vec<String>,
    pub moments: Vec<Moments>,
    pub counts: CleanCounts,
    pub bytes_in: u64,
    pub seconds: f64,
}

/// What a worker wrote (`_work/done-wIIII.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub fingerprint: String,
    pub worker: usize,
    pub shards: Vec<ShardInfo>,
    pub rows_written: u64,
    pub seconds: f64,
}

/// Identifies a run: same pipeline text, worker count and input listing.
fn fingerprint(plan: &Plan, files: &[InputObject], count: usize) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{plan:?}").hash(&mut h);
    count.hash(&mut h);
    for f in files {
        (&f.key, f.size, &f.etag).hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn partial_name(i: usize) -> String {
    format!("_work/partial-w{i:04}.json")
}

fn done_name(i: usize) -> String {
    format!("_work/done-w{i:04}.json")
}

pub fn wait_timeout() -> Duration {
    std::env::var("PREP_WAIT_TIMEOUT")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(30 * 60))
}

/// Polls until every worker's marker with our fingerprint exists.
fn wait_all<T: DeserializeOwned>(
    out: &OutputDir,
    count: usize,
    name: fn(usize) -> String,
    fp: &str,
    what: &str,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<T>> {
    let start = Instant::now();
    let mut found: BTreeMap<usize, T> = BTreeMap::new();
    let mut delay = Duration::from_millis(100);
    loop {
        for i in 0..count {
            if found.contains_key(&i) {
                continue;
            }
            if let Some(bytes) = out.get(&name(i))? {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if v.get("fingerprint").and_then(|f| f.as_str()) == Some(fp) {
                    let t: T = serde_json::from_value(v).map_err(|e| {
                        PrepError::io(
                            format!("reading {}", out.display(&name(i))),
                            std::io::Error::other(e),
                        )
                    })?;
                    found.insert(i, t);
                }
            }
        }
        if found.len() == count {
            return Ok(found.into_values().collect());
        }
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PrepError::Interrupted {
                signal: "a termination signal".into(),
            });
        }
        if start.elapsed() >= timeout {
            let missing: Vec<String> = (0..count)
                .filter(|i| !found.contains_key(i))
                .map(|i| i.to_string())
                .collect();
            return Err(PrepError::Storage {
                action: format!("waiting {}s for the {what} of workers {}", timeout.as_secs(), missing.join(", ")),
                uri: out.display("_work/"),
                hint: Some(format!(
                    "start the missing workers (or rerun them with the same --worker index); PREP_WAIT_TIMEOUT sets the wait (now {})",
                    humantime::format_duration(timeout)
                )),
                source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Runs this worker's share of the pipeline.
pub fn run_worker(
    plan: &Plan,
    opts: &RunOptions,
    id: WorkerId,
    phase: Phase,
    cancel: Arc<AtomicBool>,
) -> Result<()> {
    let t0 = Instant::now();
    let out = OutputDir::new(&plan.output.uri, &plan.storage)?;
    let all_files = without_output(
        list_inputs(&plan.input.uri, &plan.storage)?,
        &out,
        &plan.input.uri,
    )?;
    let fp = fingerprint(plan, &all_files, id.count);
    let items = plan_pieces(&all_files, &plan.input, id.count)?;
    let sizes: Vec<u64> = items.iter().map(|(_, s)| *s).collect();
    let range = split_sizes(&sizes, id.count)[id.index].clone();
    let pieces: Vec<Piece> = items[range.clone()]
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    let files = all_files.clone();
    tracing::info!(
        worker = id.index,
        workers = id.count,
        pieces = pieces.len(),
        bytes = sizes[range.clone()].iter().sum::<u64>(),
        "worker {} of {}: pieces {}..{} of {}",
        id.index,
        id.count,
        range.start,
        range.end,
        items.len()
    );

    if phase != Phase::Transform {
        if out.exists("_SUCCESS")? {
            if !opts.overwrite {
                return Err(PrepError::OutputExists {
                    uri: out.uri.clone(),
                });
            }
            out.delete("_SUCCESS")?;
        }
        if opts.overwrite && id.index == 0 {
            for name in ["manifest.json", "scaler.json"] {
                out.delete(name)?;
            }
        }
    }
    // Every worker parses with the schema of the first object of the whole
    // input, exactly as a single run would.
    let schema = Source::schema_of_first(&all_files[0], &plan.input)?;

    // Fit.
    let mut fitted: Option<Fitted> = None;
    if phase != Phase::Transform {
        let f = fit_pass(
            plan,
            &files,
            Some(&pieces),
            schema.clone(),
            cancel.clone(),
            opts.quiet,
        )?
        .ok_or_else(|| nothing_left(&plan.input.uri, &CleanCounts::default()))?;
        let partial = Partial {
            fingerprint: fp.clone(),
            worker: id.index,
            workers: id.count,
            feature_names: f.resolved.scaled.clone(),
            moments: f.moments.clone(),
            counts: f.counts.clone(),
            bytes_in: f.bytes_in,
            seconds: t0.elapsed().as_secs_f64(),
        };
        out.put(
            &partial_name(id.index),
            &serde_json::to_vec_pretty(&partial).expect("serializes"),
        )?;
        tracing::info!(
            worker = id.index,
            rows = f.counts.rows_out(),
            "partial statistics written"
        );
        fitted = Some(f);
        if phase == Phase::Fit {
            return Ok(());
        }
    }

    // Merge every partial in worker order.
    let timeout = wait_timeout();
    let partials: Vec<Partial> = wait_all(
        &out,
        id.count,
        partial_name,
        &fp,
        "partial statistics",
        timeout,
        &cancel,
    )?;
    let names = partials[0].feature_names.clone();
    let mut moments = vec![Moments::default(); names.len()];
    let mut counts = CleanCounts::default();
    for p in &partials {
        if p.feature_names != names {
            return Err(PrepError::bad_data(
                DataLocation {
                    file: out.display(&partial_name(p.worker)),
                    ..Default::default()
                },
                format!(
                    "worker {} scaled {:?} but worker 0 scaled {:?}",
                    p.worker, p.feature_names, names
                ),
                Some(
                    "pin column types with [input.schema] so every worker infers the same schema"
                        .into(),
                ),
            ));
        }
        for (m, pm) in moments.iter_mut().zip(&p.moments) {
            m.merge(pm);
        }
        counts.add(&p.counts);
    }
    if counts.rows_out() == 0 {
        return Err(nothing_left(&plan.input.uri, &counts));
    }
    let scaler = Scaler::fit(
        &names,
        &moments,
        plan.scale.with_mean,
        plan.scale.with_std,
        scaler_source(&plan.input.uri, &all_files),
    );
    if id.index == 0 {
        put_uri(&plan.scaler_uri, &scaler.to_json(), &plan.storage)?;
    }

    // Transform this worker's range.
    let fitted = match fitted {
        Some(f) => f,
        None => {
            let hint = schema
                .clone()
                .ok_or_else(|| nothing_left(&plan.input.uri, &counts))?;
            let resolved = crate::columns::resolve(plan, &hint.schema, &hint.origin)?;
            let own = &partials[id.index];
            Fitted {
                cleaner: cleaner_for(plan, &resolved),
                resolved,
                moments: Vec::new(),
                counts: own.counts.clone(),
                bytes_in: own.bytes_in,
                spill: None,
                schema: Some(hint),
            }
        }
    };
    let prefix = format!("part-w{:04}-", id.index);
    for name in out.list_names()? {
        if name.starts_with(&prefix)
            || (opts.overwrite
                && id.index == 0
                && name.starts_with("part-")
                && !name.starts_with("part-w"))
        {
            out.delete(&name)?;
        }
    }
    let sink_opts = sink_options(plan, counts.rows_out(), prefix);
    let (shards, written) = transform_pass(
        plan,
        &files,
        Some(&pieces),
        fitted,
        &scaler,
        &out,
        sink_opts,
        cancel.clone(),
        opts.quiet,
    )?;
    let mut durable: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.sync(&durable)?;
    let done = Done {
        fingerprint: fp.clone(),
        worker: id.index,
        shards,
        rows_written: written,
        seconds: t0.elapsed().as_secs_f64(),
    };
    out.put(
        &done_name(id.index),
        &serde_json::to_vec_pretty(&done).expect("serializes"),
    )?;
    tracing::info!(
        worker = id.index,
        rows = written,
        shards = done.shards.len(),
        "worker done"
    );
    if id.index != 0 {
        return Ok(());
    }

    // Worker 0 finalizes once everyone is done.
    let dones: Vec<Done> = wait_all(
        &out,
        id.count,
        done_name,
        &fp,
        "completion",
        timeout,
        &cancel,
    )?;
    let all_shards: Vec<&ShardInfo> = dones.iter().flat_map(|d| d.shards.iter()).collect();
    let names: Vec<String> = all_shards.iter().map(|s| s.name.clone()).collect();
    out.put(
        "manifest.json",
        &manifest_json(&out.manifest_prefix(), &names),
    )?;
    durable = vec!["manifest.json".into()];
    out.sync(&durable)?;
    let total = t0.elapsed().as_secs_f64();
    let mut seconds = BTreeMap::new();
    seconds.insert("total".to_string(), total);
    for p in &partials {
        seconds.insert(format!("fit_w{:04}", p.worker), p.seconds);
    }
    for d in &dones {
        seconds.insert(format!("worker_w{:04}", d.worker), d.seconds);
    }
    let report = run_report(
        plan,
        all_files.len(),
        &counts,
        dones.iter().map(|d| d.rows_written).sum(),
        &all_shards,
        partials.iter().map(|p| p.bytes_in).sum(),
        seconds,
    );
    out.put("_SUCCESS", &report.to_json())?;
    tracing::info!("{}", report.summary());
    Ok(())
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

    #[test]
    fn worker_flag_is_validated() {
        assert_eq!(
            resolve_worker(Some("2/4")).unwrap(),
            Some(WorkerId { index: 2, count: 4 })
        );
        assert!(resolve_worker(Some("4/4")).is_err());
        assert!(resolve_worker(Some("x")).is_err());
        assert_eq!(resolve_worker(None).unwrap(), None);
    }
}
