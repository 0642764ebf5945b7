//! The pipeline file exactly as written (CONTRACT §2).
//!
//! These serde structs mirror the TOML one to one, reject unknown keys
//! (`deny_unknown_fields`, so the toml crate reports line and column), and
//! keep the span of each value so that `build.rs` can point at the offending
//! line when a value is well-typed but wrong. `[impute]`, `[encode]` and
//! `[scale]` may each be one table or an array of tables ([`OneOrMany`]).
//! Nothing here interprets values: that is the plan's job.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{did_you_mean, PrepError, Result};

pub type S<T> = Spanned<T>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub name: S<String>,
    pub input: RawInput,
    #[serde(default)]
    pub clean: RawClean,
    /// `[impute]` or `[[impute]]` (CONTRACT §9).
    pub impute: Option<S<OneOrMany<RawImpute>>>,
    /// `[encode]` or `[[encode]]`.
    pub encode: Option<S<OneOrMany<RawEncode>>>,
    /// `[scale]` or `[[scale]]`; absent: one standard group over "numeric".
    pub scale: Option<S<OneOrMany<RawScale>>>,
    pub output: RawOutput,
    #[serde(default)]
    pub artifacts: RawArtifacts,
    #[serde(default)]
    pub storage: RawStorage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub uri: S<String>,
    pub format: Option<S<String>>,
    pub chunk_rows: Option<S<i64>>,
    /// How the transform pass gets the cleaned rows back: "auto" (default),
    /// "spill" or "reread". Not in the contract; see the README.
    pub second_pass: Option<S<String>>,
    /// Bytes of cleaned chunks kept in memory between the passes (the
    /// rest is spilled); "0" spills everything.
    pub memory_budget: Option<S<String>>,
    #[serde(default)]
    pub csv: RawCsv,
    #[serde(default)]
    pub schema: BTreeMap<String, S<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsv {
    pub delimiter: Option<S<String>>,
    pub header: Option<bool>,
    pub quote: Option<S<String>>,
    pub null_values: Option<Vec<String>>,
    pub encoding: Option<S<String>>,
}

/// `drop_nulls = "any"` or `drop_nulls = ["a", "b"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDropNulls {
    Keyword(String),
    Columns(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClean {
    pub drop_nulls: Option<S<RawDropNulls>>,
    pub non_finite: Option<S<String>>,
}

/// `columns = "numeric"` or `columns = ["a", "b"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawColumns {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScale {
    pub method: Option<S<String>>,
    pub columns: Option<S<RawColumns>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub with_mean: Option<S<bool>>,
    pub with_std: Option<S<bool>>,
    pub feature_range: Option<S<Vec<f64>>>,
    pub clip: Option<S<bool>>,
    pub quantile_range: Option<S<Vec<f64>>>,
    pub with_centering: Option<S<bool>>,
    pub with_scaling: Option<S<bool>>,
    pub unit_variance: Option<S<bool>>,
}

/// `fill_value = 0`, `= 1.5`, `= "missing"` or `= true`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// `[impute]`: one group of imputed columns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImpute {
    pub columns: Option<S<RawColumns>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub strategy: Option<S<String>>,
    pub fill_value: Option<S<RawScalar>>,
    pub add_indicator: Option<bool>,
}

/// `[encode]`: one group of encoded columns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEncode {
    pub columns: Option<S<RawColumns>>,
    pub method: Option<S<String>>,
    pub min_frequency: Option<S<RawScalar>>,
    pub max_categories: Option<S<i64>>,
    pub handle_unknown: Option<S<String>>,
    pub unknown_value: Option<S<i64>>,
    pub max_distinct: Option<S<i64>>,
}

