//! S3 test infrastructure: a real S3-compatible server, object helpers, and a
//! fault-injecting TCP proxy.
//!
//! # The server
//!
//! [`s3()`] returns the one S3 server of this test process, started on first
//! use (a `static OnceLock`, shared by every test in the binary):
//!
//! 1. If `$PREP_S3_ENDPOINT` is set (e.g. `http://127.0.0.1:5000`, as `.ci/run`
//!    may export), that already-running server is used; nothing is started.
//!    It must accept moto's "testing" credentials and unsigned bucket creation
//!    (`PUT /bucket`), as moto does.
//! 2. Otherwise moto's `moto_server` (`pip install 'moto[server]'`) is started
//!    on 127.0.0.1 with a free port. The executable is the first that exists
//!    of: `$PREP_MOTO_SERVER`, `$PREP_VENV/bin/moto_server`,
//!    `<repo>/.venv/bin/moto_server`, `$HOME/.cache/prep-venv/bin/moto_server`,
//!    `moto_server` on `$PATH`. Its output goes to
//!    `$CARGO_TARGET_TMPDIR/moto-server-<test pid>.log`. A small `sh` watchdog
//!    (started next to it) kills it within a second of the test process
//!    exiting, however that process ends, so no server outlives the tests.
//!    Startup waits until the server answers HTTP (up to 20 s).
//!
//! If no server can be found, `s3()` prints
//! `skipping: no S3 test server (pip install 'moto[server]')` and returns
//! `None`, so a test can `let Some(s3) = s3() else { return };` — except in CI
//! (`CI=true`), where it panics: an S3 test never skips in CI. A server that is
//! found but fails to start always panics, with its log.
//!
//! # What the `prep` binary gets
//!
//! [`S3Server::env`] (or [`S3Server::apply`], which also removes every
//! inherited `AWS_*` variable from the command) gives the variables that
//! `object_store`'s `AmazonS3Builder::from_env` reads:
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:PORT   (-> endpoint; path-style requests)
//! AWS_ACCESS_KEY_ID=testing
//! AWS_SECRET_ACCESS_KEY=testing
//! AWS_REGION=us-east-1
//! AWS_ALLOW_HTTP=true                       (-> client option allow_http)
//! ```
//!
//! [`S3Server::env_via`] / [`S3Server::apply_via`] give the same with another
//! endpoint, e.g. a [`FaultProxy`]'s.
//!
//! # The fault proxy
//!
//! [`FaultProxy`] listens on 127.0.0.1:0 and forwards raw TCP to the server,
//! except for the connections its [`FaultMode`] tells it to break: answer
//! `503 Slow Down` (S3's `SlowDown` XML error), reset, or stall. Faults are
//! decided per incoming *connection*; a faulted connection is always closed, so
//! it carries exactly one request. A forwarded connection may carry many
//! requests (HTTP keep-alive). The `Host` header is passed through unchanged
//! (moto does not check signatures, so a request signed for the proxy's
//! address is accepted).

// Each test module uses only some of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::common::{in_ci, repo};

/// Access key id and secret the tests use (moto accepts anything).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const SKIP_MESSAGE: &str = "skipping: no S3 test server (pip install 'moto[server]')";

/// The S3 server of this test process. See the module docs.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    /// The moto log file, when this process started the server.
    pub log: Option<PathBuf>,
    /// The moto process, when this process started it (never waited on; the
    /// watchdog kills it when the test process exits).
    child: Option<Mutex<Child>>,
    runtime: tokio::runtime::Runtime,
    stores: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

enum Startup {
    Ready(S3Server),
    /// Nothing to start: skip outside CI.
    NotFound,
    /// Found but broken: always a failure.
    Failed(String),
}

static SERVER: OnceLock<Startup> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// The S3 server for tests, started on first use; `None` (after printing a
/// skip line) when no server is installed and not in CI. Panics in CI when no
/// server is found, and anywhere when one is found but does not start.
pub fn s3() -> Option<&'static S3Server> {
    match SERVER.get_or_init(start) {
        Startup::Ready(s) => Some(s),
        Startup::NotFound => {
            if in_ci() {
                panic!(
                    "CI=true but no S3 test server was found: install it with \
                     `pip install 'moto[server]'` (into .venv, $PREP_VENV, or set \
                     $PREP_MOTO_SERVER to the moto_server executable), or set \
                     $PREP_S3_ENDPOINT to a running S3-compatible server"
                );
            }
            eprintln!("{SKIP_MESSAGE}");
            None
        }
        Startup::Failed(msg) => panic!("{msg}"),
    }
}

