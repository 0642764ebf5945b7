//! Fitted transforms (CONTRACT §9, §10): impute, encode, every scaler,
//! `transform.json`, `prep apply --artifact`, rejected rows; against
//! scikit-learn through golden files (`tests/golden/make_golden_fitted.py`)
//! and live (`tests/parity/fitted_reference.py`, which also checks the
//! Python rebuild `python/prep_sklearn.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

pub(crate) const CASES: [&str; 5] = ["tabular", "ordinal", "scalers", "imputed", "penguins"];

pub(crate) fn case_toml(name: &str) -> PathBuf {
    repo().join(format!("tests/golden/fitted/{name}.toml"))
}

pub(crate) fn case_csv(name: &str) -> PathBuf {
    match name {
        "penguins" => repo().join("sample_data/penguins.csv"),
        n => repo().join(format!("tests/golden/fitted/{n}.csv")),
    }
}

/// Runs a case's pipeline on `input` into `out` (extra `--set`s after).
pub(crate) fn run(
    name: &str,
    input: &Path,
    out: &Path,
    sets: &[String],
) -> assert_cmd::assert::Assert {
    let mut c = prep();
    c.arg("run")
        .arg(case_toml(name))
        .arg("--set")
        .arg(format!("input.uri={}", input.display()))
        .arg("--set")
        .arg(format!("output.uri={}", out.display()))
        .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .args(["--quiet", "--overwrite"]);
    c.assert()
}

pub(crate) fn rows_in(out: &Path) -> Vec<Value> {
    let manifest = read_json(&out.join("manifest.json"));
    let mut rows = Vec::new();
    for shard in manifest.as_array().unwrap().iter().skip(1) {
        let text = std::fs::read_to_string(out.join(shard.as_str().unwrap())).unwrap();
        rows.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    rows
}

/// JSON values equal, numbers within `rel` (0: exactly).
fn close(a: &Value, b: &Value, rel: f64) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q, rel))
        }
        (Value::Number(_), Value::Number(_)) => {
            let (p, q) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            p == q || (p - q).abs() <= rel * p.abs().max(q.abs())
        }
        _ => a == b,
    }
}

