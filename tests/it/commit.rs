//! Issue #11, "a `_SUCCESS` that can always be trusted": the output lock,
//! the commit guard, attempts of multi-worker jobs and spill cleanup, each
//! with real `prep` processes (and a real S3 server on 127.0.0.1, see
//! `s3_support.rs`). The protocol is described in docs/commit-protocol.md.
//!
//! Timing is only used to make overlaps likely (a run paused before its
//! commit with `PREP_PAUSE_BEFORE_COMMIT`) and for generous upper bounds;
//! every correctness assertion holds whatever the interleaving.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::*;
use crate::s3_support::{s3, S3Server};
use crate::scaleout;

// ---------------------------------------------------------------------------
// Helpers

/// Writes `<case>/<file>` with a pipeline named `name` from `input` to `output`.
fn write_pipeline(
    case: &Case,
    file: &str,
    name: &str,
    input: &str,
    output: &str,
    extra: &str,
) -> PathBuf {
    case.write(
        file,
        format!(
            "name = \"{name}\"\n[input]\nuri = \"{input}\"\nchunk_rows = 500\n{extra}\n[output]\nuri = \"{output}\"\nformat = \"jsonl\"\n"
        ),
    )
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn with(mut base: Vec<(String, String)>, more: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(env(more));
    base
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sending a signal to a child we started and have not waited on.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}

/// A pid that no process has (pid_max is at most 2^22 on Linux).
const DEAD_PID: u32 = 2_000_000_000;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `_LOCK` holder record as prep writes it.
fn holder_json(run_id: &str, host: &str, pid: u32, lease_until: Option<u64>) -> String {
    serde_json::json!({
        "run_id": run_id,
        "host": host,
        "pid": pid,
        "started": 1_700_000_000u64,
        "lease_until": lease_until,
        "pipeline": "old",
    })
    .to_string()
}

/// The message a run refused by a lock prints, naming `pid` and `pipeline`.
fn assert_names_holder(err: &str, output: &str, pid: u32, pipeline: &str) {
    assert!(
        err.contains(&format!("output {output}"))
            && err.contains("is being written by another run: run ")
            && err.contains(&format!("pipeline `{pipeline}`"))
            && err.contains("(host ")
            && err.contains(&format!(", pid {pid}, started ")),
        "{err}"
    );
}

/// Every regular file directly under a local output, by name.
fn local_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for e in entries {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            let name = e.file_name().to_string_lossy().to_string();
            files.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    files
}

/// Every object under `bucket/prefix/` outside `_work/`, by relative name.
fn s3_files(server: &S3Server, bucket: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for key in server.list(bucket, prefix) {
        let name = key[prefix.len() + 1..].to_string();
        if name.starts_with("_work/") {
            continue;
        }
        if let Some(bytes) = server.get(bucket, &key) {
            files.insert(name, bytes);
        }
    }
    files
}

/// Rows of one shard, parsed in its format.
fn shard_rows(name: &str, bytes: &[u8]) -> Result<u64, String> {
    if name.ends_with(".jsonl") {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("{name}: {e}"))?;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("{name}: {e}"))?;
            if !v.is_object() {
                return Err(format!("{name}: a line is not an object"));
            }
        }
        Ok(text.lines().count() as u64)
    } else if name.ends_with(".csv") {
        // Records end at a line break outside quotes; the first is the header.
        let (mut records, mut quoted) = (0u64, false);
        for b in bytes {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => records += 1,
                _ => {}
            }
        }
        if quoted || bytes.last() != Some(&b'\n') || records == 0 {
            return Err(format!("{name}: truncated CSV"));
        }
        Ok(records - 1)
    } else if name.ends_with(".parquet") {
        use polars::prelude::{ParquetReader, SerReader};
        let df = ParquetReader::new(std::io::Cursor::new(bytes.to_vec()))
            .finish()
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(df.height() as u64)
    } else {
        Err(format!("{name}: unknown shard format"))
    }
}

// ---------------------------------------------------------------------------
// 1. Two runs into one output

/// Two pipelines of the sample into `output`: `a` and `b` differ in their
/// exclude lists.
fn two_pipelines(c: &Case, output: &str) -> (PathBuf, PathBuf) {
    let input = repo().join("sample_data/reviews.csv").display().to_string();
    let a = write_pipeline(
        c,
        "a.toml",
        "a",
        &input,
        output,
        "[scale]\nexclude = [\"review_id\", \"label\"]",
    );
    let b = write_pipeline(
        c,
        "b.toml",
        "b",
        &input,
        output,
        "[scale]\nexclude = [\"review_id\", \"label\", \"price\"]",
    );
    (a, b)
}

