//! Raw config → validated [`Plan`]: single values checked in their own
//! helpers, then every cross-field problem reported at once, each with the
//! line and column of the key in the pipeline file.

use std::num::NonZeroUsize;

use crate::error::{PrepError, Result};
use crate::pipeline::build_steps::build_steps;
use crate::pipeline::config::{LoadedConfig, RawDropNulls};
use crate::pipeline::plan::*;

/// Collects problems with their positions so they can all be reported at once.
pub(crate) struct Problems<'a> {
    cfg: &'a LoadedConfig,
    list: Vec<String>,
}

impl Problems<'_> {
    pub(crate) fn at(&mut self, span: std::ops::Range<usize>, msg: impl AsRef<str>) {
        let pos = self.cfg.position(span);
        self.list.push(format!("{pos}: {}", msg.as_ref()));
    }
    pub(crate) fn plain(&mut self, msg: impl Into<String>) {
        self.list.push(msg.into());
    }
    /// "line L, column C" of a span.
    pub(crate) fn position(&self, span: std::ops::Range<usize>) -> String {
        self.cfg.position(span)
    }
}

fn single_byte(
    p: &mut Problems,
    v: &Option<crate::pipeline::config::S<String>>,
    key: &str,
    default: u8,
) -> u8 {
    match v {
        None => default,
        Some(s) => {
            let text = s.get_ref();
            let text = if text == "\\t" { "\t" } else { text.as_str() };
            if matches!(text, "\n" | "\r") {
                p.at(
                    s.span(),
                    format!("`{key}` cannot be a line end; line ends always end a record"),
                );
                default
            } else if text.len() == 1 && text.is_ascii() {
                text.as_bytes()[0]
            } else {
                p.at(
                    s.span(),
                    format!(
                        "`{key}` must be a single ASCII character, got {:?}",
                        s.get_ref()
                    ),
                );
                default
            }
        }
    }
}

fn positive(
    p: &mut Problems,
    v: &Option<crate::pipeline::config::S<i64>>,
    key: &str,
    default: usize,
) -> NonZeroUsize {
    match v {
        None => NonZeroUsize::new(default).expect("default is positive"),
        Some(s) => match usize::try_from(*s.get_ref())
            .ok()
            .and_then(NonZeroUsize::new)
        {
            Some(n) => n,
            None => {
                p.at(
                    s.span(),
                    format!("`{key}` must be a positive integer, got {}", s.get_ref()),
                );
                NonZeroUsize::new(default).expect("default is positive")
            }
        },
    }
}

/// Parses "64MB", "1.5GiB", "1000" (bytes). MB/GB are powers of 1000, MiB/GiB of 1024.
pub fn parse_byte_size(s: &str) -> std::result::Result<u64, String> {
    let size: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|_| {
            format!("`{s}` is not a byte size: a positive number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"64MB\" or \"512MiB\"")
        })?;
    if size.as_u64() == 0 {
        return Err(format!(
            "`{s}` is zero; a shard needs room for at least one row"
        ));
    }
    Ok(size.as_u64())
}

impl Plan {
    pub fn build(cfg: &LoadedConfig) -> Result<Plan> {
        let raw = &cfg.raw;
        let mut p = Problems {
            cfg,
            list: Vec::new(),
        };

        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            p.at(
                raw.name.span(),
                format!("`name` must match [a-z0-9_-]+, got {name:?}"),
            );
        }

