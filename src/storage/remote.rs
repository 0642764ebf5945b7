//! Object storage (s3://, gs://, az://, abfs://, http(s)://) through the
//! `object_store` crate, behind blocking adapters for the rest of prep.
//!
//! prep's stages are synchronous and thread-based, so this module owns one
//! small tokio runtime and exposes: listing with folder semantics, a
//! streaming `Read` over a GET (never the whole object in memory), ranged
//! reads for Parquet, and a `Write` that streams a multipart upload. Every
//! store gets bounded retries with exponential backoff (5xx, 429/SlowDown,
//! connection resets and timeouts are retried by object_store's client).
//! Credentials come from each cloud's standard environment; they are never
//! logged: errors name only the *source* of the credentials.

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{PrepError, Result};
use crate::pipeline::plan::StoragePlan;

/// The runtime that drives every object-store request.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("prep-io")
            .enable_all()
            .build()
            .expect("tokio runtime starts")
    })
}

/// A parsed object-store URI: the store and the key (or prefix) in it.
#[derive(Clone)]
pub struct RemoteLocation {
    pub store: Arc<dyn ObjectStore>,
    /// The same store's multipart API (`None`: http(s), which has none).
    pub multipart: Option<Arc<dyn MultipartStore>>,
    /// `scheme://bucket` (no trailing slash), for building display URIs.
    pub base: String,
    pub path: Path,
    pub scheme: String,
}

impl std::fmt::Debug for RemoteLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri_of(&self.path))
    }
}

impl RemoteLocation {
    pub fn uri_of(&self, path: &Path) -> String {
        if path.as_ref().is_empty() {
            format!("{}/", self.base)
        } else {
            format!("{}/{}", self.base, path)
        }
    }

    pub fn child(&self, name: &str) -> Path {
        if self.path.as_ref().is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{}", self.path, name))
        }
    }
}

pub fn is_remote(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(scheme, _)| scheme != "file")
}

fn retry_config() -> RetryConfig {
    let max_retries = crate::env::max_retries();
    let retry_timeout = crate::env::retry_timeout();
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            // Short enough that an outage is noticed soon after it ends.
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries,
        retry_timeout,
    }
}

fn client_options() -> ClientOptions {
    let timeout = crate::env::request_timeout();
    ClientOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(Duration::from_secs(10))
}

fn bad_uri(uri: &str, why: impl std::fmt::Display) -> PrepError {
    PrepError::Usage {
        message: format!("`{uri}` is not a usable object-store URI: {why}"),
        hint: Some("examples: s3://bucket/prefix/, gs://bucket/data/*.csv, az://container/path, https://host/file.csv".into()),
    }
}

/// A service-account key that turns authentication off, for a GCS emulator.
const EMULATOR_GCS_KEY: &str = r#"{"private_key": "", "private_key_id": "", "client_email": "emulator", "disable_oauth": true}"#;

/// A store as both APIs prep uses.
type Stores = (Arc<dyn ObjectStore>, Option<Arc<dyn MultipartStore>>);

fn both<S: ObjectStore + MultipartStore>(s: S) -> Stores {
    let s = Arc::new(s);
    (s.clone(), Some(s))
}

/// Builds the store for `uri`, honouring `[storage]` and the environment.
pub fn parse(uri: &str, storage: &StoragePlan) -> Result<RemoteLocation> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| bad_uri(uri, "no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad_uri(uri, "no bucket/container"));
    }
    let (store, multipart) = stores_for(uri, &scheme, bucket, storage)?;
    let key = key.trim_end_matches('/');
    // For abfs://container@account.dfs.core.windows.net/path the "bucket" is
    // the host part; the key is what follows.
    let base = format!("{scheme}://{bucket}");
    Ok(RemoteLocation {
        store,
        multipart,
        base,
        path: Path::parse(key).map_err(|e| bad_uri(uri, e))?,
        scheme,
    })
}

/// The store of `scheme://bucket` with `storage`'s settings, built once per
/// process: every location in a bucket (the input's listing and reads, a
/// read started before the listing, the output, its lock) shares one
/// client, so credentials are resolved once (an `AWS_PROFILE` assume-role
/// asks STS once, a `credential_process` runs once) and connections are
/// reused.
fn stores_for(uri: &str, scheme: &str, bucket: &str, storage: &StoragePlan) -> Result<Stores> {
    type Built = std::sync::Mutex<std::collections::HashMap<String, Stores>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let key = format!("{scheme}://{bucket} {storage:?}");
    let built = BUILT.get_or_init(Default::default);
    if let Some(s) = built.lock().expect("stores").get(&key) {
        return Ok(s.clone());
    }
    let stores = build_stores(uri, scheme, bucket, storage)?;
    built.lock().expect("stores").insert(key, stores.clone());
    Ok(stores)
}

