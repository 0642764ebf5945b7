//! The pipeline file: TOML as written ([`config`]) and the validated,
//! resolved plan every stage reads ([`plan`], built by [`build`]).

pub mod build;
pub mod config;
pub mod plan;