        // [input]
        let input_uri = raw.input.uri.get_ref().trim().to_string();
        if input_uri.is_empty() {
            p.at(raw.input.uri.span(), "`input.uri` is empty");
        }
        let format = raw
            .input
            .format
            .as_ref()
            .and_then(|f| match f.get_ref().as_str() {
                "csv" => Some(InputFormat::Csv),
                "parquet" => Some(InputFormat::Parquet),
                other => {
                    p.at(
                        f.span(),
                        format!("`input.format` must be \"csv\" or \"parquet\", got {other:?}"),
                    );
                    None
                }
            });
        let chunk_rows = positive(&mut p, &raw.input.chunk_rows, "input.chunk_rows", 50_000);
        let second_pass = match raw.input.second_pass.as_ref() {
            None => SecondPass::Auto,
            Some(s) => match s.get_ref().as_str() {
                "auto" => SecondPass::Auto,
                "spill" => SecondPass::Spill,
                "reread" => SecondPass::Reread,
                other => {
                    p.at(s.span(), format!("`input.second_pass` must be \"auto\", \"spill\" or \"reread\", got {other:?}"));
                    SecondPass::Spill
                }
            },
        };
        let memory_budget = raw.input.memory_budget.as_ref().and_then(|s| {
            let v = s.get_ref().trim();
            match v == "0" {
                true => Some(0),
                false => parse_byte_size(v)
                    .map_err(|e| p.at(s.span(), format!("`input.memory_budget`: {e}")))
                    .ok(),
            }
        });
        let csv_raw = &raw.input.csv;
        let delimiter = single_byte(&mut p, &csv_raw.delimiter, "input.csv.delimiter", b',');
        let quote = single_byte(&mut p, &csv_raw.quote, "input.csv.quote", b'"');
        if let Some(enc) = &csv_raw.encoding {
            let e = enc.get_ref().to_ascii_lowercase().replace('-', "");
            if e != "utf8" {
                p.at(enc.span(), format!(
                    "`input.csv.encoding` {:?} is not supported; prep reads UTF-8 (a BOM is accepted). Convert the file, e.g. `iconv -f latin1 -t utf-8`",
                    enc.get_ref()
                ));
            }
        }
        if delimiter == quote {
            let msg = "`input.csv.delimiter` and `input.csv.quote` must differ";
            match csv_raw.delimiter.as_ref().or(csv_raw.quote.as_ref()) {
                Some(set) => p.at(set.span(), msg),
                None => p.plain(msg),
            }
        }
        let csv = CsvPlan {
            delimiter,
            delimiter_set: csv_raw.delimiter.is_some(),
            has_header: csv_raw.header.unwrap_or(true),
            quote: Some(quote),
            null_values: csv_raw
                .null_values
                .clone()
                .unwrap_or_else(|| DEFAULT_NULL_VALUES.iter().map(|s| s.to_string()).collect()),
        };
        let mut schema_overrides = Vec::new();
        for (col, ty) in &raw.input.schema {
            match ColumnType::parse(ty.get_ref()) {
                Some(t) => schema_overrides.push((col.clone(), t)),
                None => p.at(
                    ty.span(),
                    format!(
                    "[input.schema] `{col}` has type {:?}; use one of int64, float64, string, bool",
                    ty.get_ref()
                ),
                ),
            }
        }

        // [clean]
        let drop_nulls = match raw.clean.drop_nulls.as_ref() {
            None => DropNulls::Any,
            Some(s) => {
                match s.get_ref() {
                    RawDropNulls::Keyword(k) if k == "any" => DropNulls::Any,
                    RawDropNulls::Keyword(k) if k == "none" => DropNulls::Columns(Vec::new()),
                    RawDropNulls::Keyword(k) => {
                        p.at(s.span(), format!("`clean.drop_nulls` must be \"any\" or a list of columns, got {k:?}"));
                        DropNulls::Any
                    }
                    RawDropNulls::Columns(c) => DropNulls::Columns(c.clone()),
                }
            }
        };
        let non_finite = match raw.clean.non_finite.as_ref() {
            None => NonFinite::Fail,
            Some(s) => match s.get_ref().as_str() {
                "fail" => NonFinite::Fail,
                "drop" => NonFinite::Drop,
                other => {
                    p.at(
                        s.span(),
                        format!("`clean.non_finite` must be \"fail\" or \"drop\", got {other:?}"),
                    );
                    NonFinite::Fail
                }
            },
        };

        // [impute], [encode], [scale]
        let steps = build_steps(
            &mut p,
            &raw.impute,
            &raw.encode,
            &raw.scale,
            &raw.clean.drop_nulls,
        );

