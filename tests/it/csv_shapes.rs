//! Real-world CSV shapes (issue 13): typing decided by the data, never
//! silently wrong; quotes, line ends and encodings read the way pandas and
//! Python's csv read them; errors that name file, line and column in
//! prep's own words. pandas is the reference where it has an answer.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::scaleout::run_workers;

/// Rows pandas reads from `input` (every value as text; see
/// tests/parity/pandas_rows.py).
fn pandas_rows(python: &Path, input: &Path, no_nulls: bool) -> Vec<serde_json::Value> {
    let out = input.with_extension("pandas.json");
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/parity/pandas_rows.py"))
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(&out);
    if no_nulls {
        cmd.arg("--no-nulls");
    }
    assert!(cmd.status().unwrap().success(), "pandas_rows.py failed");
    read_json(&out).as_array().unwrap().clone()
}

/// A JSON value as the text pandas would have read for it.
fn as_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn assert_same_as_pandas(ours: &[serde_json::Value], pandas: &[serde_json::Value]) {
    assert_eq!(ours.len(), pandas.len(), "row count");
    for (i, (o, p)) in ours.iter().zip(pandas).enumerate() {
        let p = p.as_object().unwrap();
        for (k, pv) in p {
            assert_eq!(
                as_text(&o[k.as_str()]),
                pv.as_str().map(str::to_string),
                "row {i}, column {k}: prep {o} vs pandas {pv}"
            );
        }
    }
}

/// `b` (scaled) and `c` (kept, integer) are empty until row `first`.
fn sparse(rows: usize, first: usize, b_ints_then_float: bool) -> String {
    let mut s = String::from("id,a,b,c\n");
    for i in 0..rows {
        let a = (i as f64 * 0.37).sin() * 10.0;
        let (b, c) = if i < first {
            (String::new(), String::new())
        } else if b_ints_then_float && i < first + 500 {
            (format!("{}", i % 97), format!("{}", i % 13))
        } else {
            (
                format!("{:.4}", (i as f64 * 0.11).cos()),
                format!("{}", i % 13),
            )
        };
        s.push_str(&format!("{i},{a:.6},{b},{c}\n"));
    }
    s
}

/// Case 1: a numeric column empty in its first 1, 2 and 10 chunks is a
/// float column scaled as pandas + scikit-learn scale it; a kept integer
/// column stays integer; ints followed by floats in a scaled column are
/// fine.
#[test]
fn a_column_empty_at_the_start_takes_the_type_of_its_first_values() {
    let Some(python) = sklearn_python() else {
        return;
    };
    for (first, ints_then_float) in [(1000, false), (2000, true), (10_000, false)] {
        let c = case_with(
            sparse(12_000, first, ints_then_float),
            "chunk_rows = 1000\n[scale]\nexclude = [\"id\", \"c\"]\n[output]\nformat = \"jsonl\"\nshard_max_rows = 1000000",
        );
        c.run(&[]).success();
        let sk = sklearn_standard_fit(&python, &c.path("in.csv"), "id,c");
        let ours = c.scaler();
        assert_eq!(ours["feature_names"], sk["feature_names"], "first={first}");
        assert_eq!(ours["n_samples_seen"], sk["n_samples_seen"]);
        for k in ["mean", "scale"] {
            for (x, y) in floats(&ours[k]).into_iter().zip(floats(&sk[k])) {
                assert!(
                    rel_err(x, y) <= 1e-12,
                    "{k}: prep {x} vs sklearn {y} (first={first})"
                );
            }
        }
        let rows = c.rows();
        assert_eq!(rows.len(), 12_000 - first);
        for (i, sk_row) in sk["transformed_first_rows"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let b = sk_row[1].as_f64().unwrap();
            assert!((rows[i]["b"].as_f64().unwrap() - b).abs() <= 1e-9 * b.abs().max(1.0));
            assert!(
                rows[i]["c"].is_i64(),
                "the kept column stays integer: {}",
                rows[i]
            );
        }
    }
}

