//! gs:// and az:// test servers: Google's `gcp-storage-emulator` (PyPI) and
//! Azurite (npm), started on 127.0.0.1 on first use and killed with the
//! test process. In CI a missing emulator fails the tests; elsewhere they
//! skip with a line saying how to install it.
//!
//! Azurite speaks the Blob API object_store uses. gcp-storage-emulator
//! serves Google's JSON API, but of the XML API that object_store's GCS
//! client speaks it has only GET and PUT (no HEAD, DELETE, listing or
//! multipart uploads, no ETag/Last-Modified headers, and it ignores
//! preconditions): [`crate::gcs_shim`] serves the missing calls from the
//! JSON API. Multipart uploads cannot be served that way, so GCS shards in
//! these tests stay under one upload buffer (10 MiB), and the output lock's
//! exclusivity is not tested on GCS.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use prep::storage::aws_profile::hmac_sha256;

use crate::common::in_ci;
use crate::s3_support::{answers_http, find, spawn_watched};

/// One object store emulator, as the cloud suite needs it.
pub trait CloudStore: Sync {
    /// `gs` or `az`.
    fn scheme(&self) -> &'static str;
    /// A fresh, empty bucket or container.
    fn new_bucket(&self) -> String;
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]);
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>>;
    /// Keys under `prefix`, sorted.
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String>;
    /// The environment a `prep` process needs to reach the emulator.
    fn env(&self) -> Vec<(String, String)>;
    fn uri(&self, bucket: &str, key: &str) -> String {
        format!("{}://{bucket}/{key}", self.scheme())
    }
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A plain HTTP/1.1 exchange (`Connection: close`); returns the status, the
/// response head and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let end = find(&resp, b"\r\n\r\n").ok_or_else(|| io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head, resp[end + 4..].to_vec()))
}

/// Percent-encodes everything but unreserved characters (object names in
/// JSON API paths).
pub fn encode(s: &str) -> String {
    prep::storage::aws_profile::percent_encode(s)
}

enum Startup<T> {
    Ready(T),
    NotFound(&'static str),
    Failed(String),
}

fn ready<T>(s: &'static Startup<T>) -> Option<&'static T> {
    match s {
        Startup::Ready(t) => Some(t),
        Startup::NotFound(how) => {
            assert!(!in_ci(), "CI=true but the emulator is missing: {how}");
            eprintln!("skipping: emulator not installed ({how})");
            None
        }
        Startup::Failed(e) => panic!("{e}"),
    }
}

fn find_exe(env_var: &str, candidates: &[PathBuf], name: &str) -> Option<PathBuf> {
    let mut all: Vec<PathBuf> = std::env::var_os(env_var)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    all.extend_from_slice(candidates);
    if let Some(path) = std::env::var_os("PATH") {
        all.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    all.into_iter().find(|p| p.is_file())
}

fn home(rel: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rel)
}

/// Starts `exe args` and waits until `addr` answers HTTP.
fn launch(exe: &Path, args: &[&str], addr: &str, what: &str) -> Result<(), String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log = dir.join(format!("{what}-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = spawn_watched(exe, args, out, err)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if answers_http(addr) {
            std::mem::forget(child); // the watchdog ends it with the tests
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "{what} exited with {st}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{what} did not answer on {addr}; log {}",
        log.display()
    ))
}

// ---------------------------------------------------------------------------
// Azurite

const AZ_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, not a secret).
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    addr: String,
    runtime: tokio::runtime::Runtime,
}

pub fn azurite() -> Option<&'static Azurite> {
    static A: OnceLock<Startup<Azurite>> = OnceLock::new();
    ready(A.get_or_init(|| {
        let Some(exe) = find_exe(
            "PREP_AZURITE",
            &[home(".cache/prep-azurite/node_modules/.bin/azurite-blob")],
            "azurite-blob",
        ) else {
            return Startup::NotFound("npm install --prefix ~/.cache/prep-azurite azurite@3, or set PREP_AZURITE to azurite-blob");
        };
        let port = free_port().to_string();
        let addr = format!("127.0.0.1:{port}");
        let args = ["--blobHost", "127.0.0.1", "--blobPort", &port, "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--loose"];
        match launch(&exe, &args, &addr, "azurite") {
            Ok(()) => Startup::Ready(Azurite {
                addr,
                runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
            }),
            Err(e) => Startup::Failed(e),
        }
    }))
}

impl Azurite {
    fn store(&self, container: &str) -> object_store::azure::MicrosoftAzure {
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(AZ_ACCOUNT)
            .with_access_key(AZ_KEY)
            .with_container_name(container)
            .with_endpoint(format!("http://{}/{AZ_ACCOUNT}", self.addr))
            .with_allow_http(true)
            .build()
            .expect("azurite store")
    }

