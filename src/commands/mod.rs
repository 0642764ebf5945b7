//! The commands behind the CLI. `run` and `apply` are jobs ([`crate::job`]);
//! `validate` and `inspect` read metadata only.

pub mod apply;
pub mod inspect;
pub mod validate;
