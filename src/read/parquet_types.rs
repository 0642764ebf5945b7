//! Which Parquet column types prep reads, checked on a file's footer
//! before any row is decoded, and the one limit checked on decoded rows.
//!
//! In: the Arrow schema polars derives from the footer. Out: `Ok`, or exit
//! 3 naming the file, the first column of a type prep does not read and
//! that type. Without this check polars panics on some (float16,
//! decimals wider than 38 digits) and fails mid-run on others. Structs,
//! maps (lists of key/value structs) and lists are read when what they
//! hold is.
//!
//! int96 timestamps (Spark, Impala) are read as nanoseconds, which hold
//! 1677-09-21 to 2262-04-11; polars writes `i64::MAX` for one outside that
//! (Spark's 9999-12-31 sentinel), so [`check_int96_range`] stops the run
//! there instead of writing 2262-04-11 23:47:16.854775807.

use polars::prelude::{DataFrame, DataType};
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema};
use polars_parquet::parquet::metadata::FileMetadata;
use polars_parquet::parquet::schema::types::{GroupLogicalType, ParquetType, PhysicalType};
use polars_parquet::parquet::schema::Repetition;

use crate::error::{DataError, DataLocation, PrepError, Result};

/// The top-level columns stored as int96.
pub fn int96_columns(metadata: &FileMetadata) -> Vec<String> {
    metadata
        .schema()
        .columns()
        .iter()
        .filter(|c| {
            c.path_in_schema.len() == 1
                && c.descriptor.primitive_type.physical_type == PhysicalType::Int96
        })
        .map(|c| c.path_in_schema[0].to_string())
        .collect()
}

/// Exit 3 at the first value of an int96 column in `df` (rows from
/// `first_row`, 1-based, of the file `uri`) that nanoseconds cannot hold.
pub fn check_int96_range(
    df: &DataFrame,
    int96: &[String],
    uri: &str,
    first_row: usize,
) -> Result<()> {
    for name in int96 {
        let Ok(col) = df.column(name) else { continue };
        if !matches!(col.dtype(), DataType::Datetime(..)) {
            continue;
        }
        let physical = col.to_physical_repr();
        let Ok(values) = physical.i64() else { continue };
        let first_bad = values.iter().position(|v| v == Some(i64::MAX));
        if let Some(at) = first_bad {
            let mut location = DataLocation::file(uri).column(name);
            location.row = Some((first_row + at) as u64);
            return Err(PrepError::bad_data(
                location,
                DataError::TimestampOutOfRange {
                    column: name.clone(),
                },
            ));
        }
    }
    Ok(())
}

/// Exit 3 at the first top-level column of the file `uri` that holds a
/// repeated field outside a LIST or MAP group: a top-level `repeated int32
/// x`, or `group g { repeated group phone {...} }` without an annotation.
/// polars' reader returns empty lists or no rows for them, with no error;
/// current writers never make them.
pub fn check_repeated_fields(metadata: &FileMetadata, uri: &str) -> Result<()> {
    for column in metadata.schema().fields() {
        if let Some(field) = unannotated_repeat(column, false) {
            return Err(PrepError::bad_data(
                DataLocation::file(uri).column(column.name()),
                DataError::LegacyRepeated {
                    column: column.name().to_string(),
                    field,
                },
            ));
        }
    }
    Ok(())
}

/// The dotted path of the first repeated field under `t` (itself included)
/// whose parent is not a LIST or MAP group (`in_list_or_map`: whether
/// `t`'s parent is).
fn unannotated_repeat(t: &ParquetType, in_list_or_map: bool) -> Option<String> {
    if t.get_field_info().repetition == Repetition::Repeated && !in_list_or_map {
        return Some(t.name().to_string());
    }
    let ParquetType::GroupType {
        logical_type,
        converted_type,
        fields,
        ..
    } = t
    else {
        return None;
    };
    let annotated = matches!(
        logical_type,
        Some(GroupLogicalType::List | GroupLogicalType::Map)
    ) || converted_type.is_some();
    fields
        .iter()
        .find_map(|f| unannotated_repeat(f, annotated).map(|p| format!("{}.{p}", t.name())))
}

/// `Ok` when prep reads every column of `schema` (the file `uri`'s).
pub fn check_readable(schema: &ArrowSchema, uri: &str) -> Result<()> {
    for (name, field) in schema.iter() {
        if let Some(dtype) = unreadable(&field.dtype) {
            return Err(PrepError::bad_data(
                DataLocation::file(uri).column(name.as_str()),
                DataError::UnreadableType {
                    column: name.to_string(),
                    dtype,
                },
            ));
        }
    }
    Ok(())
}

/// As [`unreadable`], for a type inside a list, struct or map, where a
/// decimal is not converted to float64 (only top-level columns are).
fn unreadable_inside(dtype: &ArrowDataType) -> Option<String> {
    match dtype {
        ArrowDataType::Decimal(p, s)
        | ArrowDataType::Decimal32(p, s)
        | ArrowDataType::Decimal64(p, s)
        | ArrowDataType::Decimal256(p, s) => Some(format!("decimal({p}, {s})")),
        t => unreadable(t),
    }
}

