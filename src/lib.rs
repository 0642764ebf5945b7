//! prep: a data-preprocessing pipeline engine.
//!
//! A run reads CSV or Parquet in chunks, drops rows with nulls (optionally
//! keeping them in `_rejects/`), fits imputers, encoders and scalers over
//! the whole cleaned dataset, and writes shards that a batch-inference job
//! can consume, plus `transform.json` (and `scaler.json`), `manifest.json`
//! and `_SUCCESS`. The folders follow the data, and dependencies point one way:
//! commands drive a job, a job drives read → transform → write, all of them
//! on storage and the validated pipeline.
//!
//! | folder / module | what |
//! |---|---|
//! | [`cli`] | command line, error rendering, exit codes |
//! | [`commands`] | `run` (via [`job`]), `apply`, `validate`, `inspect` |
//! | [`job`] | the one orchestration: worker share, fit pass, barrier, quantile refinement, transform pass, `_rejects/`, finish (`_SUCCESS`) |
//! | [`read`] | input objects → [`chunk::SourceChunk`]s: CSV splitting and parsing, Parquet decoding |
//! | [`transform`] | column roles, dropping rows, the fitted steps (impute, encode, four scalers), exact quantiles, `transform.json` |
//! | [`write`](mod@write) | row encoders, shards, the spill between passes |
//! | [`storage`] | listing, reads, atomic output files, object stores |
//! | [`pipeline`] | TOML as written → validated plan |
//! | [`chunk`] | what the stages hand on: a chunk and the fixed schema |
//! | [`in_turn`] | ordered work on several threads (Parquet decoding) |
//! | [`error`], [`env`](mod@env), [`signals`], [`timings`] | error kinds, `PREP_*` variables, stop flag, busy time per stage |

pub mod chunk;
pub mod cli;
pub mod commands;
pub mod env;
pub mod error;
pub mod in_turn;
pub mod job;
pub mod pipeline;
pub mod read;
pub mod signals;
pub mod storage;
pub mod timings;
pub mod transform;
pub mod write;
