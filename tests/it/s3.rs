//! The same pipelines against a real S3-compatible server (moto) on
//! 127.0.0.1, plus faults injected by a proxy in front of it. In CI a
//! missing server fails these tests (see `s3_support.rs`).

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use crate::s3_support::{s3, FaultMode, S3Server};

fn sample() -> Vec<u8> {
    std::fs::read(repo().join("sample_data/reviews.csv")).unwrap()
}

/// Writes a pipeline file with the given URIs (and extra TOML) into `case`.
fn pipeline(case: &Case, input: &str, output: &str, extra: &str) {
    case.write(
        "pipeline.toml",
        format!(
            "name = \"s3\"\n[input]\nuri = \"{input}\"\nchunk_rows = 700\n[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nuri = \"{output}\"\n{extra}\n"
        ),
    );
}

/// A pipeline reading `input` and writing to the case's local `out/`.
fn pipeline_to_local(case: &Case, input: &str, extra: &str) {
    pipeline(case, input, &case.path("out").display().to_string(), extra);
}

fn run(
    case: &Case,
    server: &S3Server,
    endpoint: Option<&str>,
    args: &[&str],
) -> assert_cmd::assert::Assert {
    run_env(case, server, endpoint, &[], args)
}

/// `prep run --quiet` on the case's pipeline against `endpoint` (the server,
/// or a fault proxy in front of it), with extra environment variables.
fn run_env(
    case: &Case,
    server: &S3Server,
    endpoint: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> assert_cmd::assert::Assert {
    let mut cmd = prep();
    match endpoint {
        Some(ep) => server.apply_via(&mut cmd, ep),
        None => server.apply(&mut cmd),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("run")
        .arg(case.path("pipeline.toml"))
        .arg("--quiet")
        .args(args);
    cmd.assert()
}

fn shard_names(manifest: &serde_json::Value) -> Vec<String> {
    manifest.as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn s3_to_s3_equals_local_to_local() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/reviews.csv", sample());
    // Things a prefix must not pick up: a sibling folder with a common
    // prefix, a folder marker, a _SUCCESS, _work/ and hidden objects.
    server.put(&bucket, "raw_old/other.csv", "x,y\n1,2\n");
    server.put(&bucket, "raw/sub/", "");
    server.put(&bucket, "raw/_SUCCESS", "{}");
    server.put(&bucket, "raw/_work/partial.csv", "x\n1\n");
    server.put(&bucket, "raw/.hidden.csv", "x\n1\n");

    let remote = Case::new();
    let out_uri = server.uri(&bucket, "out/");
    pipeline(
        &remote,
        &server.uri(&bucket, "raw"),
        &out_uri,
        "format = \"jsonl\"\nshard_max_rows = 1000",
    );
    run(&remote, server, None, &[]).success();

    let local = Case::new();
    local.write("in/reviews.csv", sample());
    pipeline(
        &local,
        &local.path("in").display().to_string(),
        &local.path("out").display().to_string(),
        "format = \"jsonl\"\nshard_max_rows = 1000",
    );
    run(&local, server, None, &[]).success();

    let listed = server.list(&bucket, "out");
    assert_eq!(
        listed,
        [
            "out/_SUCCESS",
            "out/manifest.json",
            "out/part-00000.jsonl",
            "out/part-00001.jsonl",
            "out/part-00002.jsonl",
            "out/scaler.json",
            "out/transform.json"
        ]
    );
    for shard in ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"] {
        assert_eq!(
            server.get(&bucket, &format!("out/{shard}")).unwrap(),
            std::fs::read(local.out_file(shard)).unwrap(),
            "{shard} differs between S3 and local"
        );
    }
    let remote_scaler: serde_json::Value =
        serde_json::from_slice(&server.get(&bucket, "out/scaler.json").unwrap()).unwrap();
    let local_scaler = local.scaler();
    for k in ["feature_names", "mean", "var", "scale", "n_samples_seen"] {
        assert_eq!(remote_scaler[k], local_scaler[k], "{k}");
    }
    let objects = remote_scaler["source"]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["key"], "reviews.csv");
    assert!(objects[0]["etag"].is_string(), "S3 objects carry an etag");
    let manifest: serde_json::Value =
        serde_json::from_slice(&server.get(&bucket, "out/manifest.json").unwrap()).unwrap();
    assert_eq!(manifest[0]["prefix"], out_uri.as_str());
    assert_eq!(shard_names(&manifest).len(), 3);
}

