//! Output layout options: formats, limits, projection, renames, compression.

use crate::common::*;

fn data(n: usize) -> String {
    let mut s = String::from("id,text,x,flag\n");
    for i in 0..n {
        s.push_str(&format!(
            "{i},\"t {i}, with \"\"quotes\"\"\",{}.5,{}\n",
            i % 17,
            i % 2 == 0
        ));
    }
    s
}

fn case(n: usize, output: &str) -> Case {
    let c = Case::new();
    c.write("in.csv", data(n));
    c.pipeline(
        "in.csv",
        &format!("[scale]\nexclude = [\"id\"]\n[output]\n{output}"),
    );
    c
}

fn shard_names(c: &Case) -> Vec<String> {
    let m = read_json(&c.out_file("manifest.json"));
    m.as_array().unwrap()[1..]
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn csv_shards_each_have_the_header_or_none() {
    let c = case(250, "format = \"csv\"\nshard_max_rows = 100");
    c.run(&[]).success();
    let names = shard_names(&c);
    assert_eq!(
        names,
        ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    );
    for n in &names {
        let t = std::fs::read_to_string(c.out_file(n)).unwrap();
        assert!(t.starts_with("id,text,x,flag\n"), "{n}");
    }
    let c = case(
        250,
        "format = \"csv\"\nshard_max_rows = 100\ncsv_header = false",
    );
    c.run(&[]).success();
    let t = std::fs::read_to_string(c.out_file("part-00000.csv")).unwrap();
    assert!(
        t.starts_with("0,\"t 0, with \"\"quotes\"\"\","),
        "{}",
        &t[..60]
    );
    assert_eq!(t.matches('\n').count(), 100);
}

#[test]
fn byte_limit_holds_for_every_shard() {
    let c = case(500, "format = \"jsonl\"\nshard_max_bytes = \"4KB\"");
    c.run(&[]).success();
    let names = shard_names(&c);
    assert!(names.len() > 5);
    for n in &names {
        let len = std::fs::metadata(c.out_file(n)).unwrap().len();
        assert!(len <= 4000, "{n} has {len} bytes");
        assert!(len > 3000, "{n} is filled up to the limit ({len})");
    }
    assert_eq!(c.rows().len(), 500);
}

#[test]
fn min_shards_splits_small_outputs() {
    let c = case(10, "format = \"jsonl\"\nmin_shards = 4");
    c.run(&[]).success();
    let names = shard_names(&c);
    assert!(names.len() >= 4, "{names:?}");
    assert_eq!(c.rows().len(), 10);
}

#[test]
fn projection_rename_and_types() {
    let c = case(
        20,
        "format = \"jsonl\"\ncolumns = [\"text\", \"id\", \"x\"]\nrename = { text = \"inputs\" }",
    );
    c.run(&[]).success();
    let rows = c.rows();
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["inputs", "id", "x"]);
    assert_eq!(rows[3]["id"], 3);
    assert_eq!(rows[3]["inputs"], "t 3, with \"quotes\"");
    let s = c.scaler();
    let (mean, scale) = (
        s["mean"][0].as_f64().unwrap(),
        s["scale"][0].as_f64().unwrap(),
    );
    assert_eq!(
        rows[3]["x"].as_f64().unwrap(),
        (3.5 - mean) / scale,
        "written value is (x - mean) / scale in f64"
    );
}

#[test]
fn gzip_and_parquet_compression() {
    let c = case(300, "format = \"jsonl\"\ncompression = \"gzip\"");
    c.run(&[]).success();
    assert_eq!(shard_names(&c), ["part-00000.jsonl.gz"]);
    let mut text = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(c.out_file("part-00000.jsonl.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 300);
    for comp in ["snappy", "none", "zstd"] {
        let c = case(
            300,
            &format!("format = \"parquet\"\ncompression = \"{comp}\""),
        );
        c.run(&[]).success();
        assert_eq!(shard_names(&c), ["part-00000.parquet"]);
    }
    let c = case(3, "format = \"jsonl\"\ncompression = \"zstd\"");
    let a = c.run(&[]).code(2);
    assert!(stderr_of(&a).contains("none or gzip"));
}

#[test]
fn with_mean_and_with_std_switches() {
    let c = case(40, "format = \"jsonl\"");
    let text = std::fs::read_to_string(c.path("pipeline.toml"))
        .unwrap()
        .replace("[scale]\n", "[scale]\nwith_std = false\n");
    c.write("pipeline.toml", text);
    c.run(&[]).success();
    let s = c.scaler();
    assert!(s["var"].is_null() && s["scale"].is_null());
    let mean = s["mean"][0].as_f64().unwrap();
    assert_eq!(c.rows()[2]["x"].as_f64().unwrap(), 2.5 - mean);
}

#[test]
fn artifacts_scaler_can_live_elsewhere() {
    let c = case(10, "format = \"jsonl\"");
    let path = c.path("models/scaler-v1.json");
    let text = std::fs::read_to_string(c.path("pipeline.toml")).unwrap();
    c.write(
        "pipeline.toml",
        format!("{text}\n[artifacts]\nscaler = \"{}\"\n", path.display()),
    );
    c.run(&[]).success();
    assert!(path.exists());
    assert!(!c.out_file("scaler.json").exists());
}

/// A Parquet shard the disk refuses (the file size limit, as a full disk
/// would) is a storage error naming the shard, exit 4, and leaves no shard
/// and no `_SUCCESS` behind. The shard is larger than the 16 MiB the file
/// gathers before writing, so the write fails inside polars' Parquet
/// writer, which reports it as a malformed file (exit 1 before).
#[test]
fn a_parquet_shard_the_disk_refuses_exits_4_naming_it() {
    use std::os::unix::process::CommandExt;
    let c = Case::new();
    let pad = "y".repeat(100);
    let mut csv = String::from("id,text,x\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},t {i} {pad},{}.5\n", i % 17));
    }
    c.write("in.csv", csv);
    c.pipeline(
        "in.csv",
        "second_pass = \"reread\"\n[scale]\nexclude = [\"id\"]\n[output]\nformat = \"parquet\"\ncompression = \"none\"\nshard_max_rows = 1000000",
    );
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("prep"));
    cmd.arg("run").arg(c.path("pipeline.toml")).arg("--quiet");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Writes past 512 KiB fail with EFBIG instead of a signal.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 512 << 10,
                rlim_max: 512 << 10,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("storage error while writing") && err.contains("part-00000.parquet"),
        "{err}"
    );
    assert!(!c.has_success());
    let left: Vec<_> = std::fs::read_dir(c.path("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().contains("part-")),
        "{left:?}"
    );
}
