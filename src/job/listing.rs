//! The input listing every command reads: storage's listing (which already
//! skips hidden and `_` names, `manifest.json` and `scaler.json`) without
//! `transform.json` files either, so a folder holding an earlier run's
//! output (`prep inspect out/`, a pipeline reading `prepared/`) lists only
//! its data, as before `transform.json` existed.

use crate::error::{PrepError, Result};
use crate::pipeline::plan::StoragePlan;
use crate::storage::{list_inputs, InputObject};

/// The artifact name a listing skips (beside storage's own list).
const ARTIFACT: &str = "transform.json";

pub fn list_data(uri: &str, storage: &StoragePlan) -> Result<Vec<InputObject>> {
    let files: Vec<InputObject> = list_inputs(uri, storage)?
        .into_iter()
        .filter(|f| f.key.rsplit('/').next() != Some(ARTIFACT))
        .collect();
    if files.is_empty() {
        return Err(PrepError::NoInput {
            uri: uri.to_string(),
        });
    }
    Ok(files)
}
