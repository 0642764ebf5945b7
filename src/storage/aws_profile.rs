//! AWS credentials from the shared config and credentials files, the way the
//! AWS CLI and SDKs find them when the environment holds no keys.
//!
//! ```text
//! AWS_PROFILE (else "default") ─► ~/.aws/credentials [name] / ~/.aws/config [profile name]
//!   aws_access_key_id + aws_secret_access_key (+ aws_session_token)   static keys
//!   credential_process = "cmd ..."                                      its JSON output
//!   role_arn + source_profile                                           STS AssumeRole, signed
//!                                                                       with the source's keys
//! ```
//! Precedence follows the SDKs: keys in the environment first (object_store
//! reads those), then web identity and the container endpoint, then the
//! profile, then the instance metadata service. `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE` move the files; `AWS_ENDPOINT_URL_STS` (or
//! `AWS_ENDPOINT_URL`) the STS endpoint. SSO profiles are refused with the
//! command that turns them into a `credential_process`. Assumed-role keys
//! are fetched once per run (an hour by default: longer jobs should use a
//! role the platform refreshes). Errors name the profile and the file, never
//! a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{PrepError, Result};

/// Keys found for a profile.
#[derive(Clone)]
pub struct ProfileCredentials {
    pub profile: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

impl std::fmt::Debug for ProfileCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "credentials of profile `{}`", self.profile)
    }
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

fn home_file(env: &str, rel: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rel))
}

/// `[name]` / `[profile name]` sections of an INI file; `None` when absent.
fn read_ini(path: &PathBuf, config_style: bool) -> Option<Sections> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = Sections::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = match (config_style, name.strip_prefix("profile ")) {
                (true, Some(n)) => n.trim().to_string(),
                _ => name.to_string(),
            };
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(sec), Some((k, v))) = (&current, line.split_once('=')) {
            out.entry(sec.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(out)
}

fn problem(profile: &str, file: &str, what: impl std::fmt::Display) -> PrepError {
    PrepError::Usage {
        message: format!("AWS profile `{profile}` ({file}): {what}"),
        hint: Some("fix the profile, choose another with AWS_PROFILE, or put keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into()),
    }
}

/// Whether keys or another source in the environment come before profiles.
fn environment_has_credentials() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some())
}

/// The profile's credentials, when the environment names none and the
/// profile exists (`AWS_PROFILE` set to a missing profile is an error).
pub fn resolve() -> Result<Option<ProfileCredentials>> {
    if environment_has_credentials() {
        return Ok(None);
    }
    let explicit = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let conf_path = home_file("AWS_CONFIG_FILE", ".aws/config");
    let creds = read_ini(&cred_path, false).unwrap_or_default();
    let conf = read_ini(&conf_path, true).unwrap_or_default();
    if !creds.contains_key(&name) && !conf.contains_key(&name) {
        return match explicit {
            Some(p) => Err(problem(
                &p,
                &format!("{} / {}", cred_path.display(), conf_path.display()),
                "no such profile in either file",
            )),
            None => Ok(None),
        };
    }
    let files = Files {
        creds,
        conf,
        cred_path,
        conf_path,
    };
    files.profile(&name, 0).map(Some)
}

struct Files {
    creds: Sections,
    conf: Sections,
    cred_path: PathBuf,
    conf_path: PathBuf,
}

impl Files {
    /// A key of the profile: the credentials file wins over the config file.
    fn key(&self, name: &str, key: &str) -> Option<(String, &PathBuf)> {
        if let Some(v) = self.creds.get(name).and_then(|s| s.get(key)) {
            return Some((v.clone(), &self.cred_path));
        }
        self.conf
            .get(name)
            .and_then(|s| s.get(key))
            .map(|v| (v.clone(), &self.conf_path))
    }

    fn profile(&self, name: &str, depth: usize) -> Result<ProfileCredentials> {
        let region = self.key(name, "region").map(|(v, _)| v);
        let where_ = format!(
            "{} / {}",
            self.cred_path.display(),
            self.conf_path.display()
        );
        if depth > 5 {
            return Err(problem(
                name,
                &where_,
                "source_profile chain longer than 5 (a loop?)",
            ));
        }
        if let Some((role, file)) = self.key(name, "role_arn") {
            let file = file.display().to_string();
            let Some((source, _)) = self.key(name, "source_profile") else {
                return Err(problem(
                    name,
                    &file,
                    "role_arn without source_profile (credential_source is not supported)",
                ));
            };
            let base = self.profile(&source, depth + 1)?;
            let sts_region = region
                .clone()
                .or(base.region.clone())
                .unwrap_or_else(|| "us-east-1".into());
            let mut c =
                assume_role(&base, &role, &sts_region).map_err(|e| problem(name, &file, e))?;
            c.profile = name.to_string();
            c.region = region.or(base.region);
            return Ok(c);
        }
        if let Some((cmd, file)) = self.key(name, "credential_process") {
            let mut c = credential_process(&cmd)
                .map_err(|e| problem(name, &file.display().to_string(), e))?;
            c.profile = name.to_string();
            c.region = region;
            return Ok(c);
        }
        if self.key(name, "sso_start_url").is_some() || self.key(name, "sso_session").is_some() {
            return Err(PrepError::Usage {
                message: format!("AWS profile `{name}` ({where_}) is an SSO profile, which prep cannot log in to"),
                hint: Some(format!(
                    "add `credential_process = aws configure export-credentials --profile {name} --format process` to a profile and use that one"
                )),
            });
        }
        match (
            self.key(name, "aws_access_key_id"),
            self.key(name, "aws_secret_access_key"),
        ) {
            (Some((id, _)), Some((secret, _))) => Ok(ProfileCredentials {
                profile: name.to_string(),
                access_key_id: id,
                secret_access_key: secret,
                session_token: self.key(name, "aws_session_token").map(|(v, _)| v),
                region,
            }),
            _ => Err(problem(
                name,
                &where_,
                "no aws_access_key_id/aws_secret_access_key, credential_process or role_arn",
            )),
        }
    }
}

