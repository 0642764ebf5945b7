//! Criterion benchmarks of prep's kernels (issue 5, part 1).
//!
//! Each kernel runs over review-like frames of 10k, 100k and 1M rows: an i64
//! `review_id`, a `text` of 20–400 characters (some with commas, quotes and
//! newlines), an i64 `label` and eight f64 feature columns (one constant, one
//! a large offset plus small noise). Sizes are labelled `10k`, `100k` and
//! `1M`, so a filter picks exactly one:
//!
//! ```sh
//! cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 2 /10k
//! cargo bench --bench kernels -- sink/parquet
//! PREP_BENCH_SIZES=10000,250000 cargo bench --bench kernels   # other sizes
//! ```
//!
//! The kernels:
//!
//! - `moments/update`: `Moments::default()` + `update` over one column;
//! - `moments/merge`: Chan's merge of that many per-chunk partials;
//! - `scale/apply`: `Scaler::apply` on the whole frame (8 feature columns);
//! - `encode/jsonl`, `encode/csv`: `encode_rows` into one byte buffer;
//! - `sink/parquet`, `sink/jsonl`, `sink/csv`: a `ShardSink` writing one
//!   shard to a temporary directory, committed by `finish`;
//! - `csv_split/chunker`, `csv_split/chunker-counting`, `csv_split/csv-core`:
//!   cutting the frame's CSV text into records, with prep's record splitter
//!   (`read/chunker.rs`; as a run uses it, and checking field counts) and
//!   with the `csv-core` state machine (issue 13 asked whether it could replace
//!   the hand-written one at the same speed).
//!
//! Throughput is reported in rows (elements) per second; `csv_split` in
//! bytes per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use polars::prelude::*;

use prep::pipeline::plan::{OutputCompression, OutputFormat};
use prep::read::chunker::RecordChunker;
use prep::storage::OutputDir;
use prep::transform::scaler::{Scaler, ScalerSource};
use prep::transform::stats::Moments;
use prep::write::encode::{encode_rows, TextFormat};
use prep::write::sink::{ShardSink, SinkOptions};

/// The feature columns of the synthetic frame (all f64).
const FEATURES: [&str; 8] = [
    "rating",
    "helpful_votes",
    "price",
    "review_length",
    "days_since_purchase",
    "sentiment_score",
    "constant_feature",
    "sensor_offset",
];

/// Row counts, overridable with `PREP_BENCH_SIZES=10000,100000`.
fn sizes() -> Vec<usize> {
    match std::env::var("PREP_BENCH_SIZES") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|x| {
                x.trim()
                    .replace('_', "")
                    .parse()
                    .expect("PREP_BENCH_SIZES: comma-separated row counts")
            })
            .collect(),
        _ => vec![10_000, 100_000, 1_000_000],
    }
}

