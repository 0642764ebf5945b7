//! Scale-out: N worker processes coordinating through `<output>/_work/`.

use std::process::Child;
use std::time::Duration;

use crate::common::*;
use crate::s3_support::s3;

/// The sample split into `k` CSV files at record boundaries.
pub(crate) fn split_sample(case: &Case, dir: &str, k: usize) {
    let text = std::fs::read_to_string(repo().join("sample_data/reviews.csv")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut records: Vec<String> = Vec::new();
    for line in body.split_inclusive('\n') {
        let starts_record = line
            .split(',')
            .next()
            .is_some_and(|f| f.parse::<u64>().is_ok())
            && line.split(',').nth(1).is_some_and(|f| f.starts_with("B0"));
        match records.last_mut() {
            Some(last) if !starts_record => last.push_str(line),
            _ => records.push(line.to_string()),
        }
    }
    let n = records.len();
    for i in 0..k {
        let part: String = records[i * n / k..(i + 1) * n / k].concat();
        case.write(
            &format!("{dir}/part-{i:02}.csv"),
            format!("{header}\n{part}"),
        );
    }
}

pub(crate) fn pipeline(case: &Case, input: &str, output: &str) {
    case.write(
        "pipeline.toml",
        format!(
            "name = \"so\"\n[input]\nuri = \"{input}\"\nchunk_rows = 97\n[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nuri = \"{output}\"\nformat = \"jsonl\"\nshard_max_rows = 150\n"
        ),
    );
}

/// `prep run <case>/pipeline.toml --quiet ARGS` as a separate process.
pub(crate) fn worker(case: &Case, args: &[&str], env: &[(String, String)]) -> Child {
    let mut all = vec!["--quiet"];
    all.extend_from_slice(args);
    spawn_run(&case.path("pipeline.toml"), &all, env)
}

/// Starts `n` workers at once and checks that every one succeeds.
pub(crate) fn run_workers(case: &Case, n: usize, extra: &[&str], env: &[(String, String)]) {
    let kids: Vec<Child> = (0..n)
        .map(|i| {
            let id = format!("{i}/{n}");
            let mut args = vec!["--worker", id.as_str()];
            args.extend_from_slice(extra);
            worker(case, &args, env)
        })
        .collect();
    for k in kids {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "{err}");
    }
}

/// Rows of a local output in manifest order.
pub(crate) fn rows_of(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let manifest = read_json(&dir.join("manifest.json"));
    let mut rows = Vec::new();
    for shard in manifest.as_array().unwrap().iter().skip(1) {
        for line in std::fs::read_to_string(dir.join(shard.as_str().unwrap()))
            .unwrap()
            .lines()
        {
            rows.push(serde_json::from_str(line).unwrap());
        }
    }
    rows
}

fn assert_scalers_close(a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(a["feature_names"], b["feature_names"]);
    assert_eq!(a["n_samples_seen"], b["n_samples_seen"]);
    for k in ["mean", "var", "scale"] {
        for (x, y) in floats(&a[k]).into_iter().zip(floats(&b[k])) {
            assert!(rel_err(x, y) <= 1e-12, "{k}: {x} vs {y}");
        }
    }
}

/// Same rows in the same order, and a scaler within 1e-12.
pub(crate) fn assert_same_output(out: &std::path::Path, reference: &std::path::Path) {
    assert_rows_close(&rows_of(out), &rows_of(reference));
    assert_scalers_close(
        &read_json(&out.join("scaler.json")),
        &read_json(&reference.join("scaler.json")),
    );
}

/// A single-process run of the same pipeline, for reference.
pub(crate) fn single(case: &Case, input: &str) -> std::path::PathBuf {
    let out = case.path("single");
    pipeline(case, input, &out.display().to_string());
    prep()
        .arg("run")
        .arg(case.path("pipeline.toml"))
        .arg("--quiet")
        .assert()
        .success();
    out
}

