//! The one job orchestration behind `prep run`, single or scale-out:
//!
//! ```text
//! list inputs ─► this worker's share ─► claim the output
//!   ─► fit pass (+ _rejects/) ─► barrier: every worker's partial, merged in order
//!   ─► fit the steps (quantile refinement passes, an extra barrier round each)
//!   ─► transform pass ─► own shards durable ─► barrier: every worker done
//!   ─► (worker 0) finish: transform.json (+ scaler.json), manifest.json, _SUCCESS
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
use crate::job::listing::{list_data, tab_when_named_so};
use crate::job::output_claim::{claim_output, shard_prefix};
use crate::job::refine::{PassRefine, SHARED_COLLECT, SOLO_COLLECT};
use crate::job::rejects::{RejectWriter, RejectsReport, DIR as REJECTS};
use crate::job::report::RunReport;
use crate::job::transform::transform_pass;
use crate::job::work_split::{plan_pieces, split_sizes};
use crate::job::worker_id::WorkerId;
use crate::job::Phase;
use crate::pipeline::plan::InputFormat;
use crate::pipeline::plan::Plan;
use crate::read::source::{format_of_name, prefetch_pieces, Piece, Source};
use crate::storage::lock::LockPolicy;
use crate::storage::{without_output, InputObject, OutputDir};
use crate::transform::artifact::TransformArtifact;
use crate::transform::clean::{nothing_left, CleanCounts};
use crate::transform::columns::resolve;
use crate::transform::scale::ScaleStep;
use crate::transform::steps::{fit_steps, FitState};

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
    // A data error about the whole input (a statistic, a count of
    // categories over every file) names the input.
    job(spec, cancel).map_err(|e| e.in_file(&spec.plan.input.uri))
}

fn job(spec: &JobSpec, cancel: Arc<AtomicBool>) -> Result<Option<RunReport>> {
    let t0 = Instant::now();
    let plan = spec.plan;
    // A solo run reads a directly named CSV object from its first byte:
    // that read starts now, beside the listing's HEAD and the output lock
    // (one round trip less before parsing starts).
    let csv = format_of_name(&plan.input.uri, plan.input.format) == Some(InputFormat::Csv);
    if spec.worker.is_none() && spec.phase == Phase::All && csv {
        crate::storage::read_ahead_named_object(&plan.input.uri, &plan.storage);
    }
    let out = OutputDir::new(&plan.output.uri, &plan.storage)?;
    // A single run owns the output for its whole length; the workers of a
    // job share it and meet in an attempt instead.
    let lock = match spec.worker {
        None => Some(out.lock(&plan.name, lock_policy())?),
        Some(_) => None,
    };
    let files = without_output(
        list_data(&plan.input.uri, &plan.storage)?,
        &out,
        &plan.input.uri,
    )?;
    // Objects named `.tsv`: the same plan with a tab delimiter.
    let mut tabbed = plan.clone();
    let plan = match tab_when_named_so(&mut tabbed.input.csv, &files) {
        true => &tabbed,
        false => plan,
    };
    let id = spec.worker.unwrap_or(WorkerId { index: 0, count: 1 });
    let pieces = share_of(&files, plan, id)?;
    // The first objects' reads start now, while the output is claimed.
    prefetch_pieces(&files, &plan.input, &pieces);
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
                out: Box::new(out.clone()),
                id,
                fingerprint,
                attempt,
                timeout: crate::env::wait_timeout(),
            }
        }
    };
    claim_output(&out, spec.worker, spec.phase, spec.overwrite, opened)?;
    claim_extra(&out, spec, id)?;
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
        Some(_) => Source::schema_of_first(&files, &plan.input)?,
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
        let rejects = plan
            .output
            .rejects
            .then(|| RejectWriter::new(&out, plan, &shard_prefix(spec.worker)));
        let f = fit_pass(plan, &input, schema.clone(), rejects)?
            .ok_or_else(|| nothing_left(&plan.input.uri, &CleanCounts::default()))?;
        let partial = Partial {
            fingerprint: barrier.fingerprint().to_string(),
            attempt: barrier.attempt().to_string(),
            worker: id.index,
            workers: id.count,
            feature_names: f.resolved.scaled.clone(),
            state: f.state.clone(),
            counts: f.counts.clone(),
            rejects: f.rejects.clone(),
            bytes_in: f.bytes_in,
            seconds: t0.elapsed().as_secs_f64(),
        };
        if !f.rejects.is_empty() {
            out.sync(&f.rejects.iter().map(|s| s.name.clone()).collect::<Vec<_>>())?;
        }
        barrier.publish_partial(&partial)?;
        own = Some(partial);
        fitted = Some(f);
        if spec.phase == Phase::Fit {
            return Ok(None);
        }
    }
    let partials = barrier.partials(own, &cancel)?;
    let (state, counts) = merge(&partials, &out)?;
    if counts.rows_out() == 0 {
        return Err(nothing_left(&plan.input.uri, &counts));
    }
    let fitted = match fitted {
        Some(f) => f,
        None => refit_from_partial(plan, schema, &partials[id.index], &counts)?,
    };
    let mut refine = PassRefine {
        plan,
        input: &input,
        fitted: &fitted,
        barrier: &barrier,
        round: 0,
    };
    let limit = match spec.worker {
        None => SOLO_COLLECT,
        Some(_) => SHARED_COLLECT,
    };
    let cols = &fitted.resolved;
    let steps = fit_steps(
        plan,
        &cols.steps,
        &state,
        counts.rows_out(),
        limit,
        &mut refine,
    )?;
    let layout = steps.layout(&cols.output, &plan.input.uri)?;
    let source = scaler_source(&plan.input.uri, &files);
    let transform_json = TransformArtifact::new(
        &steps,
        source.clone(),
        counts.rows_out(),
        &cols.steps.inputs,
        &layout,
    )
    .to_json();
    let scaler_json = match (plan.writes_scaler(), steps.scale.first()) {
        (true, Some(ScaleStep::Standard(s))) => Some(s.to_scaler(source).to_json()),
        _ => None,
    };
    let t_fit = t0.elapsed().as_secs_f64();
    tracing::info!(
        rows = counts.rows_out(),
        features = cols.scaled.len(),
        seconds = t_fit,
        "fit done"
    );

    let t1 = Instant::now();
    let sink_opts = sink_options(plan, counts.rows_out(), shard_prefix(spec.worker));
    let (shards, written) = transform_pass(&input, fitted, &steps, &layout, &out, sink_opts)?;
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
    let rejects: Vec<_> = partials
        .iter()
        .flat_map(|p| p.rejects.iter().cloned())
        .collect();
    if plan.output.rejects {
        report.rejects = Some(RejectsReport::of(&rejects));
    }
    let mut artifacts = Vec::new();
    if let Some(bytes) = scaler_json {
        artifacts.push(Artifact {
            uri: &plan.scaler_uri,
            bytes,
            storage: &plan.storage,
        });
    }
    artifacts.push(Artifact {
        uri: &plan.transform_uri,
        bytes: transform_json,
        storage: &plan.storage,
    });
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
    finish(&out, &artifacts, &all_shards, &report, &guard)?;
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

