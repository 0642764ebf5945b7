//! Error types and the exit codes of the contract (§1).
//!
//! Every failure a user can cause is a variant that carries what they need to
//! act on it: the file/object, the line or row, the column, and a hint. All
//! wording lives in this module: [`PrepError`] (`prep.rs`) for the run as a
//! whole, [`DataError`] (`data.rs`) for what is wrong with the input data.
//! The binary renders an error once, in `cli::render_error`, and maps it to
//! an exit code with [`PrepError::exit_code`].

mod caught;
mod data;
mod prep;

pub use caught::{caught, install_hook};
pub use data::{
    bad_utf8, missing_column, ColumnDifference, DataError, DataLocation, NamedIn, TypeOrigin,
};
pub use prep::{did_you_mean, ExitCode, PrepError, Result};
