//! One writer per output at a time: the `_LOCK` object under the output.
//!
//! ```text
//! local folder:  open _LOCK, flock(LOCK_EX | LOCK_NB)   (the kernel drops it when the holder dies)
//! object store:  PUT _LOCK If-None-Match: *            (a lease, renewed with If-Match: etag)
//! ```
//! The lock names its holder (run id, host, pid, start time), so a refused
//! run can say who holds the output. A lock whose holder is gone is taken
//! over, with a log line: locally the kernel has released the holder's
//! `flock`; on an object store the lease ran out, or the holder ran on this
//! host and its process no longer exists. A takeover on an object store is a
//! conditional replace of the exact lock object seen (`If-Match`), so of two
//! runs taking over the same stale lock, one wins.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{PrepError, Result};
use crate::storage::input::storage;
use crate::storage::output::{run_id, OutputDir};
use crate::storage::remote::{self, RemoteLocation};

pub const LOCK_NAME: &str = "_LOCK";

/// Who holds an output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// Unix seconds.
    pub started: u64,
    /// Unix seconds; object stores only (a local lock has no lease).
    pub lease_until: Option<u64>,
    pub pipeline: String,
}

impl Holder {
    fn ours(pipeline: &str, lease: Option<Duration>) -> Holder {
        Holder {
            run_id: run_id().to_string(),
            host: hostname(),
            pid: std::process::id(),
            started: process_start(),
            lease_until: lease.map(|l| now() + l.as_secs()),
            pipeline: pipeline.to_string(),
        }
    }

    /// "run R of pipeline P (host H, pid N, started T)".
    pub fn describe(&self) -> String {
        format!(
            "run {} of pipeline `{}` (host {}, pid {}, started {})",
            self.run_id,
            self.pipeline,
            self.host,
            self.pid,
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.started))
        )
    }

    /// The holder demonstrably cannot be writing any more.
    fn is_gone(&self) -> bool {
        let expired = self.lease_until.is_some_and(|t| now() > t);
        expired || (self.host == hostname() && !pid_alive(self.pid))
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("holder serializes")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn process_start() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(now)
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_string()
}

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// How a lock that is held elsewhere is answered.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    /// Wait up to this long for the holder to finish (0: refuse at once).
    pub wait: Duration,
    /// Object stores: the lease, renewed every third of it.
    pub lease: Duration,
}

/// A held output lock; released (deleted) on drop.
pub struct OutputLock {
    inner: Held,
    uri: String,
}

enum Held {
    Local {
        file: File,
        path: PathBuf,
    },
    Remote {
        loc: RemoteLocation,
        path: object_store::path::Path,
        etag: Arc<Mutex<String>>,
        lost: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        renewer: Option<std::thread::JoinHandle<()>>,
    },
}

fn locked(uri: &str, holder: Option<Holder>, waited: Duration) -> PrepError {
    PrepError::OutputLocked {
        uri: uri.to_string(),
        holder: holder
            .map(|h| h.describe())
            .unwrap_or_else(|| "a run that has not yet written its name".into()),
        waited: humantime::format_duration(Duration::from_secs(waited.as_secs())).to_string(),
    }
}

impl OutputDir {
    /// Takes the output's lock for this run, or refuses naming the holder.
    pub fn lock(&self, pipeline: &str, policy: LockPolicy) -> Result<OutputLock> {
        let start = Instant::now();
        let inner = match (self.local_dir(), self.remote()) {
            (Some(dir), _) => lock_local(dir, &self.uri, pipeline, policy, start)?,
            (None, Some(loc)) => lock_remote(loc, &self.uri, pipeline, policy, start)?,
            (None, None) => unreachable!("an output is local or remote"),
        };
        Ok(OutputLock {
            inner,
            uri: self.uri.clone(),
        })
    }
}

fn lock_local(
    dir: &Path,
    uri: &str,
    pipeline: &str,
    policy: LockPolicy,
    start: Instant,
) -> Result<Held> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir).map_err(|e| storage("creating the output directory", dir, e))?;
    let path = dir.join(LOCK_NAME);
    loop {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| storage("opening", &path, e))?;
        // SAFETY: a valid descriptor; LOCK_NB never blocks.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let previous: Option<Holder> = serde_json::from_str(&text).ok();
        if rc != 0 {
            if start.elapsed() < policy.wait {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            // The holder writes its name right after taking the flock: a
            // refusal that came in between reads it again before naming it.
            let mut previous = previous;
            let named_by = Instant::now() + Duration::from_secs(1);
            while previous.is_none() && Instant::now() < named_by {
                std::thread::sleep(Duration::from_millis(10));
                previous = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
            }
            return Err(locked(uri, previous, start.elapsed()));
        }
        // The holder before us may have removed the file after we opened
        // it: then this lock guards nothing; start again on the new file.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        if let Some(h) = previous {
            tracing::warn!(
                "taking over the lock of {uri} left by {}, which is gone",
                h.describe()
            );
        }
        let ours = Holder::ours(pipeline, None).to_json();
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(&ours))
            .map_err(|e| storage("writing", &path, e))?;
        return Ok(Held::Local { file, path });
    }
}

