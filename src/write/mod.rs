//! Write: transformed chunks → bytes. Row encoders for JSON Lines and CSV
//! ([`encode`]), shards ([`sink`]) and the spill between the two passes
//! ([`spill`], one file of it: [`spill_file`], raw: [`spill_raw`]).

pub mod encode;
pub mod page_compress;
pub mod row_groups;
pub mod sink;
pub mod spill;
pub mod spill_file;
pub mod spill_raw;
