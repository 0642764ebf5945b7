//! Bad input: each case checks the exit code, the message (file, line or
//! row, column, what to do) and that no `_SUCCESS` is written.

use crate::common::*;

const GOOD: &str = "id,text,price,qty\n1,a,1.5,3\n2,\"b, c\",2.5,4\n3,d,3.5,5\n";

fn fails(case: &Case, code: i32, needles: &[&str]) -> String {
    let a = case.run(&[]).code(code);
    let err = stderr_of(&a);
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in:\n{err}");
    }
    assert!(!case.has_success(), "no _SUCCESS after a failure");
    err
}

#[test]
fn ragged_row_names_file_and_line() {
    let case = case_with("id,text,price,qty\n1,a,1.5,3\n2,\"multi\nline\",2.5\n", "");
    fails(
        &case,
        3,
        &["in.csv, line 3", "expected 4 fields", "found 3", "hint:"],
    );
}

#[test]
fn files_with_different_schemas_name_both_and_the_column() {
    let case = Case::new();
    case.write("in/a.csv", GOOD);
    case.write("in/b.csv", "id,text,cost,qty\n4,e,1.0,2\n");
    case.pipeline("in", "");
    fails(&case, 3, &["b.csv", "a.csv", "`cost`", "`price`"]);
}

/// Many small files are read one after another, the next one's reader
/// started while this one is parsed (the debug log says which): the first
/// bad file in order is the one reported, whatever a later one holds.
#[test]
fn among_many_small_files_the_first_bad_one_in_order_is_reported() {
    let case = Case::new();
    for k in 0..12 {
        let body = match k {
            7 => format!("{GOOD}9,x,1.0\n"),                  // ragged: line 5
            8 => "id,text,cost,qty\n4,e,1.0,2\n".to_string(), // other header
            _ => GOOD.to_string(),
        };
        case.write(&format!("in/f{k:02}.csv"), body);
    }
    case.pipeline("in", "");
    let err = fails(
        &case,
        3,
        &["f07.csv, line 5", "expected 4 fields", "found 3"],
    );
    assert!(!err.contains("f08.csv"), "{err}");
    // Without the bad file, the next one's different header is reported.
    case.write("in/f07.csv", GOOD);
    let err = fails(&case, 3, &["f08.csv", "`cost`", "`price`"]);
    assert!(!err.contains("f07.csv"), "{err}");
    // The good files run, each small one's reader started while the one
    // before it is parsed; one over 8 MiB is not opened ahead.
    case.write("in/f08.csv", GOOD);
    let big = GOOD.to_string() + &"5,e,1.0,2\n".repeat(1 << 20);
    case.write("in/f11.csv", big);
    let mut cmd = prep();
    cmd.env("PREP_LOG", "debug")
        .arg("run")
        .arg(case.path("pipeline.toml"))
        .arg("--overwrite");
    let a = cmd.assert().success();
    let log = stderr_of(&a);
    let ahead = |name: &str| log.contains(&format!("{name} while the object before it is parsed"));
    assert!(ahead("f01.csv") && ahead("f10.csv"), "{log}");
    assert!(!ahead("f00.csv") && !ahead("f11.csv"), "{log}");
}

#[test]
fn parquet_type_mismatch_names_both_files() {
    // Make two parquet files with prep itself, with different types for `price`.
    let case = Case::new();
    case.write("src1/x.csv", GOOD);
    case.write("src2/x.csv", "id,text,price,qty\n1,a,7,3\n");
    for (src, out) in [("src1", "p/1"), ("src2", "p/2")] {
        let text = format!(
            "name = \"m\"\n[input]\nuri = \"{}\"\n[scale]\ncolumns = [\"qty\"]\n[output]\nuri = \"{}\"\nformat = \"parquet\"\n",
            case.path(src).display(),
            case.path(out).display()
        );
        case.write("pipeline.toml", text);
        case.run(&[]).success();
    }
    let text = format!(
        "name = \"m\"\n[input]\nuri = \"{}/*/part-*.parquet\"\n[output]\nuri = \"{}\"\n",
        case.path("p").display(),
        case.path("out").display()
    );
    case.write("pipeline.toml", text);
    let a = case.run(&[]).code(3);
    let err = stderr_of(&a);
    assert!(
        err.contains("column `price`")
            && err.contains("p/1/part-00000.parquet")
            && err.contains("p/2/part-00000.parquet"),
        "{err}"
    );
}