fn build_stores(uri: &str, scheme: &str, bucket: &str, storage: &StoragePlan) -> Result<Stores> {
    let retry = retry_config();
    Ok(match scheme {
        "s3" | "s3a" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .with_client_options(client_options());
            let endpoint = storage
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(ep) = endpoint {
                if ep.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                b = b.with_endpoint(ep);
            }
            let profile = crate::storage::aws_profile::resolve()?;
            if let Some(p) = &profile {
                b = b
                    .with_access_key_id(&p.access_key_id)
                    .with_secret_access_key(&p.secret_access_key);
                if let Some(t) = &p.session_token {
                    b = b.with_token(t);
                }
            }
            let env_region = std::env::var_os("AWS_REGION").is_some()
                || std::env::var_os("AWS_DEFAULT_REGION").is_some();
            if let Some(r) = &storage.region {
                b = b.with_region(r);
            } else if !env_region {
                let from_profile = profile.as_ref().and_then(|p| p.region.clone());
                b = b.with_region(from_profile.unwrap_or_else(|| "us-east-1".into()));
            }
            if let Some(h) = storage.allow_http {
                b = b.with_allow_http(h);
            }
            if let Some(v) = storage.virtual_hosted_style {
                b = b.with_virtual_hosted_style_request(v);
            }
            both(b.build().map_err(|e| bad_uri(uri, e))?)
        }
        "gs" | "gcs" => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            // `[storage] endpoint`, else the Google client libraries'
            // STORAGE_EMULATOR_HOST: a test server, which takes no token.
            let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok().map(|h| {
                if h.contains("://") {
                    h
                } else {
                    format!("http://{h}")
                }
            });
            let mut options = client_options();
            if let Some(ep) = storage.endpoint.clone().or(emulator.clone()) {
                options = options.with_allow_http(ep.starts_with("http://"));
                b = b.with_base_url(ep.trim_end_matches('/'));
                if emulator.is_some() && std::env::var_os("GOOGLE_SERVICE_ACCOUNT_KEY").is_none() {
                    b = b.with_service_account_key(EMULATOR_GCS_KEY);
                }
            }
            both(
                b.with_client_options(options)
                    .build()
                    .map_err(|e| bad_uri(uri, e))?,
            )
        }
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(uri)
                .with_retry(retry)
                .with_client_options(client_options());
            if let Some(ep) = &storage.endpoint {
                b = b
                    .with_endpoint(ep.clone())
                    .with_allow_http(ep.starts_with("http://"));
            }
            both(b.build().map_err(|e| bad_uri(uri, e))?)
        }
        "http" | "https" => (
            Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(format!("{scheme}://{bucket}"))
                    .with_retry(retry)
                    .with_client_options(client_options().with_allow_http(true))
                    .build()
                    .map_err(|e| bad_uri(uri, e))?,
            ) as Arc<dyn ObjectStore>,
            None,
        ),
        other => return Err(bad_uri(uri, format!("unknown scheme `{other}`"))),
    })
}