        // [output]
        let out = &raw.output;
        let output_uri = out.uri.get_ref().trim().to_string();
        if output_uri.is_empty() {
            p.at(out.uri.span(), "`output.uri` is empty");
        }
        let out_format = match out.format.as_ref() {
            None => OutputFormat::Parquet,
            Some(f) => OutputFormat::parse(f.get_ref()).unwrap_or_else(|| {
                p.at(
                    f.span(),
                    format!(
                        "`output.format` must be \"jsonl\", \"parquet\" or \"csv\", got {:?}",
                        f.get_ref()
                    ),
                );
                OutputFormat::Parquet
            }),
        };
        let shard_max_rows = positive(
            &mut p,
            &out.shard_max_rows,
            "output.shard_max_rows",
            100_000,
        );
        let min_shards = positive(&mut p, &out.min_shards, "output.min_shards", 1);
        let shard_max_bytes = out.shard_max_bytes.as_ref().and_then(|s| {
            parse_byte_size(s.get_ref())
                .map_err(|e| p.at(s.span(), format!("`output.shard_max_bytes`: {e}")))
                .ok()
        });
        let compression = match (out_format, out.compression.as_ref()) {
            (OutputFormat::Parquet, None) => OutputCompression::Zstd,
            (_, None) => OutputCompression::None,
            (fmt, Some(c)) => {
                let parsed = match (fmt, c.get_ref().as_str()) {
                    (_, "none") => Some(OutputCompression::None),
                    (OutputFormat::Parquet, "zstd") => Some(OutputCompression::Zstd),
                    (OutputFormat::Parquet, "snappy") => Some(OutputCompression::Snappy),
                    (OutputFormat::Jsonl | OutputFormat::Csv, "gzip") => {
                        Some(OutputCompression::Gzip)
                    }
                    _ => None,
                };
                parsed.unwrap_or_else(|| {
                    let allowed = if fmt == OutputFormat::Parquet {
                        "zstd, snappy or none"
                    } else {
                        "none or gzip"
                    };
                    p.at(
                        c.span(),
                        format!(
                        "`output.compression` {:?} is not available for {} output; use {allowed}",
                        c.get_ref(),
                        fmt.extension()
                    ),
                    );
                    OutputCompression::None
                })
            }
        };
        if let Some(cols) = &out.columns {
            if cols.get_ref().is_empty() {
                p.at(cols.span(), "`output.columns` is empty; leave it out to write every column, or list the columns to write");
            }
            let mut seen = std::collections::HashSet::new();
            for c in cols.get_ref() {
                if !seen.insert(c.get_ref()) {
                    p.at(
                        c.span(),
                        format!("`output.columns` lists `{}` twice", c.get_ref()),
                    );
                }
            }
        }
        let columns: Option<Vec<String>> = out
            .columns
            .as_ref()
            .map(|cols| cols.get_ref().iter().map(|c| c.get_ref().clone()).collect());
        let rename: Vec<(String, String)> = out
            .rename
            .iter()
            .map(|(a, b)| (a.clone(), b.get_ref().clone()))
            .collect();
        let mut targets = std::collections::HashSet::new();
        for (from, to) in &out.rename {
            if to.get_ref().is_empty() {
                p.at(
                    to.span(),
                    format!("`output.rename` gives `{from}` an empty name"),
                );
            }
            if !targets.insert(to.get_ref()) {
                p.at(
                    to.span(),
                    format!("`output.rename` maps two columns to `{}`", to.get_ref()),
                );
            }
        }

        let scaler_uri = match &raw.artifacts.scaler {
            Some(s) if !s.get_ref().trim().is_empty() => s.get_ref().trim().to_string(),
            Some(s) => {
                p.at(s.span(), "`artifacts.scaler` is empty");
                String::new()
            }
            None => format!("{}/scaler.json", output_uri.trim_end_matches('/')),
        };
        let transform_uri = match &raw.artifacts.transform {
            Some(s) if !s.get_ref().trim().is_empty() => s.get_ref().trim().to_string(),
            Some(s) => {
                p.at(s.span(), "`artifacts.transform` is empty");
                String::new()
            }
            None => format!("{}/transform.json", output_uri.trim_end_matches('/')),
        };
        let only_standard = steps.impute.is_empty()
            && steps.encode.is_empty()
            && steps.scale.len() == 1
            && matches!(steps.scale[0].method, ScaleMethod::Standard { .. });
        if let (Some(s), false) = (&raw.artifacts.scaler, only_standard) {
            p.at(s.span(), "`artifacts.scaler` is written only when the only fitted step is one standard-scaling group; this pipeline's steps go to transform.json, so set `artifacts.transform` instead");
        }