/// A table (`[scale]`) or an array of tables (`[[scale]]`). Deserialized by
/// hand rather than `untagged`, so an unknown key inside still reports its
/// own line, column and "did you mean".
#[derive(Debug, Clone)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn items(&self) -> Vec<&T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{value, MapAccess, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table ([name]) or an array of tables ([[name]])")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                m: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                T::deserialize(value::MapAccessDeserializer::new(m)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                s: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(value::SeqAccessDeserializer::new(s)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub uri: S<String>,
    pub format: Option<S<String>>,
    pub shard_max_rows: Option<S<i64>>,
    pub shard_max_bytes: Option<S<String>>,
    pub min_shards: Option<S<i64>>,
    pub columns: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub rename: BTreeMap<String, S<String>>,
    pub compression: Option<S<String>>,
    pub csv_header: Option<bool>,
    /// Write the rows cleaning dropped to `_rejects/` (CONTRACT §10).
    pub rejects: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifacts {
    pub scaler: Option<S<String>>,
    pub transform: Option<S<String>>,
}

/// Object-store connection settings (endpoint of an S3-compatible server).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
}

/// The pipeline text after `--set` overrides, and what was parsed from it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: String,
    pub text: String,
    pub raw: RawConfig,
    /// Each `--set` as given, and where its key and value lie in `text`.
    pub sets: Vec<(String, std::ops::Range<usize>)>,
}

impl LoadedConfig {
    /// "line L, column C" of a span in the (overridden) text, or the
    /// `--set` it came from.
    pub fn position(&self, span: std::ops::Range<usize>) -> String {
        position_in(&self.text, &self.sets, span.start)
    }
}

/// Where byte `at` of the overridden `text` came from: `--set KEY=VALUE`
/// when inside one of `sets`, else its line and column in the file.
fn position_in(text: &str, sets: &[(String, std::ops::Range<usize>)], at: usize) -> String {
    if let Some((set, _)) = sets.iter().rev().find(|(_, r)| r.contains(&at)) {
        return format!("--set {set}");
    }
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}")
}

/// Reads the pipeline file, applies `--set key=value` overrides, and parses it.
pub fn load(path: &str, sets: &[String]) -> Result<LoadedConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PrepError::config(path, format!("cannot read the pipeline file: {e}")))?;
    load_str(path, &text, sets)
}

pub fn load_str(file: &str, text: &str, sets: &[String]) -> Result<LoadedConfig> {
    let text = apply_sets(file, text, sets)?;
    let spans = set_spans(&text, sets);
    let raw: RawConfig = toml::from_str(&text).map_err(|e| PrepError::Config {
        file: file.to_string(),
        problems: vec![describe_toml_error(&text, &spans, &e)],
    })?;
    Ok(LoadedConfig {
        file: file.to_string(),
        text,
        raw,
        sets: spans,
    })
}

/// Where each `--set` (already applied) lies in `text`: from its key to the
/// end of its value, so a problem there names the `--set`, not a line of
/// the file that does not hold it.
fn set_spans(text: &str, sets: &[String]) -> Vec<(String, std::ops::Range<usize>)> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    sets.iter()
        .filter_map(|set| {
            let key = set.split_once('=')?.0.trim();
            let path: Vec<&str> = key.split('.').collect();
            let (last, tables) = path.split_last()?;
            let mut table = doc.as_table();
            for part in tables {
                table = table.get(part)?.as_table()?;
            }
            let (k, item) = table.get_key_value(last)?;
            let value = item.span()?;
            let start = k.span().map_or(value.start, |s| s.start);
            Some((set.clone(), start..value.end.max(start + 1)))
        })
        .collect()
}

/// Applies dotted-path overrides with `toml_edit`, which keeps the rest of the
/// file byte for byte, so line numbers in later errors still match the file.
fn apply_sets(file: &str, text: &str, sets: &[String]) -> Result<String> {
    if sets.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        PrepError::config(file, e.to_string().trim_end().to_string())
    })?;
    for set in sets {
        let (key, value) = set.split_once('=').ok_or_else(|| PrepError::Usage {
            message: format!("--set `{set}` is not KEY=VALUE"),
            hint: Some("example: --set input.uri=s3://bucket/raw/".into()),
        })?;
        let path: Vec<&str> = key.trim().split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(PrepError::Usage {
                message: format!("--set `{set}`: `{key}` is not a dotted key path"),
                hint: Some("example: --set output.shard_max_rows=50000".into()),
            });
        }
        let value = parse_set_value(value);
        let mut table = doc.as_table_mut();
        for part in &path[..path.len() - 1] {
            let entry = table
                .entry(part)
                .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
            table = match entry.as_table_mut() {
                Some(t) => t,
                None => {
                    return Err(PrepError::Usage {
                        message: format!("--set `{set}`: `{part}` is a value, not a table"),
                        hint: None,
                    })
                }
            };
        }
        table.insert(path[path.len() - 1], toml_edit::Item::Value(value));
    }
    Ok(doc.to_string())
}

