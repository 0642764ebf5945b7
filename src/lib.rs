//! prep: a data-preprocessing pipeline engine.
//!
//! A run reads CSV or Parquet in chunks, drops rows with nulls, fits a
//! standard scaler over the whole cleaned dataset, and writes shards that a
//! batch-inference job can consume, plus `scaler.json`, `manifest.json` and
//! `_SUCCESS`. The modules follow the data:
//!
//! | stage | module |
//! |---|---|
//! | command line, error rendering | [`cli`] |
//! | TOML as written → validated plan | [`config`] → [`plan`] |
//! | listing, reading, atomic writes | [`store`], [`direct_file`] |
//! | CSV record splitting (bounded memory) | [`chunker`] |
//! | chunked CSV / Parquet readers | [`source`], [`csv_fast`], [`csv_types`], [`parquet_input`] |
//! | splitting one object between workers | [`split`] |
//! | column names → roles | [`columns`] |
//! | drop nulls, non-finite policy | [`clean`] |
//! | mergeable moments | [`stats`] |
//! | scaler artifact, apply | [`scaler`] |
//! | spill between passes | [`spill`] |
//! | row encoders, shards, manifest | [`encode`], [`sink`] |
//! | orchestration | [`run`], [`validate`], [`inspect`], [`apply`] |
//! | scale-out: identity, split, partials, barrier | [`worker`] |
//! | run report, progress, busy time per stage | [`report`], [`timings`] |
//! | errors and exit codes | [`error`] |

pub mod apply;
pub mod chunker;
pub mod clean;
pub mod cli;
pub mod columns;
pub mod config;
pub mod csv_fast;
pub mod csv_types;
pub mod direct_file;
pub mod encode;
pub mod error;
pub mod inspect;
pub mod parquet_input;
pub mod plan;
pub mod remote;
pub mod report;
pub mod run;
pub mod scaler;
pub mod signals;
pub mod sink;
pub mod source;
pub mod spill;
pub mod split;
pub mod stats;
pub mod store;
pub mod timings;
pub mod validate;
pub mod worker;