#[test]
fn unknown_columns_get_did_you_mean() {
    for (extra, setting, wrong, right) in [
        (
            "[scale]\ncolumns = [\"prise\"]",
            "scale.columns",
            "prise",
            "price",
        ),
        (
            "[clean]\ndrop_nulls = [\"txt\"]",
            "clean.drop_nulls",
            "txt",
            "text",
        ),
        (
            "[output]\ncolumns = [\"id\", \"qtty\"]",
            "output.columns",
            "qtty",
            "qty",
        ),
        ("[scale]\nexclude = [\"idd\"]", "scale.exclude", "idd", "id"),
    ] {
        let case = case_with(GOOD, extra);
        fails(
            &case,
            3,
            &[
                &format!("`{wrong}`"),
                setting,
                &format!("did you mean `{right}`?"),
                "in.csv",
            ],
        );
    }
}

#[test]
fn non_numeric_scaled_column_is_a_config_error() {
    let case = case_with(GOOD, "[scale]\ncolumns = [\"price\", \"text\"]");
    fails(&case, 2, &["`text`", "not numeric"]);
}

#[test]
fn infinity_fails_or_is_dropped_and_counted() {
    let data = "id,price\n1,1.0\n2,inf\n3,2.0\n4,-inf\n";
    let case = case_with(data, "");
    fails(
        &case,
        3,
        &[
            "in.csv, line 3, column `price`",
            "non-finite",
            "non_finite = \"drop\"",
        ],
    );
    let case = case_with(data, "[clean]\nnon_finite = \"drop\"");
    case.run(&[]).success();
    let report = read_json(&case.out_file("_SUCCESS"));
    assert_eq!(report["rows_dropped"]["non_finite"], 2);
    assert_eq!(report["rows_written"], 2);
    assert_eq!(case.scaler()["mean"][1], 1.5);
}

/// The fit pass parses the next chunk while it cleans this one: a bad
/// value is still reported before a later chunk's parse error, whichever
/// thread meets its error first.
#[test]
fn the_first_bad_row_is_reported_when_a_later_chunk_fails_to_parse() {
    let data = "id,price\n1,1.0\n2,2.0\n3,inf\n4,1.0\n5,1.0,9\n6,1.0\n";
    let case = case_with(data, "chunk_rows = 2");
    for _ in 0..5 {
        fails(
            &case,
            3,
            &["in.csv, line 4, column `price`", "non-finite value inf"],
        );
    }
}

#[test]
fn nothing_left_says_which_columns_had_nulls() {
    let case = case_with("id,a,b\n1,,x\n2,3,\n3,NA,NULL\n", "");
    fails(
        &case,
        3,
        &[
            "no rows left after cleaning",
            "3 rows read",
            "a: 2",
            "b: 2",
            "drop_nulls",
        ],
    );
}

#[test]
fn no_matching_input_is_a_storage_error_naming_the_uri() {
    let case = Case::new();
    case.pipeline("nothing/*.csv", "");
    fails(&case, 4, &["no input files match", "nothing/*.csv"]);
}

#[test]
fn unknown_key_and_bad_values_are_config_errors_with_positions() {
    let case = Case::new();
    case.write("in.csv", GOOD);
    case.write(
        "pipeline.toml",
        format!(
            "name = \"t\"\n[input]\nuri = \"{}\"\n[output]\nuri = \"o\"\nshard_rows = 5\n",
            case.path("in.csv").display()
        ),
    );
    fails(
        &case,
        2,
        &[
            "line 6, column 1",
            "unknown key `shard_rows` in [output]",
            "did you mean `shard_max_rows`?",
        ],
    );

    case.write(
        "pipeline.toml",
        format!(
            "name = \"Bad Name\"\n[input]\nuri = \"{}\"\nchunk_rows = -5\n[output]\nuri = \"o\"\nformat = \"xml\"\nshard_max_bytes = \"lots\"\n",
            case.path("in.csv").display()
        ),
    );
    let err = fails(
        &case,
        2,
        &[
            "line 1, column 8",
            "line 4, column 14",
            "line 7, column 10",
            "line 8, column 19",
        ],
    );
    // validate reports the same problems, all at once, without reading data.
    let v = prep()
        .arg("validate")
        .arg(case.path("pipeline.toml"))
        .assert()
        .code(2);
    let verr = stderr_of(&v);
    assert_eq!(verr.matches("  - line").count(), 4, "{verr}");
    assert!(err.contains("  - line"), "{err}");
}

