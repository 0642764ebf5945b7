//! Parquet input read again (`second_pass = "reread"`): the fit and quantile
//! refinement passes decode only the columns they read, and read a
//! null-checked text column for its nulls alone. Whatever they skip, the
//! output must equal a spill run's, which reads every column once.

use polars::prelude::*;

use crate::common::Case;

/// 400 rows in row groups of 70, nulls in the text column (which no step
/// reads), NaN and nulls in a robust-scaled float, a standard-scaled int.
fn parquet_input(case: &Case) {
    let n = 400usize;
    let text: Vec<Option<String>> = (0..n)
        .map(|i| (i % 9 != 4).then(|| format!("review {i}, \"quoted\" words")))
        .collect();
    let x: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 13 {
            5 => None,
            7 => Some(f64::NAN),
            _ => Some((i * 37 % 101) as f64 * 0.25),
        })
        .collect();
    let y: Vec<Option<i64>> = (0..n as i64).map(|i| Some(i * 3 % 17)).collect();
    let id: Vec<i64> = (0..n as i64).collect();
    let mut df = df!("id" => id, "text" => text, "x" => x, "y" => y).unwrap();
    let path = case.path("in.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .with_row_group_size(Some(70))
        .finish(&mut df)
        .unwrap();
}

fn run(second_pass: &str) -> (Case, Vec<(String, Vec<u8>)>) {
    let case = Case::new();
    parquet_input(&case);
    case.write(
        "pipeline.toml",
        format!(
            "name = \"p\"\n[input]\nuri = \"{}\"\nchunk_rows = 60\nsecond_pass = \"{second_pass}\"\n\
             [clean]\ndrop_nulls = \"any\"\n\
             [[scale]]\ncolumns = [\"x\"]\nmethod = \"robust\"\n\
             [[scale]]\ncolumns = [\"y\"]\n\
             [output]\nuri = \"{}\"\nformat = \"jsonl\"\nshard_max_rows = 150\n",
            case.path("in.parquet").display(),
            case.path("out").display()
        ),
    );
    case.run(&[]).success();
    let mut shards: Vec<(String, Vec<u8>)> = std::fs::read_dir(case.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    shards.sort();
    (case, shards)
}

#[test]
fn a_parquet_reread_that_skips_columns_equals_a_spill_run() {
    let (reread, reread_shards) = run("reread");
    let (_spill, spill_shards) = run("spill");
    assert_eq!(
        reread_shards.len(),
        3,
        "{:?}",
        reread_shards.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    assert_eq!(reread_shards, spill_shards);
    // The rows dropped for a null text, a null x or a NaN x are gone, the
    // others kept with their text intact.
    let rows = reread.rows();
    let kept: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let want: Vec<i64> = (0..400i64)
        .filter(|i| i % 9 != 4 && i % 13 != 5 && i % 13 != 7)
        .collect();
    assert_eq!(kept, want);
    assert_eq!(rows[0]["text"], "review 0, \"quoted\" words");
}

/// Overwrites the text column of the input's row group 3 with 0xFF bytes.
/// Returns the file, the rows before that row group, and its rows as an
/// error names them (1-based, `rows A-B`).
fn damage_text_of_group_3(case: &Case) -> (std::path::PathBuf, usize, String) {
    let path = case.path("in.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let meta = polars_parquet::read::read_metadata(&mut f).unwrap();
    assert!(meta.row_groups.len() >= 5);
    let before: usize = meta.row_groups[..3].iter().map(|g| g.num_rows()).sum();
    let rows = format!(
        "rows {}-{}",
        before + 1,
        before + meta.row_groups[3].num_rows()
    );
    let text = meta.row_groups[3]
        .parquet_columns()
        .iter()
        .find(|c| c.descriptor().path_in_schema[0].as_str() == "text")
        .unwrap()
        .byte_range();
    bytes[text.start as usize..text.end as usize].fill(0xFF);
    std::fs::write(&path, bytes).unwrap();
    (path, before, rows)
}

/// Runs a pipeline over the damaged input with `clean` and `output` (TOML
/// lines of those tables), and checks the failure: bad input (exit 3)
/// naming the file and `rows`, and no `_SUCCESS`.
fn fails_naming_the_rows(
    case: &Case,
    path: &std::path::Path,
    rows: &str,
    clean: &str,
    output: &str,
) {
    case.write(
        "pipeline.toml",
        format!(
            "name = \"p\"\n[input]\nuri = \"{}\"\nchunk_rows = 60\n\
             [clean]\n{clean}\n[[scale]]\ncolumns = [\"y\"]\n\
             [output]\nuri = \"{}\"\nformat = \"jsonl\"\n{output}\n",
            path.display(),
            case.path("out").display()
        ),
    );
    let a = case.run(&[]).code(3);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("in.parquet"), "{err}");
    // The damaged row group's rows (1-based).
    assert!(err.contains(rows), "{rows} in {err}");
    assert!(!case.has_success(), "no _SUCCESS after a failure");
}

/// A damaged row group in the middle of a file, read by several decoder
/// threads: bad input (exit 3) naming the file, and no `_SUCCESS`.
#[test]
fn a_damaged_row_group_is_bad_input_naming_the_file() {
    let case = Case::new();
    parquet_input(&case);
    let (path, _, rows) = damage_text_of_group_3(&case);
    fails_naming_the_rows(&case, &path, &rows, "drop_nulls = \"any\"", "");
}

/// A row group whose text column is damaged, where only the transform pass
/// reads that column (the fit checks nulls in `y` alone): bad input naming
/// the file and rows, no `_SUCCESS`, and the shard that was open when the
/// read failed is discarded, not committed with the rows before the damage.
#[test]
fn a_row_group_damaged_where_only_the_transform_reads_keeps_no_partial_shard() {
    let case = Case::new();
    parquet_input(&case);
    let (path, before, rows) = damage_text_of_group_3(&case);
    let clean = "drop_nulls = [\"y\"]";
    fails_naming_the_rows(&case, &path, &rows, clean, "shard_max_rows = 100");
    // The rows before the damaged row group fill whole shards of 100; the
    // next shard was open (with the rest of them) when the read failed.
    let names: Vec<String> = std::fs::read_dir(case.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("inprogress")),
        "the open shard's temporary file is gone: {names:?}"
    );
    let mut shards: Vec<String> = names
        .into_iter()
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    shards.sort();
    assert!(before % 100 != 0, "a shard is open at the damage: {before}");
    let whole: Vec<String> = (0..before / 100)
        .map(|k| format!("part-{k:05}.jsonl"))
        .collect();
    assert_eq!(shards, whole);
    for s in &shards {
        let text = std::fs::read_to_string(case.path("out").join(s)).unwrap();
        assert_eq!(text.lines().count(), 100, "{s} is whole");
    }
}