/// Which credential source a store would use, for "access denied" messages.
/// Names only, never values.
pub fn credential_source(scheme: &str) -> String {
    let has = |k: &str| std::env::var_os(k).is_some();
    match scheme {
        "s3" | "s3a" => {
            if has("AWS_ACCESS_KEY_ID") {
                "the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)".into()
            } else if let Ok(p) = std::env::var("AWS_PROFILE") {
                format!("AWS profile `{p}` (shared config/credentials files)")
            } else if has("AWS_WEB_IDENTITY_TOKEN_FILE") {
                "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, e.g. EKS IRSA)".into()
            } else if has("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                || has("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            {
                "the container credentials endpoint (ECS/Batch/SageMaker task role)".into()
            } else {
                "the EC2 instance metadata service (instance role)".into()
            }
        }
        "gs" | "gcs" => {
            if has("GOOGLE_SERVICE_ACCOUNT") || has("GOOGLE_APPLICATION_CREDENTIALS") {
                "the service-account file in GOOGLE_APPLICATION_CREDENTIALS/GOOGLE_SERVICE_ACCOUNT"
                    .into()
            } else {
                "application default credentials / the GCE metadata server".into()
            }
        }
        "http" | "https" => "no credentials (plain HTTP)".into(),
        _ => {
            if has("AZURE_STORAGE_ACCOUNT_KEY") || has("AZURE_STORAGE_ACCESS_KEY") {
                "the account key in AZURE_STORAGE_ACCOUNT_KEY".into()
            } else if has("AZURE_CLIENT_SECRET") {
                "a service principal (AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)".into()
            } else {
                "managed identity / the Azure metadata endpoint".into()
            }
        }
    }
}

/// Maps an object_store error to exit code 4 with a hint. object_store
/// reports many HTTP failures as `Generic`, so the S3 error code in the
/// message is consulted too.
pub fn storage_error(action: &str, uri: &str, scheme: &str, e: object_store::Error) -> PrepError {
    let text = e.to_string();
    let denied = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || [
        "AccessDenied",
        "403 Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "401 Unauthorized",
    ]
    .iter()
    .any(|k| text.contains(k));
    let hint = if text.contains("NoSuchBucket") {
        let bucket = uri
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        format!("the bucket `{bucket}` does not exist (or is in another account/endpoint); create it or fix the URI")
    } else if denied {
        format!(
            "access was denied with credentials from {}; grant this identity access to {uri} or use other credentials",
            credential_source(scheme)
        )
    } else if matches!(e, object_store::Error::NotFound { .. }) || text.contains("NoSuchKey") {
        format!("check that the object exists: {uri}")
    } else {
        "the request failed after retries; check the endpoint and the network (PREP_MAX_RETRIES, PREP_RETRY_TIMEOUT and PREP_REQUEST_TIMEOUT tune retries)".to_string()
    };
    PrepError::Storage {
        action: action.to_string(),
        uri: uri.to_string(),
        hint: Some(hint),
        source: Box::new(e),
    }
}

/// Metadata of one listed object.
pub struct Listed {
    pub path: Path,
    pub size: u64,
    pub etag: Option<String>,
}

/// Lists every object under `loc.path` as a folder (`data` matches `data/…`,
/// never `data_old/…`), sorted by key.
pub fn list(loc: &RemoteLocation) -> Result<Vec<Listed>> {
    let prefix = (!loc.path.as_ref().is_empty()).then_some(&loc.path);
    let uri = loc.uri_of(&loc.path);
    let metas: Vec<object_store::Result<object_store::ObjectMeta>> =
        rt().block_on(loc.store.list(prefix).collect());
    let mut out = Vec::new();
    for m in metas {
        let m = m.map_err(|e| storage_error("listing", &uri, &loc.scheme, e))?;
        out.push(Listed {
            path: m.location,
            size: m.size,
            etag: m.e_tag,
        });
    }
    out.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
    Ok(out)
}

/// HEAD of one object; `None` when it does not exist.
pub fn head(loc: &RemoteLocation, path: &Path) -> Result<Option<Listed>> {
    match rt().block_on(loc.store.head(path)) {
        Ok(m) => Ok(Some(Listed {
            path: m.location,
            size: m.size,
            etag: m.e_tag,
        })),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(storage_error(
            "reading metadata of",
            &loc.uri_of(path),
            &loc.scheme,
            e,
        )),
    }
}

/// Bytes `range` of an object, as parallel parts that resume where a
/// broken stream stopped (see `remote_read.rs`), all of the version whose
/// ETag is `etag` when given (the listing's).
pub fn get_range(
    loc: &RemoteLocation,
    path: &Path,
    range: Range<u64>,
    etag: Option<&str>,
) -> Result<Bytes> {
    use crate::storage::remote_read::{get_range_parallel, ObjectReplaced};
    let fetched = match crate::storage::read_ahead::take_prefetched(&loc.uri_of(path), &range) {
        Some(ahead) => {
            let mut out = Vec::with_capacity((range.end - range.start) as usize);
            let mut ahead = ahead.pinned_to(etag);
            std::io::Read::read_to_end(&mut ahead, &mut out).map(|_| Bytes::from(out))
        }
        None => get_range_parallel(loc.store.clone(), path.clone(), range, etag),
    };
    fetched.map_err(|e| PrepError::Storage {
        action: "reading".into(),
        uri: loc.uri_of(path),
        // A replaced object's message says what to do.
        hint: (!ObjectReplaced::is(&e)).then(|| format!(
            "the read failed after retries (credentials from {}; PREP_RETRY_TIMEOUT sets how long to retry)",
            credential_source(&loc.scheme)
        )),
        source: Box::new(e),
    })
}

pub fn get_all(loc: &RemoteLocation, path: &Path) -> Result<Vec<u8>> {
    let store = loc.store.clone();
    let p = path.clone();
    let bytes = rt()
        .block_on(async move { store.get(&p).await?.bytes().await })
        .map_err(|e| storage_error("reading", &loc.uri_of(path), &loc.scheme, e))?;
    Ok(bytes.to_vec())
}

pub fn put(loc: &RemoteLocation, path: &Path, bytes: &[u8]) -> Result<()> {
    let payload = object_store::PutPayload::from(Bytes::copy_from_slice(bytes));
    rt().block_on(loc.store.put(path, payload))
        .map(|_| ())
        .map_err(|e| storage_error("writing", &loc.uri_of(path), &loc.scheme, e))
}

/// A conditional PUT: `None` creates the object only if it does not exist
/// (`If-None-Match: *`), `Some(etag)` replaces it only if it still has that
/// ETag (`If-Match`). Returns the new ETag, or `None` when the condition
/// failed (someone else created or changed it first).
pub fn put_conditional(
    loc: &RemoteLocation,
    path: &Path,
    bytes: &[u8],
    expected: Option<&str>,
) -> Result<Option<String>> {
    let payload = object_store::PutPayload::from(Bytes::copy_from_slice(bytes));
    let mode = match expected {
        None => object_store::PutMode::Create,
        Some(etag) => object_store::PutMode::Update(object_store::UpdateVersion {
            e_tag: Some(etag.to_string()),
            version: None,
        }),
    };
    // object_store does not retry a conditional PUT (it is not idempotent),
    // so transport failures are retried here. A retry after a request that
    // did succeed then fails its condition: callers re-read the object to
    // tell their own write from someone else's.
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        let opts = object_store::PutOptions {
            mode: mode.clone(),
            ..Default::default()
        };
        match rt().block_on(loc.store.put_opts(path, payload.clone(), opts)) {
            Ok(r) => return Ok(Some(r.e_tag.unwrap_or_default())),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => return Ok(None),
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotImplemented { .. }),
            ) => return Err(storage_error("writing", &loc.uri_of(path), &loc.scheme, e)),
            Err(e) => {
                tries += 1;
                if tries > crate::env::max_retries()
                    || started.elapsed() > crate::env::retry_timeout()
                {
                    return Err(storage_error("writing", &loc.uri_of(path), &loc.scheme, e));
                }
                tracing::debug!("retrying a conditional write of {}: {e}", loc.uri_of(path));
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A small object with its ETag; `None` when it does not exist.
pub fn get_tagged(loc: &RemoteLocation, path: &Path) -> Result<Option<(Vec<u8>, String)>> {
    let store = loc.store.clone();
    let p = path.clone();
    let got = rt().block_on(async move {
        let r = store.get(&p).await?;
        let etag = r.meta.e_tag.clone().unwrap_or_default();
        Ok::<_, object_store::Error>((r.bytes().await?.to_vec(), etag))
    });
    match got {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(storage_error("reading", &loc.uri_of(path), &loc.scheme, e)),
    }
}

pub fn delete(loc: &RemoteLocation, path: &Path) -> Result<()> {
    match rt().block_on(loc.store.delete(path)) {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(storage_error("deleting", &loc.uri_of(path), &loc.scheme, e)),
    }
}

/// Deletes `paths` in as few requests as the store allows: S3's
/// DeleteObjects (1,000 keys a request) and Azure's blob batch (256), and
/// concurrent single deletes on GCS, instead of one round trip per object.
/// Objects already gone are fine; the first other failure is returned.
pub fn delete_many(loc: &RemoteLocation, paths: Vec<Path>) -> Result<()> {
    match paths.len() {
        0 => return Ok(()),
        1 => return delete(loc, &paths[0]),
        _ => {}
    }
    let first = paths[0].clone();
    let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
    let done: Vec<object_store::Result<Path>> =
        rt().block_on(loc.store.delete_stream(stream).collect());
    for r in done {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                // Bulk answers name the object in the error's text when
                // they can; otherwise the first of the batch stands for it.
                let uri = loc.uri_of(&first);
                return Err(storage_error("deleting", &uri, &loc.scheme, e));
            }
        }
    }
    Ok(())
}
