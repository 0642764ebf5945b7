//! Where bytes live: URIs, listing input objects, reading them as streams,
//! and writing output files atomically.
//!
//! Local paths and `file://` URIs are served from the filesystem directly
//! (plain `File` reads through a bounded buffer, never a memory map); other
//! schemes go through `remote.rs` (object_store). Output files are written
//! under a hidden temporary name and renamed into place on commit (locally)
//! or uploaded as a multipart upload completed on commit (object stores), so
//! a reader never sees a half-written shard under its final name.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{PrepError, Result};
use crate::pipeline::plan::StoragePlan;
use crate::storage::output::OutputDir;
use crate::storage::read_ahead::{self, take_prefetched};
use crate::storage::remote::{self, RemoteLocation};
use crate::storage::remote_read::{ParallelReader, ReadWindow};
use crate::storage::Compression;

/// Where an input object lives.
#[derive(Debug, Clone)]
pub enum ObjectLocation {
    Local(PathBuf),
    /// The store, with `path` set to the object's key.
    Remote(RemoteLocation),
}

/// One input object, in read order.
#[derive(Debug, Clone)]
pub struct InputObject {
    /// What users see in messages and in the scaler's `source.objects`.
    pub uri: String,
    /// Path relative to the listed prefix (also the sort key).
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub location: ObjectLocation,
}

impl InputObject {
    pub fn local(path: PathBuf, key: String, size: u64) -> Self {
        InputObject {
            uri: path.to_string_lossy().to_string(),
            key,
            size,
            etag: None,
            location: ObjectLocation::Local(path),
        }
    }
}

