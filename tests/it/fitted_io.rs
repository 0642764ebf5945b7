//! Fitted transforms at their edges: `prep apply --artifact` (filling,
//! encoding, `handle_unknown`), `_rejects/` (CONTRACT §10), the config
//! errors of §9 (exit 2 with line and column) and the bad input ones
//! (exit 3), and `validate`'s step lines.

use serde_json::Value;

use crate::common::*;
use crate::fitted::{case_csv, case_toml, rows_in, run, split, CASES};

#[test]
fn apply_fills_encodes_and_honours_handle_unknown() {
    let c = Case::new();
    let fit = c.path("fit");
    run("tabular", &case_csv("tabular"), &fit, &[]).success();
    let new = c.write(
        "new.csv",
        "id,price,qty,category,flag,note\n1,,3,never-seen,true,a\n2,10.5,,,false,b\n3,1.0,2,café,true,c\n",
    );
    // --scaler is an alias and takes a transform.json too.
    for flag in ["--artifact", "--scaler"] {
        let out = c.path(&format!("applied{flag}"));
        prep()
            .args(["apply", flag])
            .arg(fit.join("transform.json"))
            .arg("--input")
            .arg(&new)
            .arg("--output")
            .arg(&out)
            .args(["--format", "jsonl", "--quiet"])
            .assert()
            .success();
        let rows = rows_in(&out);
        let t = read_json(&fit.join("transform.json"));
        let names: Vec<&str> = t["output_columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            rows[0]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            names
        );
        assert_eq!(rows.len(), 3, "no row dropped");
        // Unknown (and null, imputed as "apple") categories.
        assert_eq!(rows[0]["category_infrequent_sklearn"], 1);
        assert_eq!(rows[1]["category_apple"], 1);
        assert_eq!(rows[2]["category_café"], 1);
        assert_eq!(rows[0]["price_missing"], 1);
        assert_eq!(rows[1]["qty_missing"], 1);
        assert!(
            rows[0]["price"].is_f64() && rows[1]["qty"].is_f64(),
            "imputed, then scaled"
        );
    }
    // handle_unknown = "error": exit 3 naming file, line, column and value.
    let strict = c.path("strict");
    run(
        "tabular",
        &case_csv("tabular"),
        &strict,
        &["encode.handle_unknown=error".into()],
    )
    .success();
    let a = prep()
        .args(["apply", "--artifact"])
        .arg(strict.join("transform.json"))
        .arg("--input")
        .arg(&new)
        .arg("--output")
        .arg(c.path("strict-out"))
        .arg("--quiet")
        .assert()
        .code(3);
    let err = stderr_of(&a);
    assert!(err.contains("new.csv, line 2, column `category`"), "{err}");
    assert!(err.contains("\"never-seen\""), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // Not an artifact at all.
    let bogus = c.write("bogus.json", r#"{"format":"something"}"#);
    let a = prep()
        .args(["apply", "--artifact"])
        .arg(&bogus)
        .arg("--input")
        .arg(&new)
        .arg("--output")
        .arg(c.path("x"))
        .assert()
        .code(3);
    assert!(stderr_of(&a).contains("expected \"prep-transform\" or \"prep-scaler\""));
}

#[test]
fn rejected_rows_name_their_source_line_and_reasons() {
    let c = case_with(
        "id,price,rating,note\n1,2.5,4,ok\n2,,inf,\"multi\nline\"\n3,1.0,inf,x\n4,NA,NA,y\n5,3.0,5,z\n",
        "[clean]\nnon_finite = \"drop\"\n[output]\nformat = \"jsonl\"\nrejects = true\nshard_max_rows = 2",
    );
    c.run(&[]).success();
    let dir = c.path("out/_rejects");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["part-00000.jsonl", "part-00001.jsonl"]);
    let mut rows = Vec::new();
    for n in &names {
        let text = std::fs::read_to_string(dir.join(n)).unwrap();
        rows.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["_line"], 3);
    assert_eq!(rows[0]["_reason"], "null in price; non-finite in rating");
    assert_eq!(rows[0]["rating"], "inf");
    assert_eq!(rows[0]["note"], "multi\nline");
    assert_eq!(rows[1]["_line"], 5);
    assert_eq!(rows[1]["_reason"], "non-finite in rating");
    assert_eq!(rows[2]["_line"], 6);
    assert_eq!(rows[2]["_reason"], "null in price, rating");
    assert_eq!(rows[2]["_source"], "in.csv");
    let report = read_json(&c.out_file("_SUCCESS"));
    assert_eq!(report["rejects"]["rows"], 3);
    assert_eq!(report["rejects"]["shards"], 2);
    assert_eq!(report["rows_written"], 2);
    // A rerun without rejects removes the old ones with --overwrite.
    c.pipeline("in.csv", "[clean]\nnon_finite = \"drop\"");
    c.run(&["--overwrite"]).success();
    assert!(!dir.exists());
}

fn config_error(extra: &str, needles: &[&str]) {
    let c = case_with("a,b,c\n1,x,2.0\n", extra);
    let a = c.run(&[]).code(2);
    let err = stderr_of(&a);
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in\n{err}");
    }
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn every_fitted_step_config_error_is_exit_2_with_its_position() {
    config_error(
        "[impute]\ncolumns = [\"a\"]\nstrategy = \"avg\"",
        &["line 6, column 12", "\"avg\" is not known", "\"median\""],
    );
    config_error(
        "[impute]\ncolumns = [\"a\"]\nstrategy = \"constant\"",
        &["line 6, column 12", "needs `fill_value`"],
    );
    config_error(
        "[clean]\ndrop_nulls = [\"a\"]\n[impute]\ncolumns = [\"a\"]",
        &[
            "line 5, column 14",
            "both imputed and in `clean.drop_nulls`",
        ],
    );
    config_error("[[impute]]\ncolumns = [\"a\"]\n[[impute]]\ncolumns = [\"a\", \"c\"]\nstrategy = \"median\"", &["line 7, column 11", "column `a` is in two [[impute]] groups"]);
    config_error(
        "[encode]\ncolumns = \"numeric\"",
        &["line 5, column 11", "explicit list"],
    );
    config_error(
        "[encode]\ncolumns = [\"b\"]\n[impute]\ncolumns = [\"b\"]\nstrategy = \"mean\"",
        &[
            "line 7, column 11",
            "column `b` is encoded",
            "most_frequent",
        ],
    );
    config_error(
        "[scale]\nmethod = \"zscore\"",
        &["line 5, column 10", "\"minmax\""],
    );
    config_error(
        "[scale]\nmethod = \"minmax\"\nfeature_range = [1, 0]",
        &["line 6, column 17", "below its maximum"],
    );
    config_error(
        "[scale]\nmethod = \"robust\"\nwith_mean = false",
        &["line 6, column 13", "applies only to method = \"standard\""],
    );
    config_error(
        "[encode]\ncolumns = [\"b\"]\nhandle_unknown = \"use_encoded_value\"",
        &[
            "line 6, column 18",
            "not available with method = \"onehot\"",
        ],
    );
    config_error(
        "[impute]\ncolumnz = [\"a\"]",
        &[
            "line 5, column 1",
            "unknown key `columnz` in [impute], did you mean `columns`?",
        ],
    );
    // Only the data can tell: a string column given to mean (still exit 2, with the group's line).
    config_error(
        "[impute]\ncolumns = [\"b\"]\nstrategy = \"median\"",
        &["line 5, column 11", "needs numeric columns"],
    );
    // Several problems at once.
    let c = case_with(
        "a\n1\n",
        "[impute]\ncolumns = [\"a\"]\nstrategy = \"x\"\n[encode]\ncolumns = \"numeric\"",
    );
    let err = stderr_of(&c.run(&[]).code(2));
    assert!(err.contains("line 6") && err.contains("line 8"), "{err}");
}

#[test]
fn bad_input_for_a_step_is_exit_3_naming_the_column() {
    let c = case_with(
        "a,b\n1,x\n2,\n",
        "[clean]\ndrop_nulls = \"none\"\n[encode]\ncolumns = [\"b\"]",
    );
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(
        err.contains("in.csv, line 3, column `b`") && err.contains("encoded"),
        "{err}"
    );
    let c = case_with(
        "a,b\n1,x\n2,y\n3,z\n",
        "[encode]\ncolumns = [\"b\"]\nmax_distinct = 2",
    );
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(
        err.contains("column `b` has more than 2 distinct values"),
        "{err}"
    );
    let c = case_with(
        "a,b\n,x\n,y\n",
        "[impute]\ncolumns = [\"a\"]\n[input.schema]\na = \"float64\"",
    );
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("column `a` has no non-missing value"), "{err}");
    let c = case_with("a,b\n1,x\n", "[encode]\ncolumns = [\"a\"]");
    c.write("in.csv", "a,a_1\n1,2\n");
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("`a_1`"), "{err}");
}

