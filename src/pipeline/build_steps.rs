//! `[impute]`, `[encode]` and `[scale]` tables → validated groups
//! (CONTRACT §9). Every problem goes to the shared list with the line and
//! column of its key and a hint, so `prep validate` shows them all at once.

use std::collections::BTreeMap;

use crate::pipeline::build::Problems;
use crate::pipeline::config::{
    OneOrMany, RawColumns, RawDropNulls, RawEncode, RawImpute, RawScalar, RawScale, S,
};
use crate::pipeline::steps::*;

/// The groups of one kind as written, with the span of the whole entry.
fn items<T>(raw: &Option<S<OneOrMany<T>>>) -> Vec<(&T, std::ops::Range<usize>)> {
    match raw {
        None => Vec::new(),
        Some(s) => s
            .get_ref()
            .items()
            .into_iter()
            .map(|t| (t, s.span()))
            .collect(),
    }
}

fn scalar(v: &RawScalar) -> Scalar {
    match v {
        RawScalar::Bool(b) => Scalar::Bool(*b),
        RawScalar::Int(i) => Scalar::Int(*i),
        RawScalar::Float(f) => Scalar::Float(*f),
        RawScalar::Str(s) => Scalar::Str(s.clone()),
    }
}

/// `columns` of a group: required; `"numeric"` or a list (`numeric_ok`).
fn columns_of(
    p: &mut Problems,
    kind: &str,
    columns: &Option<S<RawColumns>>,
    exclude: &[String],
    table: std::ops::Range<usize>,
    numeric_ok: bool,
) -> (ScaleColumns, std::ops::Range<usize>) {
    let Some(c) = columns else {
        let what = if numeric_ok {
            "a list of column names, or \"numeric\""
        } else {
            "an explicit list of column names"
        };
        p.at(table.clone(), format!("[{kind}] needs `columns`: {what}"));
        return (ScaleColumns::List(Vec::new()), table);
    };
    let cols = match c.get_ref() {
        RawColumns::Keyword(k) if k == "numeric" && numeric_ok => ScaleColumns::Numeric,
        RawColumns::Keyword(k) if k == "numeric" => {
            p.at(c.span(), format!(
                "`{kind}.columns` must be an explicit list of columns, not \"numeric\" (free text or ids must never be encoded by accident); list them, e.g. columns = [\"category\"]"
            ));
            ScaleColumns::List(Vec::new())
        }
        RawColumns::Keyword(k) => {
            let allowed = if numeric_ok {
                "\"numeric\" or a list of columns"
            } else {
                "a list of columns"
            };
            p.at(
                c.span(),
                format!("`{kind}.columns` must be {allowed}, got {k:?}"),
            );
            ScaleColumns::List(Vec::new())
        }
        RawColumns::List(l) => {
            for col in l {
                if exclude.contains(col) {
                    p.at(c.span(), format!("column `{col}` is both in `{kind}.columns` and `{kind}.exclude`; remove it from one of them"));
                }
            }
            ScaleColumns::List(l.clone())
        }
    };
    (cols, c.span())
}

fn impute_group(
    p: &mut Problems,
    raw: &RawImpute,
    table: std::ops::Range<usize>,
) -> (ImputeGroup, std::ops::Range<usize>) {
    let (columns, span) = columns_of(p, "impute", &raw.columns, &raw.exclude, table, true);
    let strategy = match raw
        .strategy
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("mean", _)) => ImputeStrategy::Mean,
        Some(("median", _)) => ImputeStrategy::Median,
        Some(("most_frequent", _)) => ImputeStrategy::MostFrequent,
        Some(("constant", s)) => match &raw.fill_value {
            Some(v) => ImputeStrategy::Constant(scalar(v.get_ref())),
            None => {
                p.at(s, "`impute.strategy = \"constant\"` needs `fill_value` (a number, or a string for string columns), e.g. fill_value = 0");
                ImputeStrategy::Constant(Scalar::Int(0))
            }
        },
        Some((other, s)) => {
            p.at(s, format!("`impute.strategy` {other:?} is not known; use one of \"mean\", \"median\", \"most_frequent\", \"constant\""));
            ImputeStrategy::Mean
        }
    };
    if let (Some(v), false) = (
        &raw.fill_value,
        matches!(strategy, ImputeStrategy::Constant(_)),
    ) {
        p.at(v.span(), format!("`impute.fill_value` applies only with strategy = \"constant\" (this group uses {:?}); remove it or set strategy = \"constant\"", strategy.name()));
    }
    let at = p.position(span.clone());
    (
        ImputeGroup {
            columns,
            exclude: raw.exclude.clone(),
            strategy,
            add_indicator: raw.add_indicator.unwrap_or(false),
            at,
        },
        span,
    )
}

