//! Transform: chunks in, chunks out. Column roles ([`columns`]), dropping
//! rows ([`clean`]), and the fitted steps in stage order (CONTRACT §9):
//! [`impute`], [`encode`], and the scalers ([`scale`] over [`standard`],
//! [`minmax`], [`maxabs`], [`robust`]). Each step file holds its fit state,
//! merge, fitted form (its part of `transform.json`) and apply; [`steps`]
//! runs them together, [`artifact`] is `transform.json`, [`scaler`] the
//! older `scaler.json`. Shared pieces: moments ([`stats`]), exact counts
//! ([`counts`]), exact quantiles in bounded memory ([`quantile`], [`percentile`]), the
//! normal quantile function ([`ndtri`]), missing values ([`values`]).

pub mod artifact;
pub mod clean;
pub mod columns;
pub mod counts;
pub mod encode;
pub mod impute;
pub mod maxabs;
pub mod minmax;
pub mod ndtri;
pub mod percentile;
pub mod quantile;
pub mod robust;
pub mod scale;
pub mod scaler;
pub mod standard;
pub mod stats;
pub mod steps;
pub mod values;
