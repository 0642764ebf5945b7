//! The definition levels of a compressed v1 Parquet data page, decompressed
//! only as far as they go.
//!
//! ```text
//! compressed page ─► [4-byte length L][L bytes of levels] [values ...]
//!                     └─ decompressed ──────────────────┘  └─ left alone
//! ```
//! A v1 page compresses its levels together with its values, so knowing
//! which rows of a long text column are null used to cost decompressing
//! the whole page. zstd and gzip stream, so they stop after the levels'
//! bytes (zstd decodes one block, at most 128 KiB, of a page that may hold
//! megabytes); snappy is decoded here up to that point. Other codecs
//! answer `None` and the caller decompresses the page.

use std::io::Read;

use polars_parquet::parquet::compression::Compression;

/// The first `4 + L` bytes of the decompressed v1 page `page` (the length
/// prefix and the levels it announces), `None` for a codec without a
/// prefix decoder here, an error when the page ends before them.
pub fn v1_def_levels(codec: Compression, page: &[u8]) -> Option<std::io::Result<Vec<u8>>> {
    let mut prefix = match codec {
        Compression::Uncompressed => Prefix::Plain(page),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(page) {
            Ok(d) => Prefix::Stream(Box::new(d)),
            Err(e) => return Some(Err(e)),
        },
        Compression::Gzip => Prefix::Stream(Box::new(flate2::read::GzDecoder::new(page))),
        Compression::Snappy => Prefix::Snappy(page),
        _ => return None,
    };
    Some(prefix.levels())
}

enum Prefix<'a> {
    Plain(&'a [u8]),
    Stream(Box<dyn Read + 'a>),
    Snappy(&'a [u8]),
}

impl Prefix<'_> {
    fn levels(&mut self) -> std::io::Result<Vec<u8>> {
        let head = self.first(4)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        match self {
            // A stream goes on where it stopped.
            Prefix::Stream(r) => {
                let mut out = head;
                out.resize(4 + len, 0);
                r.read_exact(&mut out[4..])?;
                Ok(out)
            }
            _ => self.first(4 + len),
        }
    }

    /// The first `n` decompressed bytes (a stream: its next `n`).
    fn first(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Prefix::Plain(b) => b.get(..n).map(<[u8]>::to_vec).ok_or_else(short),
            Prefix::Stream(r) => {
                let mut out = vec![0; n];
                r.read_exact(&mut out)?;
                Ok(out)
            }
            Prefix::Snappy(b) => snappy_prefix(b, n),
        }
    }
}

fn short() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the page ends before its definition levels",
    )
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("corrupt snappy data: {what}"),
    )
}

/// The first `n` bytes that raw (unframed) snappy data `src` decompresses
/// to: its elements (literals and back-references) are decoded in order
/// until `n` bytes are out.
fn snappy_prefix(src: &[u8], n: usize) -> std::io::Result<Vec<u8>> {
    let mut at = 0;
    // The uncompressed length, a varint: not needed to decode a prefix.
    loop {
        let b = *src.get(at).ok_or_else(short)?;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let le = |bytes: &[u8]| {
        bytes
            .iter()
            .rev()
            .fold(0usize, |v, &b| (v << 8) | b as usize)
    };
    let mut out: Vec<u8> = Vec::with_capacity(n + 64);
    while out.len() < n {
        let tag = *src.get(at).ok_or_else(short)?;
        at += 1;
        let (len, offset) = match tag & 3 {
            0 => {
                let mut len = (tag >> 2) as usize;
                if len >= 60 {
                    let k = len - 59;
                    len = le(src.get(at..at + k).ok_or_else(short)?);
                    at += k;
                }
                let literal = src.get(at..at + len + 1).ok_or_else(short)?;
                out.extend_from_slice(literal);
                at += len + 1;
                continue;
            }
            1 => {
                let low = *src.get(at).ok_or_else(short)? as usize;
                at += 1;
                (
                    4 + ((tag >> 2) & 7) as usize,
                    ((tag as usize >> 5) << 8) | low,
                )
            }
            2 => {
                let off = le(src.get(at..at + 2).ok_or_else(short)?);
                at += 2;
                (1 + (tag >> 2) as usize, off)
            }
            _ => {
                let off = le(src.get(at..at + 4).ok_or_else(short)?);
                at += 4;
                (1 + (tag >> 2) as usize, off)
            }
        };
        if offset == 0 || offset > out.len() {
            return Err(corrupt("a back-reference before the start"));
        }
        // Byte by byte: a copy may overlap what it writes (a run).
        let from = out.len() - offset;
        for i in 0..len {
            let b = out[from + i];
            out.push(b);
        }
    }
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's shape: a 4-byte length, that many level bytes, then values
    /// (repetitive text, so the codecs use back-references and runs).
    fn page(levels: usize, values: usize) -> Vec<u8> {
        let mut p = (levels as u32).to_le_bytes().to_vec();
        p.extend((0..levels).map(|i| (i * 7 % 5) as u8));
        let words = ["great product ", "aaaaaaaa", "would buy again, ", "x"];
        let mut i = 0;
        while p.len() < 4 + levels + values {
            p.extend_from_slice(words[i % words.len()].as_bytes());
            i = i * 31 + 7;
        }
        p
    }

    fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
        match codec {
            Compression::Uncompressed => data.to_vec(),
            Compression::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            Compression::Gzip => {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn every_codec_gives_the_length_and_levels_exactly() {
        let codecs = [
            Compression::Uncompressed,
            Compression::Zstd,
            Compression::Snappy,
            Compression::Gzip,
        ];
        for codec in codecs {
            for (levels, values) in [(0, 10), (1, 0), (3, 100_000), (70, 5), (5_000, 300_000)] {
                let p = page(levels, values);
                let got = v1_def_levels(codec, &compress(codec, &p)).unwrap().unwrap();
                assert_eq!(got, p[..4 + levels], "{codec:?} {levels} {values}");
            }
        }
    }

    #[test]
    fn snappy_prefixes_of_every_length_match_the_whole() {
        let data = page(300, 20_000);
        let packed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        for n in (0..data.len()).step_by(97).chain([data.len()]) {
            assert_eq!(snappy_prefix(&packed, n).unwrap(), data[..n], "prefix {n}");
        }
    }

    #[test]
    fn a_page_cut_short_is_an_error_not_a_panic() {
        for codec in [Compression::Zstd, Compression::Snappy, Compression::Gzip] {
            let whole = compress(codec, &page(5_000, 0));
            for cut in [0, 1, 3, whole.len() / 2] {
                let r = v1_def_levels(codec, &whole[..cut]).unwrap();
                assert!(r.is_err(), "{codec:?} cut at {cut}");
            }
        }
        assert!(v1_def_levels(Compression::Uncompressed, &[9, 0, 0, 0, 1])
            .unwrap()
            .is_err());
        assert!(v1_def_levels(Compression::Lz4Raw, &[0; 8]).is_none());
    }

    #[test]
    fn a_back_reference_before_the_start_is_corrupt_data() {
        // Length varint 8, then a copy (tag kind 2) of 4 bytes at offset 3.
        let bad = [8, (3 << 2) | 2, 3, 0];
        let e = snappy_prefix(&bad, 4).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
}
