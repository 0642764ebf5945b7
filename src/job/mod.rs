//! Jobs: the one orchestration every command that writes an output uses
//! ([`run`]), the input listing every command reads ([`listing`]), its passes ([`fit`], the quantile refinement passes
//! [`refine`], [`transform`]), the dropped rows ([`rejects`]), the workers'
//! identity, share and meeting points ([`worker_id`], [`work_split`],
//! [`barrier`], [`attempt`]), the output's claim and finish
//! ([`output_claim`], [`finish`]) and the run report with progress
//! ([`report`]).

pub mod attempt;
pub mod barrier;
pub mod finish;
pub mod fit;
pub mod listing;
pub mod output_claim;
pub mod refine;
pub mod rejects;
pub mod report;
pub mod reread;
pub mod run;
pub mod transform;
pub mod work_split;
pub mod worker_id;

/// Which part of a job this process runs (`--phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Fit, wait for the other workers' statistics, transform.
    All,
    /// Only write this worker's partial statistics.
    Fit,
    /// Merge every partial, then transform (the fit ran earlier).
    Transform,
}
