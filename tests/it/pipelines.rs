//! Every example pipeline stays valid (`prep validate` on each file).

use crate::common::*;

#[test]
fn every_example_pipeline_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let a = prep().arg("validate").arg(&path).assert();
            let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
            assert!(
                a.get_output().status.success(),
                "{}: {}",
                path.display(),
                stderr_of(&a)
            );
            assert!(out.contains("ok"), "{out}");
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn validate_prints_the_resolved_plan_and_reads_no_rows() {
    let a = prep()
        .args(["validate", "pipelines/sentiment.toml"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).to_string();
    for needle in [
        "sample_data/reviews.csv",
        "review_id",
        "not scaled: review_id",
        "excluded",
        "jsonl",
        "text as inputs",
        "shard",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    // A ragged row far into a file is not noticed: validate reads headers only.
    let c = Case::new();
    let mut data = String::from("a,b\n");
    for i in 0..5000 {
        data.push_str(&format!("{i},{i}\n"));
    }
    data.push_str("1,2,3\n");
    c.write("in.csv", data);
    c.pipeline("in.csv", "[scale]\ncolumns = [\"b\"]");
    prep()
        .arg("validate")
        .arg(c.path("pipeline.toml"))
        .assert()
        .success();
    c.pipeline("in.csv", "[scale]\ncolumns = [\"bb\"]");
    let a = prep()
        .arg("validate")
        .arg(c.path("pipeline.toml"))
        .assert()
        .code(3);
    assert!(stderr_of(&a).contains("did you mean `b`?"));
}
