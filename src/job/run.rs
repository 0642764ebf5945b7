//! The one job orchestration behind `prep run`, single or scale-out:
//!
//! ```text
//! list inputs ─► this worker's share ─► claim the output
//!   ─► fit pass ─► barrier: every worker's partial, Chan-merged in order ─► scaler
//!   ─► transform pass ─► own shards durable ─► barrier: every worker done
//!   ─► (worker 0) finish: scaler.json, manifest.json, _SUCCESS
//! ```
//! A single run is worker 0 of 1 whose barrier waits for nobody
//! ([`Barrier::Solo`]); it names its shards `part-NNNNN`, a worker
//! `part-wIIII-NNNNN`. `prep apply` shares the transform pass and the finish
//! (see `commands/apply.rs`).
//!
//! The commit: a single run holds the output's lock (`storage/lock.rs`)
//! from before it reads anything until after `_SUCCESS`; workers share an
//! attempt (`attempt.rs`). `_SUCCESS` is written only while the stop flag is
//! clear and the lock is still ours ([`CommitGuard`]).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::job::attempt::join_or_open;
use crate::job::barrier::{fingerprint, settings, Barrier, Done, Partial};
use crate::job::finish::{finish, run_report, scaler_source, sink_options, Artifact, CommitGuard};
use crate::job::fit::{cleaner_for, fit_pass, Fitted, PassInput};
use crate::job::output_claim::{claim_output, shard_prefix};
use crate::job::report::RunReport;
use crate::job::transform::transform_pass;
use crate::job::work_split::{plan_pieces, split_sizes};
use crate::job::worker_id::WorkerId;
use crate::job::Phase;
use crate::pipeline::plan::Plan;
use crate::read::source::{Piece, Source};
use crate::storage::lock::LockPolicy;
use crate::storage::{list_inputs, without_output, InputObject, OutputDir};
use crate::transform::clean::{nothing_left, CleanCounts};
use crate::transform::columns::resolve;
use crate::transform::scaler::Scaler;
use crate::transform::stats::Moments;

/// What to run: the plan, which worker this is (`None`: a single run), and
/// which phases.
pub struct JobSpec<'a> {
    pub plan: &'a Plan,
    pub worker: Option<WorkerId>,
    pub phase: Phase,
    pub overwrite: bool,
    pub quiet: bool,
}

