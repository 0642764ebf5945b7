//! Scratch harness to compile-check tests/it/s3_support.rs (delete when done).
#[allow(dead_code)]
#[path = "../it/common.rs"]
mod common;
#[path = "../it/s3_support.rs"]
mod s3_support;
