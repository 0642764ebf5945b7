//! [`PrepError`]: every way a command fails, its hint, and its exit code.

use super::data::{DataError, DataLocation};

/// Process exit codes fixed by the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    Other = 1,
    Usage = 2,
    BadData = 3,
    Storage = 4,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    /// The pipeline file (or a `--set`) is malformed or inconsistent.
    #[error("invalid pipeline {file}:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Config { file: String, problems: Vec<String> },

    /// Wrong command-line usage that clap cannot catch (e.g. `--worker 5/2`).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    /// The output already holds a run and `--overwrite` was not given.
    #[error("output {uri} already exists")]
    OutputExists { uri: String },

    /// Another run holds the output's lock.
    #[error("output {uri} is being written by another run: {holder}")]
    OutputLocked {
        uri: String,
        holder: String,
        waited: String,
    },

    /// This run's lock on the output was taken over (its lease ran out).
    #[error("lost the lock on output {uri} to another run; this run's output is not committed")]
    LockLost { uri: String },

    /// The workers of one job do not run the same pipeline on the same input.
    #[error("worker {worker} of the job at {uri} differs from this worker: {difference}")]
    WorkerMismatch {
        uri: String,
        worker: usize,
        difference: String,
    },

    /// A disk filled up (output folder or spill).
    #[error("no space left on the disk holding {path} while {action}")]
    DiskFull {
        action: String,
        path: String,
        what: String,
    },

    /// The input data violates what the pipeline expects.
    #[error("bad input data in {location}: {kind}")]
    BadData {
        location: Box<DataLocation>,
        kind: Box<DataError>,
    },

    /// No object matched the input URI.
    #[error("no input files match {uri}")]
    NoInput { uri: String },

    /// Object not found / permission / network, after retries.
    #[error("storage error while {action} {uri}")]
    Storage {
        action: String,
        uri: String,
        hint: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// SIGINT/SIGTERM arrived; the run stopped before `_SUCCESS`.
    #[error("interrupted by {signal}; the output is incomplete (no _SUCCESS was written)")]
    Interrupted { signal: String },

    /// A failure inside polars that is not attributable to the user's data.
    #[error("{context}")]
    Polars {
        context: String,
        #[source]
        source: polars::prelude::PolarsError,
    },

    /// A stage's thread found the next stage gone. That stage's own error is
    /// the one to report; this one shows only if it has none.
    #[error("a pipeline thread stopped early")]
    PipelineStopped,

    /// A local I/O failure (temp dir, spill file).
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PrepError {
    /// A data error about the whole input (a statistic over every file)
    /// names the input it came from.
    pub fn in_file(self, input: &str) -> PrepError {
        match self {
            PrepError::BadData { mut location, kind } if location.file.is_empty() => {
                location.file = input.to_string();
                PrepError::BadData { location, kind }
            }
            other => other,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            PrepError::Config { .. }
            | PrepError::Usage { .. }
            | PrepError::OutputExists { .. }
            | PrepError::OutputLocked { .. }
            | PrepError::WorkerMismatch { .. } => ExitCode::Usage,
            PrepError::LockLost { .. } | PrepError::DiskFull { .. } => ExitCode::Storage,
            PrepError::BadData { .. } => ExitCode::BadData,
            PrepError::NoInput { .. } | PrepError::Storage { .. } => ExitCode::Storage,
            PrepError::Interrupted { .. }
            | PrepError::PipelineStopped
            | PrepError::Polars { .. }
            | PrepError::Io { .. } => ExitCode::Other,
        }
    }

    /// The "what to do" line shown under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            PrepError::Usage { hint, .. } | PrepError::Storage { hint, .. } => hint.clone(),
            PrepError::BadData { kind, .. } => Some(kind.hint()),
            PrepError::Config { .. } => {
                Some("fix the pipeline file (docs/reference.md lists every key); `prep validate` lists every problem".into())
            }
            PrepError::OutputExists { .. } => Some(
                "pass --overwrite to replace it, or write elsewhere (`prep run`: --set output.uri=...; `prep apply`: another --output)".into(),
            ),
            PrepError::NoInput { .. } => Some(
                "check input.uri: a directory/prefix reads every file under it, a glob like data/*.csv matches files".into(),
            ),
            PrepError::Interrupted { .. } => Some("rerun the same command with --overwrite".into()),
            PrepError::OutputLocked { waited, .. } => Some(format!(
                "wait for that run to finish (waited {waited}; PREP_LOCK_WAIT=10m waits up to 10 minutes), or write elsewhere with --set output.uri=...; a lock whose holder is gone is taken over by the next run"
            )),
            PrepError::LockLost { .. } => Some(
                "another run replaced this one's expired lease (was the machine paused or cut off?); rerun with --overwrite once the other run is done".into(),
            ),
            PrepError::WorkerMismatch { .. } => Some(
                "start every worker of a job with the same pipeline file content and --set values, over the same input".into(),
            ),
            PrepError::DiskFull { what, .. } => Some(format!(
                "free space on that disk, or move {what} to a larger one"
            )),
            PrepError::PipelineStopped | PrepError::Polars { .. } | PrepError::Io { .. } => None,
        }
    }

    pub fn config(file: impl Into<String>, problem: impl Into<String>) -> Self {
        PrepError::Config {
            file: file.into(),
            problems: vec![problem.into()],
        }
    }

    /// Bad input data: what is wrong, and where.
    pub fn bad_data(location: DataLocation, kind: DataError) -> Self {
        PrepError::BadData {
            location: Box::new(location),
            kind: Box::new(kind),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PrepError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn polars(context: impl Into<String>, source: polars::prelude::PolarsError) -> Self {
        PrepError::Polars {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = PrepError> = std::result::Result<T, E>;

/// "did you mean `x`?" for a misspelt name, or `None` when nothing is close.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("ratng", ["rating", "price"]).as_deref(),
            Some("rating")
        );
        assert_eq!(did_you_mean("zzz", ["rating", "price"]), None);
    }

    #[test]
    fn exit_codes_follow_contract() {
        assert_eq!(
            PrepError::config("p.toml", "x").exit_code(),
            ExitCode::Usage
        );
        assert_eq!(
            PrepError::bad_data(DataLocation::default(), DataError::UnterminatedQuote).exit_code(),
            ExitCode::BadData
        );
        assert_eq!(
            PrepError::NoInput { uri: "a".into() }.exit_code(),
            ExitCode::Storage
        );
        assert_eq!(PrepError::PipelineStopped.exit_code(), ExitCode::Other);
    }
}
