//! Where bytes live: input listing and reads ([`input`]), output files with
//! atomic commits ([`output`]), object stores ([`remote`]) and direct I/O
//! for local files ([`direct_file`]).

pub mod aws_profile;
pub mod compression;
pub mod direct_file;
pub mod input;
pub mod lock;
pub mod output;
pub mod read_ahead;
pub mod remote;
pub mod remote_read;
pub mod upload;

pub use compression::Compression;
pub use input::*;
pub use output::*;
