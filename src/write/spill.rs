//! Spill of cleaned chunks between the fit and transform passes.
//!
//! The scaler needs statistics over the whole dataset before the first row
//! can be written, so the transform pass must see the rows again. Re-parsing
//! CSV is the most expensive step of a run, so by default the cleaned chunks
//! are written once to a private temp dir as their Arrow buffers (one file
//! per chunk, see `spill_file.rs`; written and read with direct I/O, see
//! `direct_file.rs`) and each file is deleted as soon as the transform pass has read it back
//! (a quantile refinement pass reads it without deleting). The directory
//! is removed when the spill is dropped, also when the run fails.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{PrepError, Result};
use crate::storage::direct_file::{read_all, OutputFile};
use crate::storage::lock::pid_alive;
use crate::write::spill_file::{self, SpillEncoder};
use crate::write::spill_raw::Layout;

/// When the spill bypasses the page cache.
///
/// Direct I/O saves the kernel's copy (a third of a run's system time on the
/// dev VM, whose disk takes 1.9 GB/s). But a spill is read back within
/// seconds and then deleted, so on a slow disk (a 125 MB/s cloud volume)
/// the page cache, which need never write it out, is far faster. So the
/// first spill files go direct, their write rate is measured, and a disk
/// slower than `min_rate` gets the rest through the page cache.
#[derive(Debug, Clone, Copy)]
pub struct DirectPolicy {
    /// Direct bytes to write before judging the rate.
    pub probe_bytes: u64,
    /// Bytes per second below which spilling goes through the page cache.
    pub min_rate: f64,
}

impl Default for DirectPolicy {
    fn default() -> Self {
        DirectPolicy {
            probe_bytes: 64 << 20,
            min_rate: 1e9,
        }
    }
}

/// Spill folders are `prep-spill-<pid>-<random>`, so a run can tell which
/// ones belong to processes that no longer exist.
const SPILL_PREFIX: &str = "prep-spill-";

/// Removes the spill folders of dead runs (killed, OOM) under `base`; a
/// folder whose process still exists is left alone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(SPILL_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !pid_alive(pid) && e.path().is_dir() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => tracing::info!(
                    "removed the spill folder {} of a run that is gone (pid {pid})",
                    e.path().display()
                ),
                Err(err) => tracing::debug!("could not remove {}: {err}", e.path().display()),
            }
        }
    }
}

/// A spill I/O error; a full disk is a storage error (exit 4) naming it.
fn spill_io(action: &str, path: &Path, e: std::io::Error) -> PrepError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return PrepError::DiskFull {
            action: action.to_string(),
            path: path.display().to_string(),
            what:
                "the spill (PREP_SPILL_DIR), or set input.second_pass = \"reread\" to spill nothing"
                    .into(),
        };
    }
    PrepError::io(
        format!(
            "{action} {} (set PREP_SPILL_DIR to a writable disk)",
            path.display()
        ),
        e,
    )
}

/// Where one cleaned chunk waits for the next pass.
enum Stored {
    /// In memory, within the budget.
    Memory(DataFrame),
    /// In a file, written past the page cache or not, with the file of its
    /// key columns alone (see [`Spill::write`]).
    File {
        file: SpillFile,
        keys: Option<SpillFile>,
    },
    /// Taken by the transform pass.
    Taken,
}

pub struct Spill {
    dir: tempfile::TempDir,
    chunks: Vec<Stored>,
    key_columns: Vec<String>,
    /// Bytes of chunks kept in memory at most (`PREP_MEMORY_BUDGET`).
    budget: u64,
    in_memory: u64,
    /// Bytes written to spill files.
    pub bytes: u64,
    policy: DirectPolicy,
    direct: bool,
    probed: (u64, std::time::Duration),
    /// Keeps the IPC body buffer from file to file.
    encoder: SpillEncoder,
}