#[test]
fn validate_prints_every_step_with_its_columns() {
    for name in CASES {
        let a = prep()
            .arg("validate")
            .arg(case_toml(name))
            .arg("--set")
            .arg(format!("input.uri={}", case_csv(name).display()))
            .assert()
            .success();
        let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
        assert!(out.contains("transform "), "{out}");
        if name == "tabular" {
            assert!(
                out.contains("impute    median, add_indicator (<col>_missing): price, qty"),
                "{out}"
            );
            assert!(out.contains("encode    onehot (min_frequency=3"), "{out}");
            assert!(out.contains(": category, flag"), "{out}");
            assert!(
                out.contains(
                    "scale     standard (with_mean=true, with_std=true): the numeric columns among"
                ),
                "{out}"
            );
        }
        if name == "scalers" {
            assert!(
                out.contains("scale     robust (quantile_range=[25.0, 75.0]"),
                "{out}"
            );
            assert!(
                out.contains("scale     minmax (feature_range=[-1.0, 1.0], clip=true): wide, neg"),
                "{out}"
            );
        }
    }
}

#[test]
fn rejects_of_parquet_name_the_row_and_workers_write_their_own_shards() {
    // A Parquet input, made by prep from a CSV with nulls (nothing dropped).
    let c = case_with(
        "id,x,s\n1,1.5,a\n2,,b\n3,2.5,\n4,,\n5,4.0,e\n",
        "[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []\n[output]\nformat = \"parquet\"",
    );
    c.run(&[]).success();
    let pq = c.path("in.parquet");
    std::fs::rename(c.path("out/part-00000.parquet"), &pq).unwrap();
    c.pipeline("in.parquet", "[output]\nformat = \"jsonl\"\nrejects = true");
    c.run(&["--overwrite"]).success();
    let text = std::fs::read_to_string(c.path("out/_rejects/part-00000.jsonl")).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<i64> = rows.iter().map(|r| r["_line"].as_i64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 4], "1-based rows in the object");
    assert_eq!(rows[2]["_reason"], "null in x, s");
    assert_eq!(rows[0]["_source"], "in.parquet");

    // Three workers: each writes `_rejects/part-wIIII-NNNNN.jsonl`.
    let c = Case::new();
    let mut data = String::from("id,price,qty,category,flag,note\n");
    for i in 0..90 {
        let note = if i % 10 == 3 {
            String::new()
        } else {
            format!("n{i}")
        };
        data.push_str(&format!("{i},{}.5,{},apple,true,{note}\n", i % 7, i % 5));
    }
    let input = c.write("all.csv", data);
    split(&input, &c.path("in"), 3);
    let out = c.path("out");
    let kids: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("prep"));
            cmd.current_dir(repo())
                .arg("run")
                .arg(case_toml("tabular"))
                .args(["--set", &format!("input.uri={}", c.path("in").display())])
                .args(["--set", &format!("output.uri={}", out.display())])
                .args(["--set", "output.rejects=true"])
                .args(["--worker", &format!("{i}/3"), "--quiet"])
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let mut names: Vec<String> = std::fs::read_dir(out.join("_rejects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "part-w0000-00000.jsonl",
            "part-w0001-00000.jsonl",
            "part-w0002-00000.jsonl"
        ]
    );
    let report = read_json(&out.join("_SUCCESS"));
    assert_eq!(report["rejects"]["rows"], 9);
    assert_eq!(report["rows_written"], 81);
}
