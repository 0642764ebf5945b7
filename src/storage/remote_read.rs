//! Object reads at the speed of the link, not of one connection.
//!
//! ```text
//! object [0 ........................................ size)
//!         part 0 │ part 1 │ ... │ part k   ── up to `concurrency` ranged GETs in flight
//!            └──► handed on in order ──► the same bounded chunker as a local file
//! ```
//! One GET stream to S3 delivers ~50–100 MB/s and waits tens of
//! milliseconds for its first byte, so a large object is read as parts of
//! `PREP_S3_PART_SIZE` (2 MiB) with `PREP_S3_CONCURRENCY` (16) of them in
//! flight (up to twice as many while the parser waits on the link),
//! reassembled in order: memory is bounded by the window, and the bytes
//! are those of the object. A part whose stream breaks is resumed
//! from the byte it had reached with a ranged GET, retried (with backoff)
//! within `PREP_RETRY_TIMEOUT`. Readers opened before they are needed
//! (the next objects of a listing, an object's first window beside its
//! HEAD) live in `read_ahead.rs`.

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::task::JoinHandle;

use crate::storage::remote::rt;

/// Parts in flight and their size.
#[derive(Debug, Clone, Copy)]
pub struct ReadWindow {
    pub concurrency: usize,
    pub part_size: u64,
}

impl ReadWindow {
    pub fn from_env() -> ReadWindow {
        ReadWindow {
            concurrency: crate::env::s3_concurrency().max(1),
            part_size: crate::env::s3_part_size().max(64 << 10),
        }
    }
}

/// A blocking `Read` over `range` of an object, fetched as parallel parts.
pub struct ParallelReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// Where the read starts (its first window is small parts), the next
    /// byte to ask for, and where it ends.
    start: u64,
    next: u64,
    end: u64,
    window: ReadWindow,
    /// Parts in flight, in object order, with their lengths.
    inflight: VecDeque<(u64, JoinHandle<std::io::Result<Fetched>>)>,
    /// Full parts' worth of bytes to keep in flight: lowered while the
    /// reader is only prefetched, raised while its consumer waits for the
    /// link ([`Read`]).
    depth: usize,
    /// The part being handed on, as the pieces the response arrived in.
    current: Pieces,
    /// The ETag every part must carry: the listing's ([`Self::pinned_to`]),
    /// else the first part's. Another one means the object was replaced.
    etag: Option<String>,
}

/// Size of the parts of an object read's first window (then the part size):
/// the first chunk (~10 MB) then arrives as many small transfers side by
/// side (at 50 MB/s per connection, ~50 ms for 1 MiB parts instead of ~70
/// ms for 2 MiB ones), so parsing starts sooner. The window is counted in
/// bytes (`depth` × part size), so full parts fill the rest of it at once:
/// they arrive while the first ones are parsed, instead of being asked for
/// only once the first ones are consumed.
pub(super) const FIRST_PART: u64 = 1 << 20;

/// How far a reader whose consumer keeps waiting for the next part raises
/// its parts in flight, as a multiple of `PREP_S3_CONCURRENCY`.
///
/// Each part costs a first-byte wait plus its transfer, so a fixed number
/// of parts in flight delivers a fixed rate (16 × 2 MiB at 30 ms and 50
/// MB/s: ~470 MB/s), whatever the machine parses. When the parser is faster
/// and waits on the front part, one more part is kept in flight, up to this
/// bound, so memory stays bounded (2 × 16 × 2 MiB by default). Objects only
/// read ahead are not raised: their requests are bounded by
/// [`crate::storage::read_ahead::prefetch`].
const MAX_DEPTH_PER_SLOT: usize = 2;

impl ParallelReader {
    pub fn open(
        store: Arc<dyn ObjectStore>,
        path: Path,
        range: Range<u64>,
        window: ReadWindow,
    ) -> Self {
        Self::with_depth(store, path, range, window, window.concurrency)
    }

    /// Requests parts until `depth` full parts' worth of bytes are in flight.
    fn fill(&mut self) {
        let budget = self.depth as u64 * self.window.part_size;
        let first_window = self.start + self.window.concurrency as u64 * FIRST_PART;
        while self.next < self.end {
            let size = match self.next < first_window {
                true => FIRST_PART.min(self.window.part_size),
                false => self.window.part_size,
            };
            let part = self.next..(self.next + size).min(self.end);
            let len = part.end - part.start;
            if !self.inflight.is_empty() && self.bytes_in_flight() + len > budget {
                break;
            }
            self.next = part.end;
            let (store, path) = (self.store.clone(), self.path.clone());
            let fetch = rt().spawn(async move { fetch_part(store, path, part).await });
            self.inflight.push_back((len, fetch));
        }
    }
}

