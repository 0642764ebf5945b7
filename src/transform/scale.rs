//! The `[scale]` groups: one fit state ([`ScaleAcc`]) and one fitted form
//! ([`ScaleStep`], the artifact part tagged by `method`) per method, each
//! defined in its own module (`standard.rs`, `minmax.rs`, `maxabs.rs`,
//! `robust.rs`). Scaled columns come out as float64; a null stays null.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pipeline::plan::{ScaleGroup, ScaleMethod};
use crate::transform::maxabs::{MaxAbsAcc, MaxAbsStep};
use crate::transform::minmax::{MinMaxAcc, MinMaxStep};
use crate::transform::quantile::Problem;
use crate::transform::robust::{RobustAcc, RobustSettings, RobustStep};
use crate::transform::standard::{StandardAcc, StandardStep};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScaleState {
    Standard(StandardAcc),
    MinMax(MinMaxAcc),
    MaxAbs(MaxAbsAcc),
    Robust(RobustAcc),
}

/// Fit state of one `[scale]` group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleAcc {
    pub columns: Vec<String>,
    pub state: ScaleState,
}

fn robust_settings(m: &ScaleMethod) -> Option<RobustSettings> {
    match *m {
        ScaleMethod::Robust {
            quantile_range,
            with_centering,
            with_scaling,
            unit_variance,
        } => Some(RobustSettings {
            quantile_range,
            with_centering,
            with_scaling,
            unit_variance,
        }),
        _ => None,
    }
}

impl ScaleAcc {
    pub fn new(group: &ScaleGroup, columns: &[String]) -> ScaleAcc {
        let n = columns.len();
        ScaleAcc {
            columns: columns.to_vec(),
            state: match group.method {
                ScaleMethod::Standard { .. } => ScaleState::Standard(StandardAcc::new(n)),
                ScaleMethod::MinMax { .. } => ScaleState::MinMax(MinMaxAcc::new(n)),
                ScaleMethod::MaxAbs => ScaleState::MaxAbs(MaxAbsAcc::new(n)),
                ScaleMethod::Robust { .. } => ScaleState::Robust(RobustAcc::new(n)),
            },
        }
    }

    pub fn update(&mut self, df: &DataFrame) -> Result<()> {
        let c = &self.columns;
        match &mut self.state {
            ScaleState::Standard(a) => a.update(df, c),
            ScaleState::MinMax(a) => a.update(df, c),
            ScaleState::MaxAbs(a) => a.update(df, c),
            ScaleState::Robust(a) => a.update(df, c),
        }
    }

    pub fn merge(&mut self, other: &ScaleAcc) {
        match (&mut self.state, &other.state) {
            (ScaleState::Standard(a), ScaleState::Standard(b)) => a.merge(b),
            (ScaleState::MinMax(a), ScaleState::MinMax(b)) => a.merge(b),
            (ScaleState::MaxAbs(a), ScaleState::MaxAbs(b)) => a.merge(b),
            (ScaleState::Robust(a), ScaleState::Robust(b)) => a.merge(b),
            _ => {}
        }
    }

    /// The ranks a robust group needs found (none for the other methods).
    pub fn problems(
        &self,
        group: &ScaleGroup,
        fill: &dyn Fn(&str) -> Option<(f64, u64)>,
    ) -> Result<Vec<Problem>> {
        match (&self.state, robust_settings(&group.method)) {
            (ScaleState::Robust(a), Some(set)) => a.problems(&self.columns, &set, fill),
            _ => Ok(Vec::new()),
        }
    }

    /// The fitted step; `found` holds the values for [`Self::problems`].
    pub fn finish(
        &self,
        group: &ScaleGroup,
        n_rows: u64,
        fill: &dyn Fn(&str) -> Option<(f64, u64)>,
        problems: &[Problem],
        found: &[BTreeMap<u64, f64>],
    ) -> Result<ScaleStep> {
        let c = &self.columns;
        Ok(match (&self.state, group.method) {
            (
                ScaleState::Standard(a),
                ScaleMethod::Standard {
                    with_mean,
                    with_std,
                },
            ) => ScaleStep::Standard(a.finish(c, with_mean, with_std, fill)?),
            (
                ScaleState::MinMax(a),
                ScaleMethod::MinMax {
                    feature_range,
                    clip,
                },
            ) => ScaleStep::Minmax(a.finish(c, feature_range, clip, n_rows, fill)?),
            (ScaleState::MaxAbs(a), ScaleMethod::MaxAbs) => {
                ScaleStep::Maxabs(a.finish(c, n_rows, fill)?)
            }
            (ScaleState::Robust(a), m) => {
                let set = robust_settings(&m).expect("a robust group");
                ScaleStep::Robust(a.finish(c, &set, problems, found))
            }
            _ => unreachable!("the state follows the group's method"),
        })
    }
}

/// A fitted `[scale]` group (`"method"` names it in `transform.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum ScaleStep {
    Standard(StandardStep),
    Minmax(MinMaxStep),
    Maxabs(MaxAbsStep),
    Robust(RobustStep),
}

impl ScaleStep {
    pub fn columns(&self) -> &[String] {
        match self {
            ScaleStep::Standard(s) => &s.columns,
            ScaleStep::Minmax(s) => &s.columns,
            ScaleStep::Maxabs(s) => &s.columns,
            ScaleStep::Robust(s) => &s.columns,
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            ScaleStep::Standard(_) => "standard",
            ScaleStep::Minmax(_) => "minmax",
            ScaleStep::Maxabs(_) => "maxabs",
            ScaleStep::Robust(_) => "robust",
        }
    }

    pub fn apply(&self, df: DataFrame) -> Result<DataFrame> {
        match self {
            ScaleStep::Standard(s) => s.apply(df),
            ScaleStep::Minmax(s) => s.apply(df),
            ScaleStep::Maxabs(s) => s.apply(df),
            ScaleStep::Robust(s) => s.apply(df),
        }
    }
}
