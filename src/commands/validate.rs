//! `prep validate`: checks the pipeline and prints the resolved plan.
//!
//! It reads no row data: it lists the input (names and sizes), reads the CSV
//! header line or the Parquet footer of the first object to check every
//! column the config names, prints each fitted step with its columns, and
//! estimates the shard count (exact for Parquet, from the average size of
//! the first records for CSV).

use std::fmt::Write as _;

use polars::prelude::*;

use crate::error::Result;
use crate::job::listing::{list_data, tab_when_named_so};
use crate::pipeline::config::load;
use crate::pipeline::plan::{
    DropNulls, EncodeMethod, ImputeStrategy, InputFormat, MinFrequency, Plan, ScaleColumns,
    ScaleMethod,
};
use crate::read::chunker::open_chunker;
use crate::read::source::{dtype_for, format_of};
use crate::storage::InputObject;
use crate::transform::columns::{resolve_with, ResolvedColumns};

struct Peek {
    schema: Schema,
    types_known: bool,
    /// Exact row count (Parquet footers); `None` for CSV, whose rows are
    /// counted only by a run (validate reads no row data).
    rows: Option<u64>,
}

fn peek_csv(plan: &Plan, files: &[InputObject]) -> Result<Peek> {
    let obj = &files[0];
    let mut chunker = open_chunker(obj, &plan.input.csv)?;
    let first = chunker
        .first_record(plan.input.csv.has_header)?
        .unwrap_or_default();
    let names = crate::read::csv_types::column_names(first, plan.input.csv.has_header);
    let mut schema = Schema::with_capacity(names.len());
    for n in &names {
        let dtype = plan
            .input
            .schema_overrides
            .iter()
            .find(|(c, _)| c == n)
            .map(|(_, t)| dtype_for(*t))
            .unwrap_or(DataType::Float64);
        schema.with_column(PlSmallStr::from(n.as_str()), dtype);
    }
    Ok(Peek {
        schema,
        types_known: false,
        rows: None,
    })
}

fn peek_parquet(files: &[InputObject]) -> Result<Peek> {
    let mut rows = 0u64;
    let mut schema = None;
    for obj in files {
        let input = crate::read::parquet_input::ParquetInput::open(obj)?;
        rows += input.num_rows as u64;
        if schema.is_none() {
            schema = Some(input.schema.clone());
        }
    }
    Ok(Peek {
        schema: schema.unwrap_or_default(),
        types_known: true,
        rows: Some(rows),
    })
}

pub fn validate(pipeline: &str, sets: &[String]) -> Result<String> {
    let loaded = load(pipeline, sets)?;
    let mut plan = Plan::build(&loaded)?;
    let files = list_data(&plan.input.uri, &plan.storage)?;
    tab_when_named_so(&mut plan.input.csv, &files);
    let format = format_of(&files[0], plan.input.format)?;
    for f in &files[1..] {
        if format_of(f, plan.input.format)? != format {
            return Err(crate::error::PrepError::Usage {
                message: format!("{} and {} have different formats", files[0].uri, f.uri),
                hint: Some("narrow input.uri with a glob such as data/*.csv".into()),
            });
        }
    }
    let peek = match format {
        InputFormat::Csv => peek_csv(&plan, &files)?,
        InputFormat::Parquet => peek_parquet(&files)?,
    };
    let resolved = resolve_with(&plan, &peek.schema, &files[0].uri, peek.types_known)?;

    let mut s = String::new();
    let total: u64 = files.iter().map(|f| f.size).sum();
    let _ = writeln!(s, "pipeline  {} ({})", plan.name, plan.file);
    let _ = writeln!(
        s,
        "input     {} — {} {} file(s), {} ({} bytes), read in chunks of {} rows",
        plan.input.uri,
        files.len(),
        if format == InputFormat::Csv {
            "csv"
        } else {
            "parquet"
        },
        bytesize::ByteSize(total),
        total,
        plan.input.chunk_rows
    );
    for f in files.iter().take(20) {
        let _ = writeln!(
            s,
            "          {:>12}  {}",
            bytesize::ByteSize(f.size).to_string(),
            f.uri
        );
    }
    if files.len() > 20 {
        let _ = writeln!(s, "          … and {} more", files.len() - 20);
    }
    let names: Vec<&str> = peek.schema.iter_names().map(|n| n.as_str()).collect();
    let _ = writeln!(s, "columns   {} ({})", names.len(), names.join(", "));
    let _ = writeln!(
        s,
        "clean     drop rows with a null/NaN in {}; non-finite values: {:?}",
        match &plan.clean.drop_nulls {
            DropNulls::Any => "any column".to_string(),
            DropNulls::Columns(c) if c.is_empty() => "no column".to_string(),
            DropNulls::Columns(c) => c.join(", "),
        },
        plan.clean.non_finite
    );
    if plan.writes_scaler() {
        standard_only(&mut s, &plan, &resolved, &names, peek.types_known);
    } else {
        steps(&mut s, &plan, &resolved, &names, peek.types_known);
    }
    let out_cols: Vec<String> = resolved
        .output
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.clone()
            } else {
                format!("{a} as {b}")
            }
        })
        .collect();
    let max_rows = plan.output.shard_max_rows.get() as u64;
    let _ = writeln!(
        s,
        "output    {} — {} shards part-NNNNN.{}{}, ≤ {} rows{} each, at least {} shard(s); columns: {}",
        plan.output.uri,
        plan.output.format.extension(),
        plan.output.format.extension(),
        if plan.output.compression == crate::pipeline::plan::OutputCompression::Gzip { ".gz" } else { "" },
        max_rows,
        plan.output.shard_max_bytes.map(|b| format!(" and ≤ {}", bytesize::ByteSize(b))).unwrap_or_default(),
        plan.output.min_shards,
        out_cols.join(", ")
    );
    match peek.rows {
        Some(0) => {
            let _ = writeln!(s, "estimate  the input has no data rows");
        }
        Some(rows) => {
            let shards = rows
                .div_ceil(max_rows)
                .max(plan.output.min_shards.get() as u64);
            let _ = writeln!(
                s,
                "estimate  {rows} input rows → about {shards} shard(s) before cleaning"
            );
        }
        None => {
            let _ = writeln!(
                s,
                "estimate  CSV rows are counted when the run reads them (validate reads headers only)"
            );
        }
    }
    if plan.writes_scaler() {
        let _ = writeln!(s, "scaler    {}", plan.scaler_uri);
    }
    let _ = writeln!(s, "transform {}", plan.transform_uri);
    if plan.output.rejects {
        let _ = writeln!(
            s,
            "rejects   {}/_rejects/ (rows cleaning drops, JSON Lines)",
            plan.output.uri.trim_end_matches('/')
        );
    }
    let _ = writeln!(s, "ok");
    Ok(s)
}

