//! Local output and spill files written (and spill files read back) with
//! `O_DIRECT` (Linux), past the page cache.
//!
//! Why: every shard is fsynced before `_SUCCESS`, so its bytes must reach
//! the disk before the run ends anyway; copying them into the page cache
//! first only costs CPU. On the 2-core dev VM, `dd` wrote 1 GiB at 365 MB/s
//! buffered and 1.9 GB/s direct, and the kernel's page-cache copy was the
//! largest single item in a JSON Lines run's profile (docs/benchmarks.md).
//!
//! Where direct I/O is refused (tmpfs, some network filesystems, other
//! systems) the same code writes normally: the file is opened without the
//! flag, or the flag is dropped at the first refused write. Either way the
//! file holds exactly the bytes written.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Direct I/O needs block-aligned buffers, sizes and offsets; 4096 covers
/// 512-byte and 4 KiB devices.
const ALIGN: usize = 4096;
/// Bytes gathered before each write. A direct write returns when the
/// device has the data, so the disk idles between one write and the next;
/// fewer, larger writes keep it busier. 5M-row CSV → Parquet spill (1.1 GB)
/// on the dev VM, timed with `strace -T`: 620 MB/s in 4 MiB writes, 1.18
/// GB/s in 16 MiB ones (`dd` does 1.1–1.3 GB/s).
const BLOCK: usize = 16 << 20;

/// Write buffers of dropped files, for the next files created without one:
/// a shard writer touches a buffer's memory once, not a fresh zero-filled
/// 16 MiB for every shard. At most [`SPARE_BUFFERS`] are kept.
static SPARES: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const SPARE_BUFFERS: usize = 2;

