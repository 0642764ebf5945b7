"""Writes the small Parquet files under tests/corpus/ that tests/it/corpus_cases.rs
reads: column types prep reads (decimals too, as float64), types it refuses with a clear error, and
values that must come through exactly.

Needs pyarrow (not in tests/requirements.txt: the files are committed, this
script only documents and remakes them):

    python -m venv /tmp/pa && /tmp/pa/bin/pip install pyarrow
    /tmp/pa/bin/python tests/corpus/make_parquet_cases.py

The files from apache/parquet-testing (Apache-2.0) are copied, not made:
bad_data_ARROW-GH-47662.parquet (a damaged page),
bad_data_ARROW-RS-GH-6229-DICTHEADER.parquet (a damaged dictionary page
header), repeated_no_annotation.parquet (a repeated group outside a LIST
group, an old layout polars' reader reads as no rows), int96_from_spark.parquet (int96 timestamps, one of them
9999-12-31) and shredded_variant_case-001.parquet (a VARIANT logical
type).
"""
import datetime
import decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent


def write(name, columns):
    table = pa.table(columns)
    pq.write_table(table, HERE / name, compression="snappy")


def main():
    ids = pa.array([1, 2, 3], pa.int64())
    # Read: small integer widths, scaled like any number.
    write("small_ints.parquet", {
        "id": ids,
        "i16": pa.array([-300, 0, 300], pa.int16()),
        "u8": pa.array([0, 7, 255], pa.uint8()),
        "u16": pa.array([1, 2, 65535], pa.uint16()),
        "x": pa.array([1.5, 2.5, 3.5]),
    })
    # Written exactly: a wide unsigned value, a zoned timestamp, a time of day.
    write("exact_values.parquet", {
        "id": ids,
        "big": pa.array([0, 2**63, 2**64 - 1], pa.uint64()),
        "at": pa.array([datetime.datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)] * 3,
                       pa.timestamp("us", tz="UTC")),
        "t": pa.array([1, 2, 3_000_000], pa.time64("us")),
        "x": pa.array([1.0, 2.0, 4.0]),
    })
    # Decimals are read as float64: stored as fixed-size bytes (pyarrow's
    # default), as int32/int64 (Spark, Athena), with a null, and at 38 digits.
    D = decimal.Decimal
    prices = [D("1.25"), D("-3.50"), None, D("1000000.01")]
    wide = [D("0.1234567890"), D("1"), D("-2.5"), D("12345678901234567.8901234567")]
    columns = {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "price": pa.array(prices, pa.decimal128(10, 2)),
        "wide": pa.array(wide, pa.decimal128(38, 10)),
        "small": pa.array([D("1.5"), D("-0.01"), None, D("999.99")], pa.decimal128(5, 2)),
    }
    write("decimal.parquet", columns)
    pq.write_table(pa.table(columns), HERE / "decimal_as_int.parquet", compression="snappy",
                   store_decimal_as_integer=True)
    # Refused, each naming its column.
    write("decimal256.parquet", {"id": ids, "big": pa.array([D("1.25")] * 3, pa.decimal256(40, 2))})
    write("float16.parquet", {"id": ids, "h": pa.array(np.array([1, 2, 3], dtype=np.float16))})
    write("struct_of_float16.parquet", {"id": ids, "s": pa.array([{"h": np.float16(1)}] * 3,
                                                                 pa.struct([("h", pa.float16())]))})
    # Nested columns: a struct, a map, a list of structs (row 2 has nulls).
    write("nested.parquet", {
        "id": ids,
        "s": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}],
                      pa.struct([("a", pa.int64()), ("b", pa.string())])),
        "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int32())),
        "ls": pa.array([[{"x": 0.5}], None, []], pa.list_(pa.struct([("x", pa.float64())]))),
        "x": pa.array([1.0, 2.0, 4.0]),
    })
    # Read; CSV shards cannot hold them, JSON Lines holds a list as an array.
    write("list.parquet", {"id": ids, "l": pa.array([[1, 2], [3], []], pa.list_(pa.int64())), "x": pa.array([1.0, 2.0, 4.0])})
    write("list_with_null.parquet", {"id": ids, "l": pa.array([[1, 2], [3], []], pa.list_(pa.int16())),
                                     "x": pa.array([1.0, None, 4.0])})
    write("duration.parquet", {"id": ids, "d": pa.array([1, 2, 3], pa.duration("ms")), "x": pa.array([1.0, 2.0, 4.0])})


if __name__ == "__main__":
    main()