#[test]
fn parquet_in_and_out_of_s3_with_globs() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/a.csv", sample());
    let case = Case::new();
    pipeline(
        &case,
        &server.uri(&bucket, "raw/*.csv"),
        &server.uri(&bucket, "pq/"),
        "format = \"parquet\"\nshard_max_rows = 500",
    );
    run(&case, server, None, &[]).success();
    assert_eq!(
        server
            .list(&bucket, "pq")
            .iter()
            .filter(|k| k.ends_with(".parquet"))
            .count(),
        5
    );

    // Parquet from S3 (footer + row-group range reads) back to local JSONL.
    let back = Case::new();
    back.write(
        "pipeline.toml",
        format!(
            "name = \"b\"\n[input]\nuri = \"{}\"\nchunk_rows = 100\n[scale]\ncolumns = [\"price\"]\n[output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
            server.uri(&bucket, "pq/part-*.parquet"),
            back.path("out").display()
        ),
    );
    run(&back, server, None, &[]).success();
    assert_eq!(back.rows().len(), 2396);
    let s = back.scaler();
    assert!(s["mean"][0].as_f64().unwrap().abs() < 1e-12);
}

/// A rerun with `--overwrite` replaces the output without stale shards,
/// removing the old files with one listing and one bulk delete after
/// `_SUCCESS`, not a listing and a delete per file (at 30 ms a round trip,
/// an output of 100 shards cost 6 s before).
#[test]
fn overwrite_on_s3_refuses_then_replaces_without_stale_shards() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/r.csv", sample());
    let case = Case::new();
    let (input, output) = (server.uri(&bucket, "raw/"), server.uri(&bucket, "out/"));
    pipeline(
        &case,
        &input,
        &output,
        "format = \"csv\"\nshard_max_rows = 200",
    );
    run(&case, server, None, &[]).success();
    assert!(server.get(&bucket, "out/part-00011.csv").is_some());
    let a = run(&case, server, None, &[]).code(2);
    assert!(stderr_of(&a).contains(&output), "{}", stderr_of(&a));
    pipeline(
        &case,
        &input,
        &output,
        "format = \"csv\"\nshard_max_rows = 5000",
    );
    let before = server.requests(&bucket);
    run(&case, server, None, &["--overwrite"]).success();
    match before {
        Some(before) => {
            let rerun = &server.requests(&bucket).unwrap()[before.len()..];
            // object_store deletes even one object with DeleteObjects
            // (`POST ?delete`): `_SUCCESS`, then the rest at once, then
            // the output lock.
            let deletes = rerun
                .iter()
                .filter(|r| r.starts_with("DELETE ") || r.ends_with("?delete"))
                .count();
            assert_eq!(deletes, 3, "{rerun:#?}");
            let listings = rerun
                .iter()
                .filter(|r| r.contains("list-type=2&prefix=out/"))
                .count();
            assert_eq!(listings, 1, "{rerun:#?}");
        }
        None => assert!(
            !in_ci(),
            "CI=true but the S3 server's request log is not ours"
        ),
    }
    let keys = server.list(&bucket, "out");
    assert_eq!(
        keys,
        [
            "out/_SUCCESS",
            "out/manifest.json",
            "out/part-00000.csv",
            "out/scaler.json",
            "out/transform.json"
        ]
    );
}

#[test]
fn transient_503_and_resets_are_retried() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/r.csv", sample());
    for mode in [
        FaultMode::Fail503 { first_n: 3 },
        FaultMode::Reset { first_n: 2 },
    ] {
        let proxy = server.proxy(mode);
        let case = Case::new();
        let out = format!("out-{}/", proxy.addr().replace([':', '.'], "-"));
        pipeline(
            &case,
            &server.uri(&bucket, "raw/"),
            &server.uri(&bucket, &out),
            "format = \"jsonl\"",
        );
        let a = run_env(
            &case,
            server,
            Some(&proxy.endpoint()),
            &[("PREP_MAX_RETRIES", "5")],
            &[],
        );
        assert!(
            a.get_output().status.success(),
            "{mode:?}: {}",
            stderr_of(&a)
        );
        assert!(proxy.faults() >= 2, "{mode:?}: the proxy injected faults");
        assert!(server.get(&bucket, &format!("{out}_SUCCESS")).is_some());
    }
}

