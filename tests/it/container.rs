//! The container image, built offline with podman and exercised inside its
//! root filesystem (see tests/container/test_image.sh for why not `podman run`).

use std::process::Command;

use crate::common::*;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn image_builds_and_runs_the_sagemaker_layout() {
    if !(have("podman") && have("debootstrap")) {
        assert!(
            !in_ci(),
            "CI=true but podman/debootstrap are missing; .ci/run installs them"
        );
        eprintln!("skipping: podman or debootstrap not installed");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("prep");
    let out = Command::new(repo().join("tests/container/test_image.sh"))
        .arg(&bin)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("container image OK"), "{text}");
}