/// Two runs (pipeline file, pipeline name) started at once into a fresh
/// output, neither with --overwrite: whatever the interleaving, exactly one
/// writes it (the other is refused by the lock, or finds the finished
/// output). Returns the winner's pipeline name.
fn exactly_one_of_two_wins<'a>(runs: [(&Path, &'a str); 2], env: &[(String, String)]) -> &'a str {
    let kids = runs.map(|(p, _)| spawn_run(p, &["--quiet"], env));
    let results: Vec<(i32, String)> = kids.into_iter().map(finish).collect();
    let mut codes: Vec<i32> = results.iter().map(|r| r.0).collect();
    let winner = usize::from(codes[0] != 0);
    codes.sort();
    assert_eq!(codes, [0, 2], "{results:?}");
    let loser = &results[1 - winner].1;
    assert!(
        loser.contains("is being written by another run") || loser.contains("already exists"),
        "{loser}"
    );
    runs[winner].1
}

#[test]
fn two_runs_into_one_local_output_one_is_refused_naming_the_holder() {
    let c = Case::new();
    let out = c.path("out");
    let out_s = out.display().to_string();
    let (a, b) = two_pipelines(&c, &out_s);

    // At once, same pipeline and different pipelines.
    for second in [(a.as_path(), "a"), (b.as_path(), "b")] {
        let _ = std::fs::remove_dir_all(&out);
        let winner = exactly_one_of_two_wins([(&a, "a"), second], &[]);
        assert_eq!(read_json(&out.join("_SUCCESS"))["pipeline"], winner);
        assert!(!out.join("_LOCK").exists(), "the lock is released");
    }

    // Overlapping for sure: `a` holds the lock while paused before its commit.
    let mut first = spawn_run(
        &a,
        &["--quiet", "--overwrite"],
        &env(&[("PREP_PAUSE_BEFORE_COMMIT", "2s")]),
    );
    wait_until("a's lock", Duration::from_secs(20), || {
        std::fs::read_to_string(out.join("_LOCK")).is_ok_and(|t| t.contains("\"pid\""))
            && out.join("manifest.json").exists()
    });
    let t = Instant::now();
    let (code, err) = finish(spawn_run(&b, &["--quiet", "--overwrite"], &[]));
    assert_eq!(code, 2, "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "refused at once");
    assert_names_holder(&err, &out_s, first.id(), "a");
    assert!(err.contains("PREP_LOCK_WAIT"), "{err}");

    // With PREP_LOCK_WAIT the second run waits for the first, then replaces
    // its output.
    let (code, err) = finish(spawn_run(
        &b,
        &["--quiet", "--overwrite"],
        &env(&[("PREP_LOCK_WAIT", "60s")]),
    ));
    assert_eq!(code, 0, "{err}");
    let status = first.wait().unwrap();
    assert!(status.success(), "the holder finished: {status}");
    let report = read_json(&out.join("_SUCCESS"));
    assert_eq!(report["pipeline"], "b");
    assert_eq!(
        read_json(&out.join("scaler.json"))["feature_names"]
            .as_array()
            .unwrap()
            .len(),
        6,
        "b's scaler (price excluded)"
    );
    assert!(!out.join("_LOCK").exists());
}

#[test]
fn a_local_lock_left_by_a_dead_run_is_taken_over() {
    let c = Case::new();
    let out = c.path("out");
    let (a, _) = two_pipelines(&c, &out.display().to_string());
    // Locally only the flock counts: a dead holder has none, whatever its
    // record says.
    c.write(
        "out/_LOCK",
        holder_json("dead-run-1", "some-host", DEAD_PID, None),
    );
    let (code, err) = finish(spawn_run(&a, &[], &[]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("taking over the lock of")
            && err.contains("run dead-run-1 of pipeline `old`")
            && err.contains("which is gone"),
        "{err}"
    );
    assert!(out.join("_SUCCESS").exists());
    assert!(!out.join("_LOCK").exists());
}

#[test]
fn two_runs_into_one_s3_output_and_stale_and_live_locks() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let c = Case::new();
    let out = server.uri(&bucket, "out/");
    let (a, b) = two_pipelines(&c, &out);
    let s3env = server.env();

    let winner = exactly_one_of_two_wins([(&a, "a"), (&b, "b")], &s3env);
    let report: Value =
        serde_json::from_slice(&server.get(&bucket, "out/_SUCCESS").unwrap()).unwrap();
    assert_eq!(report["pipeline"], winner);
    assert!(server.get(&bucket, "out/_LOCK").is_none(), "released");

    // A holder paused before its commit: the second run is refused naming
    // it, or with PREP_LOCK_WAIT waits for it.
    let mut first = spawn_run(
        &a,
        &["--quiet", "--overwrite"],
        &with(s3env.clone(), &[("PREP_PAUSE_BEFORE_COMMIT", "2s")]),
    );
    wait_until("a's lock and manifest", Duration::from_secs(30), || {
        server
            .get_string(&bucket, "out/_LOCK")
            .is_some_and(|t| t.contains(&format!("\"pid\": {}", first.id())))
            && server.get_string(&bucket, "out/_SUCCESS").is_none()
            && server.get(&bucket, "out/manifest.json").is_some()
    });
    let (code, err) = finish(spawn_run(&b, &["--quiet", "--overwrite"], &s3env));
    assert_eq!(code, 2, "{err}");
    assert_names_holder(&err, &out, first.id(), "a");
    let (code, err) = finish(spawn_run(
        &b,
        &["--quiet", "--overwrite"],
        &with(s3env.clone(), &[("PREP_LOCK_WAIT", "60s")]),
    ));
    assert_eq!(code, 0, "{err}");
    assert!(first.wait().unwrap().success());
    let report: Value =
        serde_json::from_slice(&server.get(&bucket, "out/_SUCCESS").unwrap()).unwrap();
    assert_eq!(report["pipeline"], "b");

    // A live lease of a run on another host: refused, and left in place.
    let live = holder_json("live-run", "another-host", 4242, Some(now_secs() + 600));
    server.put(&bucket, "out/_LOCK", live.clone());
    let (code, err) = finish(spawn_run(&a, &["--quiet", "--overwrite"], &s3env));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("run live-run of pipeline `old` (host another-host, pid 4242"),
        "{err}"
    );
    assert_eq!(server.get_string(&bucket, "out/_LOCK").unwrap(), live);

    // An expired lease: taken over, with a log line naming the old holder.
    server.put(
        &bucket,
        "out/_LOCK",
        holder_json("stale-run", "another-host", 4242, Some(now_secs() - 120)),
    );
    let (code, err) = finish(spawn_run(&a, &["--overwrite"], &s3env));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("taking over the lock of {out}"))
            && err.contains("run stale-run of pipeline `old` (host another-host, pid 4242")
            && err.contains("which is gone"),
        "{err}"
    );
    let report: Value =
        serde_json::from_slice(&server.get(&bucket, "out/_SUCCESS").unwrap()).unwrap();
    assert_eq!(report["pipeline"], "a");
    assert!(server.get(&bucket, "out/_LOCK").is_none());
}

