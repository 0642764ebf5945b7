//! `prep apply`: applies a saved scaler to new data (inference time), so the
//! served features are transformed exactly as the training data was.
//!
//! A job whose fit step is "load the artifact": the same transform pass and
//! finish as `prep run` (shards, `manifest.json`, fsync, `_SUCCESS` last),
//! but no row is dropped: a null stays null, so the output lines up row for
//! row with the input.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::chunk::FixedSchema;
use crate::error::{missing_column, DataError, DataLocation, NamedIn, PrepError, Result};
use crate::job::finish::{finish, CommitGuard};
use crate::job::fit::{Fitted, PassInput};
use crate::job::output_claim::claim_output;
use crate::job::report::RunReport;
use crate::job::run::lock_policy;
use crate::job::transform::transform_pass;
use crate::job::Phase;
use crate::pipeline::plan::{InputPlan, NonFinite, OutputCompression, OutputFormat, StoragePlan};
use crate::read::source::{Part, Piece, Source};
use crate::storage::{list_inputs, read_uri, InputObject, OutputDir};
use crate::transform::clean::{CleanCounts, Cleaner};
use crate::transform::columns::{is_numeric, ResolvedColumns};
use crate::transform::scaler::Scaler;
use crate::write::sink::SinkOptions;

pub fn apply(
    scaler_uri: &str,
    input: &str,
    output: &str,
    format: &str,
    overwrite: bool,
    quiet: bool,
) -> Result<RunReport> {
    let t0 = Instant::now();
    let storage = StoragePlan::default();
    let scaler = Scaler::from_json(&read_uri(scaler_uri, &storage)?, scaler_uri)?;
    let files = list_inputs(input, &storage)?;
    let out = OutputDir::new(output, &storage)?;
    let lock = out.lock("apply", lock_policy())?;
    claim_output(&out, None, Phase::All, overwrite, false)?;
    let format = OutputFormat::parse(format).expect("clap checked the format");
    let input_plan = InputPlan::defaults(input);
    let cancel = crate::signals::install();
    let schema = first_schema(&files, &input_plan)?;
    if let Some(fixed) = &schema {
        check_features(&scaler, fixed)?;
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
    // Nothing is dropped and nothing is projected: the fitted state is the
    // loaded scaler alone.
    let fitted = Fitted {
        resolved: ResolvedColumns {
            null_checked: Vec::new(),
            scaled: Vec::new(),
            not_scaled: Vec::new(),
            output: Vec::new(),
        },
        cleaner: Cleaner {
            null_checked: Vec::new(),
            scaled: Vec::new(),
            non_finite: NonFinite::Fail,
        },
        moments: Vec::new(),
        counts: CleanCounts::default(),
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
    let (shards, rows) = transform_pass(&pass, fitted, &scaler, &out, sink_opts)?;
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
    for f in files {
        if let Some(s) = Source::schema_of_first(f, input)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// Every feature the scaler was fitted on must be a numeric column here.
fn check_features(scaler: &Scaler, fixed: &FixedSchema) -> Result<()> {
    for name in &scaler.feature_names {
        match fixed.schema.get(name.as_str()) {
            None => {
                return Err(missing_column(
                    &fixed.origin,
                    name,
                    NamedIn::ScalerFeatures,
                    fixed.schema.iter_names().map(|s| s.as_str()),
                ))
            }
            Some(dtype) if !is_numeric(dtype) => {
                return Err(PrepError::bad_data(
                    DataLocation::file(&fixed.origin).column(name),
                    DataError::NotNumeric {
                        column: name.clone(),
                        dtype: dtype.clone(),
                    },
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