/// The type's name as a user knows it, when prep does not read it.
fn unreadable(dtype: &ArrowDataType) -> Option<String> {
    use ArrowDataType as A;
    match dtype {
        A::Null
        | A::Boolean
        | A::Int8
        | A::Int16
        | A::Int32
        | A::Int64
        | A::UInt8
        | A::UInt16
        | A::UInt32
        | A::UInt64
        | A::Float32
        | A::Float64
        | A::Timestamp(..)
        | A::Date32
        | A::Date64
        | A::Time32(_)
        | A::Time64(_)
        | A::Duration(_)
        | A::Binary
        | A::LargeBinary
        | A::BinaryView
        | A::FixedSizeBinary(_)
        | A::Utf8
        | A::LargeUtf8
        | A::Utf8View => None,
        A::List(inner) | A::LargeList(inner) => {
            unreadable_inside(&inner.dtype).map(|t| format!("list of {t}"))
        }
        A::Struct(fields) if !fields.is_empty() => fields.iter().find_map(|f| {
            unreadable_inside(&f.dtype).map(|t| format!("struct whose field `{}` is {t}", f.name))
        }),
        // A map is read as a list of key/value structs.
        A::Map(entries, _) => unreadable_inside(&entries.dtype).map(|t| format!("map of {t}")),
        A::Dictionary(_, values, _) => unreadable(values),
        // Read as float64 (`parquet_decimal.rs`); polars holds 38 digits.
        A::Decimal(p, _) | A::Decimal32(p, _) | A::Decimal64(p, _) if *p <= 38 => None,
        A::Decimal(p, s) | A::Decimal32(p, s) | A::Decimal64(p, s) | A::Decimal256(p, s) => {
            Some(format!("decimal({p}, {s}), more than 38 digits"))
        }
        A::Struct(_) => Some("struct without fields".into()),
        A::Float16 => Some("float16".into()),
        A::Int128 => Some("int128".into()),
        A::UInt128 => Some("uint128".into()),
        A::FixedSizeList(_, n) => Some(format!("fixed-size list of {n}")),
        A::Interval(_) => Some("interval".into()),
        A::Extension(ext) => Some(format!("extension type {}", ext.name)),
        other => Some(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars_arrow::datatypes::Field;

    fn schema(fields: Vec<(&str, ArrowDataType)>) -> ArrowSchema {
        fields
            .into_iter()
            .map(|(n, t)| (n.into(), Field::new(n.into(), t, true)))
            .collect()
    }

    #[test]
    fn flat_columns_decimals_lists_and_dictionaries_of_them_are_read() {
        let item = Box::new(Field::new("item".into(), ArrowDataType::Int16, true));
        let s = schema(vec![
            ("a", ArrowDataType::UInt8),
            ("price", ArrowDataType::Decimal(10, 2)),
            ("b", ArrowDataType::Utf8View),
            ("c", ArrowDataType::List(item)),
            (
                "d",
                ArrowDataType::Dictionary(
                    polars_arrow::datatypes::IntegerType::Int32,
                    Box::new(ArrowDataType::Utf8),
                    false,
                ),
            ),
            (
                "e",
                ArrowDataType::Timestamp(
                    polars_arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
            ),
        ]);
        assert!(check_readable(&s, "f.parquet").is_ok());
        let fields = vec![
            Field::new("a".into(), ArrowDataType::Int64, true),
            Field::new("b".into(), ArrowDataType::Utf8View, true),
        ];
        let s = schema(vec![("s", ArrowDataType::Struct(fields))]);
        assert!(check_readable(&s, "f.parquet").is_ok());
    }

    #[test]
    fn the_first_unread_column_is_named_with_its_type() {
        let dec = Box::new(Field::new(
            "item".into(),
            ArrowDataType::Decimal(10, 2),
            true,
        ));
        let s = schema(vec![
            ("id", ArrowDataType::Int64),
            ("prices", ArrowDataType::List(dec)),
            ("half", ArrowDataType::Float16),
        ]);
        let e = check_readable(&s, "f.parquet").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::ExitCode::BadData);
        let text = e.to_string();
        assert!(text.contains("f.parquet"), "{text}");
        assert!(
            text.contains("`prices` is of type list of decimal(10, 2)"),
            "{text}"
        );
        let s = schema(vec![("wide", ArrowDataType::Decimal(40, 2))]);
        let text = check_readable(&s, "w.parquet").unwrap_err().to_string();
        assert!(
            text.contains("`wide` is of type decimal(40, 2), more than 38 digits"),
            "{text}"
        );
        let half = Field::new("h".into(), ArrowDataType::Float16, true);
        let s = schema(vec![("s", ArrowDataType::Struct(vec![half]))]);
        let text = check_readable(&s, "g.parquet").unwrap_err().to_string();
        assert!(
            text.contains("`s` is of type struct whose field `h` is float16"),
            "{text}"
        );
    }
}