#[test]
fn s3_lease_is_renewed_and_a_holder_that_lost_it_does_not_commit() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let c = Case::new();
    let s3env = server.env();

    // A 1 s lease outlives a 5 s pause: it is renewed every third of it, so
    // a run that comes 2.5 s into the pause (when an unrenewed lease would
    // have run out) is still refused, and the holder commits.
    let (renewed, contender) = two_pipelines(&c, &server.uri(&bucket, "renewed/"));
    let mut holder = spawn_run(
        &renewed,
        &["--quiet"],
        &with(
            s3env.clone(),
            &[
                ("PREP_LOCK_LEASE", "1s"),
                ("PREP_PAUSE_BEFORE_COMMIT", "5s"),
            ],
        ),
    );
    wait_until("the holder's manifest", Duration::from_secs(30), || {
        server.get(&bucket, "renewed/manifest.json").is_some()
    });
    std::thread::sleep(Duration::from_millis(2500));
    let (code, err) = finish(spawn_run(&contender, &["--quiet", "--overwrite"], &s3env));
    assert_eq!(code, 2, "the renewed lease still holds: {err}");
    assert_names_holder(&err, &server.uri(&bucket, "renewed/"), holder.id(), "a");
    let status = holder.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(server.get(&bucket, "renewed/_SUCCESS").is_some());

    // A holder frozen (SIGSTOP, as a paused VM) past its lease, in its pause
    // before the commit (a fresh output, so manifest.json is its own):
    // another run takes the output over and commits; the old holder,
    // resumed, finds its lock gone and exits 4 without writing _SUCCESS.
    // (Frozen earlier, it would go on writing over the new output until
    // that check: see "Limits" in docs/commit-protocol.md.)
    let out = server.uri(&bucket, "out/");
    let (a, b) = two_pipelines(&c, &out);
    let mut frozen = spawn_run(
        &a,
        &["--quiet", "--overwrite"],
        &with(
            s3env.clone(),
            &[
                ("PREP_LOCK_LEASE", "1s"),
                ("PREP_PAUSE_BEFORE_COMMIT", "4s"),
            ],
        ),
    );
    wait_until("a's manifest", Duration::from_secs(30), || {
        server.get(&bucket, "out/_SUCCESS").is_none()
            && server.get(&bucket, "out/manifest.json").is_some()
            && server
                .get_string(&bucket, "out/_LOCK")
                .is_some_and(|t| t.contains(&format!("\"pid\": {}", frozen.id())))
    });
    signal(&frozen, libc::SIGSTOP);
    let (code, err) = finish(spawn_run(
        &b,
        &["--overwrite"],
        &with(s3env.clone(), &[("PREP_LOCK_WAIT", "60s")]),
    ));
    signal(&frozen, libc::SIGCONT);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("taking over the lock of"), "{err}");
    let status = frozen.wait().unwrap();
    let mut stderr = String::new();
    use std::io::Read;
    frozen
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("lost the lock on output"), "{stderr}");
    let files = s3_files(server, &bucket, "out");
    check_output(&files, &race_refs_for_ab(), &["b"]).unwrap();
}