#[test]
fn a_later_value_that_does_not_fit_the_inferred_type() {
    let mut data = String::from("id,qty\n");
    for i in 0..50 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("50,2.5\n");
    // Not scaled, so it keeps its exact type; scaled, it is read as float64.
    let case = case_with(&data, "chunk_rows = 10\n[scale]\ncolumns = [\"id\"]");
    fails(
        &case,
        3,
        &[
            "in.csv, line 52, column `qty`",
            "\"2.5\"",
            "int64",
            "[input.schema] qty = \"float64\"",
        ],
    );
    let case = case_with(
        &data,
        "chunk_rows = 10\n[input.schema]\nqty = \"float64\"\n[scale]\ncolumns = [\"id\"]",
    );
    case.run(&[]).success();
    let case = case_with(&data, "chunk_rows = 10");
    case.run(&[]).success();
    assert_eq!(
        case.scaler()["feature_names"],
        serde_json::json!(["id", "qty"])
    );
}

#[test]
fn unterminated_quote_is_bad_input() {
    let case = case_with("id,text\n1,\"never closed\n2,b\n", "");
    fails(&case, 3, &["in.csv, line 2", "never closed"]);
}

#[test]
fn truncated_gzip_is_bad_input() {
    let case = Case::new();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(
            GOOD.repeat(200)
                .replace("id,text,price,qty\n", "")
                .as_bytes(),
        )
        .unwrap();
        e.finish().unwrap()
    };
    let mut data = b"".to_vec();
    data.extend_from_slice(&gz[..gz.len() / 2]);
    case.write("in.csv.gz", data);
    case.pipeline("in.csv.gz", "[input.csv]\nheader = false");
    let a = case.run(&[]).failure();
    let code = a.get_output().status.code().unwrap();
    assert_eq!(code, 3, "{}", stderr_of(&a));
    assert!(stderr_of(&a).contains("in.csv.gz"));
}

#[test]
fn blank_lines_are_skipped_not_read_as_null_rows() {
    let case = case_with("id,price\n1,1.0\n\n2,2.0\n\n\n3,3.0\n\n", "chunk_rows = 2");
    case.run(&[]).success();
    let report = read_json(&case.out_file("_SUCCESS"));
    assert_eq!(report["rows_read"], 3);
    assert_eq!(report["rows_dropped"]["nulls"], 0);
}

#[test]
fn numbers_with_spaces_after_the_delimiter_are_numbers_as_in_pandas() {
    // The UCI "adult" layout: ", " between fields.
    let data = "age, workclass, hours\n39, State-gov, 40\n50, Self-emp, 13\n38, Private, 40\n";
    let case = case_with(data, "");
    case.run(&[]).success();
    let s = case.scaler();
    assert_eq!(s["feature_names"], serde_json::json!(["age", " hours"]));
    assert_eq!(s["mean"][1], 31.0);
    let rows = case.rows();
    assert_eq!(
        rows[0][" workclass"], " State-gov",
        "strings keep their spaces"
    );
    // A later value that is not a number names its line and column.
    let mut data = String::from("id, x\n");
    for i in 0..30 {
        data.push_str(&format!("{i}, {i}\n"));
    }
    data.push_str("30, oops\n");
    let case = case_with(&data, "chunk_rows = 10");
    fails(&case, 3, &["in.csv, line 32, column ` x`", "\" oops\""]);
}

#[test]
fn invalid_utf8_names_line_and_column() {
    for extra in ["", "chunk_rows = 1"] {
        let case = Case::new();
        case.write("in.csv", b"a,b\n1,ok\n2,caf\xe9\n");
        case.pipeline("in.csv", extra);
        fails(
            &case,
            3,
            &["in.csv, line 3, column `b`", "not valid UTF-8", "iconv"],
        );
    }
}

#[test]
fn an_environment_variable_that_does_not_parse_is_a_usage_error_naming_it() {
    let case = case_with(GOOD, "");
    let run = |part_size: &str, wait: &str| {
        prep()
            .arg("run")
            .arg(case.path("pipeline.toml"))
            .arg("--quiet")
            .env("PREP_S3_PART_SIZE", part_size)
            .env("PREP_WAIT_TIMEOUT", wait)
            .assert()
    };
    let err = stderr_of(&run("2XB", "90").code(2));
    for n in [
        "PREP_S3_PART_SIZE=\"2XB\" is not a byte size",
        "PREP_WAIT_TIMEOUT=\"90\" is not a duration",
        "hint:",
    ] {
        assert!(err.contains(n), "missing {n:?} in:\n{err}");
    }
    assert!(!case.has_success(), "nothing ran");
    // Well-formed values run.
    run("4MiB", "90s").code(0);
}
