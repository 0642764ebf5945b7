//! The pipeline file: TOML as written ([`config`]) and the validated,
//! resolved plan every stage reads ([`plan`] with its fitted [`steps`],
//! built by [`build`] and [`build_steps`]).

pub mod build;
pub mod build_steps;
pub mod config;
pub mod plan;
pub mod steps;
