//! `prep apply`: applies a saved scaler to new data (inference time), so the
//! served features are transformed exactly as the training data was.
//!
//! Rows are not dropped: a null stays null, so the output lines up row for
//! row with the input. The output is written like a run's: shards,
//! `manifest.json`, then `_SUCCESS`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::clean::CleanCounts;
use crate::columns::is_numeric;
use crate::error::{PrepError, Result};
use crate::plan::{InputPlan, OutputCompression, OutputFormat, StoragePlan};
use crate::report::RunReport;
use crate::run::prepare_output;
use crate::scaler::Scaler;
use crate::sink::{manifest_json, ShardSink, SinkOptions};
use crate::source::{missing_column, Source};
use crate::store::{list_inputs, read_uri, OutputDir};

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
    prepare_output(&out, overwrite)?;
    let format = OutputFormat::parse(format).expect("clap checked the format");
    let mut sink = ShardSink::new(
        out.clone(),
        SinkOptions {
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
        },
    );
    let mut source = Source::new(
        files.clone(),
        &InputPlan::defaults(input),
        crate::signals::install(),
    );
    let mut rows = 0u64;
    let mut checked = false;
    let mut progress = crate::report::Progress::new("apply", source.total_bytes(), quiet);
    source.for_each_chunk(&mut |chunk, src| {
        if !checked {
            let fixed = src.schema.as_ref().expect("schema fixed");
            for name in &scaler.feature_names {
                match fixed.schema.get(name.as_str()) {
                    None => {
                        return Err(missing_column(
                            &fixed.origin,
                            name,
                            "the scaler's feature_names",
                            fixed.schema.iter_names().map(|s| s.as_str()),
                        ))
                    }
                    Some(dtype) if !is_numeric(dtype) => {
                        return Err(PrepError::bad_data(
                            crate::error::DataLocation {
                                file: fixed.origin.clone(),
                                column: Some(name.clone()),
                                ..Default::default()
                            },
                            format!("feature column `{name}` is {dtype}, not numeric"),
                            Some("the scaler was fitted on a numeric column; check that this is the right input".into()),
                        ))
                    }
                    Some(_) => {}
                }
            }
            checked = true;
        }
        rows += chunk.df.height() as u64;
        let scaled = scaler.apply(chunk.df)?;
        sink.write(&scaled)?;
        progress.update(src.bytes_read.load(Ordering::Relaxed), rows);
        Ok(())
    })?;
    progress.finish();
    let shards = sink.finish()?;
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.put(
        "manifest.json",
        &manifest_json(&out.manifest_prefix(), &names),
    )?;
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
        bytes_in: source.bytes_read.load(Ordering::Relaxed),
        bytes_out: shards.iter().map(|s| s.bytes).sum(),
        seconds: BTreeMap::from([("total".to_string(), total)]),
        busy_seconds: crate::timings::snapshot(),
        rows_per_second: (rows as f64 / total.max(1e-9)).round(),
    };
    out.put("_SUCCESS", &report.to_json())?;
    Ok(report)
}
