//! Object reads started before they are needed.
//!
//! ```text
//! listing ──► next objects' first parts ──┐
//! HEAD of a named object ─┐               ├──► taken by the read of that
//! its first window ───────┴───────────────┘    object and range
//! ```
//! - [`prefetch`]: while one object is parsed, the first parts of the next
//!   ones are fetched, so many small objects cost their bytes, not their
//!   round trips (bounded in requests and bytes).
//! - [`read_ahead_from_start`]: the first window of a directly named object
//!   is asked for beside its HEAD, before its size is known; the read of
//!   `0..size` takes it over and drops what lies past the end.
//!
//! [`take_prefetched`] hands a started reader to its read; readers nobody
//! takes are dropped (their requests cancelled) by [`forget_read_ahead`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::ObjectStore;

use crate::storage::remote_read::{ParallelReader, ReadWindow};

/// Readers opened ahead of use, by object URI and range.
type Prefetched = HashMap<(String, u64, u64), ParallelReader>;

fn prefetched() -> &'static Mutex<Prefetched> {
    static P: std::sync::OnceLock<Mutex<Prefetched>> = std::sync::OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An object to read ahead: its URI (the key), store, path and range.
pub type Ahead = (String, Arc<dyn ObjectStore>, Path, Range<u64>);

/// Requests read ahead, per `PREP_S3_CONCURRENCY`: small objects cost a
/// round trip each, so more of them are in flight than one large object's
/// parts; the bytes stay bounded by one window (concurrency × part size).
pub const AHEAD_REQUESTS_PER_SLOT: usize = 4;

/// Starts reading objects that come next (their first parts only), so their
/// round trips overlap with parsing the current one. At most
/// `4 × concurrency` requests and `concurrency × part size` bytes are in
/// flight across all of them.
pub fn prefetch(objects: &[Ahead]) {
    let window = ReadWindow::from_env();
    let max_requests = window.concurrency * AHEAD_REQUESTS_PER_SLOT;
    let max_bytes = window.concurrency as u64 * window.part_size;
    let mut map = prefetched().lock().expect("prefetch lock");
    let mut parts: usize = map.values().map(|r| r.requests()).sum();
    let mut bytes: u64 = map.values().map(|r| r.bytes_in_flight()).sum();
    for (uri, store, path, range) in objects {
        if parts >= max_requests || bytes >= max_bytes {
            break;
        }
        let key = (uri.clone(), range.start, range.end);
        if map.contains_key(&key) {
            continue;
        }
        // A read started before the size was known keeps its first window.
        let r = take_started(&mut map, uri, range).unwrap_or_else(|| {
            let size = range.end - range.start;
            let want = size.div_ceil(window.part_size).clamp(1, 2) as usize;
            let depth = want.min(max_requests - parts);
            ParallelReader::with_depth(store.clone(), path.clone(), range.clone(), window, depth)
        });
        parts += r.requests();
        bytes += r.bytes_in_flight();
        map.insert(key, r);
    }
}

/// The key end of a read started before its object's size was known.
const SIZE_UNKNOWN: u64 = u64::MAX;

/// Starts reading an object from its first byte before its size is known,
/// so the first window's round trip overlaps the listing's HEAD instead of
/// following it: one window (`PREP_S3_CONCURRENCY` × part size) is asked
/// for. [`take_prefetched`] hands it to the read of `0..size` that follows;
/// parts past the size are dropped there and a part cut by it is asked for
/// again, so the bytes are the object's. Only for a read that starts at
/// byte 0 of this object (a solo run over a directly named CSV object).
pub fn read_ahead_from_start(uri: String, store: Arc<dyn ObjectStore>, path: Path) {
    start_from_zero(uri, store, path, ReadWindow::from_env());
}

fn start_from_zero(uri: String, store: Arc<dyn ObjectStore>, path: Path, window: ReadWindow) {
    let end = window.concurrency as u64 * window.part_size;
    let reader = ParallelReader::open(store, path, 0..end, window);
    prefetched()
        .lock()
        .expect("prefetch lock")
        .insert((uri, 0, SIZE_UNKNOWN), reader);
}

/// Drops a read started by [`read_ahead_from_start`] that no read will take
/// (the URI named a folder, not an object): its requests are cancelled.
pub fn forget_read_ahead(uri: &str) {
    prefetched()
        .lock()
        .expect("prefetch lock")
        .remove(&(uri.to_string(), 0, SIZE_UNKNOWN));
}

/// The reader [`prefetch`] or [`read_ahead_from_start`] opened for this
/// object and range, if any.
pub fn take_prefetched(uri: &str, range: &Range<u64>) -> Option<ParallelReader> {
    let mut map = prefetched().lock().expect("prefetch lock");
    if let Some(r) = map.remove(&(uri.to_string(), range.start, range.end)) {
        return Some(r);
    }
    take_started(&mut map, uri, range)
}

/// The read [`read_ahead_from_start`] started for `uri`, ending at
/// `range.end`, when `range` starts at byte 0.
fn take_started(map: &mut Prefetched, uri: &str, range: &Range<u64>) -> Option<ParallelReader> {
    if range.start != 0 {
        return None;
    }
    let started = map.remove(&(uri.to_string(), 0, SIZE_UNKNOWN))?;
    tracing::debug!(
        "reading {uri}: {} parts asked for before its size was known are used",
        started.requests()
    );
    Some(started.ending_at(range.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::remote_read::tests::slow_object;
    use crate::storage::remote_read::FIRST_PART;
    use std::io::Read;
    use std::time::Duration;

    /// Reads what [`take_prefetched`] hands on for `0..size` of a read
    /// started before the size was known.
    fn read_started_early(size: usize, window: ReadWindow) -> (Vec<u8>, Vec<u8>) {
        let (store, path, data) = slow_object(size, Duration::from_millis(2));
        let uri = format!("mem://early/{size}/{}", window.part_size);
        start_from_zero(uri.clone(), store, path, window);
        let mut r = take_prefetched(&uri, &(0..size as u64)).expect("the early read");
        assert!(
            take_prefetched(&uri, &(0..size as u64)).is_none(),
            "taken once"
        );
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, data)
    }

    #[test]
    fn a_read_started_before_the_size_was_known_gives_the_objects_bytes() {
        let window = ReadWindow {
            concurrency: 4,
            part_size: 2 * FIRST_PART,
        };
        // Smaller than one part, cut inside the window, past the window.
        for size in [100, 3 * FIRST_PART as usize + 17, 20 << 20] {
            let (out, data) = read_started_early(size, window);
            assert!(out == data, "{size} bytes, in order");
        }
    }

    #[test]
    fn a_read_started_ahead_is_forgotten_when_nothing_takes_it() {
        let (store, path, _) = slow_object(1000, Duration::from_millis(1));
        read_ahead_from_start("mem://forgotten/a.csv".into(), store, path);
        forget_read_ahead("mem://forgotten/a.csv");
        assert!(take_prefetched("mem://forgotten/a.csv", &(0..1000)).is_none());
    }
}
