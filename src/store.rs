//! Where bytes live: URIs, listing input objects, reading them as streams,
//! and writing output files atomically.
//!
//! Local paths and `file://` URIs are served from the filesystem directly
//! (plain `File` reads through a bounded buffer, never a memory map). Output
//! files are written under a hidden temporary name and renamed into place on
//! commit, so a reader never sees a half-written shard under its final name.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{PrepError, Result};

/// One input object, in read order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputObject {
    /// What users see in messages and in the scaler's `source.objects`.
    pub uri: String,
    /// Path relative to the listed prefix (also the sort key).
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub path: PathBuf,
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

fn unsupported(uri: &str) -> PrepError {
    PrepError::Usage {
        message: format!("`{uri}`: this build reads and writes local paths and file:// URIs only"),
        hint: Some(
            "object-store URIs (s3://, gs://, az://, http(s)://) are tracked in issue 3".into(),
        ),
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Names prep never treats as input: hidden files, `_SUCCESS`, `_work/`.
fn is_skipped(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part.starts_with('.') || part.starts_with('_'))
}

/// Lists the input objects of `uri` (a file, a directory, or a glob) in
/// lexicographic key order, skipping hidden/underscore names and empty files.
pub fn list_inputs(uri: &str) -> Result<Vec<InputObject>> {
    let path = local_path(uri).ok_or_else(|| unsupported(uri))?;
    let text = path.to_string_lossy().to_string();
    let mut out = Vec::new();
    if is_glob(&text) {
        let base = glob_base(&text);
        let matcher = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .build()
            .map_err(|e| PrepError::Usage {
                message: format!("input.uri `{uri}` is not a valid glob: {e}"),
                hint: None,
            })?
            .compile_matcher();
        walk(&base, &base, &mut |p, rel| {
            if matcher.is_match(p) {
                out.push((p.to_path_buf(), rel));
            }
        })?;
    } else if path.is_dir() {
        walk(&path, &path, &mut |p, rel| out.push((p.to_path_buf(), rel)))?;
    } else if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push((path.clone(), name));
    }
    let mut objects = Vec::new();
    for (p, rel) in out {
        let meta = std::fs::metadata(&p).map_err(|e| storage("reading metadata of", &p, e))?;
        if meta.len() == 0 || is_skipped(&rel) {
            continue;
        }
        objects.push(InputObject {
            uri: p.to_string_lossy().to_string(),
            key: rel,
            size: meta.len(),
            etag: None,
            path: p,
        });
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    if objects.is_empty() {
        return Err(PrepError::NoInput {
            uri: uri.to_string(),
        });
    }
    Ok(objects)
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
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => Some("check that the path exists".to_string()),
        std::io::ErrorKind::PermissionDenied => {
            Some("check the file permissions for the user running prep".to_string())
        }
        _ => None,
    };
    PrepError::Storage {
        action: action.to_string(),
        uri: path.display().to_string(),
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

/// Opens an object as a byte stream, transparently decompressing `.gz` and
/// `.zst`. `counter` receives the raw bytes read.
pub fn open_read(obj: &InputObject, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
    let file = File::open(&obj.path).map_err(|e| storage("opening", &obj.path, e))?;
    let raw = CountingReader {
        inner: file,
        counter,
    };
    let name = obj.key.to_ascii_lowercase();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(1 << 20, raw),
        ))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Box::new(
            zstd::stream::read::Decoder::new(raw).map_err(|e| storage("opening", &obj.path, e))?,
        )
    } else {
        Box::new(raw)
    })
}

/// The output location: a local directory for now.
#[derive(Debug, Clone)]
pub struct OutputDir {
    pub uri: String,
    pub dir: PathBuf,
}

impl OutputDir {
    pub fn new(uri: &str) -> Result<Self> {
        let dir = local_path(uri).ok_or_else(|| unsupported(uri))?;
        Ok(OutputDir {
            uri: uri.to_string(),
            dir,
        })
    }

    /// The manifest prefix: the absolute directory, ending in `/`.
    pub fn manifest_prefix(&self) -> String {
        let abs = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let mut s = abs.to_string_lossy().to_string();
        if !s.ends_with('/') {
            s.push('/');
        }
        s
    }