fn encode_group(
    p: &mut Problems,
    raw: &RawEncode,
    table: std::ops::Range<usize>,
) -> (EncodeGroup, std::ops::Range<usize>) {
    let (columns, span) = columns_of(p, "encode", &raw.columns, &[], table, false);
    let columns = match columns {
        ScaleColumns::List(l) => l,
        ScaleColumns::Numeric => Vec::new(),
    };
    let method = match raw
        .method
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("onehot", _)) => EncodeMethod::OneHot,
        Some(("ordinal", _)) => EncodeMethod::Ordinal,
        Some((other, s)) => {
            p.at(
                s,
                format!("`encode.method` {other:?} is not known; use \"onehot\" or \"ordinal\""),
            );
            EncodeMethod::OneHot
        }
    };
    let min_frequency = match raw.min_frequency.as_ref() {
        None => MinFrequency::Count(1),
        Some(s) => match s.get_ref() {
            RawScalar::Int(i) if *i >= 1 => MinFrequency::Count(*i as u64),
            RawScalar::Float(f) if *f > 0.0 && *f < 1.0 => MinFrequency::Fraction(*f),
            other => {
                p.at(s.span(), format!("`encode.min_frequency` must be an integer ≥ 1 (a count) or a number between 0 and 1 (a fraction of the rows), got {}", scalar(other)));
                MinFrequency::Count(1)
            }
        },
    };
    let max_categories = match raw.max_categories.as_ref() {
        None => 0,
        Some(s) if *s.get_ref() >= 0 => *s.get_ref() as u64,
        Some(s) => {
            p.at(
                s.span(),
                format!(
                    "`encode.max_categories` must be 0 (no limit) or a positive integer, got {}",
                    s.get_ref()
                ),
            );
            0
        }
    };
    let allowed: &[&str] = match method {
        EncodeMethod::OneHot => &["error", "ignore", "infrequent_if_exist"],
        EncodeMethod::Ordinal => &["error", "use_encoded_value"],
    };
    let handle_unknown = match raw.handle_unknown.as_ref() {
        None => HandleUnknown::Error,
        Some(s) if allowed.contains(&s.get_ref().as_str()) => match s.get_ref().as_str() {
            "ignore" => HandleUnknown::Ignore,
            "infrequent_if_exist" => HandleUnknown::InfrequentIfExist,
            "use_encoded_value" => HandleUnknown::UseEncodedValue,
            _ => HandleUnknown::Error,
        },
        Some(s) => {
            let m = if method == EncodeMethod::OneHot {
                "onehot"
            } else {
                "ordinal"
            };
            let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            p.at(
                s.span(),
                format!(
                    "`encode.handle_unknown` {:?} is not available with method = \"{m}\"; use {}",
                    s.get_ref(),
                    list.join(", ")
                ),
            );
            HandleUnknown::Error
        }
    };
    let unknown_value = match raw.unknown_value.as_ref() {
        None => -1,
        Some(s) if handle_unknown != HandleUnknown::UseEncodedValue => {
            p.at(s.span(), "`encode.unknown_value` applies only with method = \"ordinal\" and handle_unknown = \"use_encoded_value\"; remove it or set those");
            *s.get_ref()
        }
        Some(s) if *s.get_ref() < 0 => *s.get_ref(),
        Some(s) => {
            p.at(s.span(), format!("`encode.unknown_value` must be a negative integer (codes 0, 1, … are taken by the categories), got {}", s.get_ref()));
            -1
        }
    };
    let max_distinct = match raw.max_distinct.as_ref() {
        None => 100_000,
        Some(s) if *s.get_ref() > 0 => *s.get_ref() as u64,
        Some(s) => {
            p.at(
                s.span(),
                format!(
                    "`encode.max_distinct` must be a positive integer, got {}",
                    s.get_ref()
                ),
            );
            100_000
        }
    };
    let at = p.position(span.clone());
    (
        EncodeGroup {
            columns,
            method,
            min_frequency,
            max_categories,
            handle_unknown,
            unknown_value,
            max_distinct,
            at,
        },
        span,
    )
}

