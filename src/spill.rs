//! Spill of cleaned chunks between the fit and transform passes.
//!
//! The scaler needs statistics over the whole dataset before the first row
//! can be written, so the transform pass must see the rows again. Re-parsing
//! CSV is the most expensive step of a run, so by default the cleaned chunks
//! are written once to a private temp dir as Arrow IPC (cheap to read back;
//! written and read with direct I/O, see `direct_file.rs`)
//! and each file is deleted as soon as it has been read back. The directory
//! is removed when the spill is dropped, also when the run fails.

use std::io::Cursor;
use std::path::PathBuf;

use polars::prelude::*;

use crate::direct_file::{read_all, OutputFile};
use crate::error::{PrepError, Result};

pub struct Spill {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    pub bytes: u64,
}

impl Spill {
    /// A fresh temp dir under `$PREP_SPILL_DIR`, else `$TMPDIR`, else /tmp.
    pub fn new() -> Result<Spill> {
        let mut b = tempfile::Builder::new();
        b.prefix("prep-spill-");
        let dir = match std::env::var_os("PREP_SPILL_DIR") {
            Some(base) => b.tempdir_in(base),
            None => b.tempdir(),
        }
        .map_err(|e| {
            PrepError::io(
                "creating the spill directory (set PREP_SPILL_DIR to a writable disk)",
                e,
            )
        })?;
        Ok(Spill {
            dir,
            files: Vec::new(),
            bytes: 0,
        })
    }

    pub fn write(&mut self, df: &mut DataFrame) -> Result<()> {
        let path = self
            .dir
            .path()
            .join(format!("chunk-{:06}.arrow", self.files.len()));
        let mut w = OutputFile::create(&path)
            .map_err(|e| PrepError::io(format!("creating spill file {}", path.display()), e))?;
        IpcWriter::new(&mut w)
            .finish(df)
            .map_err(|e| PrepError::polars(format!("writing spill file {}", path.display()), e))?;
        w.finish()
            .map_err(|e| PrepError::io(format!("writing spill file {}", path.display()), e))?;
        drop(w);
        self.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.files.push(path);
        Ok(())
    }

    pub fn chunks(&self) -> usize {
        self.files.len()
    }

    /// Reads chunk `i` back (into memory, not memory-mapped; direct I/O where
    /// possible, see `direct_file.rs`) and deletes it.
    pub fn take(&self, i: usize) -> Result<DataFrame> {
        let path = &self.files[i];
        let bytes = read_all(path)
            .map_err(|e| PrepError::io(format!("reading spill file {}", path.display()), e))?;
        let df = IpcReader::new(Cursor::new(bytes))
            .finish()
            .map_err(|e| PrepError::polars(format!("reading spill file {}", path.display()), e))?;
        let _ = std::fs::remove_file(path);
        Ok(df)
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_cleans_up() {
        let mut s = Spill::new().unwrap();
        let dir = s.path().to_path_buf();
        let mut df = df!("a" => [1i64, 2], "b" => ["x", "y"]).unwrap();
        s.write(&mut df).unwrap();
        assert_eq!(s.take(0).unwrap(), df);
        drop(s);
        assert!(!dir.exists());
    }
}