/// Merges every worker's fit state (Chan's update for moments) and
/// counts, in worker order.
fn merge(partials: &[Partial], out: &OutputDir) -> Result<(FitState, CleanCounts)> {
    let names = partials[0].feature_names.clone();
    let mut state = partials[0].state.clone();
    let mut counts = partials[0].counts.clone();
    for p in &partials[1..] {
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
        state.merge(&p.state)?;
        counts.add(&p.counts);
    }
    Ok((state, counts))
}

/// What this job writes beyond `claim_output`'s list (`transform.json`,
/// `_rejects/`): a rerun with `--overwrite` (or a restarted worker, for
/// its own reject shards) removes the earlier ones first.
fn claim_extra(out: &OutputDir, spec: &JobSpec, id: WorkerId) -> Result<()> {
    if spec.phase == Phase::Transform {
        return Ok(());
    }
    match spec.worker {
        // A single run's `claim_output` removed them with the rest.
        None => Ok(()),
        Some(_) => {
            if spec.overwrite && id.index == 0 {
                out.delete_file("transform.json")?;
            }
            let dir = OutputDir::new(
                &format!("{}/{REJECTS}", out.uri.trim_end_matches('/')),
                &spec.plan.storage,
            )?;
            let own = shard_prefix(Some(id));
            let listed = dir.listing()?;
            let doomed: Vec<&str> = listed
                .names
                .iter()
                .map(String::as_str)
                .filter(|name| {
                    name.starts_with(&own)
                        || (name.starts_with(".part-") && name.contains(&own[5..]))
                })
                .collect();
            dir.delete_all(&listed, &doomed)
        }
    }
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
        state: own.state.clone(),
        resolved,
        counts: own.counts.clone(),
        rejects: own.rejects.clone(),
        bytes_in: own.bytes_in,
        spill: None,
        schema: Some(hint),
    })
}
