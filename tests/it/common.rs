//! Shared helpers: run the binary, write pipelines and data, read outputs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn prep() -> Command {
    let mut c = Command::cargo_bin("prep").expect("binary built");
    c.current_dir(repo());
    c.env_remove("PREP_LOG");
    c
}

/// Starts `prep run PIPELINE ARGS...` as a separate process with `env` set
/// (stdout discarded, stderr piped); see [`finish`].
pub fn spawn_run(pipeline: &Path, args: &[&str], env: &[(String, String)]) -> Child {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("prep"));
    cmd.current_dir(repo())
        .env_remove("PREP_LOG")
        .arg("run")
        .arg(pipeline)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child started by [`spawn_run`]: its exit code (-1 when a
/// signal ended it) and its stderr.
pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A pipeline reading `input` (relative to the case dir) and writing `out/`.
    pub fn pipeline(&self, input: &str, extra: &str) -> PathBuf {
        let text = format!(
            "name = \"t\"\n[input]\nuri = \"{}\"\n{extra}\n",
            self.path(input).display()
        );
        let text = if text.contains("[output]") {
            text.replace(
                "[output]",
                &format!("[output]\nuri = \"{}\"", self.path("out").display()),
            )
        } else {
            format!(
                "{text}\n[output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
                self.path("out").display()
            )
        };
        self.write("pipeline.toml", text)
    }

    pub fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        let mut c = prep();
        c.arg("run")
            .arg(self.path("pipeline.toml"))
            .args(args)
            .arg("--quiet");
        c.assert()
    }

    pub fn out_file(&self, name: &str) -> PathBuf {
        self.path("out").join(name)
    }

    pub fn has_success(&self) -> bool {
        self.out_file("_SUCCESS").exists()
    }

    pub fn scaler(&self) -> serde_json::Value {
        read_json(&self.out_file("scaler.json"))
    }

    /// Every JSONL row of every shard, in manifest order.
    pub fn rows(&self) -> Vec<serde_json::Value> {
        let manifest = read_json(&self.out_file("manifest.json"));
        let mut rows = Vec::new();
        for shard in manifest.as_array().unwrap().iter().skip(1) {
            let text = std::fs::read_to_string(self.out_file(shard.as_str().unwrap())).unwrap();
            for line in text.lines() {
                rows.push(serde_json::from_str(line).unwrap());
            }
        }
        rows
    }
}

/// A case whose `in.csv` holds `data`, with a pipeline reading it (`extra`
/// is added to `[input]`, see [`Case::pipeline`]).
pub fn case_with(data: impl AsRef<[u8]>, extra: &str) -> Case {
    let case = Case::new();
    case.write("in.csv", data);
    case.pipeline("in.csv", extra);
    case
}

pub fn read_json(p: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub fn rel_err(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A Python interpreter with pandas and scikit-learn: `$PREP_PYTHON`, the
/// repo's `.venv`, or `python3`. In CI a missing one fails the test.
pub fn sklearn_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("PREP_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(repo().join(".venv/bin/python"));
    candidates.push(PathBuf::from("python3"));
    for c in candidates {
        let ok = StdCommand::new(&c)
            .args(["-c", "import pandas, sklearn"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    if in_ci() {
        panic!("CI=true but no Python with pandas and scikit-learn was found (set PREP_PYTHON or create .venv); .ci/run installs them");
    }
    eprintln!("skipping: no Python with pandas + scikit-learn (set PREP_PYTHON)");
    None
}

/// pandas + scikit-learn's StandardScaler fit of `input` without the
/// `exclude` columns (comma-separated), by tests/parity/sklearn_parity.py.
pub fn sklearn_standard_fit(python: &Path, input: &Path, exclude: &str) -> serde_json::Value {
    let out = input.with_extension("sk.json");
    let status = StdCommand::new(python)
        .arg(repo().join("tests/parity/sklearn_parity.py"))
        .arg("--input")
        .arg(input)
        .args(["--exclude", exclude, "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "sklearn_parity.py failed on {}",
        input.display()
    );
    read_json(&out)
}

/// Runs a tests/parity rebuild script (`script artifact input out`) and
/// returns its stdout + stderr, asserting it succeeded.
pub fn run_rebuild(
    python: &Path,
    script: &str,
    artifact: &Path,
    input: &Path,
    out: &Path,
) -> String {
    let o = StdCommand::new(python)
        .arg(repo().join("tests/parity").join(script))
        .arg(artifact)
        .arg(input)
        .arg(out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{script}: {text}");
    text
}

/// Asserts README.md shows the part of tests/parity/`script` between its
/// `# --- README snippet begin/end ---` markers, with `replace` applied.
pub fn assert_readme_shows_snippet(script: &str, replace: &[(&str, &str)]) {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let text = std::fs::read_to_string(repo().join("tests/parity").join(script)).unwrap();
    let mut snippet = text
        .split("# --- README snippet begin ---\n")
        .nth(1)
        .unwrap()
        .split("# --- README snippet end ---")
        .next()
        .unwrap()
        .to_string();
    for (from, to) in replace {
        snippet = snippet.replace(from, to);
    }
    assert!(
        readme.contains(&snippet),
        "README's snippet differs from tests/parity/{script}:\n{snippet}"
    );
}

/// Rows are equal: same keys, same non-float values, floats within 1e-12
/// (relative to max(|x|, 1)); chunk boundaries may change the last bits.
pub fn assert_rows_close(a: &[serde_json::Value], b: &[serde_json::Value]) {
    assert_eq!(a.len(), b.len(), "row counts differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (x.as_object().unwrap(), y.as_object().unwrap());
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "row {i}"
        );
        for (k, v) in x {
            let w = &y[k];
            match (v.as_f64(), w.as_f64(), v.is_f64()) {
                (Some(p), Some(q), true) => {
                    assert!(
                        (p - q).abs() <= 1e-12 * p.abs().max(1.0),
                        "row {i} {k}: {p} vs {q}"
                    )
                }
                _ => assert_eq!(v, w, "row {i} {k}"),
            }
        }
    }
}

/// Every file of the case's `out/` but `_SUCCESS` (whose timings vary),
/// by name, for byte-for-byte comparisons of two runs.
/// Every file of `out/` but `_SUCCESS` (which holds timings), by name.
pub fn output_bytes(case: &Case) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(case.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "_SUCCESS")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(case.out_file(&n)).unwrap()))
        .collect()
}