/// What a complete output of pipelines `a`/`b` of [`two_pipelines`] holds.
fn race_refs_for_ab() -> HashMap<String, Reference> {
    let mut refs = HashMap::new();
    for (name, excluded) in [("a", 2), ("b", 3)] {
        // The sample has 10 numeric columns (verified_purchase is boolean).
        refs.insert(
            name.to_string(),
            Reference {
                feature_count: Some(9 - excluded),
                feature_names: None,
                rows_written: 2396,
                ext: ".jsonl",
            },
        );
    }
    refs
}

// ---------------------------------------------------------------------------
// 2. A signal late in the run

fn late_signal(env_base: Vec<(String, String)>, has_file: &dyn Fn(&str) -> bool, p: &Path) {
    let pause = [("PREP_PAUSE_BEFORE_COMMIT", "3s")];
    let mut child = spawn_run(
        p,
        &["--quiet", "--overwrite"],
        &with(env_base.clone(), &pause),
    );
    wait_until("manifest.json", Duration::from_secs(30), || {
        has_file("manifest.json")
    });
    assert!(!has_file("_SUCCESS"));
    signal(&child, libc::SIGTERM);
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!status.success(), "a signalled run must fail: {status}");
    assert_eq!(status.code(), Some(1));
    assert!(!has_file("_SUCCESS"), "no _SUCCESS after SIGTERM");
    assert!(!has_file("_LOCK"));
    let (code, err) = finish(spawn_run(
        p,
        &["--quiet", "--overwrite"],
        &with(env_base, &[("PREP_PAUSE_BEFORE_COMMIT", "1s")]),
    ));
    assert_eq!(code, 0, "{err}");
    assert!(has_file("_SUCCESS"));
}

#[test]
fn sigterm_right_before_the_commit_leaves_no_success() {
    let c = Case::new();
    let out = c.path("out");
    let (a, _) = two_pipelines(&c, &out.display().to_string());
    late_signal(Vec::new(), &|name| out.join(name).exists(), &a);

    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let c = Case::new();
    let (a, _) = two_pipelines(&c, &server.uri(&bucket, "out/"));
    late_signal(
        server.env(),
        &|name| server.get(&bucket, &format!("out/{name}")).is_some(),
        &a,
    );
}

// ---------------------------------------------------------------------------
// 3, 4. Multi-worker attempts

fn attempt_of(out: &Path) -> Option<String> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("_work/attempt.json")).ok()?).ok()?;
    v["attempt"].as_str().map(str::to_string)
}

fn marker_attempt(out: &Path, name: &str) -> Option<String> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("_work").join(name)).ok()?).ok()?;
    v["attempt"].as_str().map(str::to_string)
}