/// The same file split between workers gives the same scaler.
#[test]
fn workers_agree_on_a_column_typed_by_reading_ahead() {
    let c = case_with(
        sparse(6000, 2500, false),
        "chunk_rows = 1000\n[scale]\nexclude = [\"id\", \"c\"]",
    );
    c.run(&[]).success();
    let single = c.scaler();
    let split = case_with(
        sparse(6000, 2500, false),
        "chunk_rows = 1000\n[scale]\nexclude = [\"id\", \"c\"]",
    );
    run_workers(&split, 3, &[], &[]);
    let multi = split.scaler();
    assert_eq!(single["feature_names"], multi["feature_names"]);
    assert_eq!(single["n_samples_seen"], multi["n_samples_seen"]);
    for k in ["mean", "scale"] {
        for (x, y) in floats(&single[k]).into_iter().zip(floats(&multi[k])) {
            assert!(rel_err(x, y) <= 1e-12, "{k}: {x} vs {y}");
        }
    }
}

/// A kept (not scaled) integer column that meets 2.5 later still fails,
/// naming file, line, column and the `[input.schema]` line to add.
#[test]
fn a_kept_integer_column_that_meets_a_float_names_the_fix() {
    let mut data = String::from("id,n,x\n");
    for i in 0..3000 {
        let n = if i == 2500 {
            "2.5".to_string()
        } else {
            i.to_string()
        };
        data.push_str(&format!("{i},{n},{}.5\n", i % 7));
    }
    let c = case_with(data, "chunk_rows = 1000\n[scale]\ncolumns = [\"x\"]");
    let a = c.run(&[]).code(3);
    let err = stderr_of(&a);
    assert!(err.contains("in.csv, line 2502, column `n`"), "{err}");
    assert!(err.contains("[input.schema] n = \"float64\""), "{err}");
    assert!(!c.has_success());
}

/// Cases 4 and 5: quotes read as pandas reads them, and no parser's
/// advice in any message.
#[test]
fn quotes_inside_and_after_fields_read_like_pandas() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let mut data = String::from("id,remark,code\n");
    for i in 0..60 {
        let remark = match i {
            40 => "\"x\"y".to_string(),
            41 => "B\"".to_string(),
            42 => "\"say \"\"hi\"\"\" there".to_string(),
            43 => "5\" tall".to_string(),
            _ => format!("r{i}"),
        };
        data.push_str(&format!("{},{remark},A{i}\n", 7000 + i));
    }
    let c = case_with(&data, "[scale]\ncolumns = []");
    let a = c.run(&[]);
    let err = stderr_of(&a);
    a.success();
    assert!(
        !err.contains("polars") && !err.contains("infer_schema"),
        "{err}"
    );
    let rows = c.rows();
    assert_eq!(rows[40]["remark"], "xy");
    assert_eq!(rows[41]["remark"], "B\"");
    assert_eq!(rows[43]["remark"], "5\" tall");
    assert_same_as_pandas(&rows, &pandas_rows(&python, &c.path("in.csv"), false));
}

/// Case 6: bare CR line ends (Excel for Mac), including a quoted CR.
#[test]
fn bare_cr_line_ends_are_read() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let mut data = String::from("id,text,v\r");
    for i in 0..500 {
        let text = if i == 3 {
            "\"two\rlines\"".to_string()
        } else {
            format!("t{i}")
        };
        data.push_str(&format!("{i},{text},{}.25\r", i % 9));
    }
    let c = case_with(&data, "chunk_rows = 100\n[scale]\ncolumns = [\"v\"]");
    c.run(&[]).success();
    let rows = c.rows();
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[3]["text"], "two\rlines");
    let pandas = pandas_rows(&python, &c.path("in.csv"), false);
    assert_eq!(pandas.len(), 500);
    for (o, p) in rows.iter().zip(&pandas) {
        assert_eq!(o["id"].to_string(), p["id"].as_str().unwrap());
        assert_eq!(o["text"].as_str(), p["text"].as_str());
    }
    // A bad value in a CR file names its physical line.
    let bad = data.replace("\r200,t200,2.25\r", "\r200,t200,oops\r");
    let c = case_with(bad, "chunk_rows = 100\n[scale]\ncolumns = [\"v\"]");
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("in.csv, line 203, column `v`"), "{err}");
}

/// Case 2: invalid UTF-8 in the header is bad data, like in a field.
#[test]
fn invalid_utf8_in_the_header_is_bad_data() {
    let c = case_with(&b"id,caf\xe9\n1,2\n"[..], "");
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("in.csv, line 1"), "{err}");
    assert!(err.contains("header field 2 is not valid UTF-8"), "{err}");
    assert!(err.contains("iconv"), "{err}");
    let c = case_with(&b"id,name\n1,caf\xe9\n"[..], "");
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("in.csv, line 2, column `name`"), "{err}");
}

