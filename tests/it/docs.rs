//! The docs stay true to the code: every relative link in README.md, docs/
//! and deploy/ resolves inside the repository, and the reference names every
//! pipeline key and every `PREP_*` variable the code knows.

use crate::common::*;

fn reference() -> String {
    std::fs::read_to_string(repo().join("docs/reference.md")).unwrap()
}

#[test]
fn every_relative_link_resolves_inside_the_repository() {
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/check_links.py"))
        .current_dir(repo())
        .output()
        .expect("python3 runs tests/check_links.py");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_reference_names_every_pipeline_key() {
    let config = std::fs::read_to_string(repo().join("src/pipeline/config.rs")).unwrap();
    let doc = reference();
    let mut in_raw = false;
    let mut missing = Vec::new();
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with("pub struct Raw") {
            in_raw = true;
        } else if t == "}" {
            in_raw = false;
        } else if in_raw {
            if let Some(field) = t.strip_prefix("pub ").and_then(|r| r.split(':').next()) {
                let named = [
                    format!("`{field}`"),
                    format!("{field} ="),
                    format!("[{field}]"),
                    format!(".{field}]"),
                ]
                .iter()
                .any(|form| doc.contains(form.as_str()));
                if !named {
                    missing.push(field.to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/reference.md does not name {missing:?}"
    );
}

#[test]
fn the_reference_names_every_prep_variable() {
    let doc = reference();
    let missing: Vec<&str> = prep::env::VARS
        .iter()
        .map(|v| v.name)
        .filter(|n| !doc.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference.md does not name {missing:?}"
    );
}

/// The reference's table of variables shows the default the code uses
/// (`env::VARS`, which the accessors parse): a changed default cannot leave
/// the docs behind.
#[test]
fn the_reference_shows_every_typed_default() {
    let doc = reference();
    let mut wrong = Vec::new();
    for v in prep::env::VARS {
        if !matches!(v.kind, "duration" | "byte size" | "integer")
            || !v.default.starts_with(|c: char| c.is_ascii_digit())
        {
            continue;
        }
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", v.name)));
        match row {
            Some(row) if row.contains(&format!("| `{}` |", v.default)) => {}
            _ => wrong.push(format!("{} (default {})", v.name, v.default)),
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/reference.md's variable table does not show these defaults: {wrong:?}"
    );
}