/// Strips `file://` and returns a local path, or `None` for a remote scheme.
pub fn local_path(uri: &str) -> Option<PathBuf> {
    if let Some(rest) = uri.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    match uri.split_once("://") {
        Some(_) => None,
        None => Some(PathBuf::from(uri)),
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Names prep never treats as input: hidden files, `_SUCCESS`, `_work/`,
/// and the JSON artifacts of a prep output (`manifest.json`,
/// `scaler.json`), so an output folder can be read back as input.
fn is_skipped(rel: &str) -> bool {
    let last = rel.rsplit('/').next().unwrap_or(rel);
    last == "manifest.json"
        || last == "scaler.json"
        || rel
            .split('/')
            .any(|part| part.starts_with('.') || part.starts_with('_'))
}

fn glob_matcher(uri: &str, pattern: &str) -> Result<globset::GlobMatcher> {
    Ok(globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| PrepError::Usage {
            message: format!("input.uri `{uri}` is not a valid glob: {e}"),
            hint: None,
        })?
        .compile_matcher())
}

/// Lists the input objects of `uri` (a file, a directory/prefix, or a glob)
/// in lexicographic key order, skipping hidden/underscore names, folder
/// markers and empty objects (an empty object named directly is kept: the
/// reader then reports it as a file without a header).
pub fn list_inputs(uri: &str, storage: &StoragePlan) -> Result<Vec<InputObject>> {
    let (mut objects, direct) = match local_path(uri) {
        Some(path) => list_local(uri, &path)?,
        None => list_remote(uri, storage)?,
    };
    if !direct {
        objects.retain(|o| o.size > 0 && !is_skipped(&o.key));
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    if objects.is_empty() {
        return Err(PrepError::NoInput {
            uri: uri.to_string(),
        });
    }
    Ok(objects)
}

/// The objects, and whether `uri` named one object directly.
fn list_local(uri: &str, path: &Path) -> Result<(Vec<InputObject>, bool)> {
    let text = path.to_string_lossy().to_string();
    let mut found = Vec::new();
    let mut direct = false;
    if is_glob(&text) {
        let base = glob_base(&text);
        let matcher = glob_matcher(uri, &text)?;
        walk(&base, &base, &mut |p, rel| {
            if matcher.is_match(p) {
                found.push((p.to_path_buf(), rel));
            }
        })?;
    } else if path.is_dir() {
        walk(path, path, &mut |p, rel| found.push((p.to_path_buf(), rel)))?;
    } else if path.is_file() {
        direct = true;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        found.push((path.to_path_buf(), name));
    }
    let mut objects = Vec::new();
    for (p, rel) in found {
        let meta = std::fs::metadata(&p).map_err(|e| storage("reading metadata of", &p, e))?;
        objects.push(InputObject::local(p, rel, meta.len()));
    }
    Ok((objects, direct))
}

fn list_remote(uri: &str, storage_plan: &StoragePlan) -> Result<(Vec<InputObject>, bool)> {
    // The part before the first wildcard segment is listed as a folder.
    let (list_uri, pattern) = match uri.find(['*', '?', '[']) {
        Some(i) => {
            let cut = uri[..i].rfind('/').map_or(0, |j| j + 1);
            (uri[..cut].to_string(), Some(uri.to_string()))
        }
        None => (uri.to_string(), None),
    };
    let loc = remote::parse(&list_uri, storage_plan)?;
    let make = |l: remote::Listed, key: String| {
        let mut obj_loc = loc.clone();
        let uri = loc.uri_of(&l.path);
        obj_loc.path = l.path;
        InputObject {
            uri,
            key,
            size: l.size,
            etag: l.etag,
            location: ObjectLocation::Remote(obj_loc),
        }
    };
    if names_one_object(uri, &loc) {
        if let Some(one) = remote::head(&loc, &loc.path)? {
            let key = one.path.filename().unwrap_or_default().to_string();
            return Ok((vec![make(one, key)], true));
        }
        read_ahead::forget_read_ahead(&loc.uri_of(&loc.path));
    }
    let matcher = pattern.map(|p| glob_matcher(uri, &p)).transpose()?;
    let prefix_len = if loc.path.as_ref().is_empty() {
        0
    } else {
        loc.path.as_ref().len() + 1
    };
    let mut out = Vec::new();
    for l in remote::list(&loc)? {
        let full = l.path.as_ref().to_string();
        if full.ends_with('/') {
            continue; // folder marker
        }
        let rel = full.get(prefix_len..).unwrap_or(&full).to_string();
        if let Some(m) = &matcher {
            if !m.is_match(loc.uri_of(&l.path)) {
                continue;
            }
        }
        out.push(make(l, rel));
    }
    Ok((out, false))
}

/// Whether a remote URI may name one object (then its HEAD is asked
/// first), rather than a folder or a glob.
fn names_one_object(uri: &str, loc: &RemoteLocation) -> bool {
    !is_glob(uri) && !uri.ends_with('/') && !loc.path.as_ref().is_empty()
}

/// Starts reading a remote object named directly by `uri` from its first
/// byte, before the listing's HEAD has told its size (see
/// [`read_ahead::read_ahead_from_start`]): for a run that reads that
/// object whole from the start. A URI that is local, a folder or a glob
/// starts nothing; one that turns out to be a folder is forgotten by the
/// listing.
pub fn read_ahead_named_object(uri: &str, storage: &StoragePlan) {
    if local_path(uri).is_some() {
        return;
    }
    let Ok(loc) = remote::parse(uri, storage) else {
        return; // the listing reports it
    };
    if names_one_object(uri, &loc) {
        read_ahead::read_ahead_from_start(loc.uri_of(&loc.path), loc.store.clone(), loc.path);
    }
}

/// The directory part of a glob before its first wildcard component.
fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(pattern).components() {
        if is_glob(&comp.as_os_str().to_string_lossy()) {
            break;
        }
        base.push(comp);
    }
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path, String)) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(storage("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| storage("listing", dir, e))?;
        let p = entry.path();
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .replace('\\', "/");
        if p.is_dir() {
            if !is_skipped(&rel) {
                walk(root, &p, f)?;
            }
        } else {
            f(&p, rel);
        }
    }
    Ok(())
}

pub fn storage(action: &str, path: &Path, e: std::io::Error) -> PrepError {
    storage_uri(action, &path.display().to_string(), e)
}

pub fn storage_uri(action: &str, uri: &str, e: std::io::Error) -> PrepError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return PrepError::DiskFull {
            action: format!("{action} {uri}"),
            path: uri.to_string(),
            what: "output.uri".into(),
        };
    }
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => Some("check that the path exists".to_string()),
        std::io::ErrorKind::PermissionDenied => {
            Some("check the file permissions for the user running prep".to_string())
        }
        _ => None,
    };
    PrepError::Storage {
        action: action.to_string(),
        uri: uri.to_string(),
        hint,
        source: Box::new(e),
    }
}

