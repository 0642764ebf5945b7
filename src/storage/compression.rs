//! The one answer to "is this object compressed, and how?": from the
//! object's key, case-insensitively (`.gz`; `.zst` or `.zstd`). Readers,
//! the format guess and the worker split all ask here.

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

#[cfg(test)]
mod tests {
    use super::*;

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
