//! AWS credentials from shared config/credentials files (`AWS_PROFILE`),
//! against moto on 127.0.0.1: static keys, `credential_process`, and
//! `role_arn` + `source_profile` through moto's STS. Errors name the profile
//! and the file, never a secret.

use crate::common::*;
use crate::s3_support::{s3, FaultMode, S3Server};

const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY";

/// `prep run` on an S3→local pipeline with the profile files of `case` and
/// no keys in the environment.
fn run_with_profile(
    case: &Case,
    server: &S3Server,
    profile: &str,
    extra_env: &[(&str, String)],
) -> assert_cmd::assert::Assert {
    let mut cmd = prep();
    for (k, v) in server.env() {
        if !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY") {
            cmd.env(k, v);
        }
    }
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_PROFILE", profile)
        .env("AWS_SHARED_CREDENTIALS_FILE", case.path("aws/credentials"))
        .env("AWS_CONFIG_FILE", case.path("aws/config"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.arg("run").arg(case.path("p.toml")).arg("--quiet");
    cmd.assert()
}

fn setup(server: &S3Server) -> Case {
    let bucket = server.new_bucket();
    server.put(
        &bucket,
        "raw/r.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    let case = Case::new();
    case.write(
        "p.toml",
        format!(
            "name = \"prof\"\n[input]\nuri = \"{}\"\n[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
            server.uri(&bucket, "raw/"),
            case.path("out").display()
        ),
    );
    case.write(
        "aws/credentials",
        format!("[static]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = {SECRET}\n\n[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = {SECRET}\n"),
    );
    case.write(
        "aws/config",
        format!(
            "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/prep-reader\nsource_profile = base\nregion = us-east-1\n\n\
             [profile process]\ncredential_process = sh -c 'touch {} && echo {{\\\"Version\\\":1,\\\"AccessKeyId\\\":\\\"AKIDPROC\\\",\\\"SecretAccessKey\\\":\\\"{SECRET}\\\"}}'\n\n\
             [profile broken]\ncredential_process = sh -c 'echo not-json {SECRET}'\n\n\
             [profile sso]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n",
            case.path("process-ran").display()
        ),
    );
    case
}

#[test]
fn static_keys_and_credential_process_profiles_are_used() {
    let Some(server) = s3() else { return };
    let case = setup(server);
    let a = run_with_profile(&case, server, "static", &[]);
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert!(case.has_success());

    let case = setup(server);
    let a = run_with_profile(&case, server, "process", &[]);
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert!(case.path("process-ran").exists(), "credential_process ran");
}

/// Every location of a run in one bucket (a named input object, its read
/// started beside the HEAD, the output, its lock) shares one client, so a
/// `credential_process` runs once per run, not once per location.
#[test]
fn credentials_are_resolved_once_per_bucket() {
    let Some(server) = s3() else { return };
    let case = setup(server);
    let bucket = server.new_bucket();
    server.put(
        &bucket,
        "raw/r.csv",
        std::fs::read(repo().join("sample_data/reviews.csv")).unwrap(),
    );
    case.write(
        "p.toml",
        format!(
            "name = \"once\"\n[input]\nuri = \"{}\"\n[scale]\nexclude = [\"review_id\", \"label\"]\n[output]\nuri = \"{}\"\nformat = \"jsonl\"\n",
            server.uri(&bucket, "raw/r.csv"),
            server.uri(&bucket, "out/")
        ),
    );
    let count = case.path("process-count");
    case.write(
        "aws/config",
        format!(
            "[profile counted]\ncredential_process = sh -c 'echo run >> {} && echo {{\\\"Version\\\":1,\\\"AccessKeyId\\\":\\\"AKIDPROC\\\",\\\"SecretAccessKey\\\":\\\"{SECRET}\\\"}}'\n",
            count.display()
        ),
    );
    let a = run_with_profile(&case, server, "counted", &[]);
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert!(server.get(&bucket, "out/_SUCCESS").is_some());
    let runs = std::fs::read_to_string(&count).unwrap();
    assert_eq!(runs.lines().count(), 1, "credential_process ran {runs:?}");
}

#[test]
fn role_arn_with_source_profile_assumes_the_role_through_sts() {
    let Some(server) = s3() else { return };
    let case = setup(server);
    // moto serves STS on the same endpoint; the proxy counts the calls.
    let sts = server.proxy(FaultMode::Forward);
    let a = run_with_profile(
        &case,
        server,
        "role",
        &[("AWS_ENDPOINT_URL_STS", sts.endpoint())],
    );
    assert!(a.get_output().status.success(), "{}", stderr_of(&a));
    assert!(sts.count() >= 1, "AssumeRole went to STS");
    assert!(case.has_success());
}

#[test]
fn profile_errors_name_the_profile_and_file_never_the_secret() {
    let Some(server) = s3() else { return };
    let case = setup(server);
    for (profile, expect) in [
        ("missing", "AWS profile `missing`"),
        ("broken", "did not print a JSON object"),
        ("sso", "is an SSO profile"),
    ] {
        let a = run_with_profile(&case, server, profile, &[]);
        let err = stderr_of(&a);
        assert_eq!(a.get_output().status.code(), Some(2), "{profile}: {err}");
        assert!(err.contains(expect), "{profile}: {err}");
        assert!(err.contains("aws/c"), "{profile} names the file: {err}");
        assert!(!err.contains(SECRET), "{profile} leaks no secret: {err}");
    }
}