fn start() -> Startup {
    if let Ok(ep) = std::env::var("PREP_S3_ENDPOINT") {
        let endpoint = ep.trim_end_matches('/').to_string();
        let addr = match host_port(&endpoint) {
            Ok(a) => a,
            Err(e) => return Startup::Failed(format!("PREP_S3_ENDPOINT={ep}: {e}")),
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if answers_http(&addr) {
                return Startup::Ready(S3Server::new(endpoint, None, None));
            }
            thread::sleep(Duration::from_millis(200));
        }
        return Startup::Failed(format!(
            "PREP_S3_ENDPOINT={ep} does not answer HTTP after {STARTUP_TIMEOUT:?}; \
             start the server or unset PREP_S3_ENDPOINT to let the tests start moto"
        ));
    }
    let Some(exe) = find_moto() else {
        return Startup::NotFound;
    };
    let mut last_err = String::new();
    // A free port can be taken between picking and binding it: retry.
    for _ in 0..3 {
        match start_moto(&exe) {
            Ok(s) => return Startup::Ready(s),
            Err(e) => last_err = e,
        }
    }
    Startup::Failed(last_err)
}

fn find_moto() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("PREP_MOTO_SERVER") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(v) = std::env::var_os("PREP_VENV") {
        candidates.push(PathBuf::from(v).join("bin/moto_server"));
    }
    candidates.push(repo().join(".venv/bin/moto_server"));
    if let Some(h) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(h).join(".cache/prep-venv/bin/moto_server"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("moto_server"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs moto in the foreground of an `sh` that first forks a watchdog: the
/// watchdog polls the test process every second and kills moto (the exec'd
/// shell, `$$`) once the test process is gone.
const WATCHDOG: &str = r#"parent=$1; shift
( trap '' HUP INT
  while kill -0 "$parent" 2>/dev/null; do sleep 1; done
  kill "$$" 2>/dev/null ) </dev/null &
exec "$@""#;

/// Starts a test server that is killed once the test process is gone (see
/// [`WATCHDOG`]), with its output going to `out`/`err`.
pub fn spawn_watched(
    exe: &Path,
    args: &[&str],
    out: std::fs::File,
    err: std::fs::File,
) -> Result<Child, String> {
    StdCommand::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("prep-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", exe.display()))
}

fn start_moto(exe: &Path) -> Result<S3Server, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("picking a free port: {e}"))?
        .port();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let log = dir.join(format!("moto-server-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = spawn_watched(exe, &["-H", "127.0.0.1", "-p", &port.to_string()], out, err)?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if answers_http(&addr) {
            let endpoint = format!("http://{addr}");
            return Ok(S3Server::new(endpoint, Some(log), Some(child)));
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail = &tail[tail.len().saturating_sub(2000)..];
            let why = match exited {
                Some(st) => format!("exited with {st}"),
                None => format!("did not answer HTTP on {addr} within {STARTUP_TIMEOUT:?}"),
            };
            return Err(format!(
                "S3 test server {} {why}; log {}:\n{tail}",
                exe.display(),
                log.display()
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Whether something at `addr` (host:port) answers an HTTP request.
pub fn answers_http(addr: &str) -> bool {
    let Ok(sa) = resolve(addr) else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {addr}")))
}

/// `http://host:port[/...]` or `host:port` → `host:port`.
fn host_port(endpoint: &str) -> Result<String, String> {
    if endpoint.starts_with("https://") {
        return Err("only http:// endpoints are supported by the test helpers".into());
    }
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let hp = rest.split('/').next().unwrap_or_default();
    if hp.is_empty() {
        return Err(format!("no host in `{endpoint}`"));
    }
    Ok(if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:80")
    })
}

impl S3Server {
    fn new(endpoint: String, log: Option<PathBuf>, child: Option<Child>) -> S3Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("s3-test-helpers")
            .enable_all()
            .build()
            .expect("tokio runtime for the S3 test helpers");
        S3Server {
            endpoint,
            log,
            child: child.map(Mutex::new),
            runtime,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// `127.0.0.1:PORT` (host:port of the endpoint), e.g. for [`FaultProxy::start`].
    pub fn addr(&self) -> String {
        host_port(&self.endpoint).expect("endpoint host:port")
    }

    /// The environment the `prep` binary needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_via(&self.endpoint)
    }

    /// Like [`S3Server::env`], with another endpoint (e.g. a proxy's).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Removes every inherited `AWS_*` variable from `cmd` and sets [`S3Server::env`].
    pub fn apply<'c>(&self, cmd: &'c mut assert_cmd::Command) -> &'c mut assert_cmd::Command {
        self.apply_via(cmd, &self.endpoint)
    }

    /// Like [`S3Server::apply`], with another endpoint (e.g. a proxy's).
    pub fn apply_via<'c>(
        &self,
        cmd: &'c mut assert_cmd::Command,
        endpoint: &str,
    ) -> &'c mut assert_cmd::Command {
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env_via(endpoint))
    }

    /// A fault proxy in front of this server.
    pub fn proxy(&self, mode: FaultMode) -> FaultProxy {
        FaultProxy::start(&self.addr(), mode)
    }

    /// Creates a new, empty bucket with a unique name and returns the name.
    pub fn new_bucket(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "prep-test-{}-{}-{nanos:08x}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::SeqCst)
        );
        self.create_bucket(&name);
        name
    }

    /// Creates the bucket `name` (unsigned `PUT /name`, which moto accepts).
    pub fn create_bucket(&self, name: &str) {
        match raw_http(&self.addr(), "PUT", &format!("/{name}"), b"") {
            Ok((200, _)) => {}
            Ok((status, body)) => panic!(
                "creating bucket {name} on {}: HTTP {status}: {}",
                self.endpoint,
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("creating bucket {name} on {}: {e}", self.endpoint),
        }
    }

    /// `s3://bucket/key` (`key` may be empty or end in `/`).
    pub fn uri(&self, bucket: &str, key: &str) -> String {
        format!("s3://{bucket}/{key}")
    }

    /// An object_store client for `bucket` on this server (path-style, HTTP).
    pub fn store(&self, bucket: &str) -> Arc<AmazonS3> {
        let mut stores = self.stores.lock().unwrap();
        stores
            .entry(bucket.to_string())
            .or_insert_with(|| Arc::new(self.builder(&self.endpoint, bucket).build().unwrap()))
            .clone()
    }

    /// A builder configured like [`S3Server::env_via`] would configure
    /// `AmazonS3Builder::from_env`, for `bucket` (add retry settings etc.).
    pub fn builder(&self, endpoint: &str, bucket: &str) -> AmazonS3Builder {
        let mut b = AmazonS3Builder::new().with_bucket_name(bucket);
        for (k, v) in self.env_via(endpoint) {
            let key: AmazonS3ConfigKey = k.to_ascii_lowercase().parse().unwrap();
            b = b.with_config(key, v);
        }
        b
    }

    /// Runs a future on the helpers' runtime (for direct object_store use).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Writes `bytes` to `bucket/key` (one PUT).
    pub fn put(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) {
        let store = self.store(bucket);
        let path = obj_path(key);
        let payload = PutPayload::from(bytes.into());
        self.block_on(store.put(&path, payload))
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e}"));
    }

    /// Uploads the local file `src` to `bucket/key` with a multipart upload,
    /// streaming it (for large test inputs).
    pub fn put_file(&self, bucket: &str, key: &str, src: &Path) {
        let store = self.store(bucket);
        let path = obj_path(key);
        let what = format!("upload {} to s3://{bucket}/{key}", src.display());
        self.block_on(async {
            let mut file = std::fs::File::open(src).unwrap_or_else(|e| panic!("{what}: {e}"));
            let upload = store
                .put_multipart(&path)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file
                    .read(&mut buf)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(4)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                w.write(&buf[..n]);
            }
            w.finish().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        });
    }

    /// The object's bytes, or `None` if it does not exist.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = self.store(bucket);
        let path = obj_path(key);
        let r = self.block_on(async { store.get(&path).await?.bytes().await });
        match r {
            Ok(b) => Some(b.to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("get s3://{bucket}/{key}: {e}"),
        }
    }

    /// The object as UTF-8 text, or `None` if it does not exist.
    pub fn get_string(&self, bucket: &str, key: &str) -> Option<String> {
        self.get(bucket, key)
            .map(|b| String::from_utf8(b).expect("object is UTF-8"))
    }

    /// Every key under the folder `prefix` (`""` = the whole bucket), sorted.
    /// Folder semantics, as object_store lists: `data` and `data/` both mean
    /// `data/…`, never `data_old/…`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let store = self.store(bucket);
        let prefix = (!prefix.trim_matches('/').is_empty()).then(|| ObjPath::from(prefix));
        let metas: Vec<_> = self
            .block_on(store.list(prefix.as_ref()).try_collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("list s3://{bucket}/{}: {e}", prefix_str(&prefix)));
        let mut keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        keys.sort();
        keys
    }

    /// Deletes `bucket/key` (no error if it does not exist).
    pub fn delete(&self, bucket: &str, key: &str) {
        let store = self.store(bucket);
        let path = obj_path(key);
        match self.block_on(store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => panic!("delete s3://{bucket}/{key}: {e}"),
        }
    }

    /// The requests moto has answered on `bucket` so far, in order, as
    /// `METHOD /bucket/key?query` (from its log, colour codes removed).
    /// `None` when this process did not start the server (no log).
    pub fn requests(&self, bucket: &str) -> Option<Vec<String>> {
        let log = std::fs::read_to_string(self.log.as_ref()?).ok()?;
        let on_bucket = format!(" /{bucket}");
        let requests = log
            .lines()
            .filter_map(|line| {
                let quoted = line.split('"').nth(1)?;
                let mut plain = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    if c == '\u{1b}' {
                        // ESC [ … m
                        for c in chars.by_ref() {
                            if c == 'm' {
                                break;
                            }
                        }
                    } else {
                        plain.push(c);
                    }
                }
                let request = plain.trim_end_matches(" HTTP/1.1").to_string();
                let after_method = request.find(' ').map(|i| &request[i..])?;
                (after_method.starts_with(&on_bucket)
                    && matches!(
                        after_method[on_bucket.len()..].chars().next(),
                        None | Some('/' | '?')
                    ))
                .then_some(request)
            })
            .collect();
        Some(requests)
    }

    /// Deletes every object under the folder `prefix`.
    pub fn delete_prefix(&self, bucket: &str, prefix: &str) {
        for key in self.list(bucket, prefix) {
            self.delete(bucket, &key);
        }
    }
}