#[test]
fn persistent_failure_exits_4_naming_the_object() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/r.csv", sample());
    let proxy = server.proxy(FaultMode::Always503);
    let case = Case::new();
    pipeline_to_local(&case, &server.uri(&bucket, "raw/r.csv"), "");
    let a = run_env(
        &case,
        server,
        Some(&proxy.endpoint()),
        &[("PREP_MAX_RETRIES", "2")],
        &[],
    )
    .code(4);
    let err = stderr_of(&a);
    assert!(err.contains(&format!("s3://{bucket}/raw/r.csv")), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(proxy.faults() >= 3, "retried before giving up");
    assert!(!case.has_success());
}

#[test]
fn missing_bucket_and_missing_object_exit_4() {
    let Some(server) = s3() else { return };
    let case = Case::new();
    pipeline_to_local(&case, "s3://no-such-bucket-prep/raw/", "");
    let a = run(&case, server, None, &[]).code(4);
    assert!(
        stderr_of(&a).contains("bucket `no-such-bucket-prep` does not exist"),
        "{}",
        stderr_of(&a)
    );
    let bucket = server.new_bucket();
    pipeline_to_local(&case, &server.uri(&bucket, "raw/missing.csv"), "");
    let a = run(&case, server, None, &[]).code(4);
    assert!(
        stderr_of(&a).contains("no input files match"),
        "{}",
        stderr_of(&a)
    );
}

#[test]
fn access_denied_names_the_credential_source_not_the_secret() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let proxy = server.proxy(FaultMode::Always403);
    let case = Case::new();
    pipeline_to_local(&case, &server.uri(&bucket, "raw/"), "");
    let a = run_env(
        &case,
        server,
        Some(&proxy.endpoint()),
        &[("AWS_SECRET_ACCESS_KEY", "sEcReT-vAlUe-123")],
        &[],
    )
    .code(4);
    let err = stderr_of(&a);
    assert!(
        err.contains("access was denied with credentials from the environment (AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(
        !err.contains("sEcReT-vAlUe-123"),
        "the secret must never be printed"
    );
}

#[test]
fn interrupted_run_leaves_no_success_and_a_rerun_succeeds() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    // Large enough to take a while: 40 copies of the sample's rows.
    let text = String::from_utf8(sample()).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut big = format!("{header}\n");
    for _ in 0..40 {
        big.push_str(body);
    }
    server.put(&bucket, "raw/big.csv", big);
    let case = Case::new();
    let out = server.uri(&bucket, "out/");
    pipeline(
        &case,
        &server.uri(&bucket, "raw/"),
        &out,
        "format = \"jsonl\"\nshard_max_rows = 2000",
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("prep"));
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    cmd.env("PREP_MAX_RETRIES", "0");
    let mut child = cmd
        .arg("run")
        .arg(case.path("pipeline.toml"))
        .arg("--quiet")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    if status.success() {
        eprintln!("run finished before the signal; nothing to check");
    } else {
        assert_eq!(status.code(), Some(1), "interrupted runs exit 1");
        assert!(server.get(&bucket, "out/_SUCCESS").is_none());
    }
    run(&case, server, None, &["--overwrite"]).success();
    assert!(server.get(&bucket, "out/_SUCCESS").is_some());
    let manifest: serde_json::Value =
        serde_json::from_slice(&server.get(&bucket, "out/manifest.json").unwrap()).unwrap();
    let listed: Vec<String> = server
        .list(&bucket, "out")
        .into_iter()
        .filter(|k| k.contains("part-"))
        .collect();
    assert_eq!(
        listed.len(),
        shard_names(&manifest).len(),
        "no stale shards: {listed:?}"
    );
}

/// A CSV of about `mib` MiB: the sample's rows, repeated.
fn big_sample(mib: usize) -> Vec<u8> {
    let text = String::from_utf8(sample()).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let mut out = format!("{header}\n").into_bytes();
    while out.len() < mib << 20 {
        out.extend_from_slice(rows.as_bytes());
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

/// Runs the case's pipeline through a proxy that loses the endpoint for
/// 4 s once `after_bytes` have passed, overwrites `key` with `newer` during
/// that outage, and checks that the run stops with exit 4 naming `key` as
/// replaced, without `_SUCCESS`.
fn assert_replaced_mid_read_fails(
    server: &S3Server,
    bucket: &str,
    key: &str,
    case: &Case,
    after_bytes: u64,
    newer: Vec<u8>,
) {
    let proxy = server.proxy(FaultMode::Outage {
        after_bytes,
        lasts: Duration::from_secs(4),
        blackhole: false,
    });
    let child = spawn_run(
        &case.path("pipeline.toml"),
        &["--quiet"],
        &server.env_via(&proxy.endpoint()),
    );
    let started = std::time::Instant::now();
    while proxy.faults() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no outage");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.put(bucket, key, newer);
    let (code, err) = finish(child);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("was replaced while prep read it"), "{err}");
    assert!(err.contains(key), "{err}");
    assert!(!case.has_success());
}

/// An object replaced while prep reads it (here during an outage, so the
/// broken parts resume from the new version) fails with exit 4 naming it,
/// never with shards that mix two versions.
#[test]
fn an_object_replaced_mid_read_fails_instead_of_mixing_versions() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/big.csv", big_sample(24));
    let case = Case::new();
    pipeline_to_local(
        &case,
        &server.uri(&bucket, "raw/big.csv"),
        "format = \"jsonl\"",
    );
    assert_replaced_mid_read_fails(
        server,
        &bucket,
        "raw/big.csv",
        &case,
        2 << 20,
        big_sample(25),
    );
}

