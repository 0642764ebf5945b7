//! The fitted steps of a pipeline, in the fixed stage order impute → encode
//! → scale (CONTRACT §9): their joint fit state ([`FitState`], what the fit
//! pass accumulates and a worker's partial carries), fitting them
//! ([`fit_steps`], with the quantile refinement passes it asks for), and
//! applying them to a chunk ([`FittedSteps`]), including the output layout
//! (one-hot blocks and `<col>_missing` in place, renames as prefixes).
//!
//! Every step accumulates over the cleaned, not yet imputed rows; an
//! imputer's fill then joins the later steps' statistics as that many
//! copies of one value (moments, min/max, counts, an extra key in the
//! quantile search), which equals fitting them on the imputed column.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::{EncodeGroup, ImputeStrategy, Plan, Scalar, ScaleMethod};
use crate::transform::columns::StepColumns;
use crate::transform::counts::Category;
use crate::transform::encode::{EncodeAcc, EncodeStep, Locate};
use crate::transform::impute::{indicator_name, ImputeAcc, ImputeStep, MOST_FREQUENT_LIMIT};
use crate::transform::quantile::{resolve, Problem, Refine};
use crate::transform::scale::{ScaleAcc, ScaleStep};

/// What the fit pass accumulates for every step (mergeable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    pub impute: Vec<ImputeAcc>,
    pub encode: Vec<EncodeAcc>,
    pub scale: Vec<ScaleAcc>,
}

impl FitState {
    pub fn new(plan: &Plan, cols: &StepColumns) -> FitState {
        let encode_limit = |c: &str| -> u64 {
            plan.encode
                .iter()
                .zip(&cols.encode)
                .find(|(_, cs)| cs.iter().any(|x| x == c))
                .map_or(MOST_FREQUENT_LIMIT, |(g, _)| g.max_distinct)
        };
        FitState {
            impute: plan
                .impute
                .iter()
                .zip(&cols.impute)
                .map(|(g, cs)| {
                    let limits = cs.iter().map(|c| encode_limit(c)).collect();
                    ImputeAcc::new(g, cs, limits)
                })
                .collect(),
            encode: plan
                .encode
                .iter()
                .zip(&cols.encode)
                .map(|(g, cs)| EncodeAcc::new(g, cs))
                .collect(),
            scale: plan
                .scale
                .iter()
                .zip(&cols.scale)
                .map(|(g, cs)| ScaleAcc::new(g, cs))
                .collect(),
        }
    }

