//! Files like those in public test corpora (apache/parquet-testing,
//! csv-spectrum, duckdb's CSV tests), under `tests/corpus/`: types prep
//! reads, types it refuses with exit 3 naming the column (never a panic),
//! values that must come through exactly, and inputs with nothing in them.
//! `tests/corpus/make_parquet_cases.py` made the Parquet files.

use crate::common::*;

fn corpus(name: &str) -> String {
    repo().join("tests/corpus").join(name).display().to_string()
}

/// A case whose pipeline reads `file` from the corpus, with `extra` TOML.
fn case_over(file: &str, extra: &str) -> Case {
    let case = Case::new();
    let text = format!(
        "name = \"t\"\n[input]\nuri = \"{}\"\n{extra}\n",
        corpus(file)
    );
    let text = match text.contains("[output]") {
        true => text.replace(
            "[output]",
            &format!("[output]\nuri = \"{}\"", case.path("out").display()),
        ),
        false => format!(
            "{text}\n[output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
            case.path("out").display()
        ),
    };
    case.write("pipeline.toml", text);
    case
}

/// Exit 3 with every needle in the message, no panic and no `_SUCCESS`.
fn refused(case: &Case, needles: &[&str]) {
    let err = stderr_of(&case.run(&["--overwrite"]).code(3));
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!case.has_success());
}

#[test]
fn unread_parquet_types_are_bad_data_naming_the_column_in_every_command() {
    for (file, column, dtype) in [
        (
            "decimal256.parquet",
            "big",
            "decimal(40, 2), more than 38 digits",
        ),
        ("float16.parquet", "h", "float16"),
        (
            "struct_of_float16.parquet",
            "s",
            "struct whose field `h` is float16",
        ),
    ] {
        let said = format!("column `{column}` is of type {dtype}, which prep does not read");
        for format in ["jsonl", "parquet"] {
            let case = case_over(file, &format!("[output]\nformat = \"{format}\""));
            refused(&case, &[&corpus(file), &said, "hint:"]);
            if format == "jsonl" {
                let a = prep()
                    .arg("validate")
                    .arg(case.path("pipeline.toml"))
                    .assert()
                    .code(3);
                assert!(stderr_of(&a).contains(&said), "{}", stderr_of(&a));
            }
        }
        let a = prep().arg("inspect").arg(corpus(file)).assert().code(3);
        let err = stderr_of(&a);
        assert!(err.contains(&said) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_repeated_field_outside_a_list_group_is_bad_data_not_empty_rows() {
    // parquet-testing's repeated_no_annotation: polars reads it as 0 rows.
    let file = "repeated_no_annotation.parquet";
    let said = "column `phoneNumbers` holds `phoneNumbers.phone`, a repeated field outside a LIST or MAP group";
    refused(
        &case_over(file, "[output]\nformat = \"parquet\""),
        &[said, "current writer"],
    );
    let a = prep().arg("inspect").arg(corpus(file)).assert().code(3);
    assert!(stderr_of(&a).contains(said), "{}", stderr_of(&a));
}

#[test]
fn a_damaged_page_or_an_unknown_logical_type_is_bad_data_not_a_panic() {
    let case = case_over(
        "bad_data_ARROW-GH-47662.parquet",
        "[output]\nformat = \"parquet\"",
    );
    refused(
        &case,
        &[
            "bad_data_ARROW-GH-47662.parquet",
            "cannot read it as Parquet: rows 1-1000",
        ],
    );
    // polars panics on this one on its own pool threads, sometimes: the
    // error is still exit 3, and no panic text reaches the terminal.
    let damaged = corpus("bad_data_ARROW-RS-GH-6229-DICTHEADER.parquet");
    for _ in 0..4 {
        let a = prep().arg("inspect").arg(&damaged).assert().code(3);
        let err = stderr_of(&a);
        assert!(
            err.contains("cannot read it as Parquet") && !err.contains("panicked"),
            "{err}"
        );
    }
    let case = case_over("shredded_variant_case-001.parquet", "");
    refused(
        &case,
        &[
            "shredded_variant_case-001.parquet",
            "logical type prep's reader does not know",
        ],
    );
}

#[test]
fn small_integer_columns_are_read_and_scaled() {
    let case = case_over("small_ints.parquet", "[scale]\nexclude = [\"id\"]");
    case.run(&[]).success();
    let s = case.scaler();
    assert_eq!(
        s["feature_names"],
        serde_json::json!(["i16", "u8", "u16", "x"])
    );
    let mean = floats(&s["mean"]);
    assert_eq!(mean, vec![0.0, 262.0 / 3.0, 65538.0 / 3.0, 2.5]);
    let rows = case.rows();
    assert_eq!(rows[0]["id"], 1);
    assert!(rows[2]["u8"].as_f64().unwrap() > 1.0, "{rows:?}");
}

#[test]
fn decimal_columns_are_read_as_float64_whatever_their_storage() {
    // Fixed-size bytes (pyarrow's default) and int32/int64 (Spark, Athena);
    // row 3 holds nulls and is dropped.
    for file in ["decimal.parquet", "decimal_as_int.parquet"] {
        let case = case_over(file, "[scale]\nexclude = [\"id\"]");
        case.run(&[]).success();
        let s = case.scaler();
        assert_eq!(
            s["feature_names"],
            serde_json::json!(["price", "wide", "small"]),
            "{file}"
        );
        // The exact means of the decimals, to the contract's 1e-12.
        let expected = [333332.58666666667, 4115226300411523.0, 333.82666666666665];
        for (got, want) in floats(&s["mean"]).iter().zip(expected) {
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "{file}: {got} vs {want}"
            );
        }
        let ids: Vec<i64> = case
            .rows()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 4], "{file}");

        // Passed through: the nearest float64, written as the shortest form.
        let case = case_over(file, "[scale]\ncolumns = [\"small\"]");
        case.run(&[]).success();
        let rows = case.rows();
        let prices: Vec<f64> = rows.iter().map(|r| r["price"].as_f64().unwrap()).collect();
        assert_eq!(prices, [1.25, -3.5, 1000000.01], "{file}");
        assert_eq!(
            rows[2]["wide"].as_f64(),
            Some(12345678901234568.0),
            "{file}"
        );
        let text = std::fs::read_to_string(case.out_file("part-00000.jsonl")).unwrap();
        assert!(text.contains("\"price\":-3.5,"), "{text}");
    }
    let a = prep()
        .arg("inspect")
        .arg(corpus("decimal_as_int.parquet"))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("price") && out.contains("1000000.01"), "{out}");
}

