//! Every `PREP_*` environment variable prep reads, with its type, default
//! and meaning, in one table ([`VARS`]); the accessors below are the only
//! places that read them. An unknown `PREP_*` variable in the environment
//! is most likely a typo, so [`warn_unknown`] names it with a "did you mean".

use std::path::PathBuf;
use std::time::Duration;

/// One variable: name, type, default, meaning (as the reference docs list it).
pub struct EnvVar {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const VARS: &[EnvVar] = &[
    EnvVar { name: "PREP_LOG", kind: "filter", default: "info (error with --quiet)", doc: "log level filter, e.g. debug for per-shard lines" },
    EnvVar { name: "PREP_PROGRESS_INTERVAL", kind: "duration", default: "5s", doc: "how often a progress line is logged when stderr is not a terminal" },
    EnvVar { name: "PREP_WORKERS", kind: "integer", default: "unset", doc: "worker count for --worker auto under a Kubernetes Indexed Job or an AWS Batch array job" },
    EnvVar { name: "PREP_WAIT_TIMEOUT", kind: "duration", default: "30m", doc: "how long a worker waits for the other workers at a barrier" },
    EnvVar { name: "PREP_SAGEMAKER_CONFIG_DIR", kind: "path", default: "/opt/ml/config", doc: "where --worker auto looks for SageMaker's resourceconfig.json" },
    EnvVar { name: "PREP_SAGEMAKER_OUTPUT_DIR", kind: "path", default: "/opt/ml/output", doc: "where the first lines of an error are written as `message` (when the folder exists)" },
    EnvVar { name: "PREP_MEMORY_BUDGET", kind: "byte size", default: "64MiB", doc: "cleaned chunks kept in memory between the passes instead of spilled ([input] memory_budget wins; 0 spills everything)" },
    EnvVar { name: "PREP_SPILL_DIR", kind: "path", default: "the system temp dir", doc: "where the cleaned chunks are spilled between the two passes" },
    EnvVar { name: "PREP_DIRECT_IO", kind: "0 | 1", default: "1", doc: "0 turns off O_DIRECT for local shards and the spill" },
    EnvVar { name: "PREP_CSV_PARSER", kind: "fast | reference", default: "fast", doc: "reference parses every CSV chunk with the field-at-a-time reference parser" },
    EnvVar { name: "PREP_ZSTD_LEVEL", kind: "integer", default: "3", doc: "zstd level of Parquet shards" },
    EnvVar { name: "PREP_MAX_RETRIES", kind: "integer", default: "100", doc: "object-store retries per request (PREP_RETRY_TIMEOUT bounds them first)" },
    EnvVar { name: "PREP_RETRY_TIMEOUT", kind: "duration", default: "120s", doc: "total time one object-store request may spend retrying (rides out an outage up to about this long)" },
    EnvVar { name: "PREP_S3_CONCURRENCY", kind: "integer", default: "16", doc: "ranged GETs in flight per object-store read (all object stores), up to twice as many while the parser waits on the link" },
    EnvVar { name: "PREP_S3_PART_SIZE", kind: "byte size", default: "2MiB", doc: "size of each ranged GET of an object-store read" },
    EnvVar { name: "PREP_REQUEST_TIMEOUT", kind: "duration", default: "30s", doc: "timeout of one object-store request (reads and uploads go in parts of a few MiB, so this bounds a stalled connection, not an object)" },
    EnvVar { name: "PREP_TRACE", kind: "path", default: "unset", doc: "write per-thread busy spans of every stage to this file as Chrome trace JSON at exit" },
    EnvVar { name: "PREP_LOCK_WAIT", kind: "duration", default: "0s", doc: "how long a run waits for another run that holds the output's lock (0: refuse at once)" },
    EnvVar { name: "PREP_LOCK_LEASE", kind: "duration", default: "60s", doc: "object stores: the lease of the output lock, renewed every third of it" },
    EnvVar { name: "PREP_ATTEMPT_ID", kind: "string", default: "from the orchestrator, else opened by the first worker", doc: "the id all workers of one attempt of a job share" },
    EnvVar { name: "PREP_PAUSE_BEFORE_COMMIT", kind: "duration", default: "0s", doc: "testing: pause right before _SUCCESS is written (to deliver a signal there)" },
    EnvVar { name: "PREP_PYTHON", kind: "path", default: "unset", doc: "tests only: the Python with pandas, scikit-learn and moto" },
    EnvVar { name: "PREP_VENV", kind: "path", default: "unset", doc: "tests only: the virtual environment .ci/run installs" },
    EnvVar { name: "PREP_MOTO_SERVER", kind: "path", default: "unset", doc: "tests only: the moto_server executable" },
    EnvVar { name: "PREP_S3_ENDPOINT", kind: "URL", default: "unset", doc: "tests only: an already running S3 test server" },
    EnvVar { name: "PREP_BASE_CACHE", kind: "path", default: "unset", doc: "tests only: cache of the container test's base image" },
    EnvVar { name: "PREP_AZURITE", kind: "path", default: "unset", doc: "tests only: the azurite-blob executable" },
    EnvVar { name: "PREP_AZURITE_PREFIX", kind: "path", default: "~/.cache/prep-azurite", doc: "CI only: where .ci/run installs Azurite" },
    EnvVar { name: "PREP_GCS_EMULATOR", kind: "path", default: "unset", doc: "tests only: the gcp-storage-emulator executable" },
    EnvVar { name: "PREP_RACE_SEED", kind: "integer", default: "random", doc: "tests only: replays a randomized output-race test" },
    EnvVar { name: "PREP_BENCH_SIZES", kind: "list", default: "unset", doc: "benches only: row counts of the kernel benchmarks" },
    EnvVar { name: "PREP_BENCH_THREADS", kind: "list", default: "unset", doc: "benches only: thread counts of the kernel benchmarks" },
];

fn get(name: &str) -> Option<String> {
    debug_assert!(
        VARS.iter().any(|v| v.name == name),
        "{name} is not in env::VARS"
    );
    std::env::var(name).ok()
}

/// The default [`VARS`] lists for `name`: the one place a default is
/// written (the unit tests parse every typed one, `tests/it/docs.rs` checks
/// the reference shows it).
fn default_of(name: &str) -> &'static str {
    VARS.iter()
        .find(|v| v.name == name)
        .map(|v| v.default)
        .expect("every variable prep reads is listed in VARS")
}