    /// Folds in one cleaned chunk; `locate` names a row for errors.
    pub fn update(&mut self, df: &DataFrame, cols: &StepColumns, locate: &Locate) -> Result<()> {
        for a in &mut self.impute {
            a.update(df)?;
        }
        for a in &mut self.encode {
            a.update(df, &|c| cols.is_imputed(c), locate)?;
        }
        for a in &mut self.scale {
            a.update(df)?;
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &FitState) -> Result<()> {
        for (a, b) in self.impute.iter_mut().zip(&other.impute) {
            a.merge(b)?;
        }
        for (a, b) in self.encode.iter_mut().zip(&other.encode) {
            a.merge(b)?;
        }
        for (a, b) in self.scale.iter_mut().zip(&other.scale) {
            a.merge(b);
        }
        Ok(())
    }
}

/// Fits every step from the merged state over `n_rows` cleaned rows.
/// Medians and quantiles are searched with `refine` (passes over the rows);
/// a scaler after a median imputer waits for that median (a second search).
pub fn fit_steps(
    plan: &Plan,
    cols: &StepColumns,
    state: &FitState,
    n_rows: u64,
    collect_limit: u64,
    refine: &mut dyn Refine,
) -> Result<FittedSteps> {
    let dtype = |c: &str| cols.dtype(c);
    let encoded = |c: &str| cols.is_encoded(c);
    let groups: Vec<_> = plan.impute.iter().zip(&state.impute).collect();
    let is_median =
        |g: &crate::pipeline::plan::ImputeGroup| matches!(g.strategy, ImputeStrategy::Median);
    let mut impute: Vec<Option<ImputeStep>> = Vec::new();
    for (g, acc) in &groups {
        impute.push(match is_median(g) {
            true => None,
            false => Some(acc.finish(g, &[], &dtype, &encoded)?),
        });
    }
    let median_cols: Vec<&String> = groups
        .iter()
        .filter(|(g, _)| is_median(g))
        .flat_map(|(_, a)| a.columns.iter())
        .collect();
    let robust_waits = |sc: &ScaleAcc| sc.columns.iter().any(|c| median_cols.contains(&c));

    // First search: the median imputers and the robust scalers whose
    // input is known (not median-imputed).
    let mut batch: Vec<Problem> = Vec::new();
    let mut median_spans = Vec::new();
    for (g, acc) in &groups {
        let p = if is_median(g) {
            acc.problems()
        } else {
            Vec::new()
        };
        median_spans.push(batch.len()..batch.len() + p.len());
        batch.extend(p);
    }
    let fill_of = |impute: &[Option<ImputeStep>], c: &str| -> Option<(f64, u64)> {
        impute.iter().flatten().find_map(|s| s.numeric_fill(c))
    };
    let mut robust_spans: Vec<Option<std::ops::Range<usize>>> = Vec::new();
    for (g, acc) in plan.scale.iter().zip(&state.scale) {
        if robust_waits(acc) {
            robust_spans.push(None);
            continue;
        }
        let p = acc.problems(g, &|c| fill_of(&impute, c))?;
        robust_spans.push(Some(batch.len()..batch.len() + p.len()));
        batch.extend(p);
    }
    let found = if batch.is_empty() {
        Vec::new()
    } else {
        resolve(&batch, collect_limit, refine)?
    };
    for (i, (g, acc)) in groups.iter().enumerate() {
        if is_median(g) {
            impute[i] = Some(acc.finish(g, &found[median_spans[i].clone()], &dtype, &encoded)?);
        }
    }
    let impute: Vec<ImputeStep> = impute.into_iter().map(|s| s.expect("fitted")).collect();
    let fill = |c: &str| fill_of_steps(&impute, c);

    // Second search: the robust scalers after a median imputer.
    let mut late: Vec<Problem> = Vec::new();
    let mut late_spans = Vec::new();
    for ((g, acc), span) in plan.scale.iter().zip(&state.scale).zip(&robust_spans) {
        if span.is_some() {
            late_spans.push(None);
            continue;
        }
        let p = acc.problems(g, &fill)?;
        late_spans.push(Some(late.len()..late.len() + p.len()));
        late.extend(p);
    }
    let late_found = if late.is_empty() {
        Vec::new()
    } else {
        resolve(&late, collect_limit, refine)?
    };

    let encode = plan
        .encode
        .iter()
        .zip(&state.encode)
        .map(|(g, acc)| {
            acc.finish(g, n_rows, &|c| {
                impute
                    .iter()
                    .find_map(|s| s.category_fill(c, &cols.dtype(c)))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut scale = Vec::new();
    for (((g, acc), early), late_span) in plan
        .scale
        .iter()
        .zip(&state.scale)
        .zip(&robust_spans)
        .zip(&late_spans)
    {
        let (problems, values) = match (early, late_span) {
            (Some(r), _) => (&batch[r.clone()], &found[r.clone()]),
            (None, Some(r)) => (&late[r.clone()], &late_found[r.clone()]),
            (None, None) => (&batch[0..0], &found[0..0]),
        };
        scale.push(acc.finish(g, n_rows, &fill, problems, values)?);
    }
    let fitted = FittedSteps {
        impute,
        encode,
        scale,
    };
    // A statistic that overflowed f64 would be written as null, and the
    // artifact could not be applied.
    match fitted.overflowed() {
        Some((column, statistic)) => Err(PrepError::bad_data(
            DataLocation::default().column(&column),
            DataError::StatisticOverflow { column, statistic },
        )),
        None => Ok(fitted),
    }
}

fn fill_of_steps(impute: &[ImputeStep], c: &str) -> Option<(f64, u64)> {
    impute.iter().find_map(|s| s.numeric_fill(c))
}

/// Every fitted step, in stage order.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedSteps {
    pub impute: Vec<ImputeStep>,
    pub encode: Vec<EncodeStep>,
    pub scale: Vec<ScaleStep>,
}

impl FittedSteps {
    /// The first fitted number that is not finite: its column and what it is.
    fn overflowed(&self) -> Option<(String, &'static str)> {
        let bad = |columns: &[String], values: &[f64], what: &'static str| {
            columns
                .iter()
                .zip(values)
                .find(|(_, v)| !v.is_finite())
                .map(|(c, _)| (c.clone(), what))
        };
        for s in &self.impute {
            let fills: Vec<f64> = s
                .statistics
                .iter()
                .map(|v| match v {
                    Scalar::Float(f) => *f,
                    _ => 0.0,
                })
                .collect();
            if let Some(found) = bad(&s.columns, &fills, "imputed value") {
                return Some(found);
            }
        }
        for s in &self.scale {
            let found = match s {
                ScaleStep::Standard(m) => bad(&m.columns, &m.mean, "mean")
                    .or_else(|| bad(&m.columns, m.scale.as_deref().unwrap_or(&[]), "scale")),
                ScaleStep::Minmax(m) => bad(&m.columns, &m.data_range, "data range")
                    .or_else(|| bad(&m.columns, &m.scale, "scale"))
                    .or_else(|| bad(&m.columns, &m.min, "offset")),
                ScaleStep::Maxabs(m) => bad(&m.columns, &m.scale, "scale"),
                ScaleStep::Robust(m) => {
                    bad(&m.columns, m.center.as_deref().unwrap_or(&[]), "median").or_else(|| {
                        bad(
                            &m.columns,
                            m.scale.as_deref().unwrap_or(&[]),
                            "quantile range",
                        )
                    })
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Impute, encode, scale (columns in place; the layout orders them).
    pub fn apply(&self, df: DataFrame, locate: &Locate) -> Result<DataFrame> {
        let mut df = df;
        for s in &self.impute {
            df = s.apply(df)?;
        }
        for s in &self.encode {
            df = s.apply(df, locate)?;
        }
        for s in &self.scale {
            df = s.apply(df)?;
        }
        Ok(df)
    }

    /// The columns input column `c` becomes: its one-hot block (or
    /// itself), then `<c>_missing` when it is imputed with an indicator.
    pub fn produced(&self, c: &str) -> Vec<String> {
        let mut out = self
            .encode
            .iter()
            .find_map(|e| e.block(c))
            .unwrap_or_else(|| vec![c.to_string()]);
        if self
            .impute
            .iter()
            .any(|s| s.add_indicator && s.columns.iter().any(|x| x == c))
        {
            out.push(indicator_name(c));
        }
        out
    }

    /// Expands the projection (input name, output name) into the produced
    /// columns and their output names: a renamed column renames the prefix
    /// of its generated names. A generated name that equals another output
    /// column is bad input naming both.
    pub fn layout(&self, output: &[(String, String)], file: &str) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        // Each output name and where it comes from, as the user knows it.
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        for (c, to) in output {
            for p in self.produced(c) {
                let name = match p.strip_prefix(c.as_str()) {
                    Some(rest) if p != *c => format!("{to}{rest}"),
                    _ => to.clone(),
                };
                let from = if p == *c {
                    format!("the column `{c}`")
                } else {
                    format!("the one generated from `{c}`")
                };
                if let Some(first) = origin.get(&name) {
                    return Err(PrepError::bad_data(
                        DataLocation::file(file).column(c),
                        DataError::NameClash {
                            name,
                            first: first.clone(),
                            second: from,
                        },
                    ));
                }
                origin.insert(name.clone(), from);
                out.push((p, name));
            }
        }
        Ok(out)
    }

    /// True when the steps are one standard group and nothing else.
    pub fn only_standard(&self) -> bool {
        self.impute.is_empty()
            && self.encode.is_empty()
            && self.scale.len() == 1
            && matches!(self.scale[0], ScaleStep::Standard(_))
    }
}

/// The encode group a column belongs to (for its category limit).
pub fn encode_group_of<'a>(plan: &'a Plan, cols: &StepColumns, c: &str) -> Option<&'a EncodeGroup> {
    plan.encode
        .iter()
        .zip(&cols.encode)
        .find(|(_, cs)| cs.iter().any(|x| x == c))
        .map(|(g, _)| g)
}

/// Is there any step that needs a quantile search?
pub fn needs_refinement(plan: &Plan) -> bool {
    plan.impute
        .iter()
        .any(|g| matches!(g.strategy, ImputeStrategy::Median))
        || plan
            .scale
            .iter()
            .any(|g| matches!(g.method, ScaleMethod::Robust { .. }))
}

/// A category as the one-hot name suffix (exposed for the layout's tests).
pub fn label(c: &Category) -> String {
    c.label()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::load_str;
    use crate::transform::columns::resolve as resolve_columns;
    use crate::transform::quantile::{Answer, Request, Scan};

    struct Mem(DataFrame, usize);
    impl Refine for Mem {
        fn refine(&mut self, requests: &[Request]) -> Result<Vec<Answer>> {
            self.1 += 1;
            let mut scan = Scan::new(requests.to_vec());
            for (i, r) in requests.iter().enumerate() {
                let (v, _) = crate::transform::values::observed(&self.0, &r.column).unwrap();
                scan.add(i, &v);
            }
            Ok(scan.answers())
        }
    }

    fn fit(extra: &str, df: &DataFrame) -> (FittedSteps, Vec<(String, String)>, usize) {
        let (extra, output) = extra.split_once("[output]\n").unwrap_or((extra, ""));
        let text = format!("name = \"t\"\n[input]\nuri = \"in.csv\"\n{extra}\n[output]\nuri = \"out/\"\n{output}\n");
        let plan = Plan::build(&load_str("p.toml", &text, &[]).unwrap()).unwrap();
        let cols = resolve_columns(&plan, df.schema(), "in.csv").unwrap();
        let mut st = FitState::new(&plan, &cols.steps);
        st.update(df, &cols.steps, &|_, _| DataLocation::default())
            .unwrap();
        let mut mem = Mem(df.clone(), 0);
        let steps = fit_steps(
            &plan,
            &cols.steps,
            &st,
            df.height() as u64,
            1 << 20,
            &mut mem,
        )
        .unwrap();
        let layout = steps.layout(&cols.output, "in.csv").unwrap();
        (steps, layout, mem.1)
    }

    #[test]
    fn a_robust_scaler_after_a_median_imputer_sees_the_imputed_column() {
        let df = df!("x" => [Some(1.0), None, None, Some(1.01), Some(1.05)]).unwrap();
        let (steps, _, passes) = fit(
            "[impute]\ncolumns = [\"x\"]\nstrategy = \"median\"\n[scale]\nmethod = \"robust\"",
            &df,
        );
        // Imputed: [1, 1.01, 1.01, 1.01, 1.05] (one histogram bucket, so
        // each search takes a pass) → median 1.01, q25 = q75 → scale 1.
        let ScaleStep::Robust(r) = &steps.scale[0] else {
            panic!()
        };
        assert_eq!(r.center, Some(vec![1.01]));
        assert_eq!(r.scale, Some(vec![1.0]));
        assert_eq!(passes, 2, "the scaler's search waits for the median");
    }

    #[test]
    fn layout_expands_encoded_columns_in_place_and_renames_prefixes() {
        let df = df!(
            "id" => [1i64, 2, 3],
            "cat" => [Some("a"), None, Some("b")],
            "x" => [Some(1.0), Some(2.0), None]
        )
        .unwrap();
        let (steps, layout, _) = fit(
            "[[impute]]\ncolumns = [\"cat\"]\nstrategy = \"constant\"\nfill_value = \"zz\"\nadd_indicator = true\n[[impute]]\ncolumns = [\"x\"]\n[encode]\ncolumns = [\"cat\"]\n[scale]\nexclude = [\"id\"]\n[output]\nrename = { cat = \"c\" }",
            &df,
        );
        let names: Vec<&str> = layout.iter().map(|(_, o)| o.as_str()).collect();
        assert_eq!(names, vec!["id", "c_a", "c_b", "c_zz", "c_missing", "x"]);
        let out = steps.apply(df, &|_, _| DataLocation::default()).unwrap();
        let out = crate::job::transform::project(out, &layout).unwrap();
        assert_eq!(out.column("c_zz").unwrap().i8().unwrap().get(1), Some(1));
        assert_eq!(
            out.column("x").unwrap().f64().unwrap().get(2),
            Some(0.0),
            "mean 1.5 imputed, then standardized"
        );
    }

    #[test]
    fn a_generated_name_that_clashes_is_bad_input() {
        let df = df!("c" => ["a", "b"], "c_a" => [1i64, 2]).unwrap();
        let text = "name = \"t\"\n[input]\nuri = \"in.csv\"\n[encode]\ncolumns = [\"c\"]\n[scale]\ncolumns = []\n[output]\nuri = \"out/\"\n";
        let plan = Plan::build(&load_str("p.toml", text, &[]).unwrap()).unwrap();
        let cols = resolve_columns(&plan, df.schema(), "in.csv").unwrap();
        let mut st = FitState::new(&plan, &cols.steps);
        st.update(&df, &cols.steps, &|_, _| DataLocation::default())
            .unwrap();
        let steps = fit_steps(&plan, &cols.steps, &st, 2, 10, &mut Mem(df.clone(), 0)).unwrap();
        let err = steps.layout(&cols.output, "in.csv").unwrap_err();
        assert!(err.to_string().contains("c_a"), "{err}");
        assert_eq!(err.exit_code(), crate::error::ExitCode::BadData);
    }
}