/// The same for Parquet, whose footer and row groups are separate reads:
/// each is pinned to the listed ETag, so row groups of a newer version are
/// refused rather than decoded against the old footer.
#[test]
fn a_parquet_object_replaced_mid_read_fails_instead_of_mixing_versions() {
    use polars::prelude::*;
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let parquet = |shift: f64| -> Vec<u8> {
        let n = 200_000usize;
        let text: Vec<String> = (0..n)
            .map(|i| format!("review {i}, {}", i * 7919 % 100_003))
            .collect();
        let price: Vec<f64> = (0..n)
            .map(|i| (i * 37 % 101) as f64 * 0.5 + shift)
            .collect();
        let mut df = df!("text" => text, "price" => price).unwrap();
        let mut out = Vec::new();
        ParquetWriter::new(&mut out)
            .with_compression(ParquetCompression::Uncompressed)
            .with_row_group_size(Some(10_000))
            .finish(&mut df)
            .unwrap();
        out
    };
    server.put(&bucket, "pq/big.parquet", parquet(0.0));
    let case = Case::new();
    case.write(
        "pipeline.toml",
        format!(
            "name = \"pq\"\n[input]\nuri = \"{}\"\n[scale]\ncolumns = [\"price\"]\n\
             [output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
            server.uri(&bucket, "pq/big.parquet"),
            case.path("out").display()
        ),
    );
    assert_replaced_mid_read_fails(
        server,
        &bucket,
        "pq/big.parquet",
        &case,
        1 << 20,
        parquet(1.0),
    );
}

/// A run over one directly named object asks for its first window beside
/// the object's HEAD, before its size is known (one round trip less before
/// parsing starts), and reads the object's bytes whether it ends inside
/// that window, inside a part of it, or past it; a folder starts no such
/// read.
#[test]
fn a_directly_named_object_is_read_from_its_first_byte_beside_its_head() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let debug = [("PREP_LOG", "debug")];
    let early = "asked for before its size was known are used";
    for (key, bytes) in [
        ("raw/small.csv", sample()),
        ("raw/mid.csv", big_sample(3)),
        ("raw/big.csv", big_sample(40)),
    ] {
        server.put(&bucket, key, bytes.clone());
        let remote = Case::new();
        pipeline_to_local(&remote, &server.uri(&bucket, key), "format = \"jsonl\"");
        let a = run_env(&remote, server, None, &debug, &[]);
        let stderr = stderr_of(&a);
        assert!(a.get_output().status.success(), "{key}: {stderr}");
        assert!(stderr.contains(early), "{key}: {stderr}");

        let local = Case::new();
        let path = local.write("in/data.csv", bytes);
        pipeline_to_local(&local, &path.display().to_string(), "format = \"jsonl\"");
        run(&local, server, None, &[]).success();
        let shards = |c: &Case| -> Vec<(String, Vec<u8>)> {
            let mut all = output_bytes(c);
            all.retain(|(name, _)| name.starts_with("part-"));
            all
        };
        assert_eq!(shards(&remote), shards(&local), "{key}: the object's rows");
    }
    let folder = Case::new();
    pipeline_to_local(&folder, &server.uri(&bucket, "raw"), "format = \"jsonl\"");
    let a = run_env(&folder, server, None, &debug, &[]).success();
    assert!(!stderr_of(&a).contains(early), "{}", stderr_of(&a));
}

