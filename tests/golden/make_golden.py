#!/usr/bin/env python3
"""Generate the golden StandardScaler reference files for the `prep` Rust tests.

The files written here are THE REFERENCE the Rust test suite compares its own
output against (pandas + scikit-learn are the ground truth):

  tests/golden/<case>.scaler.json
      {"feature_names", "mean", "var", "scale", "n_samples_seen",
       "rows_in", "rows_out"}            floats via json.dumps (round-trip exact)
  tests/golden/<case>.transformed.csv
      columns: row (0-based index among rows surviving dropna), then the
      scaled feature columns; floats written with repr() (round-trip exact)
  tests/golden/stability.csv
      the numerically nasty input for the `stability` case (generated here,
      seed 7, 3000 rows)

Cases:
  reviews    input sample_data/reviews.csv, excluding review_id, label
  stability  input tests/golden/stability.csv, excluding id

Steps per case (same as tests/parity/sklearn_parity.py):
  pandas.read_csv(path, keep_default_na=False,
                  na_values=["", "NA", "N/A", "NULL", "null", "NaN", "nan"])
  -> dropna()
  -> features = int/float dtype columns (bool excluded) minus the excluded
     ones, in input order
  -> sklearn.preprocessing.StandardScaler().fit_transform(features)
On pandas < 3 float_precision="round_trip" is also passed, so floats parse
exactly like Rust's correctly rounded f64 parser (the old default "high"
parser may be 1 ulp off); pandas 3 deprecates the option and is exact.

Note for the Rust side: scikit-learn sets scale to 1.0 not only for var == 0
but for any feature it deems "indistinguishable from constant":
    var <= n * eps * var + (n * mean * eps) ** 2      (eps = 2.22e-16)
(sklearn.preprocessing._data._is_constant_feature).  In the stability case
this hits `big` (var ~3.3e-7 but scale 1.0), `const` and `near_const`.
mean/var come from numpy's pairwise summation plus a two-pass correction,
so compare with a small relative tolerance rather than bit-for-bit.

Regenerate (no arguments; deterministic) from the repository root:

    python3 -m venv /tmp/goldenvenv && /tmp/goldenvenv/bin/pip install pandas scikit-learn
    /tmp/goldenvenv/bin/python tests/golden/make_golden.py

If sample_data/reviews.csv changes (see sample_data/README.md for the exact
command), rerun this script and commit the updated golden files.
"""

from __future__ import annotations

import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NA_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]

try:
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.preprocessing import StandardScaler
except ImportError as e:
    sys.stderr.write(
        "make_golden.py: needs pandas and scikit-learn (%s).\n"
        "  python3 -m venv /tmp/goldenvenv && /tmp/goldenvenv/bin/pip install pandas scikit-learn\n"
        "  /tmp/goldenvenv/bin/python tests/golden/make_golden.py\n" % e
    )
    sys.exit(3)


def write_stability_csv(path: str, rows: int = 3000, seed: int = 7) -> None:
    """Columns chosen to stress mean/variance numerics:
    big        1e9 + U(-1e-3, 1e-3)   (catastrophic cancellation in naive var)
    tiny       1e-9 * N(0, 1)         (very small magnitudes)
    mixed      N(0, 1) * 1e6          (large spread)
    const      3.3                    (exactly constant -> scale 1.0)
    near_const 1e6 + 1e-10 * (i % 2)  (below 1 ulp of 1e6 -> rounds to 1e6 or 1e6+ulp)
    """
    rng = random.Random(seed)
    lines = ["id,big,tiny,mixed,const,near_const"]
    for i in range(rows):
        big = 1e9 + rng.uniform(-1e-3, 1e-3)
        tiny = 1e-9 * rng.gauss(0.0, 1.0)
        mixed = rng.gauss(0.0, 1.0) * 1e6
        const = 3.3
        near = 1e6 + 1e-10 * (i % 2)
        lines.append(",".join([str(i), repr(big), repr(tiny), repr(mixed), repr(const), repr(near)]))
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")


def run_case(name: str, input_path: str, exclude: list[str]) -> None:
    kw = {"keep_default_na": False, "na_values": NA_VALUES}
    if int(pd.__version__.split(".")[0]) < 3:
        kw["float_precision"] = "round_trip"  # exact parsing; deprecated (and exact by default) in pandas 3
    df = pd.read_csv(input_path, **kw)
    rows_in = len(df)
    missing = [c for c in exclude if c not in df.columns]
    if missing:
        raise SystemExit("case %s: excluded column(s) not in input: %s" % (name, missing))
    df = df.dropna()
    rows_out = len(df)
    feats = [
        c for c in df.columns
        if c not in exclude
        and (pd.api.types.is_integer_dtype(df[c]) or pd.api.types.is_float_dtype(df[c]))
        and not pd.api.types.is_bool_dtype(df[c])
    ]
    X = df[feats].to_numpy(dtype=np.float64)
    scaler = StandardScaler()
    Xt = scaler.fit_transform(X)

    meta = {
        "feature_names": [str(c) for c in feats],
        "mean": [float(v) for v in scaler.mean_],
        "var": [float(v) for v in scaler.var_],
        "scale": [float(v) for v in scaler.scale_],
        "n_samples_seen": int(np.max(scaler.n_samples_seen_)),
        "rows_in": int(rows_in),
        "rows_out": int(rows_out),
    }
    json_path = os.path.join(HERE, name + ".scaler.json")
    with open(json_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=1) + "\n")

    csv_path = os.path.join(HERE, name + ".transformed.csv")
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(["row"] + meta["feature_names"]) + "\n")
        for i, row in enumerate(Xt.tolist()):  # tolist() -> Python floats
            f.write(str(i) + "," + ",".join(repr(v) for v in row) + "\n")

    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    print("[%s] %s: rows_in=%d rows_out=%d features=%s"
          % (name, rel(input_path), rows_in, rows_out, ",".join(meta["feature_names"])))
    print("  wrote %s" % rel(json_path))
    print("  wrote %s (%d rows)" % (rel(csv_path), Xt.shape[0]))


def main() -> int:
    print("pandas %s, scikit-learn %s, numpy %s" % (pd.__version__, sklearn.__version__, np.__version__))
    stability_csv = os.path.join(HERE, "stability.csv")
    write_stability_csv(stability_csv)
    print("wrote %s" % os.path.relpath(stability_csv, ROOT))
    run_case("reviews", os.path.join(ROOT, "sample_data", "reviews.csv"), ["review_id", "label"])
    run_case("stability", stability_csv, ["id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
