//! The S3 suite's pipelines against gs:// (gcp-storage-emulator) and az://
//! (Azurite): folder listing and globs, streaming and ranged Parquet reads,
//! shard uploads with `_SUCCESS` last, and a 4-worker run. What the GCS
//! emulator cannot do is listed in `cloud_support.rs`.

use crate::cloud_support::{azurite, gcs, CloudStore};
use crate::common::*;

fn sample() -> Vec<u8> {
    std::fs::read(repo().join("sample_data/reviews.csv")).unwrap()
}

fn pipeline(case: &Case, name: &str, input: &str, output: &str, extra: &str) -> std::path::PathBuf {
    case.write(
        name,
        format!(
            "name = \"cloud\"\n[input]\nuri = \"{input}\"\nchunk_rows = 700\n[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nuri = \"{output}\"\n{extra}\n"
        ),
    )
}

fn run(
    store: &dyn CloudStore,
    pipeline: &std::path::Path,
    args: &[&str],
) -> assert_cmd::assert::Assert {
    let mut cmd = prep();
    for (k, v) in store.env() {
        cmd.env(k, v);
    }
    cmd.arg("run").arg(pipeline).arg("--quiet").args(args);
    cmd.assert()
}

/// Shards named in a store's manifest, with their bytes.
fn store_shards(store: &dyn CloudStore, bucket: &str, out: &str) -> Vec<(String, Vec<u8>)> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &store
            .get(bucket, &format!("{out}manifest.json"))
            .expect("manifest"),
    )
    .unwrap();
    assert_eq!(manifest[0]["prefix"], store.uri(bucket, out));
    manifest
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|n| {
            let n = n.as_str().unwrap().to_string();
            let bytes = store
                .get(bucket, &format!("{out}{n}"))
                .expect("listed shard exists");
            (n, bytes)
        })
        .collect()
}

fn local_shards(case: &Case) -> Vec<(String, Vec<u8>)> {
    output_bytes(case)
        .into_iter()
        .filter(|(n, _)| n.starts_with("part-"))
        .collect()
}

/// A folder (not its `raw_old` sibling) and a glob, read from the store and
/// written back to it, give the shards a local run gives; `_SUCCESS` last.
fn folder_and_glob_round_trip(store: &dyn CloudStore) {
    let bucket = store.new_bucket();
    let local = Case::new();
    local.write("in/a.csv", sample());
    local.write("in/b.csv", sample());
    let p = pipeline(
        &local,
        "p.toml",
        &local.path("in").display().to_string(),
        &local.path("out").display().to_string(),
        "format = \"jsonl\"",
    );
    run(store, &p, &[]).success();
    let expected = local_shards(&local);

    store.put(&bucket, "raw/a.csv", &sample());
    store.put(&bucket, "raw/b.csv", &sample());
    store.put(&bucket, "raw_old/c.csv", b"review_id\n1\n");
    for (input, out) in [
        (store.uri(&bucket, "raw"), "out/"),
        (store.uri(&bucket, "raw/*.csv"), "glob/"),
    ] {
        let case = Case::new();
        let p = pipeline(
            &case,
            "p.toml",
            &input,
            &store.uri(&bucket, out),
            "format = \"jsonl\"",
        );
        let a = run(store, &p, &[]);
        assert!(
            a.get_output().status.success(),
            "{input}: {}",
            stderr_of(&a)
        );
        assert_eq!(store_shards(store, &bucket, out), expected, "{input}");
        let names = store.list(&bucket, out);
        assert!(names.contains(&format!("{out}_SUCCESS")), "{names:?}");
        assert!(names.contains(&format!("{out}scaler.json")), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.contains(".inprogress") || n.ends_with("_LOCK")),
            "{names:?}"
        );
    }
    // `--overwrite` removes the old output in bulk (Azure's blob batch,
    // GCS's concurrent deletes): many small shards, then one, none stale.
    let case = Case::new();
    let out = store.uri(&bucket, "out/");
    for extra in ["shard_max_rows = 100", "shard_max_rows = 100000"] {
        let p = pipeline(
            &case,
            "p.toml",
            &store.uri(&bucket, "raw"),
            &out,
            &format!("format = \"jsonl\"\n{extra}"),
        );
        let a = run(store, &p, &["--overwrite"]);
        assert!(
            a.get_output().status.success(),
            "{extra}: {}",
            stderr_of(&a)
        );
    }
    let names = store.list(&bucket, "out/");
    let shards: Vec<&String> = names.iter().filter(|n| n.contains("part-")).collect();
    assert_eq!(shards, ["out/part-00000.jsonl"], "{names:?}");
}