fn parse_duration(v: &str) -> Option<Duration> {
    humantime::parse_duration(v.trim()).ok()
}

fn parse_byte_size(v: &str) -> Option<u64> {
    v.trim()
        .parse::<bytesize::ByteSize>()
        .ok()
        .map(|b| b.as_u64())
}

fn parse_number<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.trim().parse().ok()
}

/// The kinds of [`VARS`] that are checked: whether a value parses (with
/// the same parsers the accessors use), and the form an error names.
type Form = (&'static str, fn(&str) -> bool, &'static str);
const FORMS: &[Form] = &[
    (
        "duration",
        |v| parse_duration(v).is_some(),
        "a duration such as 30s, 10m or 2h",
    ),
    (
        "byte size",
        |v| parse_byte_size(v).is_some(),
        "a byte size such as 64MiB, 2MB or 0",
    ),
    (
        "integer",
        |v| parse_number::<i64>(v).is_some() || parse_number::<u64>(v).is_some(),
        "a whole number such as 16",
    ),
    ("0 | 1", |v| matches!(v.trim(), "0" | "1"), "0 or 1"),
    (
        "fast | reference",
        |v| matches!(v.trim(), "fast" | "reference"),
        "fast or reference",
    ),
];

/// A duration variable, or its default when unset ([`check_values`] stops
/// a run whose value does not parse before anything reads it).
fn duration(name: &str) -> Duration {
    get(name)
        .and_then(|v| parse_duration(&v))
        .unwrap_or_else(|| parse_duration(default_of(name)).expect("VARS default is a duration"))
}

