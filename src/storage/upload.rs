//! Streaming a shard to an object store, retried by prep part by part.
//!
//! ```text
//! write(bytes) ─► 10 MiB part ─► PUT part n (up to 8 in flight, each retried on its own)
//! finish()     ─► last part ─► complete (retried; a lost answer is checked with HEAD)
//!                  or, for a shard of one part, a single PUT
//! ```
//! object_store retries what it knows to be safe; a transport error it does
//! not classify (a reset while the request body is being written, say) would
//! end the run although the operation is idempotent. So every operation here
//! is retried by prep as well, with backoff, until `PREP_RETRY_TIMEOUT`
//! has passed since it began: a part is sent again whole under its own
//! number, and a completion whose answer was lost is recognised by the
//! object being there at the written size. Until `finish` completes, the
//! object does not exist; dropping the writer aborts the upload.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use crate::error::{PrepError, Result};
use crate::storage::remote::{credential_source, head, rt, RemoteLocation};

/// Bytes of every part but the last.
const PART_SIZE: usize = 10 << 20;
/// Parts being sent at once (memory: this many parts).
const PARTS_IN_FLIGHT: usize = 8;

/// How an operation that kept failing ended.
struct GaveUp {
    error: object_store::Error,
    tried_for: Duration,
    attempts: u32,
}

/// Errors that another attempt cannot fix.
fn is_final(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
    )
}

/// Runs `op` until it succeeds, fails finally, or the retry budget
/// (`PREP_RETRY_TIMEOUT` from the first attempt) is spent.
async fn retried<T, F, Fut>(what: &str, op: F) -> std::result::Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    retried_within(what, crate::env::retry_timeout(), op).await
}

