//! Resolves the column names in the plan against the data's schema: which
//! columns are checked for nulls, which each impute / encode / scale group
//! covers (and why others are not scaled), and the output projection and
//! renames.
//!
//! This runs once the schema is known (first CSV chunk or Parquet footer),
//! before any row is cleaned, so a typo fails fast with "did you mean", and
//! a setting only the types can rule out (a string column given to `mean`)
//! is a config error naming the group's line.

use polars::prelude::{DataType, Schema};

use crate::error::{missing_column, DataError, DataLocation, NamedIn, PrepError, Result};
use crate::pipeline::plan::{
    type_name, DropNulls, ImputeStrategy, OutputFormat, Plan, Scalar, ScaleColumns,
};

/// The columns each fitted step reads, per group, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepColumns {
    pub impute: Vec<Vec<String>>,
    pub encode: Vec<Vec<String>>,
    pub scale: Vec<Vec<String>>,
    /// Every column a step reads, with its input type, in input order.
    pub inputs: Vec<(String, DataType)>,
}

impl StepColumns {
    pub fn is_imputed(&self, c: &str) -> bool {
        self.impute.iter().flatten().any(|x| x == c)
    }
    pub fn is_encoded(&self, c: &str) -> bool {
        self.encode.iter().flatten().any(|x| x == c)
    }
    pub fn dtype(&self, c: &str) -> DataType {
        self.inputs
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, d)| d.clone())
            .unwrap_or(DataType::Null)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedColumns {
    /// Columns in which a null (or NaN) drops the row.
    pub null_checked: Vec<String>,
    /// Columns in which ±inf fails or drops the row (`non_finite`): the
    /// scaled and the imputed numeric ones.
    pub finite_checked: Vec<String>,
    /// Columns that are scaled (any method), in input order.
    pub scaled: Vec<String>,
    /// Columns not scaled, with the reason (for `validate`'s plan).
    pub not_scaled: Vec<(String, String)>,
    /// Output columns in order: (input name, output name).
    pub output: Vec<(String, String)>,
    pub steps: StepColumns,
}

pub fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric()
}

fn config(plan: &Plan, at: &str, msg: String) -> PrepError {
    let at = if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    };
    PrepError::Config {
        file: plan.file.clone(),
        problems: vec![format!("{at}{msg}")],
    }
}

/// Whether `fill_value` fits a column of `dtype` (encoded: keeps its type).
fn fill_fits(v: &Scalar, dtype: &DataType, encoded: bool) -> bool {
    match v {
        Scalar::Int(_) => is_numeric(dtype),
        Scalar::Float(f) => {
            is_numeric(dtype) && (!encoded || (dtype.is_float() || f.fract() == 0.0))
        }
        Scalar::Str(_) => dtype == &DataType::String,
        Scalar::Bool(_) => dtype == &DataType::Boolean,
    }
}

/// Every column named in a `columns = [...]` list of these groups.
fn listed_in<'a>(groups: impl Iterator<Item = &'a ScaleColumns>) -> Vec<String> {
    groups
        .filter_map(|c| match c {
            ScaleColumns::List(l) => Some(l.iter().cloned()),
            ScaleColumns::Numeric => None,
        })
        .flatten()
        .collect()
}

/// What `columns = "numeric"` picks: the numeric columns, in input order,
/// that none of `skip` names (the group's exclusions, columns other groups
/// list, encoded ones).
fn numeric_columns(names: &[&str], schema: &Schema, skip: &[&[String]]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            is_numeric(schema.get(n).expect("known"))
                && !skip.iter().any(|list| list.iter().any(|s| s == *n))
        })
        .map(|s| s.to_string())
        .collect()
}

/// What a JSON Lines or CSV shard cannot hold, as its type is named to
/// the user (`None`: every other type is written as text or a number; a
/// list as a JSON array and a struct as a JSON object in JSON Lines).
fn text_cannot_hold(dtype: &DataType, format: OutputFormat) -> Option<String> {
    match dtype {
        DataType::List(inner) if format == OutputFormat::Jsonl => {
            text_cannot_hold(inner, format).map(|t| format!("a list of {t}"))
        }
        DataType::List(_) => Some(format!("a list ({})", type_name(dtype))),
        DataType::Struct(fields) if format == OutputFormat::Jsonl => fields.iter().find_map(|f| {
            text_cannot_hold(f.dtype(), format)
                .map(|t| format!("a struct whose field `{}` is {t}", f.name()))
        }),
        DataType::Struct(_) => Some(format!("a struct ({})", type_name(dtype))),
        DataType::Binary | DataType::BinaryOffset => Some("binary (bytes, not text)".into()),
        DataType::Duration(_) => Some(format!("a duration ({dtype})")),
        _ => None,
    }
}