#[test]
fn four_local_workers_equal_one_run() {
    let c = Case::new();
    split_sample(&c, "in", 9);
    let input = c.path("in").display().to_string();
    let reference = single(&c, &input);
    let out = c.path("out");
    pipeline(&c, &input, &out.display().to_string());
    run_workers(&c, 4, &[], &[]);
    assert_same_output(&out, &reference);
    let manifest = read_json(&out.join("manifest.json"));
    let names: Vec<&str> = manifest.as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        names[0].starts_with("part-w0000-") && names.last().unwrap().starts_with("part-w0003-"),
        "{names:?}"
    );
    let report = read_json(&out.join("_SUCCESS"));
    assert_eq!(report["rows_read"], 2500);
    assert_eq!(report["rows_written"], 2396);

    // A completed run is not rerun without --overwrite.
    let (code, err) = finish(worker(&c, &["--worker", "1/4"], &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn four_workers_against_s3_equal_one_run() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let c = Case::new();
    split_sample(&c, "in", 6);
    for i in 0..6 {
        let name = format!("part-{i:02}.csv");
        server.put(
            &bucket,
            &format!("raw/{name}"),
            std::fs::read(c.path(&format!("in/{name}"))).unwrap(),
        );
    }
    let reference = single(&c, &c.path("in").display().to_string());
    pipeline(
        &c,
        &server.uri(&bucket, "raw/"),
        &server.uri(&bucket, "out/"),
    );
    run_workers(&c, 4, &[], &server.env());
    let local = c.path("fetched");
    for key in server.list(&bucket, "out") {
        if !key.contains("_work") {
            let name = key.trim_start_matches("out/");
            c.write(
                &format!("fetched/{name}"),
                server.get(&bucket, &key).unwrap(),
            );
        }
    }
    assert_same_output(&local, &reference);
    assert!(server.get(&bucket, "out/_SUCCESS").is_some());
}

#[test]
fn fit_and_transform_as_separate_commands_equal_phase_all() {
    let c = Case::new();
    split_sample(&c, "in", 5);
    let input = c.path("in").display().to_string();
    let reference = single(&c, &input);
    let out = c.path("out");
    pipeline(&c, &input, &out.display().to_string());
    for phase in ["fit", "transform"] {
        run_workers(&c, 3, &["--phase", phase], &[]);
        if phase == "fit" {
            assert!(out.join("_work/partial-w0002.json").exists());
            assert!(!out.join("_SUCCESS").exists());
        }
    }
    assert_same_output(&out, &reference);
}

#[test]
fn a_missing_worker_makes_the_others_time_out_naming_it() {
    let c = Case::new();
    split_sample(&c, "in", 4);
    pipeline(
        &c,
        &c.path("in").display().to_string(),
        &c.path("out").display().to_string(),
    );
    let env = [("PREP_WAIT_TIMEOUT".to_string(), "2s".to_string())];
    let (code, err) = finish(worker(&c, &["--worker", "0/3"], &env));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("workers 1, 2"), "{err}");
    assert!(err.contains("PREP_WAIT_TIMEOUT"), "{err}");
    assert!(!c.path("out/_SUCCESS").exists());
}