impl Read for ParallelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.front().is_none() {
            self.depth = self.depth.max(self.window.concurrency);
            self.fill();
            let Some((_, next)) = self.inflight.pop_front() else {
                return Ok(0);
            };
            if !next.is_finished() {
                // The consumer outpaces the link: one more part in flight.
                self.depth = (self.depth + 1).min(self.max_depth());
            }
            let part = rt().block_on(next).map_err(std::io::Error::other)??;
            self.current = same_version(&self.path, &mut self.etag, part)?;
            self.fill();
        }
        // As much of this part as fits, across the pieces it arrived in.
        let mut n = 0;
        while let Some(piece) = self.current.front_mut() {
            let k = (buf.len() - n).min(piece.len());
            buf[n..n + k].copy_from_slice(&piece[..k]);
            n += k;
            *piece = piece.slice(k..);
            if !piece.is_empty() {
                break; // buf is full
            }
            self.current.pop_front();
        }
        Ok(n)
    }
}

impl ParallelReader {
    /// A reader keeping `depth` full parts' worth of bytes in flight (a
    /// read ahead of use keeps fewer than [`ParallelReader::open`]).
    pub(super) fn with_depth(
        store: Arc<dyn ObjectStore>,
        path: Path,
        range: Range<u64>,
        window: ReadWindow,
        depth: usize,
    ) -> Self {
        let mut r = ParallelReader {
            store,
            path,
            start: range.start,
            next: range.start,
            end: range.end,
            window,
            inflight: VecDeque::new(),
            depth,
            current: Pieces::new(),
            etag: None,
        };
        r.fill();
        r
    }

    /// Expects `etag` (the listing's) on every part, the first included.
    pub fn pinned_to(mut self, etag: Option<&str>) -> Self {
        if let Some(e) = etag {
            self.etag = Some(e.to_string());
        }
        self
    }

    /// Requests in flight.
    pub(super) fn requests(&self) -> usize {
        self.inflight.len()
    }

    /// Bytes of the requests in flight.
    pub(super) fn bytes_in_flight(&self) -> u64 {
        self.inflight.iter().map(|(len, _)| len).sum()
    }

    fn max_depth(&self) -> usize {
        self.window.concurrency * MAX_DEPTH_PER_SLOT
    }

    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for ParallelReader {
    fn drop(&mut self) {
        for (_, h) in &self.inflight {
            h.abort();
        }
    }
}

/// A part's bytes as they arrived (never copied into one buffer: the
/// reader hands them on piece by piece).
type Pieces = VecDeque<Bytes>;

/// A fetched part: its bytes and the object's ETag in the answer.
struct Fetched {
    pieces: Pieces,
    etag: Option<String>,
}

/// An object replaced since it was listed or while it was read: its
/// bytes came from another version than the listing's, or from two, so
/// none of them can be trusted.
#[derive(Debug)]
pub struct ObjectReplaced {
    path: Path,
    was: String,
    now: String,
}

impl std::fmt::Display for ObjectReplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was replaced while prep read it (ETag {}, then {}); rerun once the upload that replaced it has finished",
            self.path, self.was, self.now
        )
    }
}

impl std::error::Error for ObjectReplaced {}

impl ObjectReplaced {
    /// Whether `e` is this error.
    pub fn is(e: &std::io::Error) -> bool {
        e.get_ref()
            .is_some_and(|inner| inner.is::<ObjectReplaced>())
    }
}

/// Whether two ETags name the same version. Stores quote them in some
/// answers and not in others (Azure's listing gives `0x8D…`, its GETs
/// `"0x8D…"`), and a weak one has a `W/` prefix.
fn same_etag(a: &str, b: &str) -> bool {
    let bare = |t: &str| t.trim_start_matches("W/").trim_matches('"').to_string();
    bare(a) == bare(b)
}

fn changed(path: &Path, was: &str, now: &str) -> std::io::Error {
    std::io::Error::other(ObjectReplaced {
        path: path.clone(),
        was: was.to_string(),
        now: now.to_string(),
    })
}