/// The keys of each table, as serde lists them when it meets an unknown
/// one (so the list never drifts from the structs above).
fn known_keys() -> &'static [(&'static str, Vec<String>)] {
    fn keys_of<T: serde::de::DeserializeOwned>() -> Vec<String> {
        match toml::from_str::<T>("__probe__ = 1") {
            Ok(_) => Vec::new(),
            Err(e) => e
                .message()
                .split('`')
                .skip(3)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        }
    }
    static KEYS: std::sync::OnceLock<Vec<(&'static str, Vec<String>)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            ("input", keys_of::<RawInput>()),
            ("input.csv", keys_of::<RawCsv>()),
            ("clean", keys_of::<RawClean>()),
            ("scale", keys_of::<RawScale>()),
            ("impute", keys_of::<RawImpute>()),
            ("encode", keys_of::<RawEncode>()),
            ("output", keys_of::<RawOutput>()),
            ("artifacts", keys_of::<RawArtifacts>()),
            ("storage", keys_of::<RawStorage>()),
        ]
    })
}

/// serde's names for the types it expected, as a pipeline file spells
/// them (`expected i64` → `expected an integer`).
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        out = out.replace(rust, plain);
    }
    if let Some(at) = out.find("expected struct Raw") {
        out.replace_range(at.., "expected a table ([...])");
    }
    out
}

/// A `--set` value is TOML when it parses as TOML (`1000`, `true`, `["a"]`),
/// otherwise a plain string (`s3://b/p/`), so users rarely need quotes.
fn parse_set_value(value: &str) -> toml_edit::Value {
    let trimmed = value.trim();
    match format!("v = {trimmed}").parse::<toml_edit::DocumentMut>() {
        Ok(doc) => match doc.get("v").and_then(|i| i.as_value()) {
            Some(v) => v.clone().decorated("", ""),
            None => toml_edit::Value::from(trimmed),
        },
        Err(_) => toml_edit::Value::from(trimmed),
    }
}