#[test]
fn rerun_of_a_finished_job_with_workers_started_one_after_another() {
    let c = Case::new();
    scaleout::split_sample(&c, "in", 6);
    let input = c.path("in").display().to_string();
    let reference = scaleout::single(&c, &input);
    let out = c.path("out");
    scaleout::pipeline(&c, &input, &out.display().to_string());
    let wait = env(&[("PREP_WAIT_TIMEOUT", "60s")]);
    let kids: Vec<Child> = (0..3)
        .map(|i| scaleout::worker(&c, &["--worker", &format!("{i}/3")], &wait))
        .collect();
    for k in kids {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "{err}");
    }
    let first = read_json(&out.join("_SUCCESS"))["attempt"]
        .as_str()
        .unwrap()
        .to_string();

    // Rerun with --overwrite: worker 0 alone first, it must not finish the
    // job on the previous attempt's markers; then 1, then 2.
    let args = |i: usize| {
        vec![
            "--worker".to_string(),
            format!("{i}/3"),
            "--overwrite".into(),
        ]
    };
    let spawn = |i: usize| {
        let a = args(i);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        scaleout::worker(&c, &a, &wait)
    };
    let t = Instant::now();
    let w0 = spawn(0);
    wait_until("worker 0's new attempt", Duration::from_secs(30), || {
        attempt_of(&out).is_some_and(|a| a != first)
    });
    let second = attempt_of(&out).unwrap();
    wait_until("worker 0's partial", Duration::from_secs(30), || {
        marker_attempt(&out, "partial-w0000.json").as_deref() == Some(second.as_str())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !out.join("_SUCCESS").exists(),
        "not done before 1 and 2 ran"
    );
    let w1 = spawn(1);
    wait_until("worker 1's partial", Duration::from_secs(30), || {
        marker_attempt(&out, "partial-w0001.json").as_deref() == Some(second.as_str())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!out.join("_SUCCESS").exists());
    let w2 = spawn(2);
    for (i, k) in [w0, w1, w2].into_iter().enumerate() {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "worker {i}: {err}");
    }
    assert!(t.elapsed() < Duration::from_secs(60));
    let report = read_json(&out.join("_SUCCESS"));
    assert_eq!(report["attempt"].as_str(), Some(second.as_str()));
    assert_ne!(second, first);
    scaleout::assert_same_output(&out, &reference);
}

/// Starts workers 0..3 at once, worker 2 with `odd` extra arguments;
/// checks that every one exits 2 naming `scale.exclude`, within seconds.
fn three_workers_one_differs(c: &Case, common: &[&str], odd: &[&str]) {
    let timeout = env(&[("PREP_WAIT_TIMEOUT", "120s")]);
    let t = Instant::now();
    let kids: Vec<Child> = (0..3)
        .map(|i| {
            let id = format!("{i}/3");
            let mut args = vec!["--worker", id.as_str()];
            args.extend_from_slice(common);
            if i == 2 {
                args.extend_from_slice(odd);
            }
            scaleout::worker(c, &args, &timeout)
        })
        .collect();
    for (i, k) in kids.into_iter().enumerate() {
        let (code, err) = finish(k);
        assert_eq!(code, 2, "worker {i}: {err}");
        assert!(err.contains("scale.exclude"), "worker {i}: {err}");
        assert!(
            err.contains("differs from this worker"),
            "worker {i}: {err}"
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "every worker stopped within seconds, not after PREP_WAIT_TIMEOUT: {:?}",
        t.elapsed()
    );
    assert!(!c.path("out/_SUCCESS").exists());
}

#[test]
fn a_worker_with_another_pipeline_stops_every_worker_within_seconds() {
    let c = Case::new();
    scaleout::split_sample(&c, "in", 6);
    let input = c.path("in").display().to_string();
    let reference = scaleout::single(&c, &input);
    let out = c.path("out");
    scaleout::pipeline(&c, &input, &out.display().to_string());
    let odd = ["--set", "scale.exclude=[\"review_id\"]"];
    three_workers_one_differs(&c, &[], &odd);
    // Again into the failed attempt, with --overwrite.
    three_workers_one_differs(&c, &["--overwrite"], &odd);

    // Fixed, the job runs to the end into the same output.
    let timeout = env(&[("PREP_WAIT_TIMEOUT", "60s")]);
    let kids: Vec<Child> = (0..3)
        .map(|i| {
            scaleout::worker(
                &c,
                &["--worker", &format!("{i}/3"), "--overwrite"],
                &timeout,
            )
        })
        .collect();
    for (i, k) in kids.into_iter().enumerate() {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "worker {i}: {err}");
    }
    scaleout::assert_same_output(&out, &reference);
}

