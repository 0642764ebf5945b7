//! `prep apply`: applies a saved artifact to new data (inference time), so
//! the served features are transformed exactly as the training data was.
//!
//! The artifact is a `transform.json` (every fitted step; the output has
//! its `output_columns`) or a `scaler.json` (the standard scaler; every
//! input column is written), told apart by `format`. A job whose fit step is
//! "load the artifact": the same transform pass and finish as `prep run`
//! (shards, `manifest.json`, fsync, `_SUCCESS` last), but no row is dropped:
//! imputed columns are filled, a null elsewhere stays null, so the output
//! lines up row for row with the input. CSV is parsed with the types the
//! artifact was fitted on.

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::DataType;

use crate::chunk::FixedSchema;
use crate::error::{missing_column, DataError, DataLocation, NamedIn, PrepError, Result};
use crate::job::finish::{finish, CommitGuard};
use crate::job::fit::{Fitted, PassInput};
use crate::job::listing::{list_data, tab_when_named_so};
use crate::job::output_claim::claim_output;
use crate::job::report::RunReport;
use crate::job::run::lock_policy;
use crate::job::transform::transform_pass;
use crate::job::Phase;
use crate::pipeline::plan::{
    ColumnType, InputPlan, NonFinite, OutputCompression, OutputFormat, StoragePlan,
};
use crate::read::source::{Part, Piece, Source};
use crate::storage::{read_uri, InputObject, OutputDir};
use crate::transform::artifact::{TransformArtifact, FORMAT as TRANSFORM};
use crate::transform::clean::{CleanCounts, Cleaner};
use crate::transform::columns::{check_writable, is_numeric, ResolvedColumns, StepColumns};
use crate::transform::scale::ScaleStep;
use crate::transform::scaler::{Scaler, FORMAT as SCALER};
use crate::transform::standard::StandardStep;
use crate::transform::steps::{FitState, FittedSteps};
use crate::write::sink::SinkOptions;

/// What `apply` does, from either kind of artifact.
struct Loaded {
    steps: FittedSteps,
    /// (produced, output name); empty: every column as it is.
    layout: Vec<(String, String)>,
    /// Columns the steps read, with the type they were fitted as.
    inputs: Vec<(String, ColumnType)>,
    /// Columns that must be numeric (a scaler.json's features).
    numeric: Vec<String>,
}

fn load(uri: &str, storage: &StoragePlan) -> Result<Loaded> {
    let bytes = read_uri(uri, storage)?;
    let bad = |kind| PrepError::bad_data(DataLocation::file(uri), kind);
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        bad(DataError::ScalerNotJson {
            detail: e.to_string(),
        })
    })?;
    match value.get("format").and_then(|v| v.as_str()).unwrap_or("") {
        SCALER => {
            let s = Scaler::from_json(&bytes, uri)?;
            Ok(Loaded {
                numeric: s.feature_names.clone(),
                steps: FittedSteps {
                    impute: Vec::new(),
                    encode: Vec::new(),
                    scale: vec![ScaleStep::Standard(StandardStep::from_scaler(&s))],
                },
                layout: Vec::new(),
                inputs: Vec::new(),
            })
        }
        TRANSFORM => {
            let a = TransformArtifact::from_value(value, uri)?;
            let steps = a.steps(uri)?;
            let inputs = a
                .input_columns
                .iter()
                .map(|c| {
                    let t = ColumnType::parse(&c.dtype).unwrap_or(ColumnType::String);
                    (c.name.clone(), t)
                })
                .collect();
            let layout = a
                .output_sources
                .iter()
                .cloned()
                .zip(a.output_columns.iter().cloned())
                .collect();
            Ok(Loaded {
                steps,
                layout,
                inputs,
                numeric: Vec::new(),
            })
        }
        other => Err(bad(DataError::ArtifactFormat {
            found: other.to_string(),
        })),
    }
}