/// Exit 3 naming the first of `columns` (in `file`'s `schema`) that a
/// `format` shard cannot hold; `Ok` for Parquet, which holds every type.
pub fn check_writable<'a>(
    schema: &Schema,
    columns: impl Iterator<Item = &'a str>,
    format: OutputFormat,
    file: &str,
) -> Result<()> {
    check_text(schema, columns, format, file, false)
}

/// As [`check_writable`], for the JSON Lines of `_rejects/`, which hold
/// every input column.
pub fn check_rejects_writable(schema: &Schema, file: &str) -> Result<()> {
    let columns = schema.iter_names().map(|n| n.as_str());
    check_text(schema, columns, OutputFormat::Jsonl, file, true)
}

fn check_text<'a>(
    schema: &Schema,
    mut columns: impl Iterator<Item = &'a str>,
    format: OutputFormat,
    file: &str,
    rejects: bool,
) -> Result<()> {
    let name = match format {
        OutputFormat::Parquet => return Ok(()),
        OutputFormat::Jsonl => "JSON Lines",
        OutputFormat::Csv => "CSV",
    };
    let unwritable = columns.find_map(|c| {
        let what = text_cannot_hold(schema.get(c)?, format)?;
        Some((c, what))
    });
    match unwritable {
        None => Ok(()),
        Some((column, dtype)) => Err(PrepError::bad_data(
            DataLocation::file(file).column(column),
            DataError::UnwritableType {
                column: column.to_string(),
                dtype,
                format: name,
                rejects,
            },
        )),
    }
}

pub fn resolve(plan: &Plan, schema: &Schema, file: &str) -> Result<ResolvedColumns> {
    resolve_with(plan, schema, file, true)
}