fn prefix_str(p: &Option<ObjPath>) -> String {
    p.as_ref().map(|p| p.to_string()).unwrap_or_default()
}

fn obj_path(key: &str) -> ObjPath {
    ObjPath::parse(key).unwrap_or_else(|e| panic!("`{key}` is not a valid object key: {e}"))
}

/// One HTTP/1.1 request with `Connection: close` to `addr` (`host:port` or
/// `http://host:port`); returns the status and the raw body (not de-chunked).
/// Unsigned: fine for moto. An Err is a connection error or a reply that is
/// not HTTP (e.g. a reset or an early close).
pub fn raw_http(addr: &str, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let hp = host_port(addr).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut s = TcpStream::connect_timeout(&resolve(&hp)?, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hp}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let end = find(&resp, b"\r\n\r\n").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("no HTTP response head ({} bytes)", resp.len()),
        )
    })?;
    let status_line = String::from_utf8_lossy(&resp[..end]);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP status line"))?;
    Ok((status, resp[end + 4..].to_vec()))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Fault proxy

/// What a [`FaultProxy`] does with each incoming connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward every connection transparently.
    Forward,
    /// The first `first_n` connections get `503 Slow Down` (S3 `SlowDown`
    /// XML body, `Connection: close`); later ones are forwarded.
    Fail503 { first_n: usize },
    /// The first `first_n` connections are reset (RST) once the request has
    /// arrived, without an answer; later ones are forwarded.
    Reset { first_n: usize },
    /// Every connection gets `503 Slow Down`.
    Always503,
    /// Every connection gets `403 Forbidden` with S3's `AccessDenied` body.
    Always403,
    /// The first `first_n` connections read the request and get no answer
    /// for `hold`, then are closed (for client timeouts); later ones are
    /// forwarded.
    Stall { first_n: usize, hold: Duration },
    /// Forwards until `after_bytes` have passed through the proxy (either
    /// way), then loses the endpoint for `lasts`: connections in flight are
    /// cut, new ones are reset (`blackhole: false`) or accepted and never
    /// answered (`blackhole: true`) until the outage ends.
    Outage {
        after_bytes: u64,
        lasts: Duration,
        blackhole: bool,
    },
}