/// Case 3: a 0-byte or BOM-only file named directly has no header (exit
/// 3 naming it); in a folder with other files it is skipped.
#[test]
fn an_empty_file_named_directly_is_bad_data() {
    for content in [&b""[..], b"\xEF\xBB\xBF"] {
        let c = case_with(content, "");
        let err = stderr_of(&c.run(&[]).code(3));
        assert!(err.contains("in.csv"), "{err}");
        assert!(err.contains("no header"), "{err}");
        assert!(!err.contains("no input files"), "{err}");
    }
    let c = Case::new();
    c.write("in/a.csv", "x,y\n1,2\n3,4\n");
    c.write("in/b.csv", "");
    c.write("in/c.csv", b"\xEF\xBB\xBF");
    c.pipeline("in", "");
    c.run(&[]).success();
    assert_eq!(c.rows().len(), 2);
}

/// Case 7: `null_values = []` means nothing is null; `""` is always the
/// empty string.
#[test]
fn null_values_mean_what_they_list() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let data = "id,s,t\n1,,NA\n2,\"\",x\n3,a,\n";
    let c = case_with(
        data,
        "[input.csv]\nnull_values = []\n[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []",
    );
    c.run(&[]).success();
    let rows = c.rows();
    assert_eq!(rows[0]["s"], "");
    assert_eq!(rows[0]["t"], "NA");
    assert_eq!(rows[2]["t"], "");
    assert_same_as_pandas(&rows, &pandas_rows(&python, &c.path("in.csv"), true));
    // Default nulls: an empty unquoted field is null, `""` is not.
    let c = case_with(
        data,
        "[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []",
    );
    c.run(&[]).success();
    let rows = c.rows();
    assert_eq!(rows[0]["s"], serde_json::Value::Null);
    assert_eq!(rows[1]["s"], "");
    assert_eq!(rows[0]["t"], serde_json::Value::Null);
}

/// Case 8: validate reads headers only, so a malformed row is the run's
/// to report.
#[test]
fn validate_reads_no_rows() {
    let mut data = String::from("id,x\n");
    for i in 0..50 {
        if i == 35 {
            data.push_str("oops,\"never closed\n");
        } else {
            data.push_str(&format!("{i},{i}.5\n"));
        }
    }
    let c = case_with(data, "");
    let mut cmd = prep();
    let a = cmd
        .arg("validate")
        .arg(c.path("pipeline.toml"))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("id, x") || out.contains("id"), "{out}");
    assert!(out.contains("validate reads headers only"), "{out}");
    let err = stderr_of(&c.run(&[]).code(3));
    assert!(err.contains("line 37"), "{err}");
}

/// A CR-only file cut between workers by byte ranges: every piece starts
/// on a record (`\r` boundaries) and the rows equal one run's.
#[test]
fn workers_split_a_cr_file_on_its_records() {
    let mut data = String::from("id,text,v\r");
    for i in 0..3000 {
        let text = if i % 7 == 0 {
            "\"a\rb, c\"".to_string()
        } else {
            format!("t{i}")
        };
        data.push_str(&format!("{i},{text},{}.5\r", i % 11));
    }
    let extra = "chunk_rows = 500\n[scale]\ncolumns = [\"v\"]\n[output]\nformat = \"jsonl\"\nshard_max_rows = 100000";
    let single = case_with(&data, extra);
    single.run(&[]).success();
    let split = case_with(&data, extra);
    run_workers(&split, 3, &[], &[]);
    assert_rows_close(&single.rows(), &split.rows());
    assert_eq!(split.rows().len(), 3000);
}

