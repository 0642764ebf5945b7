//! Integration tests: they run the real `prep` binary on temp dirs and check
//! exit codes, messages, shards, manifests and the scaler.

mod aws_profile;
mod cloud;
mod cloud_support;
mod commit;
mod common;
mod container;
mod corpus_cases;
mod csv_shapes;
mod docs;
mod error_text;
mod errors;
mod fitted;
mod fitted_io;
mod fitted_props;
mod gcs_shim;
mod golden;
mod outputs;
mod parity;
mod parquet_passes;
mod pipelines;
mod run_basics;
mod s3;
mod s3_support;
mod scaleout;
mod tools;
