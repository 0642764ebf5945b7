//! The exact stderr of the main errors, line for line (`error:`, `caused
//! by:`, `hint:`), and their exit codes. The case's temp dir reads `<tmp>`.

use crate::common::*;

/// Runs the case's pipeline, expecting a failure: (exit code, stderr).
fn failure(case: &Case, args: &[&str]) -> (i32, String) {
    let a = case.run(args).failure();
    let code = a.get_output().status.code().expect("exited");
    let dir = case.dir.path().display().to_string();
    (code, stderr_of(&a).replace(&dir, "<tmp>"))
}

fn expect(case: &Case, code: i32, text: &str) {
    assert_eq!(failure(case, &[]), (code, text.to_string()));
    assert!(!case.has_success());
}

#[test]
fn value_that_does_not_fit_the_inferred_type() {
    let mut data = String::from("id,qty\n");
    for i in 0..50 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("50,2.5\n");
    expect(
        &case_with(&data, "chunk_rows = 10\n[scale]\ncolumns = [\"id\"]"),
        3,
        "error: bad input data in <tmp>/in.csv, line 52, column `qty`: value \"2.5\" does not fit the column's type int64 (inferred from the first rows)\n  \
         hint: pin the type in the pipeline: [input.schema] qty = \"float64\" (or add the value to input.csv.null_values if it means missing)\n",
    );
    expect(
        &case_with(&data, "chunk_rows = 10\n[input.schema]\nqty = \"int64\"\n[scale]\ncolumns = [\"id\"]"),
        3,
        "error: bad input data in <tmp>/in.csv, line 52, column `qty`: value \"2.5\" does not fit the column's type int64 (set in [input.schema])\n  \
         hint: fix the value upstream, or change the pipeline to [input.schema] qty = \"float64\" (or add the value to input.csv.null_values if it means missing)\n",
    );
}

#[test]
fn value_with_spaces_that_is_not_a_number() {
    // Spaces around numbers are allowed; the key is quoted.
    let mut data = String::from("id, x\n");
    for i in 0..30 {
        data.push_str(&format!("{i}, {i}\n"));
    }
    data.push_str("30, oops\n");
    expect(
        &case_with(&data, "chunk_rows = 10\n[scale]\ncolumns = [\"id\"]"),
        3,
        "error: bad input data in <tmp>/in.csv, line 32, column ` x`: value \" oops\" does not fit the column's type int64 (inferred from the first rows)\n  \
         hint: pin the type in the pipeline: [input.schema] \" x\" = \"string\" (or add the value to input.csv.null_values if it means missing)\n",
    );
}

#[test]
fn ragged_row() {
    expect(
        &case_with("id,text,price,qty\n1,a,1.5,3\n2,\"multi\nline\",2.5\n", ""),
        3,
        "error: bad input data in <tmp>/in.csv, line 3: expected 4 fields (as in the header), found 3\n  \
         hint: fix or remove that row; a field containing the delimiter, a quote or a newline must be quoted\n",
    );
}

#[test]
fn unterminated_quote() {
    expect(
        &case_with("id,text\n1,\"never closed\n2,b\n", ""),
        3,
        "error: bad input data in <tmp>/in.csv, line 2: a quoted field opened on this line is never closed (unterminated quote at end of file)\n  \
         hint: check the quoting of that field; a literal quote inside a quoted field is written as two quotes (\"\")\n",
    );
}

#[test]
fn invalid_utf8_in_a_field() {
    expect(
        &case_with(b"a,b\n1,ok\n2,caf\xe9\n", ""),
        3,
        "error: bad input data in <tmp>/in.csv, line 3, column `b`: the value is not valid UTF-8 (byte 0xE9 at byte 4 of the field)\n  \
         hint: prep reads UTF-8; convert the file first, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`\n",
    );
}

#[test]
fn missing_column_with_did_you_mean() {
    expect(
        &case_with(
            "id,text,price,qty\n1,a,1.5,3\n",
            "[scale]\ncolumns = [\"prise\"]",
        ),
        3,
        "error: bad input data in <tmp>/in.csv, column `prise`: column `prise` named in scale.columns does not exist in the data\n  \
         hint: did you mean `price`? fix scale.columns in the pipeline file (the data may have changed upstream)\n",
    );
    expect(
        &case_with("id,text,price,qty\n1,a,1.5,3\n", "[clean]\ndrop_nulls = [\"zzz\"]"),
        3,
        "error: bad input data in <tmp>/in.csv, column `zzz`: column `zzz` named in clean.drop_nulls does not exist in the data\n  \
         hint: the data has: id, text, price, qty; fix clean.drop_nulls in the pipeline file (the data may have changed upstream)\n",
    );
}