/// The S3 error body of the proxy's 503 answers.
pub const SLOWDOWN_BODY: &str =
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

#[derive(Clone, Copy)]
enum Action {
    Forward,
    Fail503,
    Fail403,
    Reset,
    Stall(Duration),
}

struct ProxyState {
    /// The mode and how many connections arrived since it was set.
    mode: Mutex<(FaultMode, usize)>,
    /// Bytes forwarded (both ways) and the end of a started outage.
    bytes: std::sync::atomic::AtomicU64,
    outage_until: Mutex<Option<Instant>>,
    /// Client sockets being forwarded, cut when an outage starts.
    live: Mutex<Vec<(usize, TcpStream)>>,
    connections: AtomicUsize,
    faults: AtomicUsize,
    stop: AtomicBool,
}

/// A TCP proxy on 127.0.0.1 that injects faults in front of an upstream
/// server; runs on background threads until dropped. See [`FaultMode`].
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`host:port`, or `http://host:port`).
    pub fn start(upstream: &str, mode: FaultMode) -> FaultProxy {
        let upstream = host_port(upstream).expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            mode: Mutex::new((mode, 0)),
            bytes: std::sync::atomic::AtomicU64::new(0),
            outage_until: Mutex::new(None),
            live: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            faults: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, upstream, st))
            .expect("spawning the fault proxy");
        FaultProxy { addr, state }
    }

    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far (faulted and forwarded).
    pub fn count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections faulted so far (503, reset or stalled).
    pub fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }

    /// Switches the mode for connections that arrive from now on; `first_n`
    /// counts from here. Connections already being forwarded are not touched.
    pub fn set_mode(&self, mode: FaultMode) {
        *self.state.mode.lock().unwrap() = (mode, 0);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, upstream: String, state: Arc<ProxyState>) {
    for conn in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = conn else { continue };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let action = {
            let mut m = state.mode.lock().unwrap();
            let i = m.1;
            m.1 += 1;
            match m.0 {
                FaultMode::Forward => Action::Forward,
                FaultMode::Always503 => Action::Fail503,
                FaultMode::Always403 => Action::Fail403,
                FaultMode::Fail503 { first_n } if i < first_n => Action::Fail503,
                FaultMode::Reset { first_n } if i < first_n => Action::Reset,
                FaultMode::Stall { first_n, hold } if i < first_n => Action::Stall(hold),
                FaultMode::Outage { blackhole, .. } => match state.outage_left() {
                    Some(left) if blackhole => Action::Stall(left),
                    Some(_) => Action::Reset,
                    None => Action::Forward,
                },
                _ => Action::Forward,
            }
        };
        if !matches!(action, Action::Forward) {
            state.faults.fetch_add(1, Ordering::SeqCst);
        }
        let upstream = upstream.clone();
        let st = state.clone();
        let _ = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || match action {
                Action::Forward => forward(client, &upstream, &st),
                Action::Fail503 => answer_503(client),
                Action::Fail403 => answer_403(client),
                Action::Reset => reset(client),
                Action::Stall(hold) => stall(client, hold, &st),
            });
    }
}