/// Parquet read from the store with ranged GETs equals the local read.
fn parquet_ranged_reads(store: &dyn CloudStore) {
    let bucket = store.new_bucket();
    let local = Case::new();
    local.write("in/r.csv", sample());
    let to_pq = pipeline(
        &local,
        "pq.toml",
        &local.path("in").display().to_string(),
        &local.path("pq").display().to_string(),
        "format = \"parquet\"\nshard_max_rows = 1000",
    );
    run(store, &to_pq, &[]).success();
    let pq = std::fs::read(local.path("pq/part-00000.parquet")).unwrap();
    let from_local = pipeline(
        &local,
        "p.toml",
        &local.path("pq/part-00000.parquet").display().to_string(),
        &local.path("out").display().to_string(),
        "format = \"jsonl\"",
    );
    run(store, &from_local, &[]).success();
    let expected = local_shards(&local);

    store.put(&bucket, "data/in.parquet", &pq);
    let case = Case::new();
    let p = pipeline(
        &case,
        "p.toml",
        &store.uri(&bucket, "data/in.parquet"),
        &case.path("out").display().to_string(),
        "format = \"jsonl\"",
    );
    let a = run(store, &p, &[]);
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert_eq!(local_shards(&case), expected);
}

/// Four workers writing to the store complete one job: one `_SUCCESS`,
/// every worker's shards in the manifest, the rows of a single run.
fn four_workers(store: &dyn CloudStore, env: &[(&str, &str)]) {
    let bucket = store.new_bucket();
    for i in 0..4 {
        store.put(&bucket, &format!("raw/p{i}.csv"), &sample());
    }
    let single = Case::new();
    let p = pipeline(
        &single,
        "p.toml",
        &store.uri(&bucket, "raw/"),
        &store.uri(&bucket, "single/"),
        "format = \"jsonl\"",
    );
    run(store, &p, &[]).success();
    let single_rows: usize = store_shards(store, &bucket, "single/")
        .iter()
        .map(|(_, b)| b.iter().filter(|c| **c == b'\n').count())
        .sum();

    let case = Case::new();
    let p = pipeline(
        &case,
        "p.toml",
        &store.uri(&bucket, "raw/"),
        &store.uri(&bucket, "w4/"),
        "format = \"jsonl\"",
    );
    let children: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("prep"));
            cmd.current_dir(repo())
                .env_remove("PREP_LOG")
                .env("PREP_WAIT_TIMEOUT", "120s");
            cmd.envs(env.iter().copied());
            for (k, v) in store.env() {
                cmd.env(k, v);
            }
            cmd.arg("run")
                .arg(&p)
                .arg("--quiet")
                .arg("--worker")
                .arg(format!("{i}/4"));
            cmd.stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shards = store_shards(store, &bucket, "w4/");
    for i in 0..4 {
        assert!(
            shards
                .iter()
                .any(|(n, _)| n.starts_with(&format!("part-w{i:04}-"))),
            "worker {i}'s shards"
        );
    }
    let rows: usize = shards
        .iter()
        .map(|(_, b)| b.iter().filter(|c| **c == b'\n').count())
        .sum();
    assert_eq!(rows, single_rows);
    let scaler = |out: &str| -> serde_json::Value {
        serde_json::from_slice(&store.get(&bucket, &format!("{out}scaler.json")).unwrap()).unwrap()
    };
    let (w4, one) = (scaler("w4/"), scaler("single/"));
    assert_eq!(w4["feature_names"], one["feature_names"]);
    assert_eq!(w4["n_samples_seen"], one["n_samples_seen"]);
    assert!(store.get(&bucket, "w4/_SUCCESS").is_some());
}

#[test]
fn azure_folder_and_glob_round_trip() {
    let Some(s) = azurite() else { return };
    folder_and_glob_round_trip(s);
}

#[test]
fn azure_parquet_ranged_reads() {
    let Some(s) = azurite() else { return };
    parquet_ranged_reads(s);
}

#[test]
fn azure_four_workers() {
    let Some(s) = azurite() else { return };
    four_workers(s, &[]);
}

#[test]
fn gcs_folder_and_glob_round_trip() {
    let Some(s) = gcs() else { return };
    folder_and_glob_round_trip(s);
}

#[test]
fn gcs_parquet_ranged_reads() {
    let Some(s) = gcs() else { return };
    parquet_ranged_reads(s);
}

#[test]
fn gcs_four_workers() {
    let Some(s) = gcs() else { return };
    // The emulator ignores preconditions, so the workers cannot agree on
    // who opens the attempt by a conditional write: the orchestrator's id
    // (as Kubernetes or AWS Batch would give it) makes them meet.
    four_workers(s, &[("PREP_ATTEMPT_ID", "gcs-test-attempt")]);
}