fn spare_buffer() -> Vec<u8> {
    SPARES
        .lock()
        .map(|mut spares| spares.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub struct OutputFile {
    file: File,
    /// `storage[start..start + BLOCK]` is the aligned write buffer.
    storage: Vec<u8>,
    start: usize,
    len: usize,
    direct: bool,
    /// Bytes written with `O_DIRECT`, and the time those writes took: a
    /// direct write returns when the device has the data, so this is the
    /// device's write rate.
    direct_bytes: u64,
    direct_time: std::time::Duration,
}

impl OutputFile {
    /// Creates (truncates) `path`, with `O_DIRECT` where the filesystem takes it.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
        Self::create_with(path, true)
    }

    /// Creates (truncates) `path`; `try_direct = false` writes through the
    /// page cache. The write buffer is a dropped file's when one is kept
    /// (the spares above): a writer of many files touches one buffer's memory once.
    pub fn create_with(path: &Path, try_direct: bool) -> io::Result<OutputFile> {
        let mut storage = spare_buffer();
        let direct_file = if try_direct {
            open_direct(path, true).ok()
        } else {
            None
        };
        let direct = direct_file.is_some();
        let file = match direct_file {
            Some(f) => f,
            None => File::create(path)?,
        };
        storage.resize(BLOCK + ALIGN, 0);
        let start = storage.as_ptr().align_offset(ALIGN);
        Ok(OutputFile {
            file,
            storage,
            start,
            len: 0,
            direct,
            direct_bytes: 0,
            direct_time: std::time::Duration::ZERO,
        })
    }

    /// Bytes written directly and how long the device took for them.
    pub fn direct_writes(&self) -> (u64, std::time::Duration) {
        (self.direct_bytes, self.direct_time)
    }

    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Writes the first `n` buffered bytes (a multiple of [`ALIGN`] while
    /// direct) and keeps the rest.
    fn write_out(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            let from = self.start + done;
            let t = std::time::Instant::now();
            match self.file.write(&self.storage[from..self.start + n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    done += k;
                    if self.direct {
                        self.direct_bytes += k as u64;
                        self.direct_time += t.elapsed();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused (this filesystem's alignment rules, or a short
                // write left the rest unaligned): go on through the cache.
                Err(e) if self.direct && e.raw_os_error() == Some(einval()) => {
                    self.set_direct(false)?
                }
                Err(e) => return Err(e),
            }
        }
        self.storage
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        Ok(())
    }

    /// Writes everything still buffered; the file is complete afterwards.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.direct {
            let aligned = self.len / ALIGN * ALIGN;
            if aligned > 0 {
                self.write_out(aligned)?;
            }
            if self.len > 0 {
                // The tail is shorter than a block: write it through the cache.
                self.set_direct(false)?;
            }
        }
        if self.len > 0 {
            self.write_out(self.len)?;
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this struct owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            let flags = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            if libc::fcntl(fd, libc::F_SETFL, flags) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.direct = on;
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        self.direct = on;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        let storage = std::mem::take(&mut self.storage);
        if storage.len() == BLOCK + ALIGN {
            if let Ok(mut spares) = SPARES.lock() {
                if spares.len() < SPARE_BUFFERS {
                    spares.push(storage);
                }
            }
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.len == BLOCK {
            self.write_out(BLOCK)?;
        }
        let n = data.len().min(BLOCK - self.len);
        let at = self.start + self.len;
        self.storage[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    /// Keeps the bytes: a direct file can only take whole blocks until
    /// [`OutputFile::finish`]. Durability comes from the fsync before `_SUCCESS`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A whole file in memory (see [`read_all`]).
pub struct FileBytes {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

/// Reads a whole file, with `O_DIRECT` (when `try_direct` and where the
/// filesystem takes it). For spill files: each is read once, right before it
/// is deleted, so passing it through the page cache would only add a copy.
pub fn read_all(path: &Path, try_direct: bool) -> io::Result<FileBytes> {
    let buffered = || {
        let storage = std::fs::read(path)?;
        let len = storage.len();
        Ok(FileBytes {
            storage,
            start: 0,
            len,
        })
    };
    let direct = if try_direct {
        open_direct(path, false).ok()
    } else {
        None
    };
    let Some(mut file) = direct else {
        return buffered();
    };
    let size = file.metadata()?.len() as usize;
    let cap = size.div_ceil(ALIGN) * ALIGN;
    // Not zero-filled: the reads fill the file's bytes (a spill chunk's
    // buffer is tens of MiB, 1.1 GB over a 5M-row run).
    let mut storage: Vec<u8> = Vec::with_capacity(cap + ALIGN);
    let start = storage.as_ptr().align_offset(ALIGN);
    let mut done = 0;
    while done < size {
        match read_into_capacity(&mut file, &mut storage, start + done, start + cap) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(einval()) => return buffered(),
            Err(e) => return Err(e),
        }
    }
    // SAFETY: the reads initialized `start..start + size`, and the
    // alignment padding before it is zeroed here; both lie within the
    // capacity (`start < ALIGN`, `size <= cap`).
    unsafe {
        std::ptr::write_bytes(storage.as_mut_ptr(), 0, start);
        storage.set_len(start + size);
    }
    Ok(FileBytes {
        storage,
        start,
        len: size,
    })
}

/// Reads from `file` into `storage`'s capacity at `from..to`, memory not
/// yet initialized (direct reads only; std's `Read` wants initialized
/// memory).
#[cfg(unix)]
fn read_into_capacity(
    file: &mut File,
    storage: &mut Vec<u8>,
    from: usize,
    to: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    assert!(
        from <= to && to <= storage.capacity(),
        "read past the buffer"
    );
    // SAFETY: `from..to` lies within the allocation (checked above), and
    // read(2) writes at most `to - from` bytes there.
    let n = unsafe {
        libc::read(
            file.as_raw_fd(),
            storage.as_mut_ptr().add(from).cast(),
            to - from,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(not(unix))]
fn read_into_capacity(_: &mut File, _: &mut Vec<u8>, _: usize, _: usize) -> io::Result<usize> {
    Err(io::Error::other("direct I/O is used on Linux only"))
}

/// Opens `path` with `O_DIRECT`, created and truncated when `write`, for
/// reading otherwise. `PREP_DIRECT_IO=0` refuses, so every file goes
/// through the page cache.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path, write: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !crate::env::direct_io_enabled() {
        return Err(io::Error::other("direct I/O turned off"));
    }
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .truncate(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path, _: bool) -> io::Result<File> {
    Err(io::Error::other("direct I/O is used on Linux only"))
}

#[cfg(target_os = "linux")]
fn einval() -> i32 {
    libc::EINVAL
}

#[cfg(not(target_os = "linux"))]
fn einval() -> i32 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(writes: &[Vec<u8>], dir: &Path) -> Vec<u8> {
        let path = dir.join("f");
        let mut f = OutputFile::create(&path).unwrap();
        for w in writes {
            f.write_all(w).unwrap();
            f.flush().unwrap();
        }
        f.finish().unwrap();
        drop(f);
        let direct = read_all(&path, true).unwrap();
        let plain = std::fs::read(&path).unwrap();
        assert_eq!(direct.as_ref(), &plain[..], "read_all reads what is there");
        plain
    }

    #[test]
    fn a_reused_buffer_writes_only_the_new_files_bytes() {
        let d = tempfile::tempdir().unwrap();
        for (i, (byte, len)) in [(7u8, BLOCK + 9000), (1, 100), (2, ALIGN * 3 + 5)]
            .into_iter()
            .enumerate()
        {
            let path = d.path().join(format!("f{i}"));
            let mut f = OutputFile::create(&path).unwrap();
            f.write_all(&vec![byte; len]).unwrap();
            f.finish().unwrap();
            drop(f);
            assert_eq!(std::fs::read(&path).unwrap(), vec![byte; len], "file {i}");
        }
    }

    #[test]
    fn blocks_and_tail_land_in_order() {
        let big: Vec<u8> = (0..BLOCK * 2 + 12345).map(|i| (i % 251) as u8).collect();
        let writes = vec![b"head".to_vec(), big.clone(), b"tail".to_vec()];
        // /tmp takes O_DIRECT here; tmpfs (/dev/shm) refuses it, which
        // exercises the buffered fallback.
        let mut dirs = vec![tempfile::tempdir().unwrap()];
        if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
            dirs.push(shm);
        }
        for dir in &dirs {
            let got = round_trip(&writes, dir.path());
            assert_eq!(got, writes.concat(), "{}", dir.path().display());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_write_pattern_gives_the_same_bytes(
            sizes in proptest::collection::vec(0usize..(3 * ALIGN), 0..20),
            seed in any::<u8>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let writes: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| vec![seed.wrapping_add(i as u8); n])
                .collect();
            prop_assert_eq!(round_trip(&writes, dir.path()), writes.concat());
        }
    }
}
