//! Command line (CONTRACT §1): parsing, logging setup, dispatch, and the one
//! place errors are rendered and mapped to exit codes.

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::{ExitCode, PrepError, Result};
use crate::job::Phase;

#[derive(Debug, Parser)]
#[command(
    name = "prep",
    version,
    about = "Chunked CSV/Parquet -> cleaned, globally standardized, inference-ready shards"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// No progress and no log lines; errors are still printed.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// `json` prints one JSON object per line (for log collectors).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: clean, fit the scaler over all rows, write shards.
    Run {
        pipeline: String,
        /// Override one config key: --set input.uri=s3://b/p/
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// This worker's index and the worker count, I/N (0-based), or `auto`.
        #[arg(long)]
        worker: Option<String>,
        #[arg(long, value_enum, default_value = "all")]
        phase: Phase,
        /// Replace an existing output.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check a pipeline and print the resolved plan; reads no row data.
    Validate {
        pipeline: String,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Schema, row count, nulls and min/max/mean/std per column.
    Inspect {
        uri: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Apply a saved transform.json (or scaler.json) to new data (inference time).
    Apply {
        /// transform.json or scaler.json written by `prep run` (told apart by
        /// its "format"); `--scaler` is an alias.
        #[arg(long, visible_alias = "scaler", value_name = "FILE")]
        artifact: String,
        #[arg(long)]
        input: String,
        /// A folder/prefix, written like a run's output.
        #[arg(long)]
        output: String,
        #[arg(long, value_parser = ["jsonl", "parquet", "csv"], default_value = "parquet")]
        format: String,
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        log: LogArgs,
    },
}

impl Command {
    fn log(&self) -> &LogArgs {
        match self {
            Command::Run { log, .. }
            | Command::Validate { log, .. }
            | Command::Inspect { log, .. }
            | Command::Apply { log, .. } => log,
        }
    }
}

fn init_logging(log: &LogArgs) {
    let level = if log.quiet { "error" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PREP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match log.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .compact()
            .try_init(),
    };
}

/// Prints `error: …`, `caused by:` lines and a `hint:`; or one JSON object.
pub fn render_error(err: &PrepError, format: LogFormat) -> String {
    // Wrapped errors often repeat their inner error in their own message;
    // show a cause only when it adds something, on one line, bounded.
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        chain.push(
            s.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
        source = s.source();
    }
    let causes: Vec<String> = chain
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            chain
                .get(i + 1)
                .is_none_or(|next| !c.contains(next.as_str()))
        })
        .map(|(_, c)| {
            if c.chars().count() > 400 {
                format!("{}…", c.chars().take(400).collect::<String>())
            } else {
                c.clone()
            }
        })
        .collect();
    let hint = err.hint();
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({
                "level": "ERROR",
                "message": err.to_string(),
                "caused_by": causes,
                "hint": hint,
                "exit_code": err.exit_code() as i32,
            });
            format!("{v}\n")
        }
        LogFormat::Text => {
            let mut out = format!("error: {err}\n");
            for c in causes {
                out.push_str(&format!("  caused by: {c}\n"));
            }
            if let Some(h) = hint {
                out.push_str(&format!("  hint: {h}\n"));
            }
            out
        }
    }
}

/// Under SageMaker the first lines of the error become the job's ExitMessage.
/// (`PREP_SAGEMAKER_OUTPUT_DIR` replaces `/opt/ml/output`, for tests.)
fn write_sagemaker_message(rendered: &str) {
    let dir = crate::env::sagemaker_output_dir();
    let dir = std::path::Path::new(&dir);
    if dir.is_dir() {
        let first: String = rendered.lines().take(10).collect::<Vec<_>>().join("\n");
        let _ = std::fs::write(dir.join("message"), first);
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage as i32
            } else {
                0
            };
            let _ = e.print();
            return code;
        }
    };
    let log = cli.command.log();
    init_logging(log);
    crate::env::warn_unknown();
    // A trace's clock starts with the process, so time before the first
    // stage (listing, the first bytes of a remote object) shows as a gap.
    let _ = crate::timings::trace();
    let format = log.log_format;
    // A `PREP_*` value that does not parse stops the command before it starts.
    let result = crate::env::check_values().and_then(|()| dispatch(&cli.command));
    if let Some(t) = crate::timings::trace() {
        t.write();
    }
    match result {
        Ok(()) => ExitCode::Success as i32,
        Err(err) => {
            let rendered = render_error(&err, format);
            let _ = std::io::stderr().write_all(rendered.as_bytes());
            write_sagemaker_message(&rendered);
            err.exit_code() as i32
        }
    }
}

/// Writes to stdout; a closed pipe (`prep inspect x | head`) is not an error.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(PrepError::io("writing to stdout", e)),
    }
}

fn dispatch(cmd: &Command) -> Result<()> {
    match cmd {
        Command::Run {
            pipeline,
            sets,
            worker,
            phase,
            overwrite,
            log,
        } => {
            let loaded = crate::pipeline::config::load(pipeline, sets)?;
            let plan = crate::pipeline::plan::Plan::build(&loaded)?;
            let mut id = crate::job::worker_id::resolve_worker(worker.as_deref())?;
            if *phase != Phase::All {
                // A phase split is a scale-out job even with one worker.
                id = id.or(Some(crate::job::worker_id::WorkerId { index: 0, count: 1 }));
            }
            let spec = crate::job::run::JobSpec {
                plan: &plan,
                worker: id,
                phase: *phase,
                overwrite: *overwrite,
                quiet: log.quiet,
            };
            let report = crate::job::run::run_job(&spec, crate::signals::install())?;
            if let (Some(report), None, false) = (report, id, log.quiet) {
                tracing::info!(
                    rows_read = report.rows_read,
                    rows_written = report.rows_written,
                    shards = report.shards,
                    "{}",
                    report.summary()
                );
            }
            Ok(())
        }
        Command::Validate { pipeline, sets, .. } => {
            let text = crate::commands::validate::validate(pipeline, sets)?;
            print_stdout(&text)
        }
        Command::Inspect { uri, json, .. } => {
            let text = crate::commands::inspect::inspect(uri, *json)?;
            print_stdout(&text)
        }
        Command::Apply {
            artifact,
            input,
            output,
            format,
            overwrite,
            log,
        } => {
            // A data error about the whole input names it.
            let report = crate::commands::apply::apply(
                artifact, input, output, format, *overwrite, log.quiet,
            )
            .map_err(|e| e.in_file(input))?;
            if !log.quiet {
                tracing::info!("{}", report.summary());
            }
            Ok(())
        }
    }
}
