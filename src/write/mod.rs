//! Write: transformed chunks → bytes. Row encoders for JSON Lines and CSV
//! ([`encode`]), shards ([`sink`]) and the spill between the two passes
//! ([`spill`]).

pub mod encode;
pub mod sink;
pub mod spill;
