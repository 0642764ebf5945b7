//! `prep inspect URI`: schema, row count, and per-column nulls and
//! min/max/mean/std, streamed chunk by chunk in bounded memory.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use polars::prelude::*;
use serde::Serialize;

use crate::columns::is_numeric;
use crate::error::{PrepError, Result};
use crate::plan::InputPlan;
use crate::source::Source;
use crate::stats::Moments;
use crate::store::list_inputs;

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

pub fn inspect_data(uri: &str) -> Result<Inspection> {
    let files = list_inputs(uri, &crate::plan::StoragePlan::default())?;
    let plan = InputPlan::defaults(uri);
    let mut source = Source::new(files.clone(), &plan, Arc::new(AtomicBool::new(false)));
    let mut accs: Vec<Acc> = Vec::new();
    let mut rows = 0u64;
    source.for_each_chunk(&mut |chunk, _| {
        let df = chunk.df;
        if accs.is_empty() {
            accs = (0..df.width())
                .map(|_| Acc {
                    nulls: 0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    moments: Moments::default(),
                })
                .collect();
        }
        rows += df.height() as u64;
        for (acc, col) in accs.iter_mut().zip(df.columns()) {
            acc.nulls += col.null_count() as u64;
            if is_numeric(col.dtype()) {
                let f = col.cast(&DataType::Float64).map_err(|e| {
                    PrepError::polars(format!("reading column `{}`", col.name()), e)
                })?;
                let ca = f
                    .f64()
                    .map_err(|e| PrepError::polars("reading a column", e))?;
                let mut values = Vec::with_capacity(ca.len());
                for v in ca.iter().flatten() {
                    if v.is_nan() {
                        acc.nulls += 1;
                        continue;
                    }
                    acc.min = acc.min.min(v);
                    acc.max = acc.max.max(v);
                    if v.is_finite() {
                        values.push(v);
                    }
                }
                acc.moments.update(&values);
            }
        }
        Ok(())
    })?;
    let schema = source.schema.map(|s| s.schema).unwrap_or_default();
    let columns = schema
        .iter()
        .enumerate()
        .map(|(i, (name, dtype))| {
            let numeric = is_numeric(dtype);
            let acc = accs.get(i);
            let has = |a: &&Acc| numeric && a.moments.count > 0;
            ColumnSummary {
                name: name.to_string(),
                dtype: dtype.to_string(),
                nulls: acc.map_or(0, |a| a.nulls),
                min: acc.filter(has).map(|a| a.min),
                max: acc.filter(has).map(|a| a.max),
                mean: acc.filter(has).map(|a| a.moments.mean()),
                std: acc.filter(has).map(|a| a.moments.var().sqrt()),
            }
        })
        .collect();
    Ok(Inspection {
        uri: uri.to_string(),
        objects: files.iter().map(|f| f.uri.clone()).collect(),
        bytes: files.iter().map(|f| f.size).sum(),
        rows,
        columns,
    })
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