/// A `[low, high]` pair of numbers.
fn pair(p: &mut Problems, v: &S<Vec<f64>>, key: &str, default: [f64; 2]) -> [f64; 2] {
    match v.get_ref().as_slice() {
        [a, b] => [*a, *b],
        _ => {
            p.at(
                v.span(),
                format!(
                    "`scale.{key}` must be two numbers, e.g. {key} = [{:?}, {:?}]",
                    default[0], default[1]
                ),
            );
            default
        }
    }
}

fn scale_group(
    p: &mut Problems,
    raw: &RawScale,
    table: std::ops::Range<usize>,
) -> (ScaleGroup, std::ops::Range<usize>) {
    let (columns, span) = match &raw.columns {
        None => (ScaleColumns::Numeric, table.clone()),
        Some(_) => columns_of(p, "scale", &raw.columns, &raw.exclude, table.clone(), true),
    };
    let name = raw
        .method
        .as_ref()
        .map(|m| m.get_ref().as_str())
        .unwrap_or("standard");
    let only = |p: &mut Problems,
                key: &str,
                span: Option<std::ops::Range<usize>>,
                methods: &str| {
        if let Some(s) = span {
            p.at(s, format!("`scale.{key}` applies only to method = {methods} (this group is {name:?}); remove it or change the method"));
        }
    };
    let bool_span = |b: &Option<S<bool>>| b.as_ref().map(|b| b.span());
    let get = |b: &Option<S<bool>>, d: bool| b.as_ref().map_or(d, |b| *b.get_ref());
    let method = match name {
        "standard" => ScaleMethod::Standard {
            with_mean: get(&raw.with_mean, true),
            with_std: get(&raw.with_std, true),
        },
        "minmax" => ScaleMethod::MinMax {
            feature_range: match &raw.feature_range {
                None => [0.0, 1.0],
                Some(v) => {
                    let r = pair(p, v, "feature_range", [0.0, 1.0]);
                    if !(r[0].is_finite() && r[1].is_finite()) {
                        p.at(v.span(), format!("`scale.feature_range` must be two finite numbers, got [{:?}, {:?}]", r[0], r[1]));
                    } else if r[0] >= r[1] {
                        p.at(v.span(), format!("`scale.feature_range` must have its minimum below its maximum, got [{:?}, {:?}]", r[0], r[1]));
                    }
                    r
                }
            },
            clip: get(&raw.clip, false),
        },
        "maxabs" => ScaleMethod::MaxAbs,
        "robust" => ScaleMethod::Robust {
            quantile_range: match &raw.quantile_range {
                None => [25.0, 75.0],
                Some(v) => {
                    let r = pair(p, v, "quantile_range", [25.0, 75.0]);
                    if !(0.0 <= r[0] && r[0] <= r[1] && r[1] <= 100.0) {
                        p.at(v.span(), format!("`scale.quantile_range` must satisfy 0 ≤ low ≤ high ≤ 100, got [{:?}, {:?}]", r[0], r[1]));
                    }
                    r
                }
            },
            with_centering: get(&raw.with_centering, true),
            with_scaling: get(&raw.with_scaling, true),
            unit_variance: get(&raw.unit_variance, false),
        },
        other => {
            let s = raw.method.as_ref().map(|m| m.span()).unwrap_or(table);
            p.at(s, format!("`scale.method` {other:?} is not known; use one of \"standard\", \"minmax\", \"maxabs\", \"robust\""));
            ScaleMethod::Standard {
                with_mean: true,
                with_std: true,
            }
        }
    };
    let known = ["standard", "minmax", "maxabs", "robust"].contains(&name);
    if known {
        if name != "standard" {
            only(p, "with_mean", bool_span(&raw.with_mean), "\"standard\"");
            only(p, "with_std", bool_span(&raw.with_std), "\"standard\"");
        }
        if name != "minmax" {
            only(
                p,
                "feature_range",
                raw.feature_range.as_ref().map(|v| v.span()),
                "\"minmax\"",
            );
            only(p, "clip", bool_span(&raw.clip), "\"minmax\"");
        }
        if name != "robust" {
            only(
                p,
                "quantile_range",
                raw.quantile_range.as_ref().map(|v| v.span()),
                "\"robust\"",
            );
            only(
                p,
                "with_centering",
                bool_span(&raw.with_centering),
                "\"robust\"",
            );
            only(
                p,
                "with_scaling",
                bool_span(&raw.with_scaling),
                "\"robust\"",
            );
            only(
                p,
                "unit_variance",
                bool_span(&raw.unit_variance),
                "\"robust\"",
            );
        }
    }
    let at = p.position(span.clone());
    (
        ScaleGroup {
            columns,
            exclude: raw.exclude.clone(),
            method,
            at,
        },
        span,
    )
}