/// Compares prep's artifact and rows with a case's expected (sklearn) file.
fn check_against(expected: &Value, out: &Path, label: &str) {
    let t = read_json(&out.join("transform.json"));
    assert_eq!(t["format"], "prep-transform");
    assert_eq!(t["n_rows_fitted"], expected["n_rows_fitted"], "{label}");
    let steps = t["steps"].as_array().unwrap();
    let want = expected["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len(), "{label}: steps");
    for (i, (w, g)) in want.iter().zip(steps).enumerate() {
        for (k, v) in w.as_object().unwrap() {
            if k == "tolerance" {
                continue;
            }
            let rel = w["tolerance"][k].as_f64().unwrap_or(0.0);
            assert!(
                close(v, &g[k], rel),
                "{label} step {i} `{k}`: sklearn {v} vs prep {}",
                g[k]
            );
        }
    }
    assert_eq!(t["output_columns"], expected["output_columns"], "{label}");
    let names: Vec<&str> = expected["output_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let rows = rows_in(out);
    let want_rows = expected["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want_rows.len(), "{label}: rows");
    for (i, (w, g)) in want_rows.iter().zip(&rows).enumerate() {
        let keys: Vec<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, names, "{label} row {i}");
        for (j, name) in names.iter().enumerate() {
            let (x, y) = (&w[j], &g[*name]);
            match (
                x.as_f64().or(x.as_bool().map(|b| b as u8 as f64)),
                y.as_f64(),
            ) {
                (Some(p), Some(q)) => {
                    let extra = expected["row_tolerance"][*name].as_f64().unwrap_or(0.0);
                    assert!(
                        (p - q).abs() <= 1e-9 * p.abs().max(1.0) + extra,
                        "{label} row {i} `{name}`: sklearn {p} vs prep {q}"
                    );
                }
                _ => assert_eq!(x, y, "{label} row {i} `{name}`"),
            }
        }
    }
}

#[test]
fn every_case_matches_the_sklearn_golden_files() {
    for name in CASES {
        let c = Case::new();
        run(name, &case_csv(name), &c.path("out"), &[]).success();
        let expected = read_json(&repo().join(format!("tests/golden/fitted/{name}.expected.json")));
        check_against(&expected, &c.path("out"), name);
        // Other steps than one standard group: no scaler.json.
        assert!(!c.path("out/scaler.json").exists(), "{name}");
    }
}

#[test]
fn live_parity_with_sklearn_and_the_python_rebuild() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let c = Case::new();
    let large = c.path("large");
    let gen = Command::new(&python)
        .arg(repo().join("tests/golden/make_golden_fitted.py"))
        .arg("--large")
        .arg(&large)
        .status()
        .unwrap();
    assert!(gen.success());
    let mut runs: Vec<(&str, PathBuf, Vec<String>)> = vec![
        (
            "tabular",
            large.join("tabular.csv"),
            vec!["input.chunk_rows=1234".into()],
        ),
        (
            "scalers",
            large.join("scalers.csv"),
            vec!["input.chunk_rows=999".into()],
        ),
        (
            "imputed",
            large.join("imputed.csv"),
            vec!["input.second_pass=\"reread\"".into()],
        ),
    ];
    for name in ["ordinal", "penguins"] {
        runs.push((name, case_csv(name), Vec::new()));
    }
    for (name, input, sets) in runs {
        let out = c.path(&format!("out-{name}"));
        run(name, &input, &out, &sets).success();
        // The reference reads the pipeline for its settings and cleaning,
        // with the input it was run on.
        let toml = std::fs::read_to_string(case_toml(name)).unwrap();
        let uri = toml
            .lines()
            .find(|l| l.starts_with("uri = \"") && (l.contains(".csv")))
            .unwrap();
        let pipeline = c.write(
            &format!("{name}.toml"),
            toml.replace(uri, &format!("uri = \"{}\"", input.display())),
        );
        let mut check = Command::new(&python);
        check
            .arg(repo().join("tests/parity/fitted_reference.py"))
            .arg("check")
            .arg("--pipeline")
            .arg(&pipeline)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .arg("--rebuild");
        // New data through `prep apply`: unknown categories, nulls, values
        // outside the fitted range (clip), compared with scikit-learn's
        // transform of the same rows.
        if let Some(new) = new_data(name) {
            let new = c.write(&format!("new-{name}.csv"), new);
            let applied = c.path(&format!("applied-{name}"));
            prep()
                .args(["apply", "--artifact"])
                .arg(out.join("transform.json"))
                .arg("--input")
                .arg(&new)
                .arg("--output")
                .arg(&applied)
                .args(["--format", "jsonl", "--quiet"])
                .assert()
                .success();
            check.arg("--new").arg(&new).arg("--applied").arg(&applied);
        }
        let o = check.output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {text}");
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            report["rebuild_max_abs_diff"].as_f64().unwrap() <= 1e-9,
            "{name}: {text}"
        );
        if new_data(name).is_some() {
            assert!(report["apply_max_abs_diff"].is_number(), "{name}: {text}");
        }
    }
}

fn new_data(name: &str) -> Option<&'static str> {
    match name {
        "tabular" => Some(
            "id,price,qty,category,flag,note\n1,,3,kiwi,true,a\n2,10000.5,,,false,b\n3,1.0,2,café,true,c\n4,5,5,rare1,false,d\n",
        ),
        "scalers" => Some(
            "id,big,dup,const,wide,neg,small,s2,r2,r3\n5000,1000000000.5,11,3.3,1e13,5.0,,90,1000,7\n-7,999999999.5,-1,0,-1e13,-9,1e-8,,0.5,-80\n",
        ),
        "imputed" => Some("id,x,y,z,w,cat,keep\n1,,,,,,k1\n2,100,-50,9,8,q,k3\n"),
        _ => None,
    }
}

/// The input split into `k` CSV files at line boundaries (no quoted newlines).
pub(crate) fn split(input: &Path, dir: &Path, k: usize) {
    let text = std::fs::read_to_string(input).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..k {
        let part = &lines[i * lines.len() / k..(i + 1) * lines.len() / k];
        std::fs::write(
            dir.join(format!("part-{i}.csv")),
            format!("{header}\n{}\n", part.join("\n")),
        )
        .unwrap();
    }
}

pub(crate) fn workers(name: &str, input: &Path, out: &Path, n: usize, phase: &str) {
    workers_with(name, input, out, n, phase, &[]);
}