/// Runs the job (or this worker's part of it). Returns the run report when
/// this process wrote `_SUCCESS`.
pub fn run_job(spec: &JobSpec, cancel: Arc<AtomicBool>) -> Result<Option<RunReport>> {
    let t0 = Instant::now();
    let plan = spec.plan;
    let out = OutputDir::new(&plan.output.uri, &plan.storage)?;
    // A single run owns the output for its whole length; the workers of a
    // job share it and meet in an attempt instead.
    let lock = match spec.worker {
        None => Some(out.lock(&plan.name, lock_policy())?),
        Some(_) => None,
    };
    let files = without_output(
        list_inputs(&plan.input.uri, &plan.storage)?,
        &out,
        &plan.input.uri,
    )?;
    let id = spec.worker.unwrap_or(WorkerId { index: 0, count: 1 });
    let pieces = share_of(&files, plan, id)?;
    let mut opened = false;
    let barrier = match spec.worker {
        None => Barrier::Solo,
        Some(id) => {
            let settings = settings(plan, &files, id.count);
            let fingerprint = fingerprint(&settings);
            let attempt = join_or_open(
                &out,
                id,
                spec.phase,
                &fingerprint,
                &settings,
                spec.overwrite,
                &mut opened,
            )?;
            Barrier::Shared {
                out: out.clone(),
                id,
                fingerprint,
                attempt,
                timeout: crate::env::wait_timeout(),
            }
        }
    };
    claim_output(&out, spec.worker, spec.phase, spec.overwrite, opened)?;
    if spec.worker.is_none() {
        tracing::info!(
            pipeline = %plan.name,
            input = %plan.input.uri,
            objects = files.len(),
            bytes = files.iter().map(|f| f.size).sum::<u64>(),
            "starting run"
        );
    }
    // Workers all parse with the schema of the first object of the whole
    // input, exactly as a single run (which fixes it on its first chunk).
    let schema = match spec.worker {
        Some(_) => Source::schema_of_first(&files[0], &plan.input)?,
        None => None,
    };
    let input = PassInput {
        input: &plan.input,
        files: &files,
        pieces: &pieces,
        cancel: cancel.clone(),
        quiet: spec.quiet,
    };

    let mut fitted = None;
    let mut own = None;
    if spec.phase != Phase::Transform {
        let f = fit_pass(plan, &input, schema.clone())?
            .ok_or_else(|| nothing_left(&plan.input.uri, &CleanCounts::default()))?;
        let partial = Partial {
            fingerprint: barrier.fingerprint().to_string(),
            attempt: barrier.attempt().to_string(),
            worker: id.index,
            workers: id.count,
            feature_names: f.resolved.scaled.clone(),
            moments: f.moments.clone(),
            counts: f.counts.clone(),
            bytes_in: f.bytes_in,
            seconds: t0.elapsed().as_secs_f64(),
        };
        barrier.publish_partial(&partial)?;
        own = Some(partial);
        fitted = Some(f);
        if spec.phase == Phase::Fit {
            return Ok(None);
        }
    }
    let partials = barrier.partials(own, &cancel)?;
    let (names, moments, counts) = merge(&partials, &out)?;
    if counts.rows_out() == 0 {
        return Err(nothing_left(&plan.input.uri, &counts));
    }
    let scaler = Scaler::fit(
        &names,
        &moments,
        plan.scale.with_mean,
        plan.scale.with_std,
        scaler_source(&plan.input.uri, &files),
    );
    let t_fit = t0.elapsed().as_secs_f64();
    tracing::info!(
        rows = counts.rows_out(),
        features = names.len(),
        seconds = t_fit,
        "fit done"
    );

    let t1 = Instant::now();
    let fitted = match fitted {
        Some(f) => f,
        None => refit_from_partial(plan, schema, &partials[id.index], &counts)?,
    };
    let sink_opts = sink_options(plan, counts.rows_out(), shard_prefix(spec.worker));
    let (shards, written) = transform_pass(&input, fitted, &scaler, &out, sink_opts)?;
    let shard_names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.sync(&shard_names)?;
    let t_transform = t1.elapsed().as_secs_f64();
    let done = Done {
        fingerprint: barrier.fingerprint().to_string(),
        attempt: barrier.attempt().to_string(),
        worker: id.index,
        shards,
        rows_written: written,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let Some(dones) = barrier.dones(done, &cancel)? else {
        return Ok(None);
    };

    let t2 = Instant::now();
    let all_shards: Vec<_> = dones.iter().flat_map(|d| d.shards.iter()).collect();
    let mut seconds = BTreeMap::new();
    seconds.insert("total".to_string(), t0.elapsed().as_secs_f64());
    if spec.worker.is_none() {
        seconds.insert("fit".to_string(), t_fit);
        seconds.insert("transform".to_string(), t_transform);
    } else {
        for p in &partials {
            seconds.insert(format!("fit_w{:04}", p.worker), p.seconds);
        }
        for d in &dones {
            seconds.insert(format!("worker_w{:04}", d.worker), d.seconds);
        }
    }
    let mut report = run_report(
        plan,
        files.len(),
        &counts,
        dones.iter().map(|d| d.rows_written).sum(),
        &all_shards,
        partials.iter().map(|p| p.bytes_in).sum(),
        seconds,
    );
    let artifact = Artifact {
        uri: &plan.scaler_uri,
        bytes: scaler.to_json(),
        storage: &plan.storage,
    };
    if spec.worker.is_none() {
        report
            .seconds
            .insert("finalize".to_string(), t2.elapsed().as_secs_f64());
    } else {
        report.attempt = Some(barrier.attempt().to_string());
    }
    let guard = CommitGuard {
        cancel: &cancel,
        lock: lock.as_ref(),
    };
    finish(&out, &[artifact], &all_shards, &report, &guard)?;
    if spec.worker.is_some() {
        tracing::info!("{}", report.summary());
    }
    Ok(Some(report))
}

/// How long to wait for another run's lock, and the lease of ours.
pub fn lock_policy() -> LockPolicy {
    LockPolicy {
        wait: crate::env::lock_wait(),
        lease: crate::env::lock_lease(),
    }
}

/// This worker's pieces of the input (everything, for worker 0 of 1).
fn share_of(files: &[InputObject], plan: &Plan, id: WorkerId) -> Result<Vec<Piece>> {
    let items = plan_pieces(files, &plan.input, id.count)?;
    let sizes: Vec<u64> = items.iter().map(|(_, s)| *s).collect();
    let range = split_sizes(&sizes, id.count)[id.index].clone();
    if id.count > 1 {
        tracing::info!(
            worker = id.index,
            workers = id.count,
            pieces = range.len(),
            bytes = sizes[range.clone()].iter().sum::<u64>(),
            "worker {} of {}: pieces {}..{} of {}",
            id.index,
            id.count,
            range.start,
            range.end,
            items.len()
        );
    }
    Ok(items[range].iter().map(|(p, _)| p.clone()).collect())
}

/// Chan-merges every worker's moments and counts, in worker order.
fn merge(
    partials: &[Partial],
    out: &OutputDir,
) -> Result<(Vec<String>, Vec<Moments>, CleanCounts)> {
    let names = partials[0].feature_names.clone();
    let mut moments = vec![Moments::default(); names.len()];
    let mut counts = CleanCounts::default();
    for p in partials {
        if p.feature_names != names {
            return Err(PrepError::bad_data(
                DataLocation::file(out.display(&format!("_work/partial-w{:04}.json", p.worker))),
                DataError::WorkerColumnsDiffer {
                    worker: p.worker,
                    scaled: p.feature_names.clone(),
                    first: names,
                },
            ));
        }
        for (m, pm) in moments.iter_mut().zip(&p.moments) {
            m.merge(pm);
        }
        counts.add(&p.counts);
    }
    Ok((names, moments, counts))
}

/// `--phase transform`: this worker's fit ran in an earlier process; its
/// partial says what it counted, the schema what to parse.
fn refit_from_partial(
    plan: &Plan,
    schema: Option<crate::chunk::FixedSchema>,
    own: &Partial,
    counts: &CleanCounts,
) -> Result<Fitted> {
    let hint = schema.ok_or_else(|| nothing_left(&plan.input.uri, counts))?;
    let resolved = resolve(plan, &hint.schema, &hint.origin)?;
    Ok(Fitted {
        cleaner: cleaner_for(plan, &resolved),
        resolved,
        moments: Vec::new(),
        counts: own.counts.clone(),
        bytes_in: own.bytes_in,
        spill: None,
        schema: Some(hint),
    })
}