impl Spill {
    /// A fresh temp dir under `$PREP_SPILL_DIR`, else `$TMPDIR`, else /tmp.
    pub fn new() -> Result<Spill> {
        Self::with_policy(DirectPolicy::default())
    }

    pub fn with_policy(policy: DirectPolicy) -> Result<Spill> {
        let base = crate::env::spill_dir().unwrap_or_else(std::env::temp_dir);
        remove_stale(&base);
        let prefix = format!("{SPILL_PREFIX}{}-", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&base)
            .map_err(|e| spill_io("creating the spill directory", &base, e))?;
        Ok(Spill {
            dir,
            chunks: Vec::new(),
            key_columns: Vec::new(),
            budget: 0,
            in_memory: 0,
            bytes: 0,
            policy,
            direct: true,
            probed: (0, std::time::Duration::ZERO),
            encoder: SpillEncoder::default(),
        })
    }

    /// Keeps up to `budget` bytes of chunks in memory instead of spilling
    /// them (the first ones that fit; the rest go to files).
    pub fn with_memory_budget(mut self, budget: u64) -> Spill {
        self.budget = budget;
        self
    }

    /// Bytes of chunks kept in memory.
    pub fn in_memory(&self) -> u64 {
        self.in_memory
    }

    /// Stores one chunk: in memory while the budget allows, else in a
    /// file. For a file, `keys` (the columns a quantile refinement pass
    /// reads, see `job/refine.rs`) also go to a small file of their own, so
    /// a refinement pass reads a few numeric columns, not every row's text.
    pub fn write(&mut self, df: &mut DataFrame, keys: &[String]) -> Result<()> {
        let size = df.estimated_size() as u64;
        if self.in_memory + size <= self.budget {
            self.in_memory += size;
            self.chunks.push(Stored::Memory(df.clone()));
            return Ok(());
        }
        let n = self.chunks.len();
        let key_file = if keys.is_empty() {
            None
        } else {
            let path = self.dir.path().join(format!("keys-{n:06}.spill"));
            let mut part = df
                .select(keys.iter().map(|k| PlSmallStr::from(k.as_str())))
                .map_err(|e| PrepError::polars("selecting the spill's key columns", e))?;
            let file = self.write_file(path, &mut part, false)?;
            self.key_columns = keys.to_vec();
            Some(file)
        };
        let path = self.dir.path().join(format!("chunk-{n:06}.spill"));
        let file = self.write_file(path, df, self.direct)?;
        self.chunks.push(Stored::File {
            file,
            keys: key_file,
        });
        Ok(())
    }

    /// Writes `df` to `path` (see `spill_file.rs`).
    fn write_file(&mut self, path: PathBuf, df: &mut DataFrame, direct: bool) -> Result<SpillFile> {
        let mut w = OutputFile::create_with(&path, direct)
            .map_err(|e| spill_io("creating a spill file", &path, e))?;
        let layout = self.encoder.write(&mut w, df).map_err(|e| match e {
            PolarsError::IO { error, .. } if error.kind() == std::io::ErrorKind::StorageFull => {
                spill_io(
                    "writing a spill file",
                    &path,
                    std::io::Error::from(error.kind()),
                )
            }
            e => PrepError::polars(format!("writing spill file {}", path.display()), e),
        })?;
        w.finish()
            .map_err(|e| spill_io("writing a spill file", &path, e))?;
        // Written (in part) past the page cache: read it back past it too.
        let direct = w.direct_writes().0 > 0;
        self.judge_rate(&w);
        drop(w); // its buffer goes to the next file (`direct_file.rs`)
        self.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(SpillFile {
            path,
            direct,
            layout,
        })
    }

