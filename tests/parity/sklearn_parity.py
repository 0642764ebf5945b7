#!/usr/bin/env python3
"""Reference StandardScaler fit (pandas + scikit-learn) for parity tests.

Called by the Rust test suite:

    python3 tests/parity/sklearn_parity.py --input data.csv --exclude id,label --out result.json

Steps (identical to tests/golden/make_golden.py):
  1. pandas.read_csv(input, keep_default_na=False,
                     na_values=["", "NA", "N/A", "NULL", "null", "NaN", "nan"])
     plus float_precision="round_trip" on pandas < 3, so floats are parsed
     exactly like Rust's correctly rounded `str::parse::<f64>` (the old
     default "high" parser can be 1 ulp off on long literals; pandas 3
     deprecates the option and parses exactly by default).
  2. dropna() - drop every row that has a null in any column.
  3. Feature columns = int or float dtype columns (bool excluded) that are not
     in --exclude, in input order.
  4. sklearn.preprocessing.StandardScaler().fit_transform on those columns.

Output JSON:
  {"feature_names": [...], "mean": [...], "var": [...], "scale": [...],
   "n_samples_seen": int, "rows_in": int, "rows_out": int,
   "transformed_first_rows": [[...], ...]}   # first 50 surviving rows
Floats are Python floats serialised by json.dumps (shortest round-trip repr).

Exit codes: 0 ok; 2 usage error; 3 pandas/scikit-learn not importable
(the Rust tests may treat 3 as "skip"); 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys

NA_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]
EXIT_MISSING_DEPS = 3
FIRST_ROWS = 50


def _import_deps():
    try:
        import numpy as np  # noqa: F401
        import pandas as pd
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:  # pragma: no cover - environment dependent
        sys.stderr.write(
            "sklearn_parity.py: required Python package missing (%s).\n"
            "Install with: python3 -m pip install pandas scikit-learn\n"
            "(or: python3 -m venv /tmp/goldenvenv && /tmp/goldenvenv/bin/pip install pandas scikit-learn)\n"
            % e
        )
        sys.exit(EXIT_MISSING_DEPS)
    return np, pd, StandardScaler


def read_csv(pd, path: str):
    kw = {"keep_default_na": False, "na_values": NA_VALUES}
    if int(pd.__version__.split(".")[0]) < 3:
        kw["float_precision"] = "round_trip"  # exact parsing; deprecated (and exact by default) in pandas 3
    return pd.read_csv(path, **kw)


def fit(input_path: str, exclude: list[str]):
    np, pd, StandardScaler = _import_deps()
    df = read_csv(pd, input_path)
    rows_in = len(df)
    unknown = [c for c in exclude if c not in df.columns]
    if unknown:
        raise SystemExit("sklearn_parity.py: --exclude names unknown column(s): %s (columns: %s)"
                         % (", ".join(unknown), ", ".join(map(str, df.columns))))
    df = df.dropna()
    rows_out = len(df)
    feats = [
        c for c in df.columns
        if c not in exclude
        and (pd.api.types.is_integer_dtype(df[c]) or pd.api.types.is_float_dtype(df[c]))
        and not pd.api.types.is_bool_dtype(df[c])
    ]
    if not feats:
        raise SystemExit("sklearn_parity.py: no numeric feature columns left after exclusions")
    if rows_out == 0:
        raise SystemExit("sklearn_parity.py: no rows left after dropna()")
    X = df[feats].to_numpy(dtype=np.float64)
    scaler = StandardScaler()
    Xt = scaler.fit_transform(X)
    return {
        "feature_names": [str(c) for c in feats],
        "mean": [float(v) for v in scaler.mean_],
        "var": [float(v) for v in scaler.var_],
        "scale": [float(v) for v in scaler.scale_],
        "n_samples_seen": int(np.max(scaler.n_samples_seen_)),
        "rows_in": int(rows_in),
        "rows_out": int(rows_out),
    }, Xt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="pandas + sklearn StandardScaler reference fit")
    ap.add_argument("--input", required=True, help="input CSV")
    ap.add_argument("--exclude", default="", help="comma-separated columns to leave out")
    ap.add_argument("--out", required=True, help="output JSON path ('-' for stdout)")
    args = ap.parse_args(argv)
    exclude = [c.strip() for c in args.exclude.split(",") if c.strip()]
    result, Xt = fit(args.input, exclude)
    result["transformed_first_rows"] = [[float(v) for v in row] for row in Xt[:FIRST_ROWS]]
    text = json.dumps(result, indent=1)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
