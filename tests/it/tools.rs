//! The everyday tools: inspect, apply, progress on a terminal.

use crate::common::*;

#[test]
fn inspect_csv_table_and_json() {
    let a = prep()
        .args(["inspect", "sample_data/reviews.csv"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("2500 rows, 12 columns"), "{out}");
    let price = out.lines().find(|l| l.starts_with("price ")).unwrap();
    assert!(price.contains(" 17 "), "17 nulls incl. NA: {price}");
    let j = prep()
        .args(["inspect", "sample_data/reviews.csv", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&j.get_output().stdout).unwrap();
    assert_eq!(v["rows"], 2500);
    let cols = v["columns"].as_array().unwrap();
    let rating = cols.iter().find(|c| c["name"] == "rating").unwrap();
    assert_eq!(rating["nulls"], 18);
    assert_eq!(rating["min"], 1.0);
    assert_eq!(rating["max"], 5.0);
    let text = cols.iter().find(|c| c["name"] == "text").unwrap();
    assert!(text["mean"].is_null());
}

#[test]
fn inspect_parquet_agrees_with_the_csv_it_came_from() {
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    c.pipeline("in.csv", "[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []\n[output]\nformat = \"parquet\"\nshard_max_rows = 700");
    c.run(&[]).success();
    let from_csv = prep()
        .arg("inspect")
        .arg(c.path("in.csv"))
        .arg("--json")
        .assert()
        .success();
    let from_pq = prep()
        .arg("inspect")
        .arg(c.path("out"))
        .arg("--json")
        .assert()
        .success();
    let a: serde_json::Value = serde_json::from_slice(&from_csv.get_output().stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&from_pq.get_output().stdout).unwrap();
    assert_eq!(a["rows"], b["rows"]);
    for (x, y) in a["columns"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["columns"].as_array().unwrap())
    {
        assert_eq!(x["name"], y["name"]);
        assert_eq!(x["nulls"], y["nulls"], "{}", x["name"]);
        for k in ["min", "max", "mean", "std"] {
            match (x[k].as_f64(), y[k].as_f64()) {
                (Some(p), Some(q)) => {
                    assert!(rel_err(p, q) < 1e-12, "{} {k}: {p} vs {q}", x["name"])
                }
                (p, q) => assert_eq!(p, q),
            }
        }
    }
}

#[test]
fn apply_reproduces_the_run_and_checks_its_inputs() {
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    c.pipeline(
        "in.csv",
        "[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nformat = \"jsonl\"",
    );
    c.run(&[]).success();
    let out = c.path("applied");
    prep()
        .args(["apply", "--quiet", "--format", "jsonl", "--scaler"])
        .arg(c.out_file("scaler.json"))
        .arg("--input")
        .arg(c.path("in.csv"))
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("_SUCCESS").exists() && out.join("manifest.json").exists());
    let applied: Vec<serde_json::Value> = std::fs::read_to_string(out.join("part-00000.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(applied.len(), 2500, "apply keeps every row");
    let by_id: std::collections::HashMap<i64, &serde_json::Value> = applied
        .iter()
        .map(|r| (r["review_id"].as_i64().unwrap(), r))
        .collect();
    for row in c.rows() {
        let a = by_id[&row["review_id"].as_i64().unwrap()];
        assert_eq!(a["price"], row["price"], "same value as the run wrote");
    }

    // A missing feature column, a non-numeric one, a foreign artifact.
    c.write("bad.csv", "review_id,rating\n1,2\n");
    let a = prep()
        .args(["apply", "--scaler"])
        .arg(c.out_file("scaler.json"))
        .arg("--input")
        .arg(c.path("bad.csv"))
        .arg("--output")
        .arg(c.path("x"))
        .assert()
        .code(3);
    assert!(stderr_of(&a).contains("helpful_votes"), "{}", stderr_of(&a));
    let text = std::fs::read_to_string(repo().join("sample_data/reviews.csv")).unwrap();
    c.write(
        "typed.csv",
        text.replacen("price", "price_old", 1)
            .replacen("product_id", "price", 1),
    );
    let a = prep()
        .args(["apply", "--scaler"])
        .arg(c.out_file("scaler.json"))
        .arg("--input")
        .arg(c.path("typed.csv"))
        .arg("--output")
        .arg(c.path("y"))
        .assert()
        .code(3);
    assert!(stderr_of(&a).contains("not numeric"), "{}", stderr_of(&a));
    c.write("other.json", r#"{"format": "sklearn", "version": 1}"#);
    let a = prep()
        .args(["apply", "--scaler"])
        .arg(c.path("other.json"))
        .arg("--input")
        .arg(c.path("in.csv"))
        .arg("--output")
        .arg(c.path("z"))
        .assert()
        .code(3);
    assert!(stderr_of(&a).contains("prep-scaler"), "{}", stderr_of(&a));
}

#[test]
fn progress_bar_on_a_terminal_plain_lines_otherwise() {
    let script = std::path::Path::new("/usr/bin/script");
    if !script.exists() {
        assert!(
            !in_ci(),
            "CI needs `script` (util-linux) for the pseudo-terminal test"
        );
        return;
    }
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    c.pipeline("in.csv", "chunk_rows = 100\n[output]\nformat = \"jsonl\"");
    let bin = assert_cmd::cargo::cargo_bin("prep");
    let cmd = format!(
        "{} run {}",
        bin.display(),
        c.path("pipeline.toml").display()
    );
    let out = std::process::Command::new(script)
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("fit ["),
        "a bar is drawn on a terminal: {tty:?}"
    );
    assert!(tty.contains("transform ["), "{tty:?}");
    assert!(tty.contains("\u{1b}[2K"), "the bar redraws in place");

    // Not a terminal: log lines on a timer, no control characters.
    let a = prep()
        .arg("run")
        .arg(c.path("pipeline.toml"))
        .arg("--overwrite")
        .env("PREP_PROGRESS_INTERVAL", "0s")
        .assert()
        .success();
    let err = stderr_of(&a);
    assert!(err.contains("fit 100%: "), "{err}");
    assert!(err.contains("transform "), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    // --quiet silences both.
    let q = prep()
        .arg("run")
        .arg(c.path("pipeline.toml"))
        .args(["--overwrite", "--quiet"])
        .assert()
        .success();
    assert!(q.get_output().stderr.is_empty());
}