    /// Adds a file's direct writes to the probe; once it is large enough,
    /// keeps direct I/O only if the disk is fast.
    fn judge_rate(&mut self, w: &OutputFile) {
        if !self.direct || self.probed.0 >= self.policy.probe_bytes {
            return;
        }
        let (bytes, time) = w.direct_writes();
        self.probed.0 += bytes;
        self.probed.1 += time;
        if self.probed.0 >= self.policy.probe_bytes {
            let rate = self.probed.0 as f64 / self.probed.1.as_secs_f64().max(1e-9);
            self.direct = rate >= self.policy.min_rate;
            tracing::debug!(
                rate_mb_s = rate / 1e6,
                direct = self.direct,
                "spill disk write rate"
            );
        }
    }

    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Hands every chunk not yet taken over, in order, each to be read back
    /// once, on any thread (the transform pass keeps two reads in flight):
    /// from memory, or read back (into memory, not memory-mapped; direct
    /// I/O where possible, see `direct_file.rs`) and its files deleted.
    /// The spill must outlive them: dropping it removes its folder.
    pub fn take_all(&mut self) -> Vec<SpillChunk> {
        self.in_memory = 0;
        self.chunks
            .iter_mut()
            .enumerate()
            .map(|(index, c)| SpillChunk {
                index,
                stored: std::mem::replace(c, Stored::Taken),
            })
            .filter(|c| !matches!(c.stored, Stored::Taken))
            .collect()
    }

    /// Chunk `i`, kept for a later pass (a quantile refinement pass reads
    /// the spill before the transform pass takes it).
    pub fn read(&self, i: usize) -> Result<DataFrame> {
        match &self.chunks[i] {
            Stored::Memory(df) => Ok(df.clone()),
            Stored::File { file, .. } => read_file(file, None),
            Stored::Taken => Err(taken(i)),
        }
    }

