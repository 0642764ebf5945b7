//! Resolves the column names in the plan against the data's schema: which
//! columns are checked for nulls, which are scaled (and why others are not),
//! and the output projection and renames.
//!
//! This runs once the schema is known (first CSV chunk or Parquet footer),
//! before any row is cleaned, so a typo fails fast with "did you mean".

use polars::prelude::{DataType, Schema};

use crate::error::{missing_column, NamedIn, PrepError, Result};
use crate::pipeline::plan::{DropNulls, Plan, ScaleColumns};

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedColumns {
    /// Columns in which a null (or NaN) drops the row.
    pub null_checked: Vec<String>,
    /// Columns that are standardized, in input order.
    pub scaled: Vec<String>,
    /// Columns not scaled, with the reason (for `validate`'s plan).
    pub not_scaled: Vec<(String, String)>,
    /// Output columns in order: (input name, output name).
    pub output: Vec<(String, String)>,
}

pub fn is_numeric(dtype: &DataType) -> bool {
    dtype.is_primitive_numeric()
}

pub fn resolve(plan: &Plan, schema: &Schema, file: &str) -> Result<ResolvedColumns> {
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

    let null_checked = match &plan.clean.drop_nulls {
        DropNulls::Any => names.iter().map(|s| s.to_string()).collect(),
        DropNulls::Columns(cols) => {
            for c in cols {
                check(c, "clean.drop_nulls")?;
            }
            cols.clone()
        }
    };

    for c in &plan.scale.exclude {
        check(c, "scale.exclude")?;
    }
    let mut scaled = Vec::new();
    let mut not_scaled = Vec::new();
    match &plan.scale.columns {
        ScaleColumns::Numeric => {
            for (name, dtype) in schema.iter() {
                if plan.scale.exclude.iter().any(|e| e == name.as_str()) {
                    not_scaled.push((name.to_string(), "excluded by scale.exclude".to_string()));
                } else if is_numeric(dtype) {
                    scaled.push(name.to_string());
                } else {
                    not_scaled.push((name.to_string(), format!("not numeric ({dtype})")));
                }
            }
        }
        ScaleColumns::List(cols) => {
            for c in cols {
                check(c, "scale.columns")?;
                let dtype = schema.get(c).expect("checked above");
                if !is_numeric(dtype) {
                    return Err(PrepError::Config {
                        file: plan.file.clone(),
                        problems: vec![format!(
                            "scale.columns lists `{c}`, but in {file} it is {dtype}, not numeric; remove it from scale.columns, or pin its type with [input.schema] {c} = \"float64\" if it should be numeric"
                        )],
                    });
                }
            }
            for (name, _) in schema.iter() {
                if cols.iter().any(|c| c == name.as_str()) {
                    scaled.push(name.to_string());
                } else {
                    not_scaled.push((name.to_string(), "not listed in scale.columns".to_string()));
                }
            }
        }
    }

    let out_cols: Vec<String> = match &plan.output.columns {
        Some(cols) => {
            for c in cols {
                check(c, "output.columns")?;
            }
            cols.clone()
        }
        None => names.iter().map(|s| s.to_string()).collect(),
    };
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
        scaled,
        not_scaled,
        output,
    })
}