/// As [`workers`], with extra `--set` overrides for every worker.
pub(crate) fn workers_with(
    name: &str,
    input: &Path,
    out: &Path,
    n: usize,
    phase: &str,
    sets: &[String],
) {
    let kids: Vec<_> = (0..n)
        .map(|i| {
            let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("prep"));
            cmd.current_dir(repo())
                .arg("run")
                .arg(case_toml(name))
                .args(["--set", &format!("input.uri={}", input.display())])
                .args(["--set", &format!("output.uri={}", out.display())])
                .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
                .args(["--worker", &format!("{i}/{n}"), "--phase", phase, "--quiet"])
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// transform.json of N workers equals one run's: exactly, but moments
/// (the standard scaler's, a mean imputer's) within 1e-12 relative, as
/// CONTRACT §9 allows: sums of other chunkings may round differently.
pub(crate) fn assert_same_artifact(a: &Value, b: &Value) {
    for (x, y) in a["steps"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["steps"].as_array().unwrap())
    {
        for (k, v) in x.as_object().unwrap() {
            let moment = (x["method"] == "standard"
                && ["mean", "var", "scale"].contains(&k.as_str()))
                || (x["strategy"] == "mean" && k == "statistics");
            let rel = if moment { 1e-12 } else { 0.0 };
            assert!(close(v, &y[k], rel), "{k}: {v} vs {}", y[k]);
        }
    }
    for k in [
        "n_rows_fitted",
        "input_columns",
        "output_columns",
        "output_sources",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
}

#[test]
fn three_workers_give_the_same_transform_json_and_rows_as_one() {
    for name in ["tabular", "scalers", "imputed"] {
        let c = Case::new();
        split(&case_csv(name), &c.path("in"), 3);
        let single = c.path("single");
        run(name, &c.path("in"), &single, &[]).success();
        let out = c.path("out");
        workers(name, &c.path("in"), &out, 3, "all");
        let (a, b) = (
            read_json(&single.join("transform.json")),
            read_json(&out.join("transform.json")),
        );
        assert_same_artifact(&a, &b);
        assert_rows_close(&rows_in(&single), &rows_in(&out));
    }
}

#[test]
fn fit_and_transform_phases_meet_for_the_quantile_refinement() {
    let c = Case::new();
    split(&case_csv("scalers"), &c.path("in"), 2);
    let single = c.path("single");
    run("scalers", &c.path("in"), &single, &[]).success();
    let out = c.path("out");
    workers("scalers", &c.path("in"), &out, 2, "fit");
    workers("scalers", &c.path("in"), &out, 2, "transform");
    assert_same_artifact(
        &read_json(&single.join("transform.json")),
        &read_json(&out.join("transform.json")),
    );
    assert!(out.join("_work/refine-r01-w0001.json").exists());
    assert_rows_close(&rows_in(&single), &rows_in(&out));
}

#[test]
fn a_standard_only_pipeline_still_writes_the_same_scaler_json() {
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    c.pipeline("in.csv", "[scale]\nexclude = [\"review_id\", \"label\"]");
    c.run(&[]).success();
    let s = c.scaler();
    let t = read_json(&c.out_file("transform.json"));
    assert_eq!(t["steps"].as_array().unwrap().len(), 1);
    let step = &t["steps"][0];
    assert_eq!(step["method"], "standard");
    for (a, b) in [
        ("feature_names", "columns"),
        ("mean", "mean"),
        ("var", "var"),
        ("scale", "scale"),
        ("n_samples_seen", "n_samples_seen"),
    ] {
        assert_eq!(s[a], step[b], "{a}");
    }
    // scaler.json and transform.json apply alike.
    for art in ["scaler.json", "transform.json"] {
        let out = c.path(&format!("applied-{art}"));
        prep()
            .args(["apply", "--artifact"])
            .arg(c.out_file(art))
            .arg("--input")
            .arg(c.path("in.csv"))
            .arg("--output")
            .arg(&out)
            .args(["--format", "jsonl", "--quiet"])
            .assert()
            .success();
        assert_eq!(rows_in(&out).len(), 2500, "{art}");
    }
}

#[test]
fn readme_snippet_rebuilds_the_transform_in_sklearn() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let c = Case::new();
    let out = c.path("out");
    prep()
        .args([
            "run",
            "pipelines/penguins.toml",
            "--quiet",
            "--set",
            "output.format=jsonl",
        ])
        .arg("--set")
        .arg(format!("output.uri={}", out.display()))
        .assert()
        .success();
    let text = run_rebuild(
        &python,
        "rebuild_transform.py",
        &out.join("transform.json"),
        &repo().join("sample_data/penguins.csv"),
        &out,
    );
    assert!(text.contains("rows=344"), "{text}");
    assert_readme_shows_snippet(
        "rebuild_transform.py",
        &[
            ("input_csv", "\"sample_data/penguins.csv\""),
            (
                "open(transform_path)",
                "open(\"out/penguins/transform.json\")",
            ),
        ],
    );
}