    /// Creates a container with a SharedKey-signed request (object_store has
    /// no call for it).
    fn create_container(&self, name: &str) {
        let date = httpdate_now();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZ_KEY)
            .unwrap();
        let sig =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
        let headers = [
            ("x-ms-date", date),
            ("x-ms-version", version.to_string()),
            ("Authorization", format!("SharedKey {AZ_ACCOUNT}:{sig}")),
        ];
        let (status, head, _) = http(
            &self.addr,
            "PUT",
            &format!("/{AZ_ACCOUNT}/{name}?restype=container"),
            &headers,
            b"",
        )
        .expect("azurite answers");
        assert_eq!(status, 201, "creating container {name}: {head}");
    }
}

/// Now as an RFC 7231 date (`Tue, 02 Dec 2026 01:02:03 GMT`).
pub fn httpdate_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    httpdate(secs)
}

pub fn httpdate(secs: u64) -> String {
    let days = secs / 86400;
    let (h, m, s) = (secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {d:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

impl CloudStore for Azurite {
    fn scheme(&self) -> &'static str {
        "az"
    }
    fn new_bucket(&self) -> String {
        let name = unique("prep-");
        self.create_container(&name);
        name
    }
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let store = self.store(bucket);
        self.runtime
            .block_on(store.put(&key.into(), bytes.to_vec().into()))
            .expect("azurite put");
    }
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        let store = self.store(bucket);
        self.runtime.block_on(async {
            match store.get(&key.into()).await {
                Ok(r) => Some(r.bytes().await.expect("azurite body").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("azurite get {key}: {e}"),
            }
        })
    }
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.store(bucket);
        let p = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> = self.runtime.block_on(async {
            store
                .list(Some(&p))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .expect("azurite list")
        });
        keys.sort();
        keys
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL".into(),
                format!("http://{}", self.addr),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------
// gcp-storage-emulator (+ the XML shim)

pub struct GcsEmulator {
    /// The emulator itself (JSON API), for the helpers below.
    api: String,
    /// The shim in front of it, which prep talks to.
    shim: String,
    lock: Mutex<()>,
}

pub fn gcs() -> Option<&'static GcsEmulator> {
    static G: OnceLock<Startup<GcsEmulator>> = OnceLock::new();
    ready(G.get_or_init(|| {
        let mut candidates = vec![home(".cache/prep-venv/bin/gcp-storage-emulator")];
        if let Some(v) = std::env::var_os("PREP_VENV") {
            candidates.insert(0, PathBuf::from(v).join("bin/gcp-storage-emulator"));
        }
        let Some(exe) = find_exe("PREP_GCS_EMULATOR", &candidates, "gcp-storage-emulator") else {
            return Startup::NotFound(
                "pip install gcp-storage-emulator (into $PREP_VENV), or set PREP_GCS_EMULATOR",
            );
        };
        let port = free_port().to_string();
        let api = format!("127.0.0.1:{port}");
        match launch(
            &exe,
            &[
                "start",
                "--port",
                &port,
                "-H",
                "127.0.0.1",
                "--in-memory",
                "-q",
            ],
            &api,
            "gcp-storage-emulator",
        ) {
            Ok(()) => {
                let shim = crate::gcs_shim::start(&api);
                Startup::Ready(GcsEmulator {
                    api,
                    shim,
                    lock: Mutex::new(()),
                })
            }
            Err(e) => Startup::Failed(e),
        }
    }))
}

impl CloudStore for GcsEmulator {
    fn scheme(&self) -> &'static str {
        "gs"
    }
    fn new_bucket(&self) -> String {
        let name = unique("prep-");
        let body = format!("{{\"name\": \"{name}\"}}");
        let (status, head, _) = http(
            &self.api,
            "POST",
            "/storage/v1/b?project=test",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200, "creating bucket {name}: {head}");
        name
    }
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        // The emulator is single-threaded: one helper request at a time.
        let _g = self.lock.lock().unwrap();
        let path = format!(
            "/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            encode(key)
        );
        let (status, head, _) = http(&self.api, "POST", &path, &[], bytes).unwrap();
        assert_eq!(status, 200, "uploading {key}: {head}");
    }
    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let _g = self.lock.lock().unwrap();
        let (status, head, body) = http(
            &self.api,
            "GET",
            &format!("/storage/v1/b/{bucket}/o/{}?alt=media", encode(key)),
            &[],
            b"",
        )
        .unwrap();
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("reading {key}: {head}"),
        }
    }
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let _g = self.lock.lock().unwrap();
        let (_, _, body) = http(
            &self.api,
            "GET",
            &format!("/storage/v1/b/{bucket}/o?prefix={}", encode(prefix)),
            &[],
            b"",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut keys: Vec<String> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![(
            "STORAGE_EMULATOR_HOST".into(),
            format!("http://{}", self.shim),
        )]
    }
}
