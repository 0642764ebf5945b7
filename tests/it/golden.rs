//! Statistical correctness against scikit-learn's StandardScaler, through
//! golden files made by `tests/golden/make_golden.py` (committed output).

use crate::common::*;

fn check_case(name: &str, input: &str, exclude: &[&str]) {
    let case = Case::new();
    let data = std::fs::read(repo().join(input)).unwrap();
    case.write("in.csv", data);
    let excl: Vec<String> = exclude.iter().map(|e| format!("\"{e}\"")).collect();
    case.pipeline(
        "in.csv",
        &format!(
            "chunk_rows = 256\n[scale]\nexclude = [{}]\n[output]\nformat = \"jsonl\"",
            excl.join(", ")
        ),
    );
    case.run(&[]).success();
    let golden = read_json(&repo().join(format!("tests/golden/{name}.scaler.json")));
    let ours = case.scaler();
    assert_eq!(ours["feature_names"], golden["feature_names"]);
    assert_eq!(ours["n_samples_seen"], golden["n_samples_seen"]);
    for (k, tol) in [("mean", 1e-12), ("var", 1e-10), ("scale", 1e-10)] {
        for (i, (a, b)) in floats(&ours[k])
            .into_iter()
            .zip(floats(&golden[k]))
            .enumerate()
        {
            assert!(
                rel_err(a, b) <= tol,
                "{name} {k}[{i}]: prep {a} vs sklearn {b}"
            );
        }
    }

    let features: Vec<String> = golden["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // Transformed values, through a JSONL run (typed values, no CSV re-parsing).
    let json_case = Case::new();
    json_case.write("in.csv", std::fs::read(repo().join(input)).unwrap());
    json_case.pipeline(
        "in.csv",
        &format!(
            "[scale]\nexclude = [{}]\n[output]\nformat = \"jsonl\"\nshard_max_rows = 1000000",
            excl.join(", ")
        ),
    );
    json_case.run(&[]).success();
    let rows = json_case.rows();
    let golden_text =
        std::fs::read_to_string(repo().join(format!("tests/golden/{name}.transformed.csv")))
            .unwrap();
    let mut lines = golden_text.lines();
    let gheader: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut n = 0;
    for (line, row) in lines.zip(&rows) {
        let vals: Vec<&str> = line.split(',').collect();
        for f in &features {
            let gi = gheader.iter().position(|h| h == f).unwrap();
            let g: f64 = vals[gi].parse().unwrap();
            let o = row[f.as_str()].as_f64().unwrap();
            // The contract allows means to differ by 1e-12 relative; after
            // dividing by the scale that is the floor of the comparison.
            let k = features.iter().position(|x| x == f).unwrap();
            let (mean, scale) = (floats(&golden["mean"])[k], floats(&golden["scale"])[k]);
            let tol = 1e-9 * g.abs().max(1.0) + 1e-12 * mean.abs() / scale;
            assert!(
                (g - o).abs() <= tol,
                "{name} row {n} {f}: prep {o} vs sklearn {g}"
            );
        }
        n += 1;
    }
    assert_eq!(n, rows.len(), "row counts differ");
}

#[test]
fn reviews_match_sklearn() {
    check_case(
        "reviews",
        "sample_data/reviews.csv",
        &["review_id", "label"],
    );
}

#[test]
fn large_offsets_tiny_values_and_constants_match_sklearn() {
    check_case("stability", "tests/golden/stability.csv", &["id"]);
}