/// Runs the case's pipeline (output local `out/`) through `proxy` and
/// checks the shards equal those of an undisturbed run straight to the
/// server; returns the disturbed run's stderr.
fn assert_same_output_through(
    case: &Case,
    server: &S3Server,
    proxy_endpoint: &str,
    env: &[(&str, &str)],
) -> String {
    let a = run_env(case, server, Some(proxy_endpoint), env, &["--overwrite"]);
    let stderr = stderr_of(&a);
    assert!(a.get_output().status.success(), "{stderr}");
    let disturbed = output_bytes(case);
    run_env(case, server, None, env, &["--overwrite"]).success();
    assert_eq!(disturbed, output_bytes(case), "same output as undisturbed");
    stderr
}

/// A 30-second loss of the endpoint in the middle of a read (connections
/// cut, then refused by resets, or accepted and never answered) is ridden
/// out with default settings: the run resumes the broken ranged GETs and
/// writes the same output as an undisturbed run.
#[test]
fn a_30_second_outage_mid_read_is_ridden_out() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/big.csv", big_sample(24));
    for blackhole in [false, true] {
        let proxy = server.proxy(FaultMode::Outage {
            after_bytes: 6 << 20,
            lasts: Duration::from_secs(30),
            blackhole,
        });
        let case = Case::new();
        pipeline_to_local(
            &case,
            &server.uri(&bucket, "raw/big.csv"),
            "format = \"jsonl\"",
        );
        let started = std::time::Instant::now();
        // Default settings: the first 32 MiB asked for at once (16 × 1 MiB,
        // then 2 MiB parts) beside the HEAD, then 2 MiB parts.
        assert_same_output_through(&case, server, &proxy.endpoint(), &[]);
        assert!(
            proxy.faults() >= 1,
            "blackhole={blackhole}: the outage happened"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(25),
            "it waited the outage out"
        );
    }
}

/// The same outage in the middle of uploading a multipart shard: the upload
/// completes (a completion acknowledged before the outage is never aborted)
/// and `_SUCCESS` comes last, over the same shards as an undisturbed run.
#[test]
fn a_30_second_outage_mid_upload_is_ridden_out() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let case = Case::new();
    case.write("in/big.csv", big_sample(24));
    let proxy = server.proxy(FaultMode::Outage {
        after_bytes: 12 << 20,
        lasts: Duration::from_secs(30),
        blackhole: false,
    });
    let out = "out/";
    pipeline(
        &case,
        &case.path("in/big.csv").display().to_string(),
        &server.uri(&bucket, out),
        "format = \"jsonl\"\nshard_max_rows = 1000000",
    );
    let a = run_env(&case, server, Some(&proxy.endpoint()), &[], &[]);
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert!(proxy.faults() >= 1, "the outage happened");
    let disturbed = server
        .get(&bucket, "out/part-00000.jsonl")
        .expect("the shard");
    assert!(server.get(&bucket, "out/_SUCCESS").is_some());
    run(&case, server, None, &["--overwrite"]).success();
    assert!(disturbed == server.get(&bucket, "out/part-00000.jsonl").unwrap());
}

/// Many small objects: the output equals reading them one by one (the
/// prefetch of the next objects changes nothing but the timing).
#[test]
fn many_small_objects_read_ahead_give_the_same_output() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    for i in 0..40u32 {
        let rows: String = (0..50u32)
            .map(|r| {
                format!(
                    "{},{},\"text {i} {r}\",{}\n",
                    i * 50 + r,
                    (i * 7 + r) % 13,
                    r % 2
                )
            })
            .collect();
        server.put(
            &bucket,
            &format!("many/p{i:03}.csv"),
            format!("review_id,rating,text,label\n{rows}"),
        );
    }
    let case = Case::new();
    pipeline_to_local(&case, &server.uri(&bucket, "many/"), "format = \"jsonl\"");
    run_env(&case, server, None, &[("PREP_S3_CONCURRENCY", "1")], &[]).success();
    let one_by_one = output_bytes(&case);
    run_env(
        &case,
        server,
        None,
        &[
            ("PREP_S3_CONCURRENCY", "16"),
            ("PREP_S3_PART_SIZE", "64KiB"),
        ],
        &["--overwrite"],
    )
    .success();
    assert_eq!(one_by_one, output_bytes(&case));
}