/// Turns a toml/serde error into one line with the position, the table and,
/// for an unknown key, the closest known key.
fn describe_toml_error(
    text: &str,
    sets: &[(String, std::ops::Range<usize>)],
    e: &toml::de::Error,
) -> String {
    let message = plain_types(e.message());
    let (position, table) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let table = before
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('[') && l.ends_with(']'))
                .map(|l| l.to_string())
                .unwrap_or_else(|| "the top level".to_string());
            (position_in(text, sets, span.start), table)
        }
        None => ("unknown position".to_string(), "the file".to_string()),
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let mut out = format!("{position}: unknown key `{key}` in {table}");
        let elsewhere: Vec<String> = known_keys()
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| k == key))
            .map(|(t, _)| format!("{t}.{key}"))
            .collect();
        if let Some(s) = did_you_mean(key, expected.iter().copied()) {
            out.push_str(&format!(", did you mean `{s}`?"));
        } else if let [only] = elsewhere.as_slice() {
            out.push_str(&format!(", did you mean `{only}`?"));
        } else if !expected.is_empty() {
            out.push_str(&format!(" (known keys: {})", expected.join(", ")));
        }
        return out;
    }
    format!("{position}: {}", message.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_set_value_names_the_set_and_plain_types() {
        let text = "name = \"t\"\n[input]\nuri = \"in.csv\"\n[output]\nuri = \"out/\"\n";
        let sets = ["input.chunk_rows=abc".to_string()];
        let err = problems(load_str("p.toml", text, &sets).unwrap_err()).join("\n");
        assert!(
            err.contains(
                "--set input.chunk_rows=abc: invalid type: string \"abc\", expected an integer"
            ),
            "{err}"
        );
        let err =
            problems(load_str("p.toml", text, &["input=3".to_string()]).unwrap_err()).join("\n");
        assert!(
            err.contains("--set input=3") && err.ends_with("expected a table ([...])"),
            "{err}"
        );
        let err = problems(load_str("p.toml", text, &["chunk_rows=2".to_string()]).unwrap_err())
            .join("\n");
        assert!(
            err.starts_with(
                "--set chunk_rows=2: unknown key `chunk_rows` in the top level, did you mean `input.chunk_rows`?"
            ),
            "{err}"
        );
        // A key of another table, in the file itself.
        let moved = "name = \"t\"\n[input]\nuri = \"in.csv\"\ndrop_nulls = \"any\"\n[output]\nuri = \"out/\"\n";
        let err = problems(load_str("p.toml", moved, &[]).unwrap_err()).join("\n");
        assert!(
            err.contains("unknown key `drop_nulls` in [input], did you mean `clean.drop_nulls`?"),
            "{err}"
        );
        // A value the plan rejects names the --set too.
        let cfg = load_str("p.toml", text, &["output.shard_max_bytes=-5KB".to_string()]).unwrap();
        let span = cfg.sets[0].1.clone();
        assert_eq!(
            cfg.position(span.end - 1..span.end),
            "--set output.shard_max_bytes=-5KB"
        );
        // Problems in the file itself keep their line and column.
        let err = problems(load_str("p.toml", "name = 3\n", &sets).unwrap_err()).join("\n");
        assert!(err.starts_with("line 1, column 8"), "{err}");
    }

    const MINIMAL: &str = "name = \"t\"\n[input]\nuri = \"in.csv\"\n[output]\nuri = \"out/\"\n";

    fn problems(err: PrepError) -> Vec<String> {
        match err {
            PrepError::Config { problems, .. } => problems,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn parses_minimal_file() {
        let cfg = load_str("p.toml", MINIMAL, &[]).unwrap();
        assert_eq!(cfg.raw.input.uri.get_ref(), "in.csv");
    }

    #[test]
    fn unknown_key_names_line_table_and_suggestion() {
        let text = format!("{MINIMAL}shard_rows = 5\n");
        let p = problems(load_str("p.toml", &text, &[]).unwrap_err());
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("line 6, column 1"), "{}", p[0]);
        assert!(
            p[0].contains("unknown key `shard_rows` in [output]"),
            "{}",
            p[0]
        );
        assert!(p[0].contains("did you mean `shard_max_rows`?"), "{}", p[0]);
    }

    #[test]
    fn set_overrides_strings_and_numbers() {
        let sets = vec![
            "input.uri=s3://b/p/".to_string(),
            "output.shard_max_rows=10".to_string(),
            "input.csv.delimiter=;".to_string(),
        ];
        let cfg = load_str("p.toml", MINIMAL, &sets).unwrap();
        assert_eq!(cfg.raw.input.uri.get_ref(), "s3://b/p/");
        assert_eq!(*cfg.raw.output.shard_max_rows.unwrap().get_ref(), 10);
        assert_eq!(cfg.raw.input.csv.delimiter.unwrap().get_ref(), ";");
    }

    #[test]
    fn set_with_unknown_key_is_rejected() {
        let p = problems(load_str("p.toml", MINIMAL, &["output.shard_rows=1".into()]).unwrap_err());
        assert!(p[0].contains("unknown key `shard_rows`"), "{}", p[0]);
    }

    #[test]
    fn position_counts_lines_and_columns() {
        let cfg = load_str("p.toml", MINIMAL, &[]).unwrap();
        let span = cfg.raw.input.uri.span();
        assert_eq!(cfg.position(span), "line 3, column 7");
    }
}
