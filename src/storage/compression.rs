//! The one answer to "is this object compressed, and how?": from the
//! object's key, case-insensitively (`.gz`; `.zst` or `.zstd`). Readers,
//! the format guess and the worker split all ask here; readers get the
//! decompressing stream from [`Compression::decompressing`].

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of(key: &str) -> Compression {
        let k = key.to_ascii_lowercase();
        if k.ends_with(".gz") {
            Compression::Gzip
        } else if k.ends_with(".zst") || k.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// `raw` decompressed as this says. A decompressor's complaint about its
    /// input is `InvalidData` (bad data, exit 3: zstd reports bytes that are
    /// not zstd as `Other`), while a failed read of `raw` stays what it was
    /// (a storage error, exit 4).
    pub fn decompressing(self, raw: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
        let raw = RawReads(raw);
        Ok(match self {
            Compression::None => raw.0,
            Compression::Gzip => Box::new(Decompressed(flate2::read::MultiGzDecoder::new(
                std::io::BufReader::with_capacity(1 << 20, raw),
            ))),
            Compression::Zstd => Box::new(Decompressed(zstd::stream::read::Decoder::new(raw)?)),
        })
    }

    /// The key without its compression suffix, lowercased (for the format
    /// guess: `a.CSV.GZ` → `a.csv`).
    pub fn strip(key: &str) -> String {
        let k = key.to_ascii_lowercase();
        let cut = match Compression::of(&k) {
            Compression::None => 0,
            Compression::Gzip => 3,
            Compression::Zstd if k.ends_with(".zst") => 4,
            Compression::Zstd => 5,
        };
        k[..k.len() - cut].to_string()
    }
}

/// A failed read of the compressed bytes themselves (the disk, the
/// network), as it travels through a decompressor.
#[derive(Debug)]
struct RawReadError(std::io::Error);

impl std::fmt::Display for RawReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RawReadError {}

/// The compressed stream, its errors marked as [`RawReadError`].
struct RawReads(Box<dyn Read + Send>);

impl Read for RawReads {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| std::io::Error::new(e.kind(), RawReadError(e)))
    }
}

/// A decompressor whose own errors are `InvalidData`; see
/// [`Compression::decompressing`].
struct Decompressed<R>(R);

impl<R: Read> Read for Decompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<RawReadError>()) {
                let inner = e.into_inner().expect("checked above");
                return inner
                    .downcast::<RawReadError>()
                    .map(|raw| raw.0)
                    .unwrap_or_else(std::io::Error::other);
            }
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidInput => e,
                _ => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_compressed_that_way_are_invalid_data_and_raw_failures_stay() {
        let plain =
            || -> Box<dyn Read + Send> { Box::new(std::io::Cursor::new(b"id,x\n1,2\n".to_vec())) };
        for c in [Compression::Zstd, Compression::Gzip] {
            let mut out = Vec::new();
            let e = c
                .decompressing(plain())
                .and_then(|mut r| r.read_to_end(&mut out))
                .unwrap_err();
            // All three are read as bad data (exit 3) by the chunker.
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData
                        | std::io::ErrorKind::InvalidInput
                        | std::io::ErrorKind::UnexpectedEof
                ),
                "{c:?}: {e:?}"
            );
        }
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "link down",
                ))
            }
        }
        let mut out = Vec::new();
        let e = Compression::Gzip
            .decompressing(Box::new(Broken))
            .and_then(|mut r| r.read_to_end(&mut out))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}");
    }

    #[test]
    fn suffixes_are_recognised_in_any_case() {
        assert_eq!(Compression::of("a.csv.GZ"), Compression::Gzip);
        assert_eq!(Compression::of("a.csv.zst"), Compression::Zstd);
        assert_eq!(Compression::of("a.csv.ZSTD"), Compression::Zstd);
        assert_eq!(Compression::of("a.csv"), Compression::None);
        assert_eq!(Compression::strip("A.CSV.ZSTD"), "a.csv");
        assert_eq!(Compression::strip("a.parquet"), "a.parquet");
    }
}