#[test]
fn a_worker_killed_and_retried_inside_the_attempt_completes_the_job() {
    let c = Case::new();
    scaleout::split_sample(&c, "in", 6);
    let input = c.path("in").display().to_string();
    let reference = scaleout::single(&c, &input);
    let out = c.path("out");
    scaleout::pipeline(&c, &input, &out.display().to_string());
    let timeout = env(&[("PREP_WAIT_TIMEOUT", "60s")]);
    let w = |i: usize| scaleout::worker(&c, &["--worker", &format!("{i}/3")], &timeout);
    let w0 = w(0);
    let mut w1 = w(1);
    wait_until("worker 1's partial", Duration::from_secs(30), || {
        out.join("_work/partial-w0001.json").exists()
    });
    let attempt = attempt_of(&out).unwrap();
    signal(&w1, libc::SIGKILL);
    let _ = w1.wait();
    // What a kill in the middle of a shard leaves (SIGKILL runs no cleanup):
    // its temporary file, named with the dead process's run id.
    let leaked = format!(".part-w0001-00000.jsonl.{}-1-deadbeef.inprogress", w1.id());
    c.write(&format!("out/{leaked}"), "{\"half\": ");
    // The retried worker joins the same attempt (the job is not finished).
    let w1 = w(1);
    let w2 = w(2);
    for (i, k) in [w0, w1, w2].into_iter().enumerate() {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "worker {i}: {err}");
    }
    assert_eq!(
        read_json(&out.join("_SUCCESS"))["attempt"].as_str(),
        Some(attempt.as_str())
    );
    scaleout::assert_same_output(&out, &reference);
    let files = local_files(&out);
    let manifest = read_json(&out.join("manifest.json"));
    let listed: Vec<&str> = manifest.as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let present: Vec<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|n| n.starts_with("part-") || n.ends_with(".inprogress"))
        .collect();
    assert_eq!(present, listed, "no stale or temporary shards");
}

// ---------------------------------------------------------------------------
// 5. Spill folders of dead runs

#[test]
fn spill_folders_of_dead_runs_are_removed_live_ones_kept() {
    let c = Case::new();
    let spill = c.path("spill");
    let dead = spill.join(format!("prep-spill-{DEAD_PID}-x"));
    let live = spill.join(format!("prep-spill-{}-x", std::process::id()));
    for d in [&dead, &live] {
        c.write(
            &d.join("chunk-000000.arrow")
                .strip_prefix(c.dir.path())
                .unwrap()
                .display()
                .to_string(),
            "x",
        );
    }
    let out = c.path("out");
    let (a, _) = two_pipelines(&c, &out.display().to_string());
    let spill_env = env(&[("PREP_SPILL_DIR", spill.to_str().unwrap())]);
    let (code, err) = finish(spawn_run(&a, &[], &spill_env));
    assert_eq!(code, 0, "{err}");
    assert!(!dead.exists(), "the dead run's spill is removed");
    assert!(live.exists(), "a live process's spill is kept");
    assert!(err.contains(&format!("(pid {DEAD_PID})")), "{err}");
    let left: Vec<String> = std::fs::read_dir(&spill)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        left,
        [format!("prep-spill-{}-x", std::process::id())],
        "the run removed its own"
    );

    // A SIGKILLed run leaks its spill; the next run removes it.
    let big = c.path("big.csv");
    let text = std::fs::read_to_string(repo().join("sample_data/reviews.csv")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut data = format!("{header}\n");
    for _ in 0..40 {
        data.push_str(body);
    }
    std::fs::write(&big, data).unwrap();
    let k = write_pipeline(
        &c,
        "k.toml",
        "k",
        &big.display().to_string(),
        &c.path("out-k").display().to_string(),
        "[scale]\nexclude = [\"review_id\", \"label\"]",
    );
    let mut victim = spawn_run(&k, &["--quiet"], &spill_env);
    let theirs = format!("prep-spill-{}-", victim.id());
    let found = {
        let start = Instant::now();
        loop {
            let any = std::fs::read_dir(&spill).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&theirs)
            });
            if any || start.elapsed() > Duration::from_secs(20) {
                break any;
            }
            if victim.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    signal(&victim, libc::SIGKILL);
    let _ = victim.wait();
    if !found {
        eprintln!("the run finished before its spill was seen; nothing leaked to check");
        return;
    }
    let (code, err) = finish(spawn_run(&a, &["--overwrite", "--quiet"], &spill_env));
    assert_eq!(code, 0, "{err}");
    let leaked = std::fs::read_dir(&spill).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(&theirs)
    });
    assert!(!leaked, "the killed run's spill folder was removed");
}

// ---------------------------------------------------------------------------
// The randomized race

/// splitmix64: a small deterministic generator (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("PREP_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// What a complete output of one pipeline holds.
#[derive(Clone)]
struct Reference {
    feature_names: Option<Value>,
    feature_count: Option<usize>,
    rows_written: u64,
    ext: &'static str,
}