    pub fn display(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    /// Names of the files directly in the output directory.
    pub fn list_names(&self) -> Result<Vec<String>> {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                let mut names = Vec::new();
                for e in entries {
                    let e = e.map_err(|e| storage("listing", &self.dir, e))?;
                    names.push(e.file_name().to_string_lossy().to_string());
                }
                names.sort();
                Ok(names)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(storage("listing", &self.dir, e)),
        }
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        let p = self.dir.join(name);
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("deleting", &p, e)),
        }
    }

    pub fn ensure(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| storage("creating the output directory", &self.dir, e))
    }

    /// Reserves `name`: returns an open file under a hidden temporary name
    /// and the guard that renames it into place (or removes it on drop).
    pub fn create_raw(&self, name: &str) -> Result<(File, PendingPath)> {
        self.ensure()?;
        let final_path = self.dir.join(name);
        let tmp_path = self.dir.join(format!(".{name}.inprogress"));
        let file = File::create(&tmp_path).map_err(|e| storage("creating", &tmp_path, e))?;
        Ok((
            file,
            PendingPath {
                tmp_path: Some(tmp_path),
                final_path,
            },
        ))
    }

    /// Starts an atomically committed file `name`.
    pub fn create(&self, name: &str) -> Result<PendingFile> {
        let (file, path) = self.create_raw(name)?;
        Ok(PendingFile {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            path,
            written: 0,
        })
    }

    /// fsyncs the named files and the directory: called before `_SUCCESS`
    /// so that a reader who sees it also sees the data after a crash.
    pub fn sync(&self, names: &[String]) -> Result<()> {
        for n in names {
            let p = self.dir.join(n);
            let f = File::open(&p).map_err(|e| storage("opening", &p, e))?;
            f.sync_all().map_err(|e| storage("syncing", &p, e))?;
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Writes a small file (manifest, scaler, report) atomically.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut f = self.create(name)?;
        f.write_all(bytes)
            .map_err(|e| storage("writing", &f.path.final_path, e))?;
        f.commit()?;
        Ok(())
    }
}

/// A temporary file that becomes `final_path` on `commit`, and is removed if
/// dropped first, so a failed run leaves no half-written file behind.
pub struct PendingPath {
    tmp_path: Option<PathBuf>,
    pub final_path: PathBuf,
}

impl PendingPath {
    /// Renames the file into place; returns its size. Durability is handled
    /// once per run by [`OutputDir::sync`] before `_SUCCESS`, so the kernel
    /// can write shards back while later ones are produced.
    pub fn commit(mut self) -> Result<u64> {
        let tmp = self.tmp_path.take().expect("committed once");
        let file = File::open(&tmp).map_err(|e| storage("reopening", &tmp, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&tmp, &self.final_path)
            .map_err(|e| storage("renaming into", &self.final_path, e))?;
        Ok(size)
    }
}

impl Drop for PendingPath {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp_path.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A buffered file being written under a temporary name (see [`PendingPath`]).
pub struct PendingFile {
    writer: Option<BufWriter<File>>,
    pub path: PendingPath,
    written: u64,
}

impl PendingFile {
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes and renames into place; returns the final size.
    pub fn commit(mut self) -> Result<u64> {
        let w = self.writer.take().expect("writer present until commit");
        w.into_inner()
            .map_err(|e| storage("writing", &self.path.final_path, e.into_error()))?;
        let PendingFile { path, .. } = self;
        path.commit()
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.writer.as_mut().expect("writer present").write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().expect("writer present").flush()
    }
}

/// Writes a file that may live anywhere (e.g. `artifacts.scaler` outside the
/// output directory) atomically.
pub fn put_uri(uri: &str, bytes: &[u8]) -> Result<()> {
    let path = local_path(uri).ok_or_else(|| unsupported(uri))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    OutputDir {
        uri: dir.display().to_string(),
        dir: dir.to_path_buf(),
    }
    .put(&name, bytes)
}

pub fn read_uri(uri: &str) -> Result<Vec<u8>> {
    let path = local_path(uri).ok_or_else(|| unsupported(uri))?;
    std::fs::read(&path).map_err(|e| storage("reading", &path, e))
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
        let keys: Vec<String> = list_inputs(root.to_str().unwrap())
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
        let keys: Vec<String> = list_inputs(&pat)
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, vec!["x.csv"]);
    }

    #[test]
    fn nothing_matching_is_no_input() {
        let err = list_inputs("/definitely/not/here/*.csv").unwrap_err();
        assert!(matches!(err, PrepError::NoInput { .. }));
    }

    #[test]
    fn pending_file_is_invisible_until_commit() {
        let d = tempfile::tempdir().unwrap();
        let out = OutputDir::new(d.path().to_str().unwrap()).unwrap();
        let mut f = out.create("part-00000.csv").unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!out.exists("part-00000.csv"));
        assert_eq!(f.commit().unwrap(), 3);
        assert!(out.exists("part-00000.csv"));
        drop(out.create("part-00001.csv").unwrap());
        assert_eq!(out.list_names().unwrap(), vec!["part-00000.csv"]);
    }
}