#[test]
fn a_killed_worker_restarted_still_gives_the_right_result() {
    let c = Case::new();
    split_sample(&c, "in", 6);
    let input = c.path("in").display().to_string();
    let reference = single(&c, &input);
    let out = c.path("out");
    pipeline(&c, &input, &out.display().to_string());
    // Worker 1 alone cannot get past the fit barrier (worker 0 has not
    // started), so it is killed mid-job, after it wrote its partial,
    // however slowly the machine runs. (Started beside worker 0 and killed
    // after a fixed delay, it sometimes finished first on a loaded machine.)
    let mut w1 = worker(&c, &["--worker", "1/2"], &[]);
    let partial = out.join("_work/partial-w0001.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !partial.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(partial.exists(), "worker 1 wrote no partial in 30 s");
    let _ = w1.kill(); // SIGKILL: no cleanup at all, as when a pod dies
    let _ = w1.wait();
    let w0 = worker(&c, &["--worker", "0/2"], &[]);
    let (code, err) = finish(worker(&c, &["--worker", "1/2"], &[]));
    assert_eq!(code, 0, "{err}");
    let (code, err) = finish(w0);
    assert_eq!(code, 0, "{err}");
    assert_rows_close(&rows_of(&out), &rows_of(&reference));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.') || n.starts_with("part-"))
        .collect();
    let manifest = read_json(&out.join("manifest.json"));
    assert_eq!(
        names.len(),
        manifest.as_array().unwrap().len() - 1,
        "no stale or temporary shards: {names:?}"
    );
}

#[test]
fn worker_auto_reads_sagemaker_kubernetes_and_batch() {
    let c = Case::new();
    split_sample(&c, "in", 2);
    let out = c.path("out");
    pipeline(
        &c,
        &c.path("in").display().to_string(),
        &out.display().to_string(),
    );
    c.write(
        "sm/resourceconfig.json",
        r#"{"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}"#,
    );
    let sm = [(
        "PREP_SAGEMAKER_CONFIG_DIR".to_string(),
        c.path("sm").display().to_string(),
    )];
    let (code, err) = finish(worker(&c, &["--worker", "auto"], &sm));
    assert_eq!(code, 0, "{err}");
    assert!(out.join("part-w0000-00000.jsonl").exists());

    let k8s = [
        ("JOB_COMPLETION_INDEX".to_string(), "0".to_string()),
        ("PREP_WORKERS".to_string(), "1".to_string()),
        (
            "PREP_SAGEMAKER_CONFIG_DIR".to_string(),
            c.path("none").display().to_string(),
        ),
    ];
    let (code, err) = finish(worker(&c, &["--worker", "auto", "--overwrite"], &k8s));
    assert_eq!(code, 0, "{err}");

    // Missing or inconsistent identities are usage errors that say what to set.
    for (env, needle) in [
        (vec![("AWS_BATCH_JOB_ARRAY_INDEX", "0")], "PREP_WORKERS"),
        (
            vec![("JOB_COMPLETION_INDEX", "5"), ("PREP_WORKERS", "2")],
            "out of range",
        ),
        (vec![], "--worker I/N"),
    ] {
        let mut e: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        e.push((
            "PREP_SAGEMAKER_CONFIG_DIR".into(),
            c.path("none").display().to_string(),
        ));
        let (code, err) = finish(worker(&c, &["--worker", "auto", "--overwrite"], &e));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
    c.write(
        "bad/resourceconfig.json",
        r#"{"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}"#,
    );
    let bad = [(
        "PREP_SAGEMAKER_CONFIG_DIR".to_string(),
        c.path("bad").display().to_string(),
    )];
    let (code, err) = finish(worker(&c, &["--worker", "auto"], &bad));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("algo-3"), "{err}");
}

#[test]
fn sagemaker_failure_writes_the_exit_message() {
    let c = Case::new();
    c.write("in.csv", "id,x\n1,2\n3\n");
    pipeline(
        &c,
        &c.path("in.csv").display().to_string(),
        &c.path("out").display().to_string(),
    );
    std::fs::create_dir_all(c.path("opt-ml-output")).unwrap();
    let env = [(
        "PREP_SAGEMAKER_OUTPUT_DIR".to_string(),
        c.path("opt-ml-output").display().to_string(),
    )];
    let (code, err) = finish(worker(&c, &[], &env));
    assert_eq!(code, 3, "{err}");
    let message = std::fs::read_to_string(c.path("opt-ml-output/message")).unwrap();
    assert!(message.starts_with("error: bad input data in"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

/// Rows each worker wrote, from its completion marker.
fn rows_per_worker(out: &std::path::Path, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            read_json(&out.join(format!("_work/done-w{i:04}.json")))["rows_written"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// `n` workers on `input` give the single run's output, and each of them
/// wrote more than `min_rows` rows.
fn assert_split_between_workers(c: &Case, input: &str, n: usize, min_rows: u64) {
    let reference = single(c, input);
    let out = c.path("out");
    pipeline(c, input, &out.display().to_string());
    run_workers(c, n, &[], &[]);
    assert_same_output(&out, &reference);
    let per = rows_per_worker(&out, n);
    assert!(
        per.iter().all(|r| *r > min_rows),
        "every worker got a share: {per:?}"
    );
}

#[test]
fn one_large_csv_is_split_between_workers_at_record_boundaries() {
    let c = Case::new();
    c.write(
        "in/reviews.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    let input = c.path("in").display().to_string();
    assert_split_between_workers(&c, &input, 4, 400);
}

#[test]
fn one_parquet_file_is_split_by_row_groups() {
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    // One Parquet file with many row groups (one per 97-row chunk).
    c.write(
        "mk.toml",
        format!(
            "name = \"mk\"\n[input]\nuri = \"{}\"\nchunk_rows = 97\n[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []\n[output]\nuri = \"{}\"\nformat = \"parquet\"\nshard_max_rows = 1000000\n",
            c.path("in.csv").display(),
            c.path("pq").display()
        ),
    );
    prep()
        .arg("run")
        .arg(c.path("mk.toml"))
        .arg("--quiet")
        .assert()
        .success();
    let input = format!("{}/part-00000.parquet", c.path("pq").display());
    assert_split_between_workers(&c, &input, 3, 300);
}

/// The job fingerprint is the resolved plan, not the pipeline file's path:
/// workers started with copies of the pipeline at different paths (as on
/// different machines) complete one job.
#[test]
fn workers_with_their_pipeline_files_at_different_paths_complete_one_job() {
    let c = Case::new();
    split_sample(&c, "in", 4);
    let input = c.path("in").display().to_string();
    let reference = single(&c, &input);
    let out = c.path("out");
    pipeline(&c, &input, &out.display().to_string());
    let text = std::fs::read_to_string(c.path("pipeline.toml")).unwrap();
    let kids: Vec<Child> = (0..2)
        .map(|i| {
            let own = c.write(&format!("host{i}/conf/pipeline-{i}.toml"), &text);
            spawn_run(
                &own,
                &["--quiet", "--worker", &format!("{i}/2")],
                &[("PREP_WAIT_TIMEOUT".into(), "60s".into())],
            )
        })
        .collect();
    for k in kids {
        let (code, err) = finish(k);
        assert_eq!(code, 0, "{err}");
    }
    assert_same_output(&out, &reference);
    assert!(out.join("_SUCCESS").exists());
}