/// A race flavour: name, format, exclude list and shard size all differ.
const FLAVOURS: [(&str, &str, &str, usize); 3] = [
    ("race-a", "jsonl", "[\"id\", \"label\"]", 70),
    ("race-b", "csv", "[\"id\", \"label\", \"c\"]", 130),
    ("race-c", "parquet", "[\"id\"]", 1000),
];

/// A small CSV (some rows with nulls) so that a round takes well under a second.
fn race_input(c: &Case) -> String {
    let mut s = String::from("id,a,b,c,label,note\n");
    for i in 0..400u64 {
        let b = if i % 17 == 0 {
            String::new()
        } else {
            format!("{}", (i * 7 % 13) as f64 * 0.25)
        };
        s.push_str(&format!(
            "{i},{},{b},{},{},\"note {i}, \"\"quoted\"\"\"\n",
            i as f64 * 0.5,
            ((i * 31 % 101) as f64).sqrt(),
            i % 2
        ));
    }
    c.write("race.csv", s).display().to_string()
}

fn race_pipelines(c: &Case, input: &str, output: &str) -> Vec<(String, PathBuf)> {
    FLAVOURS
        .iter()
        .map(|(name, format, exclude, rows)| {
            let p = c.write(
                &format!("{name}.toml"),
                format!(
                    "name = \"{name}\"\n[input]\nuri = \"{input}\"\nchunk_rows = 150\n[scale]\nexclude = {exclude}\n[output]\nuri = \"{output}\"\nformat = \"{format}\"\nshard_max_rows = {rows}\n"
                ),
            );
            (name.to_string(), p)
        })
        .collect()
}

/// Each pipeline run alone into its own folder: what its output must be.
fn race_references(c: &Case, input: &str) -> HashMap<String, Reference> {
    let mut refs = HashMap::new();
    for (i, (name, format, _, _)) in FLAVOURS.iter().enumerate() {
        let dir = c.path(&format!("ref-{i}"));
        let pipes = race_pipelines(c, input, &dir.display().to_string());
        let (code, err) = finish(spawn_run(&pipes[i].1, &["--quiet"], &[]));
        assert_eq!(code, 0, "{err}");
        let report = read_json(&dir.join("_SUCCESS"));
        let ext: &'static str = match *format {
            "jsonl" => ".jsonl",
            "csv" => ".csv",
            _ => ".parquet",
        };
        refs.insert(
            name.to_string(),
            Reference {
                feature_names: Some(read_json(&dir.join("scaler.json"))["feature_names"].clone()),
                feature_count: None,
                rows_written: report["rows_written"].as_u64().unwrap(),
                ext,
            },
        );
    }
    refs
}

/// The output's files (by name, `_work/` left out) after every run ended:
/// either no `_SUCCESS` (and no run succeeded), or a `_SUCCESS` of one run
/// that succeeded over exactly that run's complete output.
fn check_output(
    files: &BTreeMap<String, Vec<u8>>,
    refs: &HashMap<String, Reference>,
    succeeded: &[&str],
) -> Result<(), String> {
    let names: Vec<&String> = files.keys().collect();
    if let Some(tmp) = names.iter().find(|n| n.ends_with(".inprogress")) {
        return Err(format!("temporary file {tmp} left: {names:?}"));
    }
    if files.contains_key("_LOCK") {
        return Err(format!("_LOCK left after every run ended: {names:?}"));
    }
    let Some(success) = files.get("_SUCCESS") else {
        if succeeded.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "{succeeded:?} exited 0 but there is no _SUCCESS: {names:?}"
        ));
    };
    let report: Value = serde_json::from_slice(success).map_err(|e| format!("_SUCCESS: {e}"))?;
    let pipeline = report["pipeline"].as_str().unwrap_or_default();
    if !succeeded.contains(&pipeline) {
        return Err(format!(
            "_SUCCESS names {pipeline}, which did not exit 0 ({succeeded:?} did)"
        ));
    }
    let reference = &refs[pipeline];
    let manifest: Value = serde_json::from_slice(
        files
            .get("manifest.json")
            .ok_or_else(|| format!("_SUCCESS without manifest.json: {names:?}"))?,
    )
    .map_err(|e| format!("manifest.json: {e}"))?;
    let mut listed: Vec<String> = manifest.as_array().ok_or("manifest is not a list")?[1..]
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    listed.sort();
    let present: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("part-"))
        .map(|n| n.to_string())
        .collect();
    if listed != present {
        return Err(format!(
            "{pipeline}: the manifest lists {listed:?} but the output holds {present:?}"
        ));
    }
    if let Some(bad) = listed.iter().find(|n| !n.ends_with(reference.ext)) {
        return Err(format!(
            "{pipeline} writes {} shards, found {bad}",
            reference.ext
        ));
    }
    let mut rows = 0;
    for n in &listed {
        rows += shard_rows(n, &files[n])?;
    }
    if rows != report["rows_written"].as_u64().unwrap_or(u64::MAX)
        || rows != reference.rows_written
        || report["shards"].as_u64() != Some(listed.len() as u64)
    {
        return Err(format!(
            "{pipeline}: the shards hold {rows} rows in {} shards; _SUCCESS says {} in {}, a run alone writes {}",
            listed.len(),
            report["rows_written"],
            report["shards"],
            reference.rows_written
        ));
    }
    let scaler: Value = serde_json::from_slice(
        files
            .get("scaler.json")
            .ok_or_else(|| format!("_SUCCESS without scaler.json: {names:?}"))?,
    )
    .map_err(|e| format!("scaler.json: {e}"))?;
    let features = &scaler["feature_names"];
    let names_ok = reference
        .feature_names
        .as_ref()
        .is_none_or(|f| f == features);
    let count_ok = reference
        .feature_count
        .is_none_or(|n| features.as_array().is_some_and(|a| a.len() == n));
    if !names_ok || !count_ok {
        return Err(format!(
            "{pipeline}: scaler.json has {features}, not the pipeline's features"
        ));
    }
    Ok(())
}

