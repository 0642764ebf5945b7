//! Integration tests: they run the real `prep` binary on temp dirs and check
//! exit codes, messages, shards, manifests and the scaler.

mod common;
mod container;
mod error_text;
mod errors;
mod fitted;
mod fitted_io;
mod golden;
mod outputs;
mod parity;
mod pipelines;
mod run_basics;
mod s3;
mod s3_support;
mod scaleout;
mod tools;