/// Reads until the end of the request head (or 64 KiB, EOF, error, timeout).
fn read_head(c: &mut TcpStream) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&got, b"\r\n\r\n").is_none() && got.len() < 64 << 10 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads and discards until EOF, an error, or `limit` passes, so that closing
/// does not turn into a reset while the client is still sending a body.
fn drain(c: &mut TcpStream, limit: Duration) {
    let deadline = Instant::now() + limit;
    let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn answer_403(mut c: TcpStream) {
    read_head(&mut c);
    let body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    let resp = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = c.write_all(resp.as_bytes());
    let _ = c.flush();
    let _ = c.shutdown(Shutdown::Write);
    drain(&mut c, Duration::from_secs(5));
}

fn answer_503(mut c: TcpStream) {
    read_head(&mut c);
    let resp = format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{SLOWDOWN_BODY}",
        SLOWDOWN_BODY.len()
    );
    let _ = c.write_all(resp.as_bytes());
    let _ = c.flush();
    let _ = c.shutdown(Shutdown::Write);
    drain(&mut c, Duration::from_secs(5));
}

fn reset(c: TcpStream) {
    // Wait for the request, leave it unread and close: with unread data in
    // the receive buffer, Linux answers with a RST ("connection reset by
    // peer") instead of a FIN.
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 1];
    let _ = c.peek(&mut b);
    drop(c);
}

