//! One encoded Parquet page → its compressed page, for the shard encoder.
//!
//! ```text
//! Page (v1 data page, snappy) ─► per-thread scratch ─► CompressedPage (exact size)
//! anything else               ─► polars' `compress`
//! ```
//! polars' `compress` zero-fills a fresh buffer of snappy's worst-case size
//! (117 % of the page) for every page, then keeps it at that capacity. Here
//! each thread keeps one scratch buffer (and one snappy encoder) for the
//! run: the page is compressed into it, then copied out at its compressed
//! size (a quarter of the page for review text). 5M-row Parquet →
//! Parquet, snappy: 3 % less wall time and user time, 305 against 321 MiB
//! peak (benches/e2e/ab.py, 5 rounds); the reused encoder, level.
//! The bytes are the same as polars'. zstd pages go to polars: the same
//! scheme with a reused zstd context measured level there.

use std::cell::RefCell;

use polars::prelude::{PolarsError, PolarsResult};
use polars_parquet::parquet::compression::CompressionOptions;
use polars_parquet::parquet::page::{CompressedDataPage, DataPageHeader};
use polars_parquet::parquet::CowBuffer;
use polars_parquet::write::{compress, CompressedPage, Page};

thread_local! {
    /// The output buffer and the encoder (its 32 KiB hash table allocated
    /// once per thread, not once per page).
    static SCRATCH: RefCell<(Vec<u8>, Option<snap::raw::Encoder>)> =
        const { RefCell::new((Vec::new(), None)) };
}

fn codec_error(e: impl std::fmt::Display) -> PolarsError {
    PolarsError::ComputeError(format!("compressing a Parquet page: {e}").into())
}

/// `page` compressed with `compression`.
pub fn compress_page(page: Page, compression: CompressionOptions) -> PolarsResult<CompressedPage> {
    let Page::Data(data) = &page else {
        return compress(page, Vec::new(), compression).map_err(PolarsError::from);
    };
    if !matches!(data.header(), DataPageHeader::V1(_)) || compression != CompressionOptions::Snappy
    {
        return compress(page, Vec::new(), compression).map_err(PolarsError::from);
    }
    let input = data.buffer();
    let out = SCRATCH.with(|s| -> PolarsResult<Vec<u8>> {
        let (buf, encoder) = &mut *s.borrow_mut();
        let bound = snap::raw::max_compress_len(input.len());
        if buf.len() < bound {
            buf.resize(bound, 0);
        }
        let n = encoder
            .get_or_insert_with(snap::raw::Encoder::new)
            .compress(input, &mut buf[..bound])
            .map_err(codec_error)?;
        Ok(buf[..n].to_vec())
    })?;
    let num_rows = data
        .num_rows
        .ok_or_else(|| codec_error("a written page without a row count"))?;
    Ok(CompressedPage::Data(CompressedDataPage::new(
        data.header().clone(),
        CowBuffer::Owned(out),
        compression.into(),
        input.len(),
        data.descriptor.clone(),
        num_rows,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// Every page of a frame's one row group, encoded (not compressed).
    fn pages(df: &DataFrame) -> Vec<Page> {
        use polars_parquet::write::{array_to_columns, to_parquet_type, Encoding, WriteOptions};
        let mut df = df.clone();
        df.rechunk_mut();
        let batch = df.iter_chunks(CompatLevel::newest(), false).next().unwrap();
        let schema = df.schema().to_arrow(CompatLevel::newest());
        let options = WriteOptions {
            statistics: Default::default(),
            compression: CompressionOptions::Uncompressed,
            version: polars_parquet::write::Version::V1,
            data_page_size: Some(1024),
        };
        batch
            .columns()
            .iter()
            .zip(schema.iter_values())
            .flat_map(|(array, field)| {
                let ty = to_parquet_type(field).unwrap();
                array_to_columns(array, ty, options, &[Encoding::Plain])
                    .unwrap()
                    .into_iter()
                    .flat_map(|pages| pages.map(|p| p.unwrap()).collect::<Vec<_>>())
            })
            .collect()
    }

    fn bytes(p: CompressedPage) -> (Vec<u8>, usize) {
        match p {
            CompressedPage::Data(mut d) => (d.slice_mut().to_vec(), d.uncompressed_size()),
            CompressedPage::Dict(_) => panic!("plain pages only"),
        }
    }

    fn copy(p: &Page) -> Page {
        match p {
            Page::Data(d) => Page::Data(d.clone()),
            Page::Dict(d) => Page::Dict(d.clone()),
        }
    }

    #[test]
    fn pages_compress_to_polars_bytes_with_the_scratch_reused() {
        let df = df!(
            "t" => (0..3000).map(|i| format!("review {} {}", i % 17, "x".repeat(i % 40))).collect::<Vec<_>>(),
            "x" => (0..3000).map(|i| (i as f64).sqrt()).collect::<Vec<_>>()
        )
        .unwrap();
        let pages = pages(&df);
        assert!(pages.len() > 4, "several pages: {}", pages.len());
        let level3 =
            CompressionOptions::Zstd(Some(polars_parquet::write::ZstdLevel::try_new(3).unwrap()));
        let level1 =
            CompressionOptions::Zstd(Some(polars_parquet::write::ZstdLevel::try_new(1).unwrap()));
        // Snappy twice (the scratch reused), and zstd (polars' path).
        for codec in [
            CompressionOptions::Snappy,
            level3,
            CompressionOptions::Snappy,
            level1,
        ] {
            for p in &pages {
                let ours = compress_page(copy(p), codec).unwrap();
                let theirs = compress(copy(p), Vec::new(), codec).unwrap();
                assert_eq!(bytes(ours), bytes(theirs), "{codec:?}");
            }
        }
    }
}
