//! What the stages hand on: a chunk of typed rows with where each row came
//! from, and the schema fixed for the whole input. Read produces them,
//! transform and write consume them; none of those imports another for it.

use polars::prelude::*;

use crate::error::DataLocation;
use crate::storage::InputObject;

/// One chunk of input rows and where they came from.
pub struct SourceChunk {
    pub df: DataFrame,
    pub file_index: usize,
    /// CSV: the line each row starts on; Parquet: empty.
    pub lines: Vec<u64>,
    /// 1-based data-row number (within its file) of the first row.
    pub first_row: u64,
}

impl SourceChunk {
    /// Where row `i` of this chunk is, for error messages.
    pub fn locate(&self, files: &[InputObject], i: usize, column: Option<&str>) -> DataLocation {
        DataLocation {
            file: files[self.file_index].uri.clone(),
            line: self.lines.get(i).copied(),
            row: if self.lines.is_empty() {
                Some(self.first_row + i as u64)
            } else {
                None
            },
            column: column.map(str::to_string),
        }
    }
}

/// The shared, fixed schema and the file that set it.
#[derive(Clone)]
pub struct FixedSchema {
    /// The column types every chunk has.
    pub schema: SchemaRef,
    pub origin: String,
}

impl FixedSchema {
    pub fn new(schema: SchemaRef, origin: String) -> Self {
        FixedSchema { schema, origin }
    }
}