/// Odd files from CSV test corpora (csv-spectrum, papaparse's cases) and
/// malformed ones: each is read (exit 0) or refused as bad data (exit 3)
/// naming the file; never a panic, never a `_SUCCESS` with an error.
#[test]
fn odd_files_are_read_or_refused_never_a_crash() {
    let cases: &[&[u8]] = &[
        b"a,b\n",
        b"a,b",
        b"a,b\n1,2",
        b"a,b\r\n\"x\r\ny\",2\r\n",
        b"a,b\n\"\"\"\",\"\"\n",
        b"a,b\n\"unterminated,2\n",
        b"a,b\n1,2,3\n",
        b"a\n\n\n1\n\n",
        b",\n1\n",
        b"a,a,a\n1,2,3\n",
        b"a,b\n\xff\xfe,1\n",
        b"\xEF\xBB\xBFa,b\r1,2\r",
        b"a;b\n1;2\n",
        b"a,b\n\"x\"\"\ny\",1\n",
        b"a,b\n1,\"a\"b\"c\"\n",
        b"a,b\n1,\"\n",
    ];
    for (i, data) in cases.iter().enumerate() {
        let c = case_with(
            *data,
            "[clean]\ndrop_nulls = \"none\"\n[scale]\ncolumns = []",
        );
        let a = c.run(&[]);
        let code = a.get_output().status.code();
        let err = stderr_of(&a);
        assert!(
            matches!(code, Some(0) | Some(3)),
            "case {i} ({:?}): exit {code:?}\n{err}",
            String::from_utf8_lossy(data)
        );
        if code == Some(3) {
            assert!(
                err.contains("in.csv") && !c.has_success(),
                "case {i}: {err}"
            );
        }
    }
}

/// Objects named `.tsv` are tab-separated unless `input.csv.delimiter` is
/// set: a directly named file, a folder of them (gzip too) and `inspect`.
#[test]
fn tsv_names_mean_tabs_unless_a_delimiter_is_set() {
    let data = "id\ttext\tx\n1\ta, b\t1.5\n2\tc\t2.5\n3\td\t4.0\n";
    let case = Case::new();
    case.write("one/in.tsv", data);
    case.pipeline("one/in.tsv", "[scale]\nexclude = [\"id\"]");
    case.run(&[]).success();
    let rows = case.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["text"], "a, b");
    assert_eq!(case.scaler()["feature_names"], serde_json::json!(["x"]));

    // A folder of .tsv and .tsv.gz objects.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"id\ttext\tx\n4\te\t8.0\n").unwrap();
    case.write("many/a.tsv", data);
    case.write("many/b.TSV.gz", gz.finish().unwrap());
    case.pipeline("many/", "[scale]\nexclude = [\"id\"]");
    case.run(&["--overwrite"]).success();
    assert_eq!(case.rows().len(), 4);

    // A set delimiter wins: the whole line is then one column.
    case.pipeline(
        "one/in.tsv",
        "[input.csv]\ndelimiter = \",\"\n[scale]\ncolumns = []",
    );
    let err = stderr_of(&case.run(&["--overwrite"]).code(3));
    assert!(
        err.contains("line 2") && err.contains("expected 1 field"),
        "{err}"
    );

    let a = prep()
        .arg("inspect")
        .arg(case.path("one/in.tsv"))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("text") && out.contains("4"), "{out}");
}

/// Repeated header names are made unique exactly as pandas makes them,
/// a name the header already holds included (`a,a,a.1` → `a, a.2, a.1`).
#[test]
fn repeated_header_names_match_pandas() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let data = "a,a,a.1,a,,x,x,x.1,x.1,x.2\n1,2,3,4,5,6,7,8,9,10\n";
    let c = case_with(data, "[scale]\ncolumns = []");
    c.run(&[]).success();
    let rows = c.rows();
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "a",
            "a.2",
            "a.1",
            "a.3",
            "Unnamed: 4",
            "x",
            "x.3",
            "x.1",
            "x.1.1",
            "x.2"
        ]
    );
    assert_same_as_pandas(&rows, &pandas_rows(&python, &c.path("in.csv"), false));
}

/// A `;`-separated file read with the default comma is one column: the
/// run says which delimiter the header suggests (and goes on).
#[test]
fn a_one_column_header_holding_semicolons_warns_with_the_setting() {
    let c = case_with("a;b;c\n1;2;3\n", "[scale]\ncolumns = []");
    let a = prep()
        .arg("run")
        .arg(c.path("pipeline.toml"))
        .assert()
        .success();
    let err = stderr_of(&a);
    assert!(
        err.contains("the header is one column, `a;b;c`")
            && err.contains("set input.csv.delimiter = \";\""),
        "{err}"
    );
}
