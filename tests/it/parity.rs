//! Live parity with scikit-learn on generated data (runs Python; in CI a
//! missing pandas/scikit-learn fails the test instead of skipping).

use crate::common::*;

/// Deterministic generator (xorshift) so the test needs no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn generate(rows: usize, seed: u64) -> String {
    let mut r = Rng(seed);
    let mut s = String::from("id,big,small,wide,count,const,label\n");
    for i in 0..rows {
        let null = |r: &mut Rng| r.next() < 0.02;
        let big = if null(&mut r) {
            String::new()
        } else {
            format!("{}", 1e9 + (r.next() - 0.5) * 2e-3)
        };
        let small = if null(&mut r) {
            "NA".into()
        } else {
            format!("{}", (r.next() - 0.5) * 1e-8)
        };
        let wide = format!("{}", (r.next() - 0.3) * 1e12);
        let count = if null(&mut r) {
            String::new()
        } else {
            format!("{}", (r.next() * 1000.0) as i64)
        };
        s.push_str(&format!(
            "{i},{big},{small},{wide},{count},7.25,{}\n",
            i % 2
        ));
    }
    s
}

#[test]
fn matches_sklearn_on_generated_data() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let c = Case::new();
    let input = c.write("in.csv", generate(20_000, 0x9e3779b97f4a7c15));
    c.pipeline("in.csv", "chunk_rows = 1234\n[scale]\nexclude = [\"id\", \"label\"]\n[output]\nformat = \"jsonl\"\nshard_max_rows = 1000000");
    c.run(&[]).success();
    let sk = sklearn_standard_fit(&python, &input, "id,label");
    let ours = c.scaler();
    assert_eq!(ours["feature_names"], sk["feature_names"]);
    assert_eq!(ours["n_samples_seen"], sk["n_samples_seen"]);
    for (k, tol) in [("mean", 1e-12), ("scale", 1e-10)] {
        for (i, (a, b)) in floats(&ours[k]).into_iter().zip(floats(&sk[k])).enumerate() {
            assert!(rel_err(a, b) <= tol, "{k}[{i}]: prep {a} vs sklearn {b}");
        }
    }
    let rows = c.rows();
    let names: Vec<String> = sk["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let means = floats(&sk["mean"]);
    let scales = floats(&sk["scale"]);
    for (i, sk_row) in sk["transformed_first_rows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (j, name) in names.iter().enumerate() {
            let g = sk_row[j].as_f64().unwrap();
            let o = rows[i][name.as_str()].as_f64().unwrap();
            let tol = 1e-9 * g.abs().max(1.0) + 1e-12 * means[j].abs() / scales[j];
            assert!(
                (g - o).abs() <= tol,
                "row {i} {name}: prep {o} vs sklearn {g}"
            );
        }
    }
}

#[test]
fn readme_snippet_rebuilds_the_scaler_in_sklearn() {
    let Some(python) = sklearn_python() else {
        return;
    };
    let c = Case::new();
    c.write(
        "in.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    c.pipeline("in.csv", "[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nformat = \"jsonl\"\nshard_max_rows = 700");
    c.run(&[]).success();
    let text = run_rebuild(
        &python,
        "rebuild_scaler.py",
        &c.out_file("scaler.json"),
        &c.path("in.csv"),
        &c.path("out"),
    );
    assert!(text.contains("rows=2396"), "{text}");
    // The README shows exactly this snippet.
    assert_readme_shows_snippet(
        "rebuild_scaler.py",
        &[("open(scaler_path)", "open(\"out/sentiment/scaler.json\")")],
    );
}
