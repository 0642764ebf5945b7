//! Transform: chunks in, chunks out. Column roles ([`columns`]), dropping
//! rows ([`clean`]), mergeable moments ([`stats`]) and the fitted scaler
//! ([`scaler`]).

pub mod clean;
pub mod columns;
pub mod scaler;
pub mod stats;