/// Checks that an answer carrying `now` is of the version `etag` names (the
/// listing's, or the first answer's); the first ETag seen is kept in
/// `etag` when none was known.
fn check_version(path: &Path, etag: &mut Option<String>, now: Option<&str>) -> std::io::Result<()> {
    match (&*etag, now) {
        (Some(was), Some(now)) if !same_etag(was, now) => Err(changed(path, was, now)),
        (None, Some(now)) => {
            *etag = Some(now.to_string());
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `part`'s bytes, if it is of the version `etag` names ([`check_version`]).
fn same_version(path: &Path, etag: &mut Option<String>, part: Fetched) -> std::io::Result<Pieces> {
    check_version(path, etag, part.etag.as_deref())?;
    Ok(part.pieces)
}

/// Fetches one part; a broken stream resumes from the byte it reached.
async fn fetch_part(
    store: Arc<dyn ObjectStore>,
    path: Path,
    range: Range<u64>,
) -> std::io::Result<Fetched> {
    let started = Instant::now();
    let budget = crate::env::retry_timeout();
    let mut delay = Duration::from_millis(100);
    let mut buf = Pieces::new();
    let mut etag: Option<String> = None;
    let mut at = range.start;
    loop {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(at..range.end)),
            ..Default::default()
        };
        let failure = match store.get_opts(&path, opts).await {
            Ok(result) => {
                // A resumed stream must come from the same version.
                check_version(&path, &mut etag, result.meta.e_tag.as_deref())?;
                let mut stream = result.into_stream();
                let mut broke = None;
                while let Some(piece) = stream.next().await {
                    match piece {
                        Ok(b) => {
                            at += b.len() as u64;
                            if !b.is_empty() {
                                buf.push_back(b);
                            }
                        }
                        Err(e) => {
                            broke = Some(e);
                            break;
                        }
                    }
                }
                match broke {
                    None if at >= range.end => return Ok(Fetched { pieces: buf, etag }),
                    None => object_store::Error::Generic {
                        store: "read",
                        source: format!("the response ended at byte {at} of {}", range.end).into(),
                    },
                    Some(e) => e,
                }
            }
            Err(
                e @ (object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => {
                return Err(std::io::Error::other(e));
            }
            Err(e) => e,
        };
        if started.elapsed() > budget {
            return Err(std::io::Error::other(format!(
                "reading bytes {}..{} of {path} failed for {}s: {failure}",
                range.start,
                range.end,
                started.elapsed().as_secs()
            )));
        }
        tracing::debug!("resuming {path} at byte {at} after: {failure}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Bytes `range` of an object, fetched as parallel parts (Parquet row
/// groups, footers), all of the version whose ETag is `etag` when given.
pub fn get_range_parallel(
    store: Arc<dyn ObjectStore>,
    path: Path,
    range: Range<u64>,
    etag: Option<&str>,
) -> std::io::Result<Bytes> {
    let len = (range.end - range.start) as usize;
    let mut r = ParallelReader::open(store, path, range, ReadWindow::from_env()).pinned_to(etag);
    if r.inflight.len() == 1 {
        let part = rt()
            .block_on(r.inflight.pop_front().expect("one part").1)
            .map_err(std::io::Error::other)??;
        let mut pieces = same_version(&r.path, &mut r.etag, part)?;
        if pieces.len() == 1 {
            return Ok(pieces.pop_front().expect("one piece"));
        }
        let mut whole = Vec::with_capacity(len);
        pieces.iter().for_each(|p| whole.extend_from_slice(p));
        return Ok(Bytes::from(whole));
    }
    let mut out = Vec::with_capacity(len);
    r.read_to_end(&mut out)?;
    Ok(Bytes::from(out))
}

impl ParallelReader {
    /// This reader (started at byte 0 with its end unknown) ending at
    /// `end`: parts that reach past `end` are cancelled, and the rest up to
    /// `end` is asked for.
    pub(super) fn ending_at(mut self, end: u64) -> ParallelReader {
        while self.next > end {
            let Some((len, part)) = self.inflight.pop_back() else {
                break;
            };
            part.abort();
            self.next -= len;
        }
        self.end = end;
        self.fill();
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    use object_store::{ObjectStoreExt, PutPayload};

    /// An in-memory object behind a store that waits `per_get` before each
    /// GET answers (a first-byte latency).
    pub(crate) fn slow_object(
        size: usize,
        per_get: Duration,
    ) -> (Arc<dyn ObjectStore>, Path, Vec<u8>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let mem = InMemory::new();
        let path = Path::from("o/data.csv");
        rt().block_on(mem.put(&path, PutPayload::from(data.clone())))
            .unwrap();
        let config = ThrottleConfig {
            wait_get_per_call: per_get,
            ..Default::default()
        };
        (Arc::new(ThrottledStore::new(mem, config)), path, data)
    }

    const WINDOW: ReadWindow = ReadWindow {
        concurrency: 4,
        part_size: 64 << 10,
    };

    #[test]
    fn a_reader_waiting_on_the_link_keeps_more_parts_in_flight_up_to_the_bound() {
        let (store, path, data) = slow_object(4 << 20, Duration::from_millis(5));
        let mut r = ParallelReader::open(store, path, 0..data.len() as u64, WINDOW);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == data, "the object's bytes, in order");
        assert_eq!(r.depth(), WINDOW.concurrency * MAX_DEPTH_PER_SLOT);
    }

    #[test]
    fn the_first_window_is_small_parts_then_full_ones_up_to_its_bytes() {
        let window = ReadWindow {
            concurrency: 4,
            part_size: 2 * FIRST_PART,
        };
        let (store, path, data) = slow_object(32 << 20, Duration::from_millis(5));
        let mut r = ParallelReader::open(store, path, 0..data.len() as u64, window);
        let lens: Vec<u64> = r.inflight.iter().map(|(len, _)| *len).collect();
        assert_eq!(lens[..4], [FIRST_PART; 4], "the first parts are small");
        assert_eq!(lens[4..], [2 * FIRST_PART; 2], "full parts fill the rest");
        assert_eq!(r.bytes_in_flight(), 4 * window.part_size);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == data, "the object's bytes, in order");
    }

    #[test]
    fn an_object_replaced_while_it_is_read_is_an_error_not_mixed_bytes() {
        let (store, path, data) = slow_object(1 << 20, Duration::from_millis(20));
        let mut r = ParallelReader::open(store.clone(), path.clone(), 0..data.len() as u64, WINDOW);
        let mut buf = vec![0u8; 1000];
        r.read_exact(&mut buf).unwrap(); // the first part, of the first version
        let newer: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
        rt().block_on(store.put(&path, PutPayload::from(newer)))
            .unwrap();
        let mut rest = Vec::new();
        let err = r.read_to_end(&mut rest).unwrap_err();
        assert!(
            err.to_string().contains("was replaced while prep read it"),
            "{err}"
        );
    }

    #[test]
    fn etags_match_with_or_without_quotes_and_weak_prefix() {
        assert!(same_etag("0x8D1", "\"0x8D1\""));
        assert!(same_etag("W/\"abc\"", "\"abc\""));
        assert!(!same_etag("\"abc\"", "\"abd\""));
    }

    #[test]
    fn a_read_pinned_to_the_listed_etag_refuses_another_version() {
        let (store, path, data) = slow_object(100 << 10, Duration::from_millis(1));
        let listed = rt().block_on(store.head(&path)).unwrap().e_tag;
        let range = 0..data.len() as u64;
        let same = get_range_parallel(
            store.clone(),
            path.clone(),
            range.clone(),
            listed.as_deref(),
        );
        assert!(same.unwrap() == data, "the listed version reads");
        let err = get_range_parallel(store.clone(), path.clone(), range.clone(), Some("\"old\""))
            .unwrap_err();
        assert!(ObjectReplaced::is(&err), "{err}");
        let mut r = ParallelReader::open(store, path, range, WINDOW).pinned_to(Some("\"old\""));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(ObjectReplaced::is(&err), "{err}");
    }

    #[test]
    fn a_reader_slower_than_the_link_keeps_its_window() {
        let (store, path, data) = slow_object(1 << 20, Duration::from_millis(1));
        let mut r = ParallelReader::open(store, path, 0..data.len() as u64, WINDOW);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            // Every part has arrived before the consumer asks for it.
            std::thread::sleep(Duration::from_millis(10));
            match r.read(&mut buf).unwrap() {
                0 => break,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
        assert!(out == data);
        assert_eq!(r.depth(), WINDOW.concurrency);
    }
}