#[test]
fn header_that_differs_between_two_files() {
    let case = Case::new();
    case.write("in/a.csv", "id,text,price,qty\n1,a,1.5,3\n");
    case.write("in/b.csv", "id,text,cost,qty\n4,e,1.0,2\n");
    case.pipeline("in", "");
    expect(
        &case,
        3,
        "error: bad input data in <tmp>/in/b.csv, line 1, column `cost`: its header does not match <tmp>/in/a.csv: column 3 is `cost` here but `price` there\n  \
         hint: all input files must have the same columns in the same order; move other files out of input.uri or narrow it with a glob\n",
    );
}

#[test]
fn non_finite_value_in_a_scaled_column() {
    expect(
        &case_with("id,price\n1,1.0\n2,inf\n", ""),
        3,
        "error: bad input data in <tmp>/in.csv, line 3, column `price`: non-finite value inf in a column that is scaled\n  \
         hint: fix the value upstream, or set [clean] non_finite = \"drop\" to drop such rows (they are counted in the run report)\n",
    );
}

#[test]
fn nothing_left_after_cleaning() {
    expect(
        &case_with("id,a,b\n1,,x\n2,3,\n3,NA,NULL\n", ""),
        3,
        "error: bad input data in <tmp>/in.csv: no rows left after cleaning: 3 rows read, 3 dropped for nulls (rows with nulls by column: a: 2, b: 2), 0 dropped as non-finite\n  \
         hint: restrict [clean] drop_nulls to the columns that must be present, e.g. drop_nulls = [\"text\"], or fix input.csv.null_values\n",
    );
}

#[test]
fn unknown_config_key() {
    let case = case_with("id,x\n1,2\n", "");
    case.write(
        "pipeline.toml",
        format!(
            "name = \"t\"\n[input]\nuri = \"{}\"\n[output]\nuri = \"o\"\nshard_rows = 5\n",
            case.path("in.csv").display()
        ),
    );
    expect(
        &case,
        2,
        "error: invalid pipeline <tmp>/pipeline.toml:\n  \
         - line 6, column 1: unknown key `shard_rows` in [output], did you mean `shard_max_rows`?\n  \
         hint: fix the pipeline file (docs/reference.md lists every key); `prep validate` lists every problem\n",
    );
}

#[test]
fn output_exists_without_overwrite() {
    let case = case_with("id,x\n1,2\n", "");
    case.run(&[]).success();
    assert_eq!(
        failure(&case, &[]),
        (
            2,
            "error: output <tmp>/out (holds _SUCCESS, manifest.json, part-00000.jsonl) already exists\n  \
             hint: pass --overwrite to replace it, or write elsewhere (`prep run`: --set output.uri=...; `prep apply`: another --output)\n"
                .to_string()
        )
    );
}

/// The cause is the OS's wording, so only on Linux.
#[cfg(target_os = "linux")]
#[test]
fn storage_error_shows_its_cause() {
    let case = case_with("id,x\n1,2\n", "");
    case.write(
        "pipeline.toml",
        format!(
            "name = \"t\"\n[input]\nuri = \"{0}\"\n[output]\nuri = \"{0}/out\"\n",
            case.path("in.csv").display()
        ),
    );
    expect(
        &case,
        4,
        "error: storage error while creating the output directory <tmp>/in.csv/out\n  \
         caused by: Not a directory (os error 20)\n",
    );
}

#[test]
fn json_log_format_carries_the_same_text() {
    let case = case_with("id,price\n1,1.0\n2,inf\n", "");
    let (code, err) = failure(&case, &["--log-format", "json"]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect(&err);
    assert_eq!(
        v,
        serde_json::json!({
            "level": "ERROR",
            "message": "bad input data in <tmp>/in.csv, line 3, column `price`: non-finite value inf in a column that is scaled",
            "caused_by": [],
            "hint": "fix the value upstream, or set [clean] non_finite = \"drop\" to drop such rows (they are counted in the run report)",
            "exit_code": 3,
        })
    );
}

#[test]
fn csv_file_without_a_header_and_header_not_utf8() {
    expect(
        &case_with("", ""),
        3,
        "error: bad input data in <tmp>/in.csv: the file is empty: it has no header and no rows\n  \
         hint: check that the upload finished; a CSV input starts with its header line (or set input.csv.header = false and give at least one row)\n",
    );
    expect(
        &case_with(&b"id,caf\xe9\n1,2\n"[..], ""),
        3,
        "error: bad input data in <tmp>/in.csv, line 1: header field 2 is not valid UTF-8 (byte 0xE9 at byte 4 of the field)\n  \
         hint: prep reads UTF-8; convert the file first, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`\n",
    );
}

#[test]
fn a_scaled_column_with_a_word_names_the_scale_setting() {
    let mut data = String::from("id,x\n");
    for i in 0..30 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("30,oops\n");
    expect(
        &case_with(&data, "chunk_rows = 10\n[scale]\ncolumns = [\"x\"]"),
        3,
        "error: bad input data in <tmp>/in.csv, line 32, column `x`: value \"oops\" does not fit the column's type float64 (read as float64 because the column is scaled)\n  \
         hint: fix the value upstream, add it to input.csv.null_values if it means missing, or stop scaling `x` (scale.exclude)\n",
    );
}