/// One round: 2 or 3 different pipelines, each started after a random
/// 0–50 ms, some waiting for the lock; returns the names that exited 0
/// (and counts the runs the lock refused in `refused`).
fn race_round(
    rng: &mut Rng,
    pipes: &[(String, PathBuf)],
    env_base: &[(String, String)],
    refused: &mut usize,
) -> Result<Vec<String>, String> {
    let n = 2 + rng.below(2) as usize;
    let mut order: Vec<usize> = (0..pipes.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut starts: Vec<(u64, usize, bool)> = order[..n]
        .iter()
        .map(|&i| (rng.below(51), i, rng.below(3) == 0))
        .collect();
    starts.sort();
    let t0 = Instant::now();
    let mut kids = Vec::new();
    for (delay, i, waits) in starts {
        let at = Duration::from_millis(delay);
        if let Some(left) = at.checked_sub(t0.elapsed()) {
            std::thread::sleep(left);
        }
        let mut e = env_base.to_vec();
        if waits {
            e.push(("PREP_LOCK_WAIT".into(), "30s".into()));
        }
        kids.push((i, spawn_run(&pipes[i].1, &["--quiet", "--overwrite"], &e)));
    }
    let mut succeeded = Vec::new();
    for (i, k) in kids {
        let (code, err) = finish(k);
        match code {
            0 => succeeded.push(pipes[i].0.clone()),
            2 if err.contains("is being written by another run") => *refused += 1,
            _ => return Err(format!("{} exited {code}: {err}", pipes[i].0)),
        }
    }
    Ok(succeeded)
}

fn race(
    rounds: usize,
    output: &str,
    env_base: &[(String, String)],
    files: &dyn Fn() -> BTreeMap<String, Vec<u8>>,
) {
    let c = Case::new();
    let input = race_input(&c);
    let refs = race_references(&c, &input);
    let pipes = race_pipelines(&c, &input, output);
    let seed = seed();
    eprintln!("race seed {seed} (rerun with PREP_RACE_SEED={seed})");
    let mut rng = Rng(seed);
    let (mut committed, mut refused) = (0, 0);
    for round in 0..rounds {
        let t = Instant::now();
        let result = race_round(&mut rng, &pipes, env_base, &mut refused).and_then(|ok| {
            let succeeded: Vec<&str> = ok.iter().map(String::as_str).collect();
            committed += usize::from(!succeeded.is_empty());
            check_output(&files(), &refs, &succeeded)
        });
        if let Err(e) = result {
            panic!("PREP_RACE_SEED={seed}, round {round}: {e}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "round {round} took {:?}",
            t.elapsed()
        );
    }
    eprintln!("race: {rounds} rounds, {committed} committed, {refused} runs refused by the lock");
    assert!(committed > 0, "no round committed anything (seed {seed})");
}

#[test]
fn randomized_race_of_different_pipelines_into_one_local_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    race(50, &out.display().to_string(), &[], &|| local_files(&out));
}

#[test]
fn randomized_race_of_different_pipelines_into_one_s3_output() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    race(10, &server.uri(&bucket, "out/"), &server.env(), &|| {
        s3_files(server, &bucket, "out")
    });
}