/// Runs a `credential_process` and reads its JSON (`Version` 1).
fn credential_process(cmd: &str) -> std::result::Result<ProfileCredentials, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("credential_process could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!("credential_process exited with {}", out.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| "credential_process did not print a JSON object".to_string())?;
    let field = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(id), Some(secret)) => Ok(ProfileCredentials {
            profile: String::new(),
            access_key_id: id,
            secret_access_key: secret,
            session_token: field("SessionToken"),
            region: None,
        }),
        _ => Err("credential_process output lacks AccessKeyId/SecretAccessKey".into()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104), for SigV4 signing.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(msg.iter().copied())
        .collect();
    let outer: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(Sha256::digest(&inner))
        .collect();
    Sha256::digest(&outer).to_vec()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `20261202T011500Z` and `20261202` for now.
fn amz_dates() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string();
    // 2026-12-02T01:15:00Z
    let stamp = t.replace(['-', ':'], "");
    (stamp.clone(), stamp[..8].to_string())
}

/// STS AssumeRole with SigV4, signed with `base`'s keys.
fn assume_role(
    base: &ProfileCredentials,
    role: &str,
    region: &str,
) -> std::result::Result<ProfileCredentials, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_STS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| format!("https://sts.{region}.amazonaws.com"));
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let body = format!(
        "Action=AssumeRole&RoleArn={}&RoleSessionName={}&Version=2011-06-15",
        percent_encode(role),
        percent_encode(&format!("prep-{}", std::process::id()))
    );
    let (stamp, date) = amz_dates();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("host", host),
        ("x-amz-date", stamp.clone()),
    ];
    if let Some(t) = &base.session_token {
        headers.push(("x-amz-security-token", t.clone()));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical = format!(
        "POST\n/\n\n{}\n{}\n{}",
        headers
            .iter()
            .map(|(k, v)| format!("{k}:{v}\n"))
            .collect::<String>(),
        signed.join(";"),
        hex(&Sha256::digest(body.as_bytes()))
    );
    let scope = format!("{date}/{region}/sts/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", base.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, "sts", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        base.access_key_id,
        signed.join(";")
    );
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{endpoint}/"))
        .header("authorization", auth)
        .body(body);
    for (k, v) in &headers {
        if *k != "host" {
            req = req.header(*k, v);
        }
    }
    let (status, text) = crate::storage::remote::rt()
        .block_on(async move {
            let r = req.send().await?;
            let s = r.status();
            Ok::<_, reqwest::Error>((s, r.text().await?))
        })
        .map_err(|e| format!("STS AssumeRole of {role} at {endpoint} failed: {e}"))?;
    if !status.is_success() {
        let code = xml_field(&text, "Code").unwrap_or_default();
        return Err(format!("STS AssumeRole of {role} answered {status} {code}"));
    }
    match (
        xml_field(&text, "AccessKeyId"),
        xml_field(&text, "SecretAccessKey"),
    ) {
        (Some(id), Some(secret)) => Ok(ProfileCredentials {
            profile: String::new(),
            access_key_id: id,
            secret_access_key: secret,
            session_token: xml_field(&text, "SessionToken"),
            region: None,
        }),
        _ => Err(format!(
            "STS AssumeRole of {role} answered without credentials"
        )),
    }
}

fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ini_sections_follow_each_files_naming() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        std::fs::write(&p, "[default]\nregion = eu-west-1\n# c\n[profile dev]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n").unwrap();
        let s = read_ini(&p, true).unwrap();
        assert_eq!(s["default"]["region"], "eu-west-1");
        assert_eq!(s["dev"]["source_profile"], "default");
        let c = read_ini(&p, false).unwrap();
        assert!(
            c.contains_key("profile dev"),
            "credentials files name sections bare"
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let c = ProfileCredentials {
            profile: "p".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: None,
            region: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("AKID"),
            "{shown}"
        );
    }
}
