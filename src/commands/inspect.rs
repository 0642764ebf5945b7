//! `prep inspect URI`: schema, row count, and per-column nulls and
//! min/max/mean/std, streamed chunk by chunk in bounded memory.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use polars::prelude::*;
use serde::Serialize;

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::job::listing::{list_data, tab_when_named_so};
use crate::pipeline::plan::{type_name, ColumnType, InputFormat, InputPlan};
use crate::read::parquet_input::ParquetInput;
use crate::read::source::format_of;
use crate::read::source::Source;
use crate::transform::columns::is_numeric;
use crate::transform::stats::Moments;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnSummary {
    pub name: String,
    pub dtype: String,
    pub nulls: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0), as the scaler uses.
    pub std: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub uri: String,
    pub objects: Vec<String>,
    pub bytes: u64,
    pub rows: u64,
    pub columns: Vec<ColumnSummary>,
}

struct Acc {
    nulls: u64,
    min: f64,
    max: f64,
    moments: Moments,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            nulls: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            moments: Moments::default(),
        }
    }

    /// Counts nulls (and NaN) and, for numeric columns, min/max/moments.
    fn add(&mut self, col: &Column) -> Result<()> {
        self.nulls += col.null_count() as u64;
        if !is_numeric(col.dtype()) {
            return Ok(());
        }
        let f = col
            .cast(&DataType::Float64)
            .map_err(|e| PrepError::polars(format!("reading column `{}`", col.name()), e))?;
        let ca = f
            .f64()
            .map_err(|e| PrepError::polars("reading a column", e))?;
        let mut values = Vec::with_capacity(ca.len());
        for v in ca.iter().flatten() {
            if v.is_nan() {
                self.nulls += 1;
                continue;
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            if v.is_finite() {
                values.push(v);
            }
        }
        self.moments.update(&values);
        Ok(())
    }
}

/// Parquet: the schema, row count and the null counts of non-numeric
/// columns come from the footers; only the numeric columns are read (for
/// min/max/mean/std).
fn inspect_parquet(uri: &str, files: &[crate::storage::InputObject]) -> Result<Inspection> {
    let mut schema: Option<Schema> = None;
    let mut rows = 0u64;
    let mut accs: Vec<Acc> = Vec::new();
    for obj in files {
        let input = ParquetInput::open(obj)?;
        let names: Vec<String> = input.schema.iter_names().map(|s| s.to_string()).collect();
        if schema.is_none() {
            accs = names.iter().map(|_| Acc::new()).collect();
            schema = Some(input.schema.clone());
        }
        let fixed = schema.as_ref().expect("set above");
        let file_names: Vec<&str> = fixed.iter_names().map(|s| s.as_str()).collect();
        if file_names != names.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(PrepError::bad_data(
                DataLocation::file(&obj.uri),
                DataError::InspectColumnsDiffer {
                    first: files[0].uri.clone(),
                },
            ));
        }
        rows += input.num_rows as u64;
        let footer_nulls = input.footer_null_counts();
        let mut scan = Vec::new();
        for (i, (name, dtype)) in fixed.iter().enumerate() {
            match footer_nulls[i] {
                Some(n) if !is_numeric(dtype) => accs[i].nulls += n,
                _ => scan.push((i, name.to_string())),
            }
        }
        if scan.is_empty() {
            continue;
        }
        let cols: Vec<String> = scan.iter().map(|(_, n)| n.clone()).collect();
        let mut offset = 0;
        while offset < input.num_rows {
            let len = 50_000.min(input.num_rows - offset);
            let df = input.read_columns(offset, len, &cols)?;
            for ((i, _), col) in scan.iter().zip(df.columns()) {
                accs[*i].add(col)?;
            }
            offset += len;
        }
    }
    Ok(summarize(
        uri,
        files,
        rows,
        &schema.unwrap_or_default(),
        &accs,
    ))
}