fn stall(mut c: TcpStream, hold: Duration, state: &ProxyState) {
    read_head(&mut c);
    let deadline = Instant::now() + hold;
    while Instant::now() < deadline && !state.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
    }
    drop(c);
}

impl ProxyState {
    /// Time left of the outage going on, if one is.
    fn outage_left(&self) -> Option<Duration> {
        let until = (*self.outage_until.lock().unwrap())?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts forwarded bytes; starts the outage when its threshold passes.
    fn forwarded(&self, n: usize) {
        let total = self.bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let FaultMode::Outage {
            after_bytes, lasts, ..
        } = self.mode.lock().unwrap().0
        else {
            return;
        };
        let mut until = self.outage_until.lock().unwrap();
        if total >= after_bytes && until.is_none() {
            *until = Some(Instant::now() + lasts);
            self.faults.fetch_add(1, Ordering::SeqCst);
            for (_, s) in self.live.lock().unwrap().iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to`, counting bytes; stops when either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &ProxyState) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                state.forwarded(n);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn forward(client: TcpStream, upstream: &str, state: &Arc<ProxyState>) {
    let Ok(up) =
        resolve(upstream).and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)))
    else {
        return; // the client sees the connection close
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if let (Ok(c), Ok(u)) = (client.try_clone(), up.try_clone()) {
        let mut live = state.live.lock().unwrap();
        live.push((id, c));
        live.push((id, u));
    }
    let (Ok(c_read), Ok(u_write)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let st = state.clone();
    let to_upstream = thread::spawn(move || pump(c_read, u_write, &st));
    pump(up, client, state);
    let _ = to_upstream.join();
    state.live.lock().unwrap().retain(|(i, _)| *i != id);
}

// ---------------------------------------------------------------------------
// Self-tests of the infrastructure

#[test]
fn s3_support_bucket_put_get_list_delete() {
    let Some(s3) = s3() else { return };
    let b = s3.new_bucket();
    let other = s3.new_bucket();
    assert_ne!(b, other);
    assert!(s3.list(&b, "").is_empty());
    s3.put(&b, "data/b.csv", "x\n2\n");
    s3.put(&b, "data/a.csv", b"x\n1\n".to_vec());
    s3.put(&b, "data_old/c.csv", "x\n3\n");
    s3.put(&b, "top.txt", "");
    assert_eq!(s3.get(&b, "data/a.csv").unwrap(), b"x\n1\n");
    assert_eq!(s3.get_string(&b, "top.txt").unwrap(), "");
    assert_eq!(s3.get(&b, "data/missing.csv"), None);
    assert_eq!(s3.list(&b, "data"), ["data/a.csv", "data/b.csv"]);
    assert_eq!(s3.list(&b, "data/"), ["data/a.csv", "data/b.csv"]);
    assert_eq!(
        s3.list(&b, ""),
        ["data/a.csv", "data/b.csv", "data_old/c.csv", "top.txt"]
    );
    assert!(s3.list(&other, "").is_empty());
    s3.delete(&b, "data/a.csv");
    s3.delete(&b, "data/a.csv");
    assert_eq!(s3.get(&b, "data/a.csv"), None);
    s3.delete_prefix(&b, "data_old");
    assert_eq!(s3.list(&b, ""), ["data/b.csv", "top.txt"]);
    assert_eq!(s3.uri(&b, "data/"), format!("s3://{b}/data/"));

    // A multipart upload of a local file.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    s3.put_file(&b, "big/big.bin", &dir.path().join("big.bin"));
    assert!(s3.get(&b, "big/big.bin").unwrap() == big);
}

#[test]
fn s3_support_env_is_what_object_store_reads() {
    let Some(s3) = s3() else { return };
    let env = s3.env();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_ALLOW_HTTP"
        ]
    );
    // Exactly what AmazonS3Builder::from_env does with each AWS_* variable.
    let mut b = AmazonS3Builder::new();
    for (k, v) in &env {
        let key: AmazonS3ConfigKey = k
            .to_ascii_lowercase()
            .parse()
            .unwrap_or_else(|e| panic!("{k} is not an object_store key: {e}"));
        b = b.with_config(key, v);
    }
    assert_eq!(
        b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
        Some(s3.endpoint.as_str())
    );
    let bucket = s3.new_bucket();
    s3.put(&bucket, "k.txt", "hello");
    let store = b.with_bucket_name(&bucket).build().unwrap();
    let got = s3.block_on(async {
        store
            .get(&ObjPath::from("k.txt"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(&got[..], b"hello");

    let mut cmd = crate::common::prep();
    s3.apply(&mut cmd);
    let envs: Vec<_> = cmd.get_envs().collect();
    assert!(envs
        .iter()
        .any(|(k, v)| *k == "AWS_ALLOW_HTTP" && v.is_some_and(|v| v == "true")));
}

#[test]
fn s3_support_proxy_fail503_then_forwards() {
    let Some(s3) = s3() else { return };
    let proxy = s3.proxy(FaultMode::Fail503 { first_n: 2 });
    for _ in 0..2 {
        let (status, body) = raw_http(&proxy.addr(), "GET", "/", b"").unwrap();
        assert_eq!(status, 503);
        assert_eq!(String::from_utf8(body).unwrap(), SLOWDOWN_BODY);
    }
    let (status, _) = raw_http(&proxy.endpoint(), "GET", "/", b"").unwrap();
    assert_eq!(status, 200);
    assert_eq!((proxy.count(), proxy.faults()), (3, 2));

    // A real client retries through the 503s (and a PUT body is drained).
    let bucket = s3.new_bucket();
    let proxy = s3.proxy(FaultMode::Fail503 { first_n: 2 });
    let store = s3
        .builder(&proxy.endpoint(), &bucket)
        .build()
        .expect("store via proxy");
    let key = ObjPath::from("via/proxy.txt");
    s3.block_on(store.put(&key, PutPayload::from(vec![7u8; 1 << 20])))
        .expect("put retried through 503s");
    assert_eq!(proxy.faults(), 2);
    assert_eq!(
        s3.get(&bucket, "via/proxy.txt").unwrap(),
        vec![7u8; 1 << 20]
    );
    let got = s3.block_on(async { store.get(&key).await.unwrap().bytes().await.unwrap() });
    assert_eq!(got.len(), 1 << 20);
}

#[test]
fn s3_support_proxy_always503_exhausts_retries() {
    let Some(s3) = s3() else { return };
    let bucket = s3.new_bucket();
    s3.put(&bucket, "k", "v");
    let proxy = s3.proxy(FaultMode::Always503);
    let retry = object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    };
    let store = s3
        .builder(&proxy.endpoint(), &bucket)
        .with_retry(retry)
        .build()
        .unwrap();
    let err = s3
        .block_on(store.get(&ObjPath::from("k")))
        .expect_err("503 forever must fail");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(proxy.count(), 3, "one try + 2 retries");
    assert_eq!(proxy.faults(), 3);
    // Switching to Forward heals it.
    proxy.set_mode(FaultMode::Forward);
    let got = s3.block_on(async { store.get(&ObjPath::from("k")).await?.bytes().await });
    assert_eq!(&got.unwrap()[..], b"v");
}

#[test]
fn s3_support_proxy_reset_and_stall() {
    let Some(s3) = s3() else { return };
    let proxy = s3.proxy(FaultMode::Reset { first_n: 2 });
    for _ in 0..2 {
        let r = raw_http(&proxy.addr(), "GET", "/", b"");
        assert!(r.is_err(), "expected a dropped connection, got {r:?}");
    }
    assert_eq!(raw_http(&proxy.addr(), "GET", "/", b"").unwrap().0, 200);
    assert_eq!((proxy.count(), proxy.faults()), (3, 2));

    let proxy = s3.proxy(FaultMode::Stall {
        first_n: 1,
        hold: Duration::from_millis(300),
    });
    let t = Instant::now();
    let r = raw_http(&proxy.addr(), "GET", "/", b"");
    assert!(r.is_err(), "stalled connection answered: {r:?}");
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(raw_http(&proxy.addr(), "GET", "/", b"").unwrap().0, 200);
}