        if !p.list.is_empty() {
            return Err(PrepError::Config {
                file: cfg.file.clone(),
                problems: p.list,
            });
        }
        Ok(Plan {
            file: cfg.file.clone(),
            name,
            input: InputPlan {
                uri: input_uri,
                format,
                chunk_rows,
                second_pass,
                csv,
                schema_overrides,
                read_as_float: ReadAsFloat::of(&steps.scale, &steps.encode),
                memory_budget,
            },
            clean: CleanPlan {
                drop_nulls,
                non_finite,
            },
            impute: steps.impute,
            encode: steps.encode,
            scale: steps.scale,
            output: OutputPlan {
                uri: output_uri,
                format: out_format,
                shard_max_rows,
                shard_max_bytes,
                min_shards,
                columns,
                rename,
                compression,
                csv_header: out.csv_header.unwrap_or(true),
                rejects: out.rejects.unwrap_or(false),
            },
            scaler_uri,
            transform_uri,
            storage: StoragePlan {
                endpoint: raw.storage.endpoint.clone(),
                region: raw.storage.region.clone(),
                allow_http: raw.storage.allow_http,
                virtual_hosted_style: raw.storage.virtual_hosted_style,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::load_str;

    fn build(extra: &str) -> Result<Plan> {
        let text =
            format!("name = \"t\"\n[input]\nuri = \"in.csv\"\n{extra}\n[output]\nuri = \"out/\"\n");
        Plan::build(&load_str("p.toml", &text, &[])?)
    }

    #[test]
    fn defaults_follow_contract() {
        let plan = build("").unwrap();
        assert_eq!(plan.input.chunk_rows.get(), 50_000);
        assert_eq!(plan.output.format, OutputFormat::Parquet);
        assert_eq!(plan.output.compression, OutputCompression::Zstd);
        assert_eq!(plan.output.shard_max_rows.get(), 100_000);
        assert_eq!(plan.clean.drop_nulls, DropNulls::Any);
        assert_eq!(plan.scaler_uri, "out/scaler.json");
        assert_eq!(plan.input.csv.null_values.len(), 7);
        assert!(plan.output.csv_header);
        assert_eq!(plan.input.second_pass, SecondPass::Auto);
    }

    #[test]
    fn second_pass_takes_its_three_documented_values() {
        for (v, want) in [
            ("auto", SecondPass::Auto),
            ("spill", SecondPass::Spill),
            ("reread", SecondPass::Reread),
        ] {
            let plan = build(&format!("second_pass = \"{v}\"")).unwrap();
            assert_eq!(plan.input.second_pass, want, "{v}");
        }
        assert!(build("second_pass = \"twice\"").is_err());
    }

    #[test]
    fn values_that_would_write_nonsense_are_config_errors() {
        let problems = |extra: &str| match build(extra).unwrap_err() {
            PrepError::Config { problems, .. } => problems.join("\n"),
            other => panic!("{other}"),
        };
        let p = problems("[input.csv]\ndelimiter = \"\\n\"");
        assert!(p.contains("cannot be a line end"), "{p}");
        // [output] is appended by `build`; a second table adds columns.
        let text =
            "name = \"t\"\n[input]\nuri = \"in.csv\"\n[output]\nuri = \"out/\"\ncolumns = []\n";
        let PrepError::Config {
            problems: listed, ..
        } = Plan::build(&load_str("p.toml", text, &[]).unwrap()).unwrap_err()
        else {
            panic!()
        };
        assert!(
            listed.join("\n").contains("`output.columns` is empty"),
            "{listed:?}"
        );
        let p = problems("[scale]\nmethod = \"minmax\"\nfeature_range = [0.0, inf]");
        assert!(p.contains("two finite numbers"), "{p}");
    }

    #[test]
    fn clashing_values_are_reported_where_they_are_written() {
        let text = "name = \"t\"\n[input]\nuri = \"in.csv\"\n[input.csv]\ndelimiter = '\"'\n\
                    [output]\nuri = \"out/\"\ncolumns = [\"a\", \"b\", \"a\"]\n\
                    rename = { a = \"z\", b = \"z\" }\n";
        let PrepError::Config { problems, .. } =
            Plan::build(&load_str("p.toml", text, &[]).unwrap()).unwrap_err()
        else {
            panic!()
        };
        let all = problems.join("\n");
        assert!(
            all.contains(
                "line 5, column 13: `input.csv.delimiter` and `input.csv.quote` must differ"
            ),
            "{all}"
        );
        assert!(
            all.contains("line 8, column 22: `output.columns` lists `a` twice"),
            "{all}"
        );
        assert!(
            all.contains("line 9, column 25: `output.rename` maps two columns to `z`"),
            "{all}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err =
            build("chunk_rows = 0\nformat = \"xml\"\n[input.csv]\ndelimiter = \";;\"").unwrap_err();
        let PrepError::Config { problems, .. } = err else {
            panic!()
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.starts_with("line 4, column 14")),
            "{problems:?}"
        );
    }

    #[test]
    fn byte_sizes_use_si_and_iec_units() {
        assert_eq!(parse_byte_size("64MB").unwrap(), 64_000_000);
        assert_eq!(parse_byte_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_byte_size("1000").unwrap(), 1000);
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("0").is_err());
    }

    #[test]
    fn memory_budget_takes_a_byte_size_or_zero() {
        assert_eq!(
            build("memory_budget = \"1GiB\"")
                .unwrap()
                .input
                .memory_budget,
            Some(1 << 30)
        );
        assert_eq!(
            build("memory_budget = \"0\"").unwrap().input.memory_budget,
            Some(0)
        );
        assert_eq!(build("").unwrap().input.memory_budget, None);
        assert!(build("memory_budget = \"lots\"").is_err());
    }
}