/// The `scale` lines of a pipeline whose only step is one standard group
/// (as before `[impute]`/`[encode]` existed).
fn standard_only(
    s: &mut String,
    plan: &Plan,
    resolved: &ResolvedColumns,
    names: &[&str],
    types_known: bool,
) {
    let g = &plan.scale[0];
    let ScaleMethod::Standard {
        with_mean,
        with_std,
    } = g.method
    else {
        return;
    };
    if types_known || matches!(g.columns, ScaleColumns::List(_)) {
        let _ = writeln!(
            s,
            "scale     {} (with_mean={with_mean}, with_std={with_std})",
            resolved.scaled.join(", "),
        );
        for (c, why) in &resolved.not_scaled {
            let _ = writeln!(s, "          not scaled: {c} — {why}");
        }
    } else {
        let candidates: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !g.exclude.iter().any(|e| e == n))
            .collect();
        let _ = writeln!(
            s,
            "scale     the numeric columns among: {} (CSV types are inferred from the first chunk when the run starts)",
            candidates.join(", ")
        );
        for e in &g.exclude {
            let _ = writeln!(s, "          not scaled: {e} — excluded by scale.exclude");
        }
    }
}

/// One line per fitted step group, in stage order, with its columns.
fn steps(
    s: &mut String,
    plan: &Plan,
    resolved: &ResolvedColumns,
    names: &[&str],
    types_known: bool,
) {
    let cols = |list: &[String], sel: &ScaleColumns, exclude: &[String]| -> String {
        match (sel, types_known) {
            (ScaleColumns::Numeric, false) => {
                let c: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| !exclude.iter().any(|e| e == n))
                    .collect();
                format!("the numeric columns among: {} (CSV types are inferred from the first chunk when the run starts)", c.join(", "))
            }
            _ if list.is_empty() => "(no column)".to_string(),
            _ => list.join(", "),
        }
    };
    for (g, list) in plan.impute.iter().zip(&resolved.steps.impute) {
        let mut how = g.strategy.name().to_string();
        if let ImputeStrategy::Constant(v) = &g.strategy {
            how = format!("constant {v}");
        }
        let _ = writeln!(
            s,
            "impute    {how}{}: {}",
            if g.add_indicator {
                ", add_indicator (<col>_missing)"
            } else {
                ""
            },
            cols(list, &g.columns, &g.exclude)
        );
    }
    for (g, list) in plan.encode.iter().zip(&resolved.steps.encode) {
        let method = match g.method {
            EncodeMethod::OneHot => "onehot",
            EncodeMethod::Ordinal => "ordinal",
        };
        let minf = match g.min_frequency {
            MinFrequency::Count(n) => n.to_string(),
            MinFrequency::Fraction(f) => f.to_string(),
        };
        let _ = writeln!(
            s,
            "encode    {method} (min_frequency={minf}, max_categories={}, handle_unknown={}, max_distinct={}): {}",
            g.max_categories,
            g.handle_unknown.name(),
            g.max_distinct,
            list.join(", ")
        );
    }
    for (g, list) in plan.scale.iter().zip(&resolved.steps.scale) {
        let how = match g.method {
            ScaleMethod::Standard { with_mean, with_std } => format!("standard (with_mean={with_mean}, with_std={with_std})"),
            ScaleMethod::MinMax { feature_range, clip } => format!("minmax (feature_range=[{:?}, {:?}], clip={clip})", feature_range[0], feature_range[1]),
            ScaleMethod::MaxAbs => "maxabs".to_string(),
            ScaleMethod::Robust { quantile_range, with_centering, with_scaling, unit_variance } => format!(
                "robust (quantile_range=[{:?}, {:?}], with_centering={with_centering}, with_scaling={with_scaling}, unit_variance={unit_variance})",
                quantile_range[0], quantile_range[1]
            ),
        };
        let _ = writeln!(s, "scale     {how}: {}", cols(list, &g.columns, &g.exclude));
    }
    if types_known {
        for (c, why) in &resolved.not_scaled {
            let _ = writeln!(s, "          not scaled: {c} — {why}");
        }
    }
}
