//! Placeholder replaced by the kernel benchmarks.
fn main() {}