/// A number variable, or its default when unset (see [`check_values`]).
fn number<T: std::str::FromStr>(name: &str) -> T {
    get(name)
        .and_then(|v| parse_number(&v))
        .unwrap_or_else(|| parse_number(default_of(name)).expect("VARS default is a number"))
}

/// A byte-size variable (`64MiB`, `2MB`, `0`), or its default.
fn byte_size(name: &str) -> u64 {
    get(name)
        .and_then(|v| parse_byte_size(&v))
        .unwrap_or_else(|| parse_byte_size(default_of(name)).expect("VARS default is a byte size"))
}

/// A path-like variable, or its default.
fn text(name: &str) -> String {
    get(name).unwrap_or_else(|| default_of(name).to_string())
}

pub fn progress_interval() -> Duration {
    duration("PREP_PROGRESS_INTERVAL")
}

pub fn workers() -> Result<String, std::env::VarError> {
    get("PREP_WORKERS").ok_or(std::env::VarError::NotPresent)
}

pub fn wait_timeout() -> Duration {
    duration("PREP_WAIT_TIMEOUT")
}

pub fn sagemaker_config_dir() -> String {
    text("PREP_SAGEMAKER_CONFIG_DIR")
}

pub fn sagemaker_output_dir() -> String {
    text("PREP_SAGEMAKER_OUTPUT_DIR")
}

/// Bytes of cleaned chunks kept in memory between the passes.
pub fn memory_budget() -> u64 {
    byte_size("PREP_MEMORY_BUDGET")
}

pub fn spill_dir() -> Option<PathBuf> {
    get("PREP_SPILL_DIR").map(PathBuf::from)
}

pub fn direct_io_enabled() -> bool {
    get("PREP_DIRECT_IO").is_none_or(|v| v != "0")
}

pub fn fast_csv_parser() -> bool {
    get("PREP_CSV_PARSER").is_none_or(|v| v != "reference")
}

pub fn zstd_level() -> i32 {
    number("PREP_ZSTD_LEVEL")
}

pub fn trace_file() -> Option<PathBuf> {
    get("PREP_TRACE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn lock_wait() -> Duration {
    duration("PREP_LOCK_WAIT")
}

pub fn lock_lease() -> Duration {
    duration("PREP_LOCK_LEASE")
}

pub fn attempt_id() -> Option<String> {
    get("PREP_ATTEMPT_ID").filter(|v| !v.is_empty())
}

pub fn pause_before_commit() -> Duration {
    duration("PREP_PAUSE_BEFORE_COMMIT")
}

pub fn max_retries() -> usize {
    number("PREP_MAX_RETRIES")
}

pub fn s3_concurrency() -> usize {
    number("PREP_S3_CONCURRENCY")
}

pub fn s3_part_size() -> u64 {
    byte_size("PREP_S3_PART_SIZE")
}

pub fn retry_timeout() -> Duration {
    duration("PREP_RETRY_TIMEOUT")
}

pub fn request_timeout() -> Duration {
    duration("PREP_REQUEST_TIMEOUT")
}

/// `PREP_*` names in `present` that prep does not know, each with the
/// closest known name when one is close.
pub fn unknown<'a>(present: impl IntoIterator<Item = &'a str>) -> Vec<(String, Option<String>)> {
    present
        .into_iter()
        .filter(|n| n.starts_with("PREP_") && !VARS.iter().any(|v| v.name == *n))
        .map(|n| {
            let close = crate::error::did_you_mean(n, VARS.iter().map(|v| v.name));
            (n.to_string(), close)
        })
        .collect()
}