/// As [`resolve`]; with `types_known = false` (`validate` on CSV, whose
/// types are inferred only when a run reads its first chunk) no check
/// depends on a column's type.
pub fn resolve_with(
    plan: &Plan,
    schema: &Schema,
    file: &str,
    types_known: bool,
) -> Result<ResolvedColumns> {
    let names: Vec<&str> = schema.iter_names().map(|s| s.as_str()).collect();
    let check = |col: &str, setting: &'static str| -> Result<()> {
        if schema.get(col).is_none() {
            return Err(missing_column(
                file,
                col,
                NamedIn::Setting(setting),
                names.iter().copied(),
            ));
        }
        Ok(())
    };
    let in_order = |set: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| set.iter().any(|s| s == *n))
            .map(|s| s.to_string())
            .collect()
    };

    // [encode]: explicit lists of string, bool or integer columns.
    let mut encode = Vec::new();
    for g in plan.encode.iter() {
        for c in &g.columns {
            check(c, "encode.columns")?;
            let d = schema.get(c).expect("checked");
            if types_known && !(d == &DataType::String || d == &DataType::Boolean || d.is_integer())
            {
                return Err(config(plan, &g.at, format!(
                    "encode.columns lists `{c}`, but in {file} it is {}; only string, bool or integer columns are encoded (pin it with [input.schema] {c} = \"string\" if it holds categories)",
                    type_name(d)
                )));
            }
        }
        encode.push(in_order(&g.columns));
    }
    let encoded: Vec<String> = encode.iter().flatten().cloned().collect();

    // [impute]
    let listed = listed_in(plan.impute.iter().map(|g| &g.columns));
    let mut impute = Vec::new();
    for g in plan.impute.iter() {
        for c in &g.exclude {
            check(c, "impute.exclude")?;
        }
        let cols = match &g.columns {
            ScaleColumns::List(l) => {
                for c in l {
                    check(c, "impute.columns")?;
                }
                in_order(l)
            }
            ScaleColumns::Numeric => numeric_columns(&names, schema, &[&g.exclude, &listed]),
        };
        for c in &cols {
            let d = schema.get(c).expect("checked");
            let enc = encoded.contains(c);
            match &g.strategy {
                ImputeStrategy::Mean | ImputeStrategy::Median if enc && types_known => {
                    return Err(config(plan, &g.at, format!(
                        "column `{c}` is encoded, so it cannot be imputed with strategy = {:?} (that makes it a float); add it to impute.exclude and impute it with \"most_frequent\" or \"constant\" in a group of its own",
                        g.strategy.name()
                    )))
                }
                ImputeStrategy::Mean | ImputeStrategy::Median if types_known && !is_numeric(d) => {
                    return Err(config(plan, &g.at, format!(
                        "impute strategy = {:?} needs numeric columns, but `{c}` is {} in {file}; use \"most_frequent\" or \"constant\" for it",
                        g.strategy.name(),
                        type_name(d)
                    )))
                }
                ImputeStrategy::Constant(v) if types_known && !fill_fits(v, d, enc) => {
                    return Err(config(plan, &g.at, format!(
                        "fill_value {v} does not fit column `{c}`, which is {} in {file}; use a {} fill_value",
                        type_name(d),
                        if is_numeric(d) { "numeric" } else { "string" }
                    )))
                }
                _ => {}
            }
            if let DropNulls::Columns(dn) = &plan.clean.drop_nulls {
                if dn.contains(c) {
                    return Err(config(plan, &g.at, format!(
                        "column `{c}` is both imputed and in clean.drop_nulls; a null there is either filled or drops the row, so remove it from one of them"
                    )));
                }
            }
        }
        impute.push(cols);
    }
    let imputed: Vec<String> = impute.iter().flatten().cloned().collect();

    let null_checked = match &plan.clean.drop_nulls {
        DropNulls::Any => names
            .iter()
            .filter(|n| !imputed.iter().any(|i| i == *n))
            .map(|s| s.to_string())
            .collect(),
        DropNulls::Columns(cols) => {
            for c in cols {
                check(c, "clean.drop_nulls")?;
            }
            cols.clone()
        }
    };

    // [scale]
    let scale_listed = listed_in(plan.scale.iter().map(|g| &g.columns));
    let mut scale = Vec::new();
    for g in plan.scale.iter() {
        for c in &g.exclude {
            check(c, "scale.exclude")?;
        }
        let cols = match &g.columns {
            ScaleColumns::Numeric => {
                numeric_columns(&names, schema, &[&g.exclude, &encoded, &scale_listed])
            }
            ScaleColumns::List(cols) => {
                for c in cols {
                    check(c, "scale.columns")?;
                    let dtype = schema.get(c).expect("checked above");
                    if types_known && !is_numeric(dtype) {
                        return Err(PrepError::Config {
                            file: plan.file.clone(),
                            problems: vec![format!(
                                "scale.columns lists `{c}`, but in {file} it is {dtype}, not numeric; remove it from scale.columns, or pin its type with [input.schema] {c} = \"float64\" if it should be numeric"
                            )],
                        });
                    }
                }
                in_order(cols)
            }
        };
        scale.push(cols);
    }
    let scaled = in_order(&scale.iter().flatten().cloned().collect::<Vec<_>>());
    let mut not_scaled = Vec::new();
    let any_numeric = plan
        .scale
        .iter()
        .any(|g| g.columns == ScaleColumns::Numeric);
    for (name, dtype) in schema.iter() {
        let n = name.as_str();
        if scaled.iter().any(|s| s == n) {
            continue;
        }
        let why = if encoded.iter().any(|e| e == n) {
            "encoded".to_string()
        } else if any_numeric && plan.scale.iter().any(|g| g.exclude.iter().any(|e| e == n)) {
            "excluded by scale.exclude".to_string()
        } else if any_numeric && !is_numeric(dtype) {
            format!("not numeric ({dtype})")
        } else {
            "not listed in scale.columns".to_string()
        };
        not_scaled.push((n.to_string(), why));
    }
    let mut finite = scaled.clone();
    finite.extend(
        imputed
            .iter()
            .filter(|c| is_numeric(schema.get(c.as_str()).expect("known")) && !encoded.contains(c))
            .cloned(),
    );
    let finite_checked = in_order(&finite);

    let mut read: Vec<String> = imputed.clone();
    read.extend(encoded.iter().cloned());
    read.extend(scaled.iter().cloned());
    let inputs = in_order(&read)
        .into_iter()
        .map(|c| {
            let d = schema.get(c.as_str()).expect("known").clone();
            (c, d)
        })
        .collect();

    let out_cols: Vec<String> = match &plan.output.columns {
        Some(cols) => {
            for c in cols {
                check(c, "output.columns")?;
            }
            cols.clone()
        }
        None => names.iter().map(|s| s.to_string()).collect(),
    };
    if types_known {
        let format = plan.output.format;
        check_writable(schema, out_cols.iter().map(String::as_str), format, file)?;
        if plan.output.rejects {
            check_rejects_writable(schema, file)?;
        }
    }
    for (from, _) in &plan.output.rename {
        if !out_cols.contains(from) {
            if schema.get(from.as_str()).is_none() {
                check(from, "output.rename")?;
            }
            return Err(PrepError::Config {
                file: plan.file.clone(),
                problems: vec![format!(
                    "output.rename renames `{from}`, which output.columns leaves out"
                )],
            });
        }
    }
    let output: Vec<(String, String)> = out_cols
        .into_iter()
        .map(|c| {
            let to = plan
                .output
                .rename
                .iter()
                .find(|(f, _)| *f == c)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| c.clone());
            (c, to)
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (_, to) in &output {
        if !seen.insert(to) {
            return Err(PrepError::Config {
                file: plan.file.clone(),
                problems: vec![format!(
                    "two output columns would be named `{to}`; adjust output.rename"
                )],
            });
        }
    }
    Ok(ResolvedColumns {
        null_checked,
        finite_checked,
        scaled,
        not_scaled,
        output,
        steps: StepColumns {
            impute,
            encode,
            scale,
            inputs,
        },
    })
}
