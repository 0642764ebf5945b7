//! Read: input objects → chunks of typed rows ([`crate::chunk::SourceChunk`])
//! under one fixed schema. CSV is split into records ([`chunker`], on a
//! thread of its own: [`csv_reader`]), its fields read by the rules of
//! [`csv_fields`], parsed ([`csv_fast`], with [`csv_reference`] for what it
//! leaves) and typed ([`csv_types`]); Parquet is decoded a row group at a
//! time ([`parquet_input`]) once [`parquet_types`] has checked its columns'
//! types (decimals read as float64: [`parquet_decimal`]), a column read only for its nulls by its levels alone
//! ([`parquet_validity`]). [`source`] drives both; [`split`] cuts one
//! object between workers; [`schema_check`] holds later files to the schema.

pub mod chunker;
pub mod csv_fast;
pub mod csv_fields;
pub mod csv_reader;
pub mod csv_reference;
pub mod csv_types;
pub mod page_prefix;
pub mod parquet_decimal;
pub mod parquet_input;
pub mod parquet_types;
pub mod parquet_validity;
pub mod recent_cells;
pub mod schema_check;
pub mod source;
pub mod split;