/// Why `value` is not a valid `kind` (see [`FORMS`]), if it is not.
fn invalid(kind: &str, value: &str) -> Option<&'static str> {
    let (_, parses, form) = FORMS.iter().find(|f| f.0 == kind)?;
    (!parses(value)).then_some(*form)
}

/// Checks every typed `PREP_*` variable that is set: one that does not
/// parse is a usage error (exit 2) naming it, rather than a default used
/// in silence.
pub fn check_values() -> Result<(), crate::error::PrepError> {
    let bad: Vec<String> = VARS
        .iter()
        .filter_map(|v| {
            let value = std::env::var(v.name).ok()?;
            let want = invalid(v.kind, &value)?;
            Some(format!("{}={value:?} is not {want}", v.name))
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(crate::error::PrepError::Usage {
        message: format!("invalid environment: {}", bad.join("; ")),
        hint: Some(
            "fix or unset the variable (docs/reference.md, \"Environment variables\", lists each one's form and default)".into(),
        ),
    })
}

/// Logs a warning for every unknown `PREP_*` variable in the environment.
pub fn warn_unknown() {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    for (name, close) in unknown(names.iter().map(String::as_str)) {
        match close {
            Some(c) => {
                tracing::warn!("unknown environment variable {name} is ignored; did you mean {c}?")
            }
            None => tracing::warn!("unknown environment variable {name} is ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_get_the_closest_known_one() {
        let found = unknown(["PREP_WAIT_TIMOUT", "PREP_LOG", "PATH", "PREP_ZZZZZZZZZZZZ"]);
        assert_eq!(
            found,
            vec![
                (
                    "PREP_WAIT_TIMOUT".to_string(),
                    Some("PREP_WAIT_TIMEOUT".to_string())
                ),
                ("PREP_ZZZZZZZZZZZZ".to_string(), None),
            ]
        );
    }

    #[test]
    fn values_are_checked_against_their_kind() {
        assert_eq!(invalid("duration", "90s"), None);
        assert_eq!(invalid("duration", " 2h "), None);
        assert!(invalid("duration", "90").is_some(), "a unit is needed");
        assert_eq!(invalid("byte size", "2MiB"), None);
        assert!(invalid("byte size", "2XB").is_some());
        assert_eq!(invalid("integer", "32"), None);
        assert_eq!(invalid("integer", "-1"), None, "zstd takes negative levels");
        assert!(invalid("integer", "1.5").is_some());
        assert_eq!(
            invalid("integer", "18446744073709551615"),
            None,
            "a u64 seed"
        );
        assert!(invalid("integer", "sixteen").is_some());
        assert_eq!(invalid("0 | 1", "0"), None);
        assert!(invalid("0 | 1", "off").is_some());
        assert!(invalid("fast | reference", "slow").is_some());
        assert_eq!(invalid("path", "anything"), None);
    }

    /// Every typed default in the table parses as its kind, so no accessor
    /// can fall back on a default that does not parse.
    #[test]
    fn every_typed_default_parses() {
        let mut checked = 0;
        for v in VARS {
            let d = v.default;
            // Integers default to "unset" or "random" where nothing applies.
            if v.kind == "integer" && !d.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            if FORMS.iter().any(|f| f.0 == v.kind) {
                assert_eq!(invalid(v.kind, d), None, "{}: default {d:?}", v.name);
                checked += 1;
            }
        }
        assert!(checked >= 12, "the typed variables were found ({checked})");
        // The accessors fall back on the table's text, parsed.
        if get("PREP_S3_PART_SIZE").is_none() {
            assert_eq!(s3_part_size(), 2 << 20);
        }
        if get("PREP_WAIT_TIMEOUT").is_none() {
            assert_eq!(wait_timeout(), Duration::from_secs(30 * 60));
        }
    }

    #[test]
    fn every_variable_is_documented() {
        for v in VARS {
            assert!(v.name.starts_with("PREP_") && !v.doc.is_empty() && !v.kind.is_empty());
        }
    }
}