async fn retried_within<T, F, Fut>(
    what: &str,
    budget: Duration,
    mut op: F,
) -> std::result::Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(error) if is_final(&error) || started.elapsed() > budget => {
                return Err(GaveUp {
                    error,
                    tried_for: started.elapsed(),
                    attempts,
                })
            }
            Err(e) => {
                tracing::debug!("{what}: attempt {attempts} failed, retrying: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

type Sending = JoinHandle<std::result::Result<PartId, GaveUp>>;

/// One part of an upload.
enum Part {
    Sending(Sending),
    Sent(PartId),
}

/// A multipart upload under way.
struct Upload {
    id: MultipartId,
    /// In part order; the first `done` are sent.
    parts: Vec<Part>,
    done: usize,
}

/// The outcome of a part's task.
fn joined(
    r: std::result::Result<std::result::Result<PartId, GaveUp>, tokio::task::JoinError>,
) -> std::result::Result<PartId, std::result::Result<GaveUp, PrepError>> {
    match r {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(g)) => Err(Ok(g)),
        Err(e) => Err(Err(PrepError::io("a part upload stopped", e.into()))),
    }
}

/// Streams one object: parts go out as they fill, so a large shard is never
/// held whole in memory; the object appears only on `finish`.
pub struct UploadWriter {
    loc: RemoteLocation,
    path: Path,
    uri: String,
    buf: Vec<u8>,
    upload: Option<Upload>,
    written: u64,
    finished: bool,
}

impl UploadWriter {
    pub fn new(loc: &RemoteLocation, path: &Path) -> Self {
        UploadWriter {
            loc: loc.clone(),
            path: path.clone(),
            uri: loc.uri_of(path),
            buf: Vec::new(),
            upload: None,
            written: 0,
            finished: false,
        }
    }

    fn failed(&self, operation: &str, g: GaveUp) -> PrepError {
        PrepError::Storage {
            action: operation.into(),
            uri: self.uri.clone(),
            hint: Some(format!(
                "gave up after {} attempt(s) over {:.0} s (PREP_RETRY_TIMEOUT sets how long to retry; credentials from {})",
                g.attempts,
                g.tried_for.as_secs_f64(),
                credential_source(&self.loc.scheme)
            )),
            source: Box::new(g.error),
        }
    }

    fn multipart(&self) -> Result<Arc<dyn MultipartStore>> {
        self.loc.multipart.clone().ok_or_else(|| PrepError::Usage {
            message: format!(
                "{}: this store cannot take objects larger than one part (10 MiB)",
                self.uri
            ),
            hint: Some("write the output to s3://, gs://, az:// or a local folder".into()),
        })
    }

    /// Sends the buffered bytes as the next part (starting the upload first).
    fn send_part(&mut self) -> Result<()> {
        let store = self.multipart()?;
        if self.upload.is_none() {
            let (s, p) = (store.clone(), self.path.clone());
            let what = format!("starting the upload of {}", self.uri);
            let id = rt()
                .block_on(retried(&what, || s.create_multipart(&p)))
                .map_err(|g| self.failed("starting the upload of", g))?;
            self.upload = Some(Upload {
                id,
                parts: Vec::new(),
                done: 0,
            });
        }
        let upload = self.upload.as_mut().expect("started above");
        // Bounded: wait for the oldest part still in flight.
        if upload.parts.len() - upload.done >= PARTS_IN_FLIGHT {
            let slot = upload.done;
            if let Part::Sending(h) = &mut upload.parts[slot] {
                match joined(rt().block_on(h)) {
                    Ok(id) => upload.parts[slot] = Part::Sent(id),
                    Err(Ok(g)) => return Err(self.failed("uploading a part of", g)),
                    Err(Err(e)) => return Err(e),
                }
            }
            upload.done += 1;
        }
        let idx = upload.parts.len();
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let (path, id) = (self.path.clone(), upload.id.clone());
        let what = format!("uploading part {} of {}", idx + 1, self.uri);
        upload.parts.push(Part::Sending(rt().spawn(async move {
            retried(&what, || {
                store.put_part(&path, &id, idx, PutPayload::from(data.clone()))
            })
            .await
        })));
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        let Some(mut upload) = self.upload.take() else {
            // One part: a single PUT.
            let (store, path) = (self.loc.store.clone(), self.path.clone());
            let data = Bytes::from(std::mem::take(&mut self.buf));
            let what = format!("uploading {}", self.uri);
            return rt()
                .block_on(retried(&what, || {
                    store.put(&path, PutPayload::from(data.clone()))
                }))
                .map(|_| ())
                .map_err(|g| self.failed("uploading", g));
        };
        let store = self.multipart()?;
        if !self.buf.is_empty() {
            self.upload = Some(upload);
            self.send_part()?;
            upload = self.upload.take().expect("put back above");
        }
        let mut ids = Vec::with_capacity(upload.parts.len());
        for part in upload.parts.drain(..) {
            let sent = match part {
                Part::Sent(id) => Ok(id),
                Part::Sending(h) => joined(rt().block_on(h)),
            };
            match sent {
                Ok(id) => ids.push(id),
                Err(e) => {
                    self.abort(&store, &upload.id);
                    return Err(match e {
                        Ok(g) => self.failed("uploading a part of", g),
                        Err(e) => e,
                    });
                }
            }
        }
        let (path, id) = (self.path.clone(), upload.id.clone());
        let what = format!("completing the upload of {}", self.uri);
        let completed = rt().block_on(retried(&what, || {
            store.complete_multipart(&path, &id, ids.clone())
        }));
        match completed {
            Ok(_) => Ok(()),
            Err(g) => {
                // A completion the store acknowledged but whose answer was
                // lost makes the retry fail (the upload is gone): the object
                // is there, whole, so that is success, and never aborted.
                if let Ok(Some(meta)) = head(&self.loc, &self.path) {
                    if meta.size == self.written {
                        tracing::debug!("{}: completed upload confirmed by HEAD", self.uri);
                        return Ok(());
                    }
                }
                self.abort(&store, &upload.id);
                Err(self.failed("completing the upload of", g))
            }
        }
    }

    fn abort(&self, store: &Arc<dyn MultipartStore>, id: &MultipartId) {
        let _ = rt().block_on(store.abort_multipart(&self.path, id));
    }
}

impl Write for UploadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let room = PART_SIZE - self.buf.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
            if self.buf.len() == PART_SIZE {
                self.send_part().map_err(std::io::Error::other)?;
            }
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        if let (Some(upload), false) = (self.upload.take(), self.finished) {
            for p in &upload.parts {
                if let Part::Sending(h) = p {
                    h.abort();
                }
            }
            if let Some(store) = self.loc.multipart.clone() {
                self.abort(&store, &upload.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "error writing a body to connection: connection reset".into(),
        }
    }

    #[test]
    fn a_failure_object_store_left_unretried_is_retried_until_it_succeeds() {
        let mut calls = 0;
        let got = rt().block_on(retried_within("t", Duration::from_secs(60), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(transport())
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(got.ok(), Some(3));
    }

    #[test]
    fn final_errors_stop_at_once_and_the_budget_ends_the_rest() {
        let mut calls = 0;
        let got = rt().block_on(retried_within("t", Duration::from_secs(60), || {
            calls += 1;
            async {
                Err::<(), _>(object_store::Error::NotFound {
                    path: "x".into(),
                    source: "gone".into(),
                })
            }
        }));
        let Err(g) = got else { panic!("fails") };
        assert_eq!((g.attempts, calls), (1, 1));
        assert!(matches!(g.error, object_store::Error::NotFound { .. }));

        let got = rt().block_on(retried_within("t", Duration::from_millis(250), || async {
            Err::<(), _>(transport())
        }));
        let Err(g) = got else { panic!("gives up") };
        assert!(g.attempts >= 2, "retried before giving up: {}", g.attempts);
        assert!(g.tried_for >= Duration::from_millis(250));
    }
}