pub fn apply(
    artifact_uri: &str,
    input: &str,
    output: &str,
    format: &str,
    overwrite: bool,
    quiet: bool,
) -> Result<RunReport> {
    let t0 = Instant::now();
    let storage = StoragePlan::default();
    let loaded = load(artifact_uri, &storage)?;
    let files = list_data(input, &storage)?;
    let out = OutputDir::new(output, &storage)?;
    let lock = out.lock("apply", lock_policy())?;
    claim_output(&out, None, Phase::All, overwrite, false)?;
    let format = OutputFormat::parse(format).expect("clap checked the format");
    let mut input_plan = InputPlan::defaults(input);
    tab_when_named_so(&mut input_plan.csv, &files);
    let cancel = crate::signals::install();
    if let Some(fixed) = first_schema(&files, &input_plan)? {
        check_columns(&loaded, &fixed)?;
    }
    // Parse CSV with the fitted types, so a category column of digits stays
    // a string column and an integer column is not read as floats.
    input_plan.schema_overrides = loaded.inputs.clone();
    let schema = first_schema(&files, &input_plan)?;
    if let Some(fixed) = &schema {
        let columns = fixed.schema.iter_names().map(|s| s.as_str());
        check_writable(&fixed.schema, columns, format, &fixed.origin)?;
    }
    let pieces: Vec<Piece> = (0..files.len())
        .map(|file| Piece {
            file,
            part: Part::Whole,
        })
        .collect();
    let pass = PassInput {
        input: &input_plan,
        files: &files,
        pieces: &pieces,
        cancel: cancel.clone(),
        quiet,
    };
    // Nothing is dropped: the fitted state is the loaded artifact alone.
    let fitted = Fitted {
        resolved: ResolvedColumns {
            null_checked: Vec::new(),
            finite_checked: Vec::new(),
            scaled: Vec::new(),
            not_scaled: Vec::new(),
            output: Vec::new(),
            steps: StepColumns::default(),
        },
        cleaner: Cleaner {
            null_checked: Vec::new(),
            finite_checked: Vec::new(),
            non_finite: NonFinite::Fail,
        },
        state: FitState {
            impute: Vec::new(),
            encode: Vec::new(),
            scale: Vec::new(),
        },
        counts: CleanCounts::default(),
        rejects: Vec::new(),
        bytes_in: 0,
        spill: None,
        schema,
    };
    let sink_opts = SinkOptions {
        format,
        compression: if format == OutputFormat::Parquet {
            OutputCompression::Zstd
        } else {
            OutputCompression::None
        },
        csv_header: true,
        max_rows: 100_000,
        max_bytes: None,
        prefix: "part-".into(),
    };
    let (shards, rows) = transform_pass(
        &pass,
        fitted,
        &loaded.steps,
        &loaded.layout,
        &out,
        sink_opts,
    )?;
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.sync(&names)?;
    let total = t0.elapsed().as_secs_f64();
    let report = RunReport {
        status: "success".into(),
        pipeline: "apply".into(),
        prep_version: env!("CARGO_PKG_VERSION").into(),
        input_uri: input.into(),
        output_uri: output.into(),
        input_objects: files.len(),
        rows_read: rows,
        rows_dropped: RunReport::dropped(&CleanCounts::default()),
        rows_written: rows,
        shards: shards.len(),
        bytes_in: files.iter().map(|f| f.size).sum(),
        bytes_out: shards.iter().map(|s| s.bytes).sum(),
        seconds: BTreeMap::from([("total".to_string(), total)]),
        busy_seconds: crate::timings::snapshot(),
        rows_per_second: (rows as f64 / total.max(1e-9)).round(),
        attempt: None,
        rejects: None,
    };
    let guard = CommitGuard {
        cancel: &cancel,
        lock: Some(&lock),
    };
    finish(
        &out,
        &[],
        &shards.iter().collect::<Vec<_>>(),
        &report,
        &guard,
    )?;
    Ok(report)
}

/// The schema of the first object that has one (a header-only CSV has no
/// types yet).
fn first_schema(files: &[InputObject], input: &InputPlan) -> Result<Option<FixedSchema>> {
    Source::schema_of_first(files, input)
}

/// Every column the artifact reads must be in the data (with a type that
/// fits), and so must every column it passes through.
fn check_columns(loaded: &Loaded, fixed: &FixedSchema) -> Result<()> {
    let names = || fixed.schema.iter_names().map(|s| s.as_str());
    let named_in = if loaded.numeric.is_empty() {
        NamedIn::ArtifactColumns
    } else {
        NamedIn::ScalerFeatures
    };
    let mut wanted: Vec<&str> = loaded.numeric.iter().map(String::as_str).collect();
    wanted.extend(loaded.inputs.iter().map(|(c, _)| c.as_str()));
    let produced: Vec<String> = loaded
        .inputs
        .iter()
        .flat_map(|(c, _)| loaded.steps.produced(c))
        .collect();
    wanted.extend(
        loaded
            .layout
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| !produced.iter().any(|x| x == p)),
    );
    for name in wanted {
        let Some(dtype) = fixed.schema.get(name) else {
            return Err(missing_column(&fixed.origin, name, named_in, names()));
        };
        let numeric_wanted = loaded.numeric.iter().any(|c| c == name)
            || loaded
                .inputs
                .iter()
                .any(|(c, t)| c == name && matches!(t, ColumnType::Int64 | ColumnType::Float64));
        if numeric_wanted && !is_numeric(dtype) && dtype != &DataType::String {
            return Err(PrepError::bad_data(
                DataLocation::file(&fixed.origin).column(name),
                DataError::NotNumeric {
                    column: name.to_string(),
                    dtype: dtype.clone(),
                },
            ));
        }
        if loaded.numeric.iter().any(|c| c == name) && !is_numeric(dtype) {
            return Err(PrepError::bad_data(
                DataLocation::file(&fixed.origin).column(name),
                DataError::NotNumeric {
                    column: name.to_string(),
                    dtype: dtype.clone(),
                },
            ));
        }
    }
    Ok(())
}