    /// Only `columns` of chunk `i`, kept: a quantile refinement pass needs
    /// a few numeric columns, and decoding the rest (text above all) is most
    /// of the cost of a read.
    pub fn read_columns(&self, i: usize, columns: &[String]) -> Result<DataFrame> {
        let keyed = columns.iter().all(|c| self.key_columns.contains(c));
        match &self.chunks[i] {
            Stored::Memory(df) => df
                .select(columns.iter().map(|c| PlSmallStr::from(c.as_str())))
                .map_err(|e| PrepError::polars("selecting key columns of a kept chunk", e)),
            Stored::File { keys: Some(k), .. } if keyed => read_file(k, Some(columns)),
            Stored::File { file, .. } => read_file(file, Some(columns)),
            Stored::Taken => Err(taken(i)),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Reads a spill file (past the page cache when it was written so), all
/// columns or `columns` only.
fn read_file(file: &SpillFile, columns: Option<&[String]>) -> Result<DataFrame> {
    let path = &file.path;
    let bytes =
        read_all(path, file.direct).map_err(|e| spill_io("reading a spill file", path, e))?;
    // What this run wrote moments ago no longer reads back: the disk (or
    // something else writing there) damaged it; a storage error (exit 4).
    spill_file::read(bytes, file.layout.as_ref(), columns).map_err(|e| PrepError::Storage {
        action: "reading back".into(),
        uri: path.display().to_string(),
        hint: Some(
            "the spill file was damaged after it was written; rerun, with PREP_SPILL_DIR on a healthy disk that nothing else writes to".into(),
        ),
        source: Box::new(e),
    })
}

/// One chunk handed over by [`Spill::take_all`].
pub struct SpillChunk {
    index: usize,
    stored: Stored,
}

impl SpillChunk {
    /// The chunk: from memory, or read back and its files deleted.
    pub fn read(self) -> Result<DataFrame> {
        match self.stored {
            Stored::Memory(df) => Ok(df),
            Stored::File { file, keys } => {
                let df = read_file(&file, None);
                let _ = std::fs::remove_file(&file.path);
                if let Some(k) = keys {
                    let _ = std::fs::remove_file(&k.path);
                }
                df
            }
            Stored::Taken => Err(taken(self.index)),
        }
    }
}

/// A chunk's file: where, whether past the page cache, and (raw files) where
/// its buffers lie.
struct SpillFile {
    path: PathBuf,
    direct: bool,
    layout: Option<Layout>,
}

#[cfg(test)]
impl Spill {
    /// Whether chunk `i` went to a file past the page cache.
    fn direct_file(&self, i: usize) -> bool {
        matches!(&self.chunks[i], Stored::File { file, .. } if file.direct)
    }
}

fn taken(i: usize) -> PrepError {
    PrepError::io(
        "reading the spill",
        std::io::Error::other(format!(
            "chunk {i} was read after the transform pass took it"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunk `i` of all those handed over (the others are dropped).
    fn take(s: &mut Spill, i: usize) -> Result<DataFrame> {
        s.take_all().swap_remove(i).read()
    }

    #[test]
    fn round_trips_and_cleans_up() {
        let mut s = Spill::new().unwrap();
        let dir = s.path().to_path_buf();
        assert_eq!(s.in_memory(), 0, "no budget: every chunk goes to a file");
        let mut df = df!("a" => [1i64, 2], "b" => ["x", "y"]).unwrap();
        s.write(&mut df, &[]).unwrap();
        assert_eq!(take(&mut s, 0).unwrap(), df);
        drop(s);
        assert!(!dir.exists());
    }

    #[test]
    fn chunks_within_the_budget_stay_in_memory_the_rest_go_to_files() {
        let df = df!("a" => [1.5f64, 2.5], "b" => ["x", "y"]).unwrap();
        let size = df.estimated_size() as u64;
        let mut s = Spill::new().unwrap().with_memory_budget(size * 2);
        for _ in 0..3 {
            s.write(&mut df.clone(), &["a".into()]).unwrap();
        }
        assert_eq!(s.in_memory(), size * 2);
        let files: Vec<_> = std::fs::read_dir(s.path()).unwrap().collect();
        assert_eq!(
            files.len(),
            2,
            "the third chunk and its keys file: {files:?}"
        );
        assert_eq!(
            s.read_columns(0, &["a".into()]).unwrap(),
            df.select(["a"]).unwrap()
        );
        assert_eq!(s.read(2).unwrap(), df);
        for c in s.take_all() {
            assert_eq!(c.read().unwrap(), df);
        }
        assert_eq!(s.in_memory(), 0);
        assert!(s.read(0).is_err(), "a taken chunk is gone");
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 0);
    }

    #[test]
    fn take_all_hands_every_chunk_over_in_order_to_read_on_any_thread() {
        let frames: Vec<DataFrame> = (0..4i64)
            .map(|i| {
                df!(
                    "a" => (i * 10_000..i * 10_000 + 5000).collect::<Vec<_>>(),
                    "t" => (0..5000).map(|k| format!("text {i} {k}")).collect::<Vec<_>>()
                )
                .unwrap()
            })
            .collect();
        let size = frames[0].estimated_size() as u64;
        // The first chunk stays in memory, the rest go to files.
        let mut s = Spill::new().unwrap().with_memory_budget(size);
        for df in &frames {
            s.write(&mut df.clone(), &[]).unwrap();
        }
        assert_eq!(s.in_memory(), size);
        let chunks = s.take_all();
        assert_eq!(chunks.len(), 4);
        // Read back in reverse, each on a thread of its own.
        let mut got: Vec<DataFrame> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .rev()
                .map(|c| scope.spawn(move || c.read().unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        got.reverse();
        assert_eq!(got, frames);
        assert_eq!(s.in_memory(), 0);
        assert_eq!(
            std::fs::read_dir(s.path()).unwrap().count(),
            0,
            "files deleted"
        );
        assert!(s.take_all().is_empty(), "a chunk is handed over once");
        assert!(s.read(0).is_err());
    }

    #[test]
    fn key_columns_are_read_from_their_own_file() {
        let mut s = Spill::new().unwrap();
        let mut df = df!("a" => [1.5f64, 2.5], "b" => ["x", "y"], "c" => [3i64, 4]).unwrap();
        s.write(&mut df, &["a".into()]).unwrap();
        let keys = s.path().join("keys-000000.spill");
        assert!(keys.exists());
        let a = s.read_columns(0, &["a".into()]).unwrap();
        assert_eq!(a, df.select(["a"]).unwrap());
        // A column outside the keys comes from the whole chunk.
        let c = s.read_columns(0, &["c".into()]).unwrap();
        assert_eq!(c, df.select(["c"]).unwrap());
        assert_eq!(take(&mut s, 0).unwrap(), df);
        assert!(!keys.exists(), "taking a chunk removes its key file");
    }

    #[test]
    fn spill_folders_of_dead_processes_are_removed_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let dead = base
            .path()
            .join(format!("{SPILL_PREFIX}{}-abc", u32::MAX / 2));
        let live = base.path().join(format!("{SPILL_PREFIX}1-abc"));
        let other = base.path().join("prep-spill-old");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("chunk-000000.spill"), b"x").unwrap();
        }
        remove_stale(base.path());
        assert!(!dead.exists());
        assert!(live.exists(), "pid 1 is alive");
        assert!(other.exists(), "no pid: not ours to judge");
    }

    #[test]
    fn a_full_disk_is_a_storage_error_naming_the_spill() {
        let e = spill_io(
            "writing a spill file",
            Path::new("/spill/chunk-000000.spill"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(e.exit_code(), crate::error::ExitCode::Storage);
        assert!(e.to_string().contains("/spill/chunk-000000.spill"), "{e}");
        assert!(e.hint().unwrap().contains("PREP_SPILL_DIR"));
    }

    #[test]
    fn a_spill_file_damaged_after_it_was_written_is_a_storage_error_naming_it() {
        let mut s = Spill::new().unwrap();
        let mut df = df!("a" => (0..5000i64).collect::<Vec<_>>()).unwrap();
        s.write(&mut df, &[]).unwrap();
        let path = s.path().join("chunk-000000.spill");
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let e = take(&mut s, 0).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::ExitCode::Storage);
        assert!(e.to_string().contains("chunk-000000.spill"), "{e}");
        assert!(e.hint().unwrap().contains("PREP_SPILL_DIR"));
    }

    #[test]
    fn a_slow_disk_sends_the_rest_through_the_page_cache() {
        // Any disk is "slow" against an infinite rate: after the first file
        // (the probe), spilling goes through the page cache.
        let mut s = Spill::with_policy(DirectPolicy {
            probe_bytes: 1,
            min_rate: f64::INFINITY,
        })
        .unwrap();
        // Large enough that whole 4 KiB blocks are written directly.
        let mut frames: Vec<DataFrame> = (0..3i64)
            .map(|i| df!("a" => (i..i + 5000).collect::<Vec<_>>()).unwrap())
            .collect();
        for df in frames.iter_mut() {
            s.write(df, &[]).unwrap();
        }
        assert!(
            !s.direct_file(1) && !s.direct_file(2),
            "written through the cache"
        );
        for (c, df) in s.take_all().into_iter().zip(&frames) {
            assert_eq!(&c.read().unwrap(), df);
        }
    }

    #[test]
    fn a_fast_disk_keeps_direct_io() {
        let mut s = Spill::with_policy(DirectPolicy {
            probe_bytes: 1,
            min_rate: 0.0,
        })
        .unwrap();
        let mut df = df!("a" => (0..5000i64).collect::<Vec<_>>()).unwrap();
        s.write(&mut df, &[]).unwrap();
        s.write(&mut df, &[]).unwrap();
        // Direct where the filesystem takes it (not on tmpfs).
        assert_eq!(s.direct_file(1), s.direct_file(0));
        assert_eq!(take(&mut s, 1).unwrap(), df);
    }
}
