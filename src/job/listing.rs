//! The input listing every command reads: storage's listing (which already
//! skips hidden and `_` names, `manifest.json` and `scaler.json`) without
//! `transform.json` files either, so a folder holding an earlier run's
//! output (`prep inspect out/`, a pipeline reading `prepared/`) lists only
//! its data, as before `transform.json` existed.
//!
//! The listing also settles what the names say about the CSV dialect: a
//! delimiter not set in `[input.csv]` is a tab when every object is named
//! `.tsv` or `.tab` ([`tab_when_named_so`]).

use crate::error::{PrepError, Result};
use crate::pipeline::plan::{CsvPlan, StoragePlan};
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

/// Sets a tab delimiter when `input.csv.delimiter` is not set and every
/// object's name ends in `.tsv` or `.tab` (before `.gz`/`.zst`): read
/// with a comma, each line of such a file would be one column. Returns
/// whether it did.
pub fn tab_when_named_so(csv: &mut CsvPlan, files: &[InputObject]) -> bool {
    let tabbed = !csv.delimiter_set
        && csv.quote != Some(b'\t')
        && !files.is_empty()
        && files.iter().all(|f| tab_separated_name(&f.key));
    if tabbed {
        csv.delimiter = b'\t';
    }
    tabbed
}

/// Whether a name says tab-separated values.
fn tab_separated_name(key: &str) -> bool {
    let name = key.to_ascii_lowercase();
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    name.ends_with(".tsv") || name.ends_with(".tab")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::InputPlan;

    fn objects(keys: &[&str]) -> Vec<InputObject> {
        keys.iter()
            .map(|k| InputObject::local(k.into(), k.to_string(), 1))
            .collect()
    }

    #[test]
    fn tab_only_when_every_name_says_so_and_nothing_was_set() {
        let mut csv = InputPlan::defaults("d/").csv;
        assert!(tab_when_named_so(
            &mut csv,
            &objects(&["d/a.tsv", "d/B.TSV.gz", "d/c.tab.zst"])
        ));
        assert_eq!(csv.delimiter, b'\t');

        let mut csv = InputPlan::defaults("d/").csv;
        assert!(!tab_when_named_so(
            &mut csv,
            &objects(&["d/a.tsv", "d/b.csv"])
        ));
        assert_eq!(csv.delimiter, b',');

        let mut csv = InputPlan::defaults("d/").csv;
        (csv.delimiter, csv.delimiter_set) = (b';', true);
        assert!(!tab_when_named_so(&mut csv, &objects(&["d/a.tsv"])));
        assert_eq!(csv.delimiter, b';');
    }
}