/// `10k`, `100k`, `1M`, `250k`, `1234`: distinct labels so a filter such as
/// `/10k` does not also select `/100k`.
fn label(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Fewer, flat samples for the large sizes, so a full run stays short.
fn tune(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    if n >= 500_000 {
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
    } else {
        group.sample_size(20);
        group.sampling_mode(SamplingMode::Auto);
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const WORDS: [&str; 24] = [
    "great", "battery", "life", "the", "price", "was", "cheap", "and", "it", "broke", "after", "a",
    "week", "sturdy", "build", "quality", "would", "buy", "again", "not", "worth", "it", "five",
    "stars",
];

fn review_text(rng: &mut Rng) -> String {
    let target = 20 + rng.below(381) as usize;
    let mut s = String::with_capacity(target + 16);
    while s.len() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.truncate(target);
    // ~5% each: a comma, double quotes, an embedded newline.
    for special in [",", "\"", "\n"] {
        if rng.unit() < 0.05 {
            let at = rng.below(s.len() as u64) as usize;
            s.replace_range(at..at + 1, special);
        }
    }
    s
}

/// A review-like frame of `n` rows (no nulls: the kernels run after cleaning).
fn reviews(n: usize) -> DataFrame {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let mut text = Vec::with_capacity(n);
    let mut label = Vec::with_capacity(n);
    let mut rating = Vec::with_capacity(n);
    let mut votes = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut length = Vec::with_capacity(n);
    let mut days = Vec::with_capacity(n);
    let mut sentiment = Vec::with_capacity(n);
    let mut offset = Vec::with_capacity(n);
    for _ in 0..n {
        let t = review_text(&mut rng);
        length.push(t.len() as f64);
        text.push(t);
        let r = 1 + rng.below(5);
        rating.push(r as f64);
        label.push(i64::from(r >= 4));
        votes.push((rng.unit() * rng.unit() * 500.0).floor());
        price.push((1.0 + rng.unit() * 499.0 * 100.0).round() / 100.0);
        days.push((rng.unit() * 1000.0).floor());
        sentiment.push(((rng.unit() * 2.0 - 1.0) * 1e4).round() / 1e4);
        offset.push(1e9 + rng.unit() * 1e-3);
    }
    df!(
        "review_id" => (1..=n as i64).collect::<Vec<i64>>(),
        "text" => text,
        "label" => label,
        FEATURES[0] => rating,
        FEATURES[1] => votes,
        FEATURES[2] => price,
        FEATURES[3] => length,
        FEATURES[4] => days,
        FEATURES[5] => sentiment,
        FEATURES[6] => vec![1.0f64; n],
        FEATURES[7] => offset,
    )
    .expect("synthetic frame")
}

fn column_values(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .expect("column")
        .f64()
        .expect("f64 column")
        .into_no_null_iter()
        .collect()
}

fn fitted_scaler(df: &DataFrame) -> Scaler {
    let names: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
    let moments: Vec<Moments> = FEATURES
        .iter()
        .map(|name| {
            let mut m = Moments::default();
            m.update(&column_values(df, name));
            m
        })
        .collect();
    Scaler::fit(
        &names,
        &moments,
        true,
        true,
        ScalerSource {
            uri: "bench://reviews".into(),
            objects: vec![],
        },
    )
}

fn bench_moments_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("moments/update");
    for n in sizes() {
        let df = reviews(n);
        let values = column_values(&df, "price");
        drop(df);
        tune(&mut group, n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label(n)), &values, |b, v| {
            b.iter(|| {
                let mut m = Moments::default();
                m.update(black_box(v));
                black_box(m)
            })
        });
    }
    group.finish();
}

fn bench_moments_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("moments/merge");
    for n in sizes() {
        // n partials, as if each came from a small chunk (or a worker).
        let mut rng = Rng(42 ^ n as u64);
        let partials: Vec<Moments> = (0..n)
            .map(|_| {
                let (count, shift) = (1 + rng.below(50_000), 1e9 + rng.unit() * 1e-3);
                let shifted_mean = rng.unit() * 1e-3;
                Moments {
                    count,
                    shift,
                    shifted_mean,
                    m2: rng.unit() * 10.0,
                    shifted_sum: shifted_mean * count as f64,
                    shifted_sum_error: 0.0,
                }
            })
            .collect();
        tune(&mut group, n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label(n)), &partials, |b, p| {
            b.iter(|| {
                let mut total = Moments::default();
                for m in black_box(p) {
                    total.merge(m);
                }
                black_box(total)
            })
        });
    }
    group.finish();
}

