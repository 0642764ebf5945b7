#!/usr/bin/env python3
"""The rows pandas reads from a CSV, as JSON, for the CSV-shape tests.

    python3 tests/parity/pandas_rows.py --input data.csv [--no-nulls] --out rows.json

Reads with pandas.read_csv(dtype=str, keep_default_na=False) and prep's
default null_values (none with --no-nulls), so every value is compared as
the text pandas (and Python's csv module) found in the field. Output: a
JSON list of {column: text or null}.
"""

from __future__ import annotations

import argparse
import json
import sys

NA_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="pandas' reading of a CSV file, as JSON rows")
    ap.add_argument("--input", required=True)
    ap.add_argument("--no-nulls", action="store_true", help="na_values=[] (prep: null_values = [])")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import pandas as pd

    df = pd.read_csv(
        args.input,
        dtype=str,
        keep_default_na=False,
        na_values=[] if args.no_nulls else NA_VALUES,
    )
    rows = [
        {str(k): (None if pd.isna(v) else str(v)) for k, v in rec.items()}
        for rec in df.to_dict(orient="records")
    ]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(rows, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