/// A reader that counts the raw (compressed) bytes it has delivered, for
/// progress and the run report.
pub struct CountingReader<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Parallel ranged reads of a remote object (taken over from [`prefetch`]
/// when it was opened ahead).
fn remote_reader(
    obj: &InputObject,
    loc: &RemoteLocation,
    range: std::ops::Range<u64>,
) -> ParallelReader {
    take_prefetched(&obj.uri, &range)
        .unwrap_or_else(|| {
            ParallelReader::open(
                loc.store.clone(),
                loc.path.clone(),
                range,
                ReadWindow::from_env(),
            )
        })
        .pinned_to(obj.etag.as_deref())
}

/// Starts fetching the first bytes of objects that will be read next
/// (remote ones; local files need no head start).
pub fn prefetch(objects: &[(&InputObject, std::ops::Range<u64>)]) {
    let remote: Vec<_> = objects
        .iter()
        .filter_map(|(o, r)| match &o.location {
            ObjectLocation::Remote(loc) => Some((
                o.uri.clone(),
                loc.store.clone(),
                loc.path.clone(),
                r.clone(),
            )),
            ObjectLocation::Local(_) => None,
        })
        .collect();
    if !remote.is_empty() {
        read_ahead::prefetch(&remote);
    }
}

/// Opens an object as a byte stream (a local file, or a streaming GET),
/// transparently decompressing `.gz` and `.zst`. `counter` receives the raw
/// bytes read.
pub fn open_read(obj: &InputObject, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match &obj.location {
        ObjectLocation::Local(path) => {
            let file = File::open(path).map_err(|e| storage("opening", path, e))?;
            Box::new(CountingReader {
                inner: file,
                counter,
            })
        }
        ObjectLocation::Remote(loc) => Box::new(CountingReader {
            inner: remote_reader(obj, loc, 0..obj.size),
            counter,
        }),
    };
    Compression::of(&obj.key)
        .decompressing(raw)
        .map_err(|e| storage_uri("opening", &obj.uri, e))
}

/// Drops input objects that live under the output location (an output
/// folder inside the input folder must not be read back as input on a
/// rerun), and errors when nothing else is left.
pub fn without_output(
    files: Vec<InputObject>,
    out: &OutputDir,
    input_uri: &str,
) -> Result<Vec<InputObject>> {
    let prefix = out.manifest_prefix();
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let kept: Vec<InputObject> = files
        .into_iter()
        .filter(|f| {
            let key = match &f.location {
                ObjectLocation::Local(p) => abs(p).to_string_lossy().to_string(),
                ObjectLocation::Remote(loc) => loc.uri_of(&loc.path),
            };
            !key.starts_with(&prefix)
        })
        .collect();
    if kept.is_empty() {
        return Err(PrepError::NoInput {
            uri: format!("{input_uri} (outside the output {})", out.uri),
        });
    }
    Ok(kept)
}

/// Opens bytes `range` of an (uncompressed) object as a stream.
pub fn open_read_range(
    obj: &InputObject,
    range: std::ops::Range<u64>,
    counter: Arc<AtomicU64>,
) -> Result<Box<dyn Read + Send>> {
    Ok(match &obj.location {
        ObjectLocation::Local(path) => {
            use std::io::Seek;
            let mut file = File::open(path).map_err(|e| storage("opening", path, e))?;
            file.seek(std::io::SeekFrom::Start(range.start))
                .map_err(|e| storage("seeking in", path, e))?;
            Box::new(CountingReader {
                inner: file.take(range.end - range.start),
                counter,
            })
        }
        ObjectLocation::Remote(loc) => Box::new(CountingReader {
            inner: remote_reader(obj, loc, range),
            counter,
        }),
    })
}

/// Reads bytes `range` of an object into memory (small windows only).
pub fn read_range(obj: &InputObject, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    open_read_range(obj, range, Arc::new(AtomicU64::new(0)))?
        .read_to_end(&mut out)
        .map_err(|e| storage_uri("reading", &obj.uri, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sorted_and_skips_hidden_and_work() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::create_dir_all(root.join("_work")).unwrap();
        for f in ["b/2.csv", "a.csv", "_SUCCESS", ".hidden.csv", "_work/x.csv"] {
            std::fs::write(root.join(f), "x\n1\n").unwrap();
        }
        std::fs::write(root.join("empty.csv"), "").unwrap();
        let keys: Vec<String> = list_inputs(root.to_str().unwrap(), &StoragePlan::default())
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["a.csv", "b/2.csv"]);
    }

    #[test]
    fn glob_matches_within_one_directory() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("data_old")).unwrap();
        std::fs::write(root.join("x.csv"), "a\n1\n").unwrap();
        std::fs::write(root.join("y.parquet"), "zz").unwrap();
        std::fs::write(root.join("data_old/z.csv"), "a\n1\n").unwrap();
        let pat = format!("{}/*.csv", root.display());
        let keys: Vec<String> = list_inputs(&pat, &StoragePlan::default())
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["x.csv"]);
    }

    #[test]
    fn nothing_matching_is_no_input() {
        let err = list_inputs("/definitely/not/here/*.csv", &StoragePlan::default()).unwrap_err();
        assert!(matches!(err, PrepError::NoInput { .. }));
    }
}
