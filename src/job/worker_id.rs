//! Who this process is among the workers of a job (CONTRACT §6):
//! `--worker I/N`, or `--worker auto` from SageMaker Processing's
//! resourceconfig.json, a Kubernetes Indexed Job or an AWS Batch array job.

use serde::Deserialize;

use crate::env;
use crate::error::{PrepError, Result};

/// This process's place among the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    pub index: usize,
    pub count: usize,
}

fn usage(message: impl Into<String>, hint: &str) -> PrepError {
    PrepError::Usage {
        message: message.into(),
        hint: Some(hint.to_string()),
    }
}

const AUTO_HINT: &str = "pass --worker I/N, or run under SageMaker Processing (resourceconfig.json), a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + PREP_WORKERS) or an AWS Batch array job (AWS_BATCH_JOB_ARRAY_INDEX + PREP_WORKERS)";

fn parse_pair(index: &str, count: &str, source: &str) -> Result<WorkerId> {
    let index: usize = index.trim().parse().map_err(|_| {
        usage(
            format!("{source}: worker index `{index}` is not a number"),
            AUTO_HINT,
        )
    })?;
    let count: usize = count.trim().parse().map_err(|_| {
        usage(
            format!("{source}: worker count `{count}` is not a number"),
            AUTO_HINT,
        )
    })?;
    if count == 0 || index >= count {
        return Err(usage(
            format!("{source}: worker {index} of {count} is out of range (indexes are 0-based, below the count)"),
            AUTO_HINT,
        ));
    }
    Ok(WorkerId { index, count })
}

#[derive(Deserialize)]
struct ResourceConfig {
    current_host: String,
    hosts: Vec<String>,
}

/// `--worker I/N` or `--worker auto`; `None` when not given.
pub fn resolve_worker(arg: Option<&str>) -> Result<Option<WorkerId>> {
    let Some(arg) = arg else { return Ok(None) };
    if arg != "auto" {
        let (i, n) = arg.split_once('/').ok_or_else(|| {
            usage(
                format!("--worker `{arg}` is not I/N or auto"),
                "example: --worker 0/4",
            )
        })?;
        return parse_pair(i, n, "--worker").map(Some);
    }
    let dir = env::sagemaker_config_dir();
    let rc_path = std::path::Path::new(&dir).join("resourceconfig.json");
    if rc_path.exists() {
        let text = std::fs::read_to_string(&rc_path)
            .map_err(|e| usage(format!("cannot read {}: {e}", rc_path.display()), AUTO_HINT))?;
        let rc: ResourceConfig = serde_json::from_str(&text).map_err(|e| {
            usage(
                format!(
                    "{} is not a SageMaker resource config: {e}",
                    rc_path.display()
                ),
                AUTO_HINT,
            )
        })?;
        let index = rc
            .hosts
            .iter()
            .position(|h| *h == rc.current_host)
            .ok_or_else(|| {
                usage(
                    format!(
                        "{}: current_host `{}` is not in hosts {:?}",
                        rc_path.display(),
                        rc.current_host,
                        rc.hosts
                    ),
                    AUTO_HINT,
                )
            })?;
        return Ok(Some(WorkerId {
            index,
            count: rc.hosts.len(),
        }));
    }
    for var in ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
        if let Ok(index) = std::env::var(var) {
            let count = env::workers().map_err(|_| {
                usage(
                    format!("{var} is set but PREP_WORKERS is not"),
                    "set PREP_WORKERS to the number of workers (the Job's completions / the array size)",
                )
            })?;
            return parse_pair(&index, &count, var).map(Some);
        }
    }
    Err(usage("--worker auto found no worker identity", AUTO_HINT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_flag_is_validated() {
        assert_eq!(
            resolve_worker(Some("2/4")).unwrap(),
            Some(WorkerId { index: 2, count: 4 })
        );
        assert!(resolve_worker(Some("4/4")).is_err());
        assert!(resolve_worker(Some("x")).is_err());
        assert_eq!(resolve_worker(None).unwrap(), None);
    }
}