fn bench_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale/apply");
    for n in sizes() {
        let df = reviews(n);
        let scaler = fitted_scaler(&df);
        tune(&mut group, n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label(n)), &df, |b, df| {
            // Cloning a frame only bumps reference counts.
            b.iter(|| black_box(scaler.apply(df.clone()).expect("apply")))
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for n in sizes() {
        let df = reviews(n);
        tune(&mut group, n);
        group.throughput(Throughput::Elements(n as u64));
        for (name, fmt) in [("jsonl", TextFormat::Jsonl), ("csv", TextFormat::Csv)] {
            group.bench_with_input(BenchmarkId::new(name, label(n)), &df, |b, df| {
                b.iter(|| black_box(encode_rows(df, fmt).expect("encode")))
            });
        }
    }
    group.finish();
}

fn bench_sink(c: &mut Criterion) {
    let mut group = c.benchmark_group("sink");
    let tmp = tempfile::tempdir().expect("temporary directory");
    for n in sizes() {
        let df = reviews(n);
        tune(&mut group, n);
        group.throughput(Throughput::Elements(n as u64));
        for (name, format, compression) in [
            ("parquet", OutputFormat::Parquet, OutputCompression::Zstd),
            ("jsonl", OutputFormat::Jsonl, OutputCompression::None),
            ("csv", OutputFormat::Csv, OutputCompression::None),
        ] {
            let dir = tmp.path().join(format!("{name}-{n}"));
            let dir = dir.to_str().expect("UTF-8 temporary path").to_string();
            group.bench_with_input(BenchmarkId::new(name, label(n)), &df, |b, df| {
                b.iter(|| {
                    let out = OutputDir::local(std::path::Path::new(&dir));
                    let mut sink = ShardSink::new(
                        out,
                        SinkOptions {
                            format,
                            compression,
                            csv_header: true,
                            max_rows: usize::MAX >> 1,
                            max_bytes: None,
                            prefix: "part-".into(),
                        },
                    );
                    sink.write(df).expect("write");
                    black_box(sink.finish().expect("finish"))
                })
            });
        }
    }
    group.finish();
}

/// Records of `csv` with prep's splitter (chunks of 50,000 rows). As a run
/// uses it, the fast parser counts the fields (`counting = false`); with
/// `counting`, the splitter checks each record's field count itself.
fn split_with_chunker(csv: &[u8], counting: bool) -> usize {
    let mut c = RecordChunker::new(csv, "bench.csv", b',', Some(b'"'));
    c.first_record(true).expect("header");
    if !counting {
        c.leave_field_counts();
    }
    let mut rows = 0;
    while let Some(chunk) = c.next_chunk(50_000).expect("well-formed") {
        rows += chunk.rows();
    }
    rows
}

/// Records of `csv` with `csv_core::Reader` (fields copied out, as a
/// splitter that hands records on must).
fn split_with_csv_core(csv: &[u8]) -> usize {
    let mut r = csv_core::Reader::new();
    let mut out = vec![0u8; 1 << 16];
    let mut ends = vec![0usize; 64];
    let (mut input, mut rows) = (csv, 0usize);
    loop {
        let (res, read, _, _) = r.read_record(input, &mut out, &mut ends);
        input = &input[read..];
        match res {
            csv_core::ReadRecordResult::Record => rows += 1,
            csv_core::ReadRecordResult::End => return rows.saturating_sub(1),
            csv_core::ReadRecordResult::InputEmpty => {}
            csv_core::ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            csv_core::ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
        }
    }
}

fn bench_csv_split(c: &mut Criterion) {
    let mut group = c.benchmark_group("csv_split");
    for n in sizes() {
        let df = reviews(n);
        let rows = encode_rows(&df, TextFormat::Csv).expect("encode");
        let header: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        let mut csv = format!("{}\n", header.join(",")).into_bytes();
        csv.extend_from_slice(&rows.bytes);
        assert_eq!(split_with_chunker(&csv, true), n);
        assert_eq!(split_with_csv_core(&csv), n);
        tune(&mut group, n);
        group.throughput(Throughput::Bytes(csv.len() as u64));
        group.bench_with_input(BenchmarkId::new("chunker", label(n)), &csv, |b, csv| {
            b.iter(|| black_box(split_with_chunker(csv, false)))
        });
        group.bench_with_input(
            BenchmarkId::new("chunker-counting", label(n)),
            &csv,
            |b, csv| b.iter(|| black_box(split_with_chunker(csv, true))),
        );
        group.bench_with_input(BenchmarkId::new("csv-core", label(n)), &csv, |b, csv| {
            b.iter(|| black_box(split_with_csv_core(csv)))
        });
    }
    group.finish();
}

criterion_group! {
    name = kernels;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench_moments_update, bench_moments_merge, bench_scale, bench_encode, bench_sink, bench_csv_split
}
criterion_main!(kernels);