/// A column in at most one group of each kind; at most one `"numeric"`.
fn check_disjoint<'a>(
    p: &mut Problems,
    kind: &str,
    groups: impl Iterator<Item = (&'a ScaleColumns, std::ops::Range<usize>)>,
) {
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    let mut numeric = false;
    for (cols, span) in groups {
        match cols {
            ScaleColumns::Numeric if numeric => p.at(span, format!(
                "two [[{kind}]] groups use columns = \"numeric\"; a column is in at most one group of each kind, so give all but one group an explicit list"
            )),
            ScaleColumns::Numeric => numeric = true,
            ScaleColumns::List(l) => {
                for c in l {
                    if seen.insert(c.as_str(), ()).is_some() {
                        p.at(span.clone(), format!("column `{c}` is in two [[{kind}]] groups; a column is in at most one group of each kind"));
                    }
                }
            }
        }
    }
}

/// The validated groups of a pipeline, in stage order.
pub struct StepGroups {
    pub impute: Groups<ImputeGroup>,
    pub encode: Groups<EncodeGroup>,
    pub scale: Groups<ScaleGroup>,
}

pub(crate) fn build_steps(
    p: &mut Problems,
    impute: &Option<S<OneOrMany<RawImpute>>>,
    encode: &Option<S<OneOrMany<RawEncode>>>,
    scale: &Option<S<OneOrMany<RawScale>>>,
    drop_nulls: &Option<S<RawDropNulls>>,
) -> StepGroups {
    let imp: Vec<_> = items(impute)
        .into_iter()
        .map(|(r, s)| impute_group(p, r, s))
        .collect();
    let enc: Vec<_> = items(encode)
        .into_iter()
        .map(|(r, s)| encode_group(p, r, s))
        .collect();
    let mut sc: Vec<_> = items(scale)
        .into_iter()
        .map(|(r, s)| scale_group(p, r, s))
        .collect();
    if scale.is_none() {
        sc.push((ScaleGroup::default_group(), 0..0));
    }
    check_disjoint(
        p,
        "impute",
        imp.iter().map(|(g, s)| (&g.columns, s.clone())),
    );
    let enc_cols: Vec<ScaleColumns> = enc
        .iter()
        .map(|(g, _)| ScaleColumns::List(g.columns.clone()))
        .collect();
    check_disjoint(
        p,
        "encode",
        enc_cols.iter().zip(enc.iter().map(|(_, s)| s.clone())),
    );
    check_disjoint(p, "scale", sc.iter().map(|(g, s)| (&g.columns, s.clone())));

    let encoded: Vec<&String> = enc.iter().flat_map(|(g, _)| g.columns.iter()).collect();
    for (g, span) in &imp {
        let ScaleColumns::List(cols) = &g.columns else {
            continue;
        };
        for c in cols {
            if encoded.contains(&c)
                && matches!(g.strategy, ImputeStrategy::Mean | ImputeStrategy::Median)
            {
                p.at(span.clone(), format!(
                    "column `{c}` is encoded, so it cannot be imputed with strategy = {:?} (that makes it a float); impute it with \"most_frequent\" or \"constant\" in a group of its own",
                    g.strategy.name()
                ));
            }
        }
        if let Some(d) = drop_nulls {
            if let RawDropNulls::Columns(dn) = d.get_ref() {
                for c in cols.iter().filter(|c| dn.contains(c)) {
                    p.at(d.span(), format!(
                        "column `{c}` is both imputed and in `clean.drop_nulls`; a null there is either filled or drops the row, so remove it from one of them"
                    ));
                }
            }
        }
    }
    for (g, span) in &sc {
        let ScaleColumns::List(cols) = &g.columns else {
            continue;
        };
        for c in cols.iter().filter(|c| encoded.contains(c)) {
            p.at(span.clone(), format!(
                "column `{c}` is encoded, and generated columns are never scaled; remove it from scale.columns"
            ));
        }
    }
    StepGroups {
        impute: Groups(imp.into_iter().map(|(g, _)| g).collect()),
        encode: Groups(enc.into_iter().map(|(g, _)| g).collect()),
        scale: Groups(sc.into_iter().map(|(g, _)| g).collect()),
    }
}