pub fn inspect_data(uri: &str) -> Result<Inspection> {
    let files = list_data(uri, &crate::pipeline::plan::StoragePlan::default())?;
    if files
        .iter()
        .all(|f| matches!(format_of(f, None), Ok(InputFormat::Parquet)))
    {
        return inspect_parquet(uri, &files);
    }
    // Types are inferred from the first chunk; a later value that does not
    // fit widens its column (int64 → float64 → string) and the files are
    // read again: inspect has no [input.schema] to pin types with.
    let mut plan = InputPlan::defaults(uri);
    tab_when_named_so(&mut plan.csv, &files);
    for _ in 0..WIDENINGS {
        match inspect_csv(uri, &files, &plan) {
            Err(PrepError::BadData { kind, .. }) if wider(&kind).is_some() => {
                let (column, to) = wider(&kind).expect("checked");
                plan.schema_overrides.retain(|(c, _)| *c != column);
                plan.schema_overrides.push((column, to));
            }
            done => return done,
        }
    }
    inspect_csv(uri, &files, &plan)
}

/// Columns whose inferred type `inspect` widens before it gives up.
const WIDENINGS: usize = 16;

/// The column a type mismatch is about and the type that holds its value.
fn wider(kind: &DataError) -> Option<(String, ColumnType)> {
    let DataError::TypeMismatch {
        column,
        value,
        expected,
        ..
    } = kind
    else {
        return None;
    };
    let to = match expected {
        DataType::Int64 if value.trim().parse::<f64>().is_ok() => ColumnType::Float64,
        DataType::String => return None,
        _ => ColumnType::String,
    };
    Some((column.clone(), to))
}

fn inspect_csv(
    uri: &str,
    files: &[crate::storage::InputObject],
    plan: &InputPlan,
) -> Result<Inspection> {
    let mut source = Source::new(files.to_vec(), plan, Arc::new(AtomicBool::new(false)));
    let mut accs: Vec<Acc> = Vec::new();
    let mut rows = 0u64;
    source.for_each_chunk(&mut |chunk, _| {
        let df = chunk.df;
        if accs.is_empty() {
            accs = (0..df.width()).map(|_| Acc::new()).collect();
        }
        rows += df.height() as u64;
        for (acc, col) in accs.iter_mut().zip(df.columns()) {
            acc.add(col)?;
        }
        Ok(())
    })?;
    let schema = source.schema.map(|s| s.schema).unwrap_or_default();
    Ok(summarize(uri, files, rows, &schema, &accs))
}

fn summarize(
    uri: &str,
    files: &[crate::storage::InputObject],
    rows: u64,
    schema: &Schema,
    accs: &[Acc],
) -> Inspection {
    let columns = schema
        .iter()
        .enumerate()
        .map(|(i, (name, dtype))| {
            let numeric = is_numeric(dtype);
            let acc = accs.get(i);
            let has = |a: &&Acc| numeric && a.moments.count > 0;
            ColumnSummary {
                name: name.to_string(),
                dtype: type_name(dtype),
                nulls: acc.map_or(0, |a| a.nulls),
                min: acc.filter(has).map(|a| a.min),
                max: acc.filter(has).map(|a| a.max),
                mean: acc.filter(has).map(|a| a.moments.mean()),
                std: acc.filter(has).map(|a| a.moments.var().sqrt()),
            }
        })
        .collect();
    Inspection {
        uri: uri.to_string(),
        objects: files.iter().map(|f| f.uri.clone()).collect(),
        bytes: files.iter().map(|f| f.size).sum(),
        rows,
        columns,
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "".into(),
        Some(x) if x != 0.0 && (x.abs() >= 1e7 || x.abs() < 1e-3) => format!("{x:.4e}"),
        Some(x) => format!("{x:.4}"),
    }
}

pub fn inspect(uri: &str, json: bool) -> Result<String> {
    let ins = inspect_data(uri)?;
    if json {
        let mut s = serde_json::to_string_pretty(&ins).expect("serializes");
        s.push('\n');
        return Ok(s);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} object(s), {}, {} rows, {} columns\n",
        ins.uri,
        ins.objects.len(),
        bytesize::ByteSize(ins.bytes),
        ins.rows,
        ins.columns.len()
    );
    let header = ["column", "type", "nulls", "min", "max", "mean", "std"];
    let rows: Vec<[String; 7]> = ins
        .columns
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.dtype.clone(),
                c.nulls.to_string(),
                num(c.min),
                num(c.max),
                num(c.mean),
                num(c.std),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 {
                    format!("{:<w$}", c, w = widths[i])
                } else {
                    format!("{:>w$}", c, w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(s, "{}", line(&header.map(String::from)));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    Ok(s)
}