#[test]
fn wide_unsigned_zoned_timestamps_and_times_of_day_are_written_exactly() {
    let case = case_over("exact_values.parquet", "[scale]\ncolumns = [\"x\"]");
    case.run(&[]).success();
    let text = std::fs::read_to_string(case.out_file("part-00000.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("{\"id\":2,\"big\":9223372036854775808,"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("{\"id\":3,\"big\":18446744073709551615,"),
        "{text}"
    );
    let rows = case.rows();
    assert_eq!(rows[0]["at"], "2024-01-01 12:00:00.123456Z");
    let times: Vec<&str> = rows.iter().map(|r| r["t"].as_str().unwrap()).collect();
    assert_eq!(times, ["00:00:00.000001", "00:00:00.000002", "00:00:03"]);
}

#[test]
fn columns_text_shards_cannot_hold_are_refused_before_reading_unless_left_out() {
    for (file, column, what, formats) in [
        ("list.parquet", "l", "is a list (list[int64])", &["csv"][..]),
        (
            "duration.parquet",
            "d",
            "is a duration (duration[ms])",
            &["jsonl", "csv"],
        ),
    ] {
        for &format in formats {
            let case = case_over(file, &format!("[output]\nformat = \"{format}\""));
            let shards = if format == "csv" { "CSV" } else { "JSON Lines" };
            refused(
                &case,
                &[
                    &format!("column `{column}` {what}, which {shards} shards cannot hold"),
                    "output.format = \"parquet\"",
                ],
            );
        }
        case_over(file, "[output]\nformat = \"parquet\"")
            .run(&[])
            .success();
        case_over(
            file,
            "[output]\nformat = \"jsonl\"\ncolumns = [\"id\", \"x\"]",
        )
        .run(&[])
        .success();
    }
}

#[test]
fn structs_and_maps_are_read_and_written_as_json_objects_or_kept_in_parquet() {
    // nested.parquet: s = {a: 1, b: "x"}, null, {a: null, b: "z"};
    // m = {k: 1}, {}, null; ls = [{x: 0.5}], null, [].
    let case = case_over(
        "nested.parquet",
        "[clean]\ndrop_nulls = [\"x\"]\n[scale]\ncolumns = [\"x\"]\n[output]\nformat = \"jsonl\"",
    );
    case.run(&[]).success();
    let text = std::fs::read_to_string(case.out_file("part-00000.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            r#"{"id":1,"s":{"a":1,"b":"x"},"m":[{"key":"k","value":1}],"ls":[{"x":0.5}],"x":"#
        ),
        "{text}"
    );
    assert!(
        lines[1].starts_with(r#"{"id":2,"s":null,"m":[],"ls":null,"#),
        "{text}"
    );
    assert!(
        lines[2].starts_with(r#"{"id":3,"s":{"a":null,"b":"z"},"m":null,"ls":[],"#),
        "{text}"
    );

    // A null struct is a null: `drop_nulls = "any"` drops rows 2 and 3.
    let case = case_over(
        "nested.parquet",
        "[scale]\ncolumns = [\"x\"]\n[output]\nformat = \"parquet\"",
    );
    case.run(&[]).success();
    let a = prep()
        .arg("inspect")
        .arg(case.out_file(""))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    assert!(out.contains("1 rows"), "{out}");
    assert!(out.contains("struct{a: int64, b: string}"), "{out}");

    let case = case_over("nested.parquet", "[output]\nformat = \"csv\"");
    refused(
        &case,
        &["column `s` is a struct (struct{a: int64, b: string}), which CSV shards cannot hold"],
    );
}

#[test]
fn lists_are_json_arrays_in_json_lines_and_in_rejects() {
    // list.parquet: l = [1, 2], [3], []; x = 1, 2, 4.
    let case = case_over(
        "list.parquet",
        "[scale]\ncolumns = [\"x\"]\n[output]\nformat = \"jsonl\"",
    );
    case.run(&[]).success();
    let text = std::fs::read_to_string(case.out_file("part-00000.jsonl")).unwrap();
    let lists: Vec<serde_json::Value> = case.rows().iter().map(|r| r["l"].clone()).collect();
    assert_eq!(
        lists,
        [
            serde_json::json!([1, 2]),
            serde_json::json!([3]),
            serde_json::json!([])
        ]
    );
    assert!(text.starts_with("{\"id\":1,\"l\":[1,2],"), "{text}");

    // A dropped row keeps its list in _rejects/, even with Parquet shards.
    let case = case_over(
        "list_with_null.parquet",
        "[scale]\ncolumns = [\"x\"]\n[output]\nformat = \"parquet\"\nrejects = true",
    );
    case.run(&[]).success();
    let rejects = std::fs::read_to_string(case.out_file("_rejects/part-00000.jsonl")).unwrap();
    assert!(
        rejects.starts_with("{\"id\":2,\"l\":[3],\"x\":null,"),
        "{rejects}"
    );

    // A column no JSON Lines can hold stops a run with rejects up front.
    let case = case_over(
        "duration.parquet",
        "[scale]\ncolumns = [\"x\"]\n[output]\nformat = \"parquet\"\nrejects = true",
    );
    refused(
        &case,
        &[
            "column `d` is a duration (duration[ms]), which JSON Lines shards of `_rejects/` cannot hold",
            "set output.rejects = false",
        ],
    );
}

#[test]
fn values_whose_variance_overflows_f64_are_bad_data_naming_input_and_column() {
    let case = case_with(
        "id,a\n1,1.5e308\n2,-1.5e308\n",
        "[scale]\nexclude = [\"id\"]",
    );
    let err = stderr_of(&case.run(&[]).code(3));
    assert!(
        err.contains("in.csv, column `a`") && err.contains("overflows 64-bit floats"),
        "{err}"
    );
    assert!(!case.has_success());
}

#[test]
fn a_header_without_rows_says_so() {
    let case = case_with("id,a\n", "[clean]\ndrop_nulls = []");
    let err = stderr_of(&case.run(&[]).code(3));
    assert!(
        err.contains("0 rows read") && err.contains("only a header"),
        "{err}"
    );
}

/// `inspect` has no `[input.schema]`: a value past the first chunk that
/// does not fit the inferred type widens the column instead of failing.
#[test]
fn inspect_widens_a_column_whose_later_values_do_not_fit() {
    let case = Case::new();
    let mut csv = String::from("n,tag\n");
    for _ in 0..50_000 {
        csv.push_str("1,7\n");
    }
    csv.push_str("2.5,x\n");
    let path = case.write("late.csv", csv);
    let a = prep()
        .arg("inspect")
        .arg(&path)
        .arg("--json")
        .assert()
        .success();
    let out: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let cols = out["columns"].as_array().unwrap();
    assert_eq!(cols[0]["dtype"], "float64");
    assert_eq!(cols[0]["max"], 2.5);
    assert_eq!(cols[1]["dtype"], "string");
    assert_eq!(out["rows"], 50_001);
}

/// A mean far below the column's first value keeps every digit (it was
/// 0.33333333337 for 1e6, -1e6, 1): scikit-learn gives exactly 1/3. And a
/// constant column's mean is its value, so it is written as 0.0 (a plain
/// sum of three 6.4e18 was one ulp off: 1024.0).
#[test]
fn a_mean_far_below_the_first_value_is_exact() {
    let big = "6374628540732951552";
    let case = case_with(
        format!("id,x,c\n1,1000000,{big}\n2,-1000000,{big}\n3,1,{big}\n"),
        "[scale]\nexclude = [\"id\"]",
    );
    case.run(&[]).success();
    assert_eq!(
        floats(&case.scaler()["mean"]),
        vec![1.0 / 3.0, 6374628540732951552.0]
    );
    assert!(
        case.rows().iter().all(|r| r["c"] == 0.0),
        "{:?}",
        case.rows()
    );
}

/// Every fitted statistic must be a number: one that overflows f64 would
/// be written as `null` into an artifact `prep apply` cannot read.
#[test]
fn any_fitted_statistic_that_overflows_is_bad_data_naming_the_column() {
    let data = "id,a\n1,1.5e308\n2,-1.5e308\n";
    let case = case_with(data, "[scale]\nmethod = \"minmax\"\nexclude = [\"id\"]");
    let err = stderr_of(&case.run(&[]).code(3));
    assert!(
        err.contains("in.csv, column `a`")
            && err.contains("the data range of column `a` overflows"),
        "{err}"
    );
    assert!(!case.has_success());
    // The median of two huge values is their midpoint, not infinity.
    let case = case_with(
        "id,a\n1,1e308\n2,1.7e308\n3,\n",
        "[[impute]]\ncolumns = [\"a\"]\nstrategy = \"median\"\n[scale]\ncolumns = []",
    );
    case.run(&[]).success();
    assert_eq!(case.rows()[2]["a"], 1.35e308);
}

#[test]
fn too_many_categories_names_the_input() {
    let case = case_with(
        "id,s\n1,a\n2,b\n3,c\n",
        "[[encode]]\ncolumns = [\"s\"]\nmax_distinct = 2\n[scale]\nexclude = [\"id\"]",
    );
    let err = stderr_of(&case.run(&[]).code(3));
    assert!(
        err.contains("in.csv, column `s`") && err.contains("(encode counts at most 2)"),
        "{err}"
    );
}

/// A `.zst` (or `.gz`) name on bytes that are not compressed that way is
/// bad data (exit 3), not a storage failure.
#[test]
fn a_compressed_name_on_other_bytes_is_bad_data() {
    for name in ["in.csv.zst", "in.csv.gz"] {
        let case = Case::new();
        case.write(name, "id,x\n1,2.0\n2,3.0\n");
        case.pipeline(name, "");
        let err = stderr_of(&case.run(&[]).code(3));
        assert!(
            err.contains(name) && err.contains("cannot decompress"),
            "{name}: {err}"
        );
    }
}

#[test]
fn an_output_that_is_a_file_and_a_bad_set_are_usage_errors_saying_where() {
    let case = case_with("id,x\n1,2.0\n2,3.0\n", "");
    case.write("out", "not a folder");
    let err = stderr_of(&case.run(&[]).code(2));
    assert!(
        err.contains("is a file, not a folder") && err.contains("hint:"),
        "{err}"
    );
    let err = stderr_of(&case.run(&["--set", "input.chunk_rows=abc"]).code(2));
    assert!(
        err.contains(
            "--set input.chunk_rows=abc: invalid type: string \"abc\", expected an integer"
        ),
        "{err}"
    );
}

/// parquet-testing's int96_from_spark.parquet holds 9999-12-31 (Spark's
/// "no end" date): read as nanoseconds it cannot be held, and polars
/// writes 2262-04-11 23:47:16.854775807 in its place. That is exit 3
/// naming the row and column, not a wrong date with `_SUCCESS`.
#[test]
fn an_int96_timestamp_nanoseconds_cannot_hold_is_bad_data_naming_the_row() {
    let case = case_over("int96_from_spark.parquet", "[clean]\ndrop_nulls = []");
    refused(
        &case,
        &[
            "int96_from_spark.parquet, data row 3, column `a`",
            "outside 1677-09-21 to 2262-04-11",
            "TIMESTAMP_MICROS",
        ],
    );
}

#[test]
fn a_generated_name_that_another_column_has_names_both_plainly() {
    let case = case_with(
        "id,s,s_a\n1,a,5\n2,b,6\n",
        "[[encode]]\ncolumns = [\"s\"]\n[scale]\ncolumns = []",
    );
    let err = stderr_of(&case.run(&[]).code(3));
    assert!(
        err.contains("two output columns would be named `s_a`: the one generated from `s` and the column `s_a`"),
        "{err}"
    );
}