fn lock_remote(
    loc: &RemoteLocation,
    uri: &str,
    pipeline: &str,
    policy: LockPolicy,
    start: Instant,
) -> Result<Held> {
    let path = loc.child(LOCK_NAME);
    loop {
        let ours = Holder::ours(pipeline, Some(policy.lease)).to_json();
        if let Some(etag) = remote::put_conditional(loc, &path, &ours, None)? {
            return Ok(start_renewer(loc, path, etag, pipeline, policy.lease));
        }
        let Some((bytes, etag)) = remote::get_tagged(loc, &path)? else {
            continue; // released in between: try again
        };
        let holder: Option<Holder> = serde_json::from_slice(&bytes).ok();
        if holder.as_ref().is_some_and(|h| h.run_id == run_id()) {
            // Our own create, whose answer was lost and retried.
            return Ok(start_renewer(loc, path, etag, pipeline, policy.lease));
        }
        if holder.as_ref().is_none_or(Holder::is_gone) {
            if let Some(new) = remote::put_conditional(loc, &path, &ours, Some(&etag))? {
                let who = holder
                    .map(|h| h.describe())
                    .unwrap_or_else(|| "an unreadable lock".into());
                tracing::warn!("taking over the lock of {uri} left by {who}, which is gone");
                return Ok(start_renewer(loc, path, new, pipeline, policy.lease));
            }
            continue; // another run took it over first
        }
        if start.elapsed() < policy.wait {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        return Err(locked(uri, holder, start.elapsed()));
    }
}

/// Renews the lease every third of it; a failed renewal (someone replaced
/// the lock) marks the lock lost, so the run never writes `_SUCCESS`.
fn start_renewer(
    loc: &RemoteLocation,
    path: object_store::path::Path,
    etag: String,
    pipeline: &str,
    lease: Duration,
) -> Held {
    let etag = Arc::new(Mutex::new(etag));
    let lost = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (l, p, e, lo, st) = (
        loc.clone(),
        path.clone(),
        etag.clone(),
        lost.clone(),
        stop.clone(),
    );
    let pipeline = pipeline.to_string();
    let renewer = std::thread::Builder::new()
        .name("prep-lock-lease".into())
        .spawn(move || {
            let every = (lease / 3).max(Duration::from_millis(100));
            let mut last = Instant::now();
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(every));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                let body = Holder::ours(&pipeline, Some(lease)).to_json();
                let current = e.lock().expect("etag lock").clone();
                match remote::put_conditional(&l, &p, &body, Some(&current)) {
                    Ok(Some(new)) => *e.lock().expect("etag lock") = new,
                    Ok(None) => {
                        lo.store(true, Ordering::Relaxed);
                        return;
                    }
                    // A failed request is retried at the next tick; the
                    // lease outlives two missed renewals.
                    Err(err) => tracing::debug!("renewing the output lock: {err}"),
                }
            }
        })
        .ok();
    Held::Remote {
        loc: loc.clone(),
        path,
        etag,
        lost,
        stop,
        renewer,
    }
}

impl OutputLock {
    /// Fails when this run no longer holds the output (its lease was taken
    /// over): checked right before `_SUCCESS` is written.
    pub fn check_held(&self) -> Result<()> {
        let held = match &self.inner {
            Held::Local { .. } => true,
            Held::Remote {
                loc,
                path,
                etag,
                lost,
                ..
            } => {
                !lost.load(Ordering::Relaxed)
                    && remote::get_tagged(loc, path)?
                        .is_some_and(|(_, e)| e == *etag.lock().expect("etag lock"))
            }
        };
        if held {
            return Ok(());
        }
        Err(PrepError::LockLost {
            uri: self.uri.clone(),
        })
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        match &mut self.inner {
            // Removed while still locked; a run waiting on the old file
            // notices it is gone (see `lock_local`).
            Held::Local { path, file } => {
                let _ = std::fs::remove_file(path);
                let _ = file.flush();
            }
            Held::Remote {
                loc,
                path,
                etag,
                stop,
                renewer,
                ..
            } => {
                stop.store(true, Ordering::Relaxed);
                if let Some(r) = renewer.take() {
                    let _ = r.join();
                }
                let ours = etag.lock().expect("etag lock").clone();
                if let Ok(Some((_, current))) = remote::get_tagged(loc, path) {
                    if current == ours {
                        let _ = remote::delete(loc, path);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockPolicy {
        LockPolicy {
            wait: Duration::ZERO,
            lease: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_then_granted_after_release() {
        let d = tempfile::tempdir().unwrap();
        let out = OutputDir::local(d.path());
        let first = out.lock("a", policy()).unwrap();
        // flock is per open file description, so a second open in the same
        // process conflicts just as another process would.
        let Err(err) = out.lock("b", policy()) else {
            panic!("a second lock was granted");
        };
        assert!(matches!(err, PrepError::OutputLocked { .. }), "{err}");
        assert!(err.to_string().contains("pipeline `a`"), "{err}");
        drop(first);
        assert!(!d.path().join(LOCK_NAME).exists());
        let _again = out.lock("b", policy()).unwrap();
    }

    #[test]
    fn a_lock_file_left_by_a_dead_run_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let stale = Holder {
            run_id: "old".into(),
            host: hostname(),
            pid: u32::MAX / 2,
            started: 1,
            lease_until: None,
            pipeline: "old".into(),
        };
        std::fs::write(d.path().join(LOCK_NAME), stale.to_json()).unwrap();
        assert!(stale.is_gone());
        let out = OutputDir::local(d.path());
        let _lock = out.lock("new", policy()).unwrap();
        let now: Holder =
            serde_json::from_slice(&std::fs::read(d.path().join(LOCK_NAME)).unwrap()).unwrap();
        assert_eq!(now.pipeline, "new");
        assert_eq!(now.pid, std::process::id());
    }
}