/// Many small Parquet objects, their footers fetched ahead: the output
/// equals reading the same files locally.
#[test]
fn many_parquet_objects_read_ahead_equal_a_local_read() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let local = Case::new();
    local.write("in/r.csv", sample());
    pipeline(
        &local,
        &local.path("in").display().to_string(),
        &local.path("pq").display().to_string(),
        "format = \"parquet\"\nshard_max_rows = 200",
    );
    run(&local, server, None, &[]).success();
    let mut names: Vec<String> = std::fs::read_dir(local.path("pq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for n in &names {
        server.put(
            &bucket,
            &format!("pq/{n}"),
            std::fs::read(local.path(&format!("pq/{n}"))).unwrap(),
        );
    }
    let from_local = Case::new();
    pipeline_to_local(
        &from_local,
        &format!("{}/*.parquet", local.path("pq").display()),
        "format = \"jsonl\"",
    );
    run(&from_local, server, None, &[]).success();
    let remote = Case::new();
    pipeline_to_local(&remote, &server.uri(&bucket, "pq/"), "format = \"jsonl\"");
    run(&remote, server, None, &[]).success();
    let shards = |c: &Case| -> Vec<(String, Vec<u8>)> {
        output_bytes(c)
            .into_iter()
            .filter(|(n, _)| n.starts_with("part-"))
            .collect()
    };
    assert_eq!(shards(&from_local), shards(&remote));
}

/// An empty object named directly has no header (exit 3 naming it); in a
/// prefix with other objects it is skipped.
#[test]
fn an_empty_object_named_directly_is_bad_data() {
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    server.put(&bucket, "raw/empty.csv", "");
    server.put(&bucket, "raw/rows.csv", sample());
    let case = Case::new();
    let named = server.uri(&bucket, "raw/empty.csv");
    pipeline_to_local(&case, &named, "format = \"jsonl\"");
    let a = run(&case, server, None, &[]).code(3);
    let err = stderr_of(&a);
    assert!(err.contains(&named) && err.contains("no header"), "{err}");
    pipeline_to_local(&case, &server.uri(&bucket, "raw/"), "format = \"jsonl\"");
    run(&case, server, None, &[]).success();
}

/// One Parquet object of many row groups, read by several decoder threads
/// (row groups fetched ahead and shared between the decoders of one group's
/// slices): the output equals reading the same file locally, row for row.
#[test]
fn a_parquet_object_of_many_row_groups_equals_a_local_read() {
    use polars::prelude::*;
    let Some(server) = s3() else { return };
    let bucket = server.new_bucket();
    let n = 2000usize;
    let text: Vec<Option<String>> = (0..n)
        .map(|i| (i % 17 != 3).then(|| format!("review {i}, words words")))
        .collect();
    let price: Vec<Option<f64>> = (0..n)
        .map(|i| (i % 23 != 5).then_some((i * 37 % 101) as f64 * 0.5))
        .collect();
    let review_id: Vec<i64> = (0..n as i64).collect();
    let mut df = df!("review_id" => review_id, "text" => text, "price" => price).unwrap();
    let local = Case::new();
    let path = local.path("one.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .with_row_group_size(Some(97))
        .finish(&mut df)
        .unwrap();
    server.put(&bucket, "pq/one.parquet", std::fs::read(&path).unwrap());
    // 60-row chunks: whole row groups; 20-row chunks: each row group read
    // as two slices, often by two decoders at once.
    for chunk_rows in [60, 20] {
        let read = |input: &str| {
            let c = Case::new();
            c.write(
                "pipeline.toml",
                format!(
                    "name = \"g\"\n[input]\nuri = \"{input}\"\nchunk_rows = {chunk_rows}\n\
                     [clean]\ndrop_nulls = \"any\"\n[scale]\ncolumns = [\"price\"]\n\
                     [output]\nuri = \"{}\"\nformat = \"jsonl\"\nshard_max_rows = 300\n",
                    c.path("out").display()
                ),
            );
            run(&c, server, None, &[]).success();
            c
        };
        let from_local = read(&path.display().to_string());
        let remote = read(&server.uri(&bucket, "pq/one.parquet"));
        let shards = |c: &Case| -> Vec<(String, Vec<u8>)> {
            output_bytes(c)
                .into_iter()
                .filter(|(n, _)| n.starts_with("part-"))
                .collect()
        };
        assert_eq!(
            shards(&from_local),
            shards(&remote),
            "chunk_rows {chunk_rows}"
        );
        let ids: Vec<i64> = remote
            .rows()
            .iter()
            .map(|r| r["review_id"].as_i64().unwrap())
            .collect();
        let want: Vec<i64> = (0..n as i64)
            .filter(|i| i % 17 != 3 && i % 23 != 5)
            .collect();
        assert_eq!(ids, want, "chunk_rows {chunk_rows}");
    }
}
