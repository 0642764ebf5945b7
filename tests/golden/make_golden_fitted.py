#!/usr/bin/env python3
"""Generate the golden files of prep's fitted steps (CONTRACT §9).

For each case under tests/golden/fitted/ this writes:

  <case>.csv            the input (synthetic, deterministic; penguins reads
                        sample_data/penguins.csv, copied from the
                        palmerpenguins package, CC0)
  <case>.expected.json  what scikit-learn fits and outputs for <case>.toml
                        (tests/parity/fitted_reference.py: fitted attributes
                        in transform.json's step layout with a tolerance
                        each, the output column names and rows)

<case>.toml (the pipelines, committed by hand) cover every step and option:
  tabular   median impute + indicators, most_frequent on a category, one-hot
            with min_frequency grouping (rare and unicode categories), bool
  ordinal   ordinal with max_categories and ties at the cut, an unknown
            value; one-hot of integers with a fractional min_frequency,
            their nulls imputed with the most frequent integer;
            max_categories = 2 with handle_unknown = "ignore"
  scalers   robust (1e9 + small noise, many duplicates at the median),
            robust with quantile_range and unit_variance on constant and
            tiny columns, without centering, without scaling; minmax with
            feature_range and clip, maxabs, standard without the mean,
            standard without the std
  imputed   median impute then robust scale on the same column; mean then
            minmax; most_frequent then maxabs; constant then standard; a
            constant string category that was never seen, one-hot
  penguins  the palmerpenguins data: impute numeric (median, indicators),
            sex most_frequent, one-hot species/island/sex, standard scaling

Regenerate from the repository root (needs tests/requirements.txt):

    python3 tests/golden/make_golden_fitted.py
    python3 tests/golden/make_golden_fitted.py --large DIR   # 20000-row variants for live parity
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = os.path.join(HERE, "fitted")
CASE_NAMES = ["tabular", "ordinal", "scalers", "imputed", "penguins"]


def write(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join("" if v is None else str(v) for v in r) + "\n")


def tabular(path, n=400, seed=11):
    rng = random.Random(seed)
    cats = ["apple"] * 30 + ["banana"] * 20 + ["café"] * 12 + ["ümlaut"] * 6 + ["zeta"] * 3
    rows = []
    for i in range(n):
        price = None if rng.random() < 0.1 else repr(round(rng.uniform(1, 500), 2))
        qty = None if rng.random() < 0.05 else rng.randint(0, 20)
        cat = None if rng.random() < 0.05 else rng.choice(cats)
        if i < 3:  # rare categories: once and twice
            cat = ["rare1", "rare2", "rare2"][i]
        flag = "true" if rng.random() < 0.3 else "false"
        note = '"note, %d"' % i if i % 7 == 0 else "n%d" % i
        rows.append([i, price, qty, cat, flag, note])
    write(path, ["id", "price", "qty", "category", "flag", "note"], rows)


def ordinal(path, seed=12):
    rng = random.Random(seed)
    grades = ["a"] * 6 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3 + ["e"] * 2 + ["f"]
    rows = []
    for i in range(len(grades) * 4):
        g = grades[i % len(grades)]
        level = [1, 1, 1, 2, 2, 3, 10, 10, 10, 10, -4, None, None][rng.randrange(13)]
        color = ["red", "red", "blue", "green", "blue", "red", "pink"][i % 7]
        rows.append([i, g, level, color])
    write(path, ["id", "grade", "level", "color"], rows)


def scalers(path, n=3000, seed=13):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        big = repr(1e9 + rng.uniform(-1e-3, 1e-3))
        dup = 5.0 if rng.random() < 0.7 else round(rng.uniform(0, 10), 3)
        const = 3.3
        wide = repr(rng.gauss(0, 1) * 1e12)
        neg = repr(-abs(rng.gauss(0, 1))) if i % 50 else "-0.0"
        small = repr(1e-9 * rng.gauss(0, 1))
        s2 = repr(rng.gauss(100, 15))
        r2 = repr(rng.expovariate(0.1))
        r3 = rng.randint(-50, 50)
        rows.append([i, big, dup, const, wide, neg, small, s2, r2, r3])
    write(path, ["id", "big", "dup", "const", "wide", "neg", "small", "s2", "r2", "r3"], rows)


def imputed(path, n=500, seed=14):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x = None if rng.random() < 0.2 else repr(rng.choice([1.5, 2.5, 2.5, 7.0, rng.uniform(0, 9)]))
        y = None if rng.random() < 0.1 else repr(rng.gauss(10, 3))
        z = None if rng.random() < 0.1 else rng.choice([4, 4, 8, -2, 0])
        w = None if rng.random() < 0.3 else repr(rng.uniform(-5, 5))
        cat = None if rng.random() < 0.1 else rng.choice(["p", "q", "q", "r"])
        keep = rng.choice(["k1", "k2"])
        rows.append([i, x, y, z, w, cat, keep])
    write(path, ["id", "x", "y", "z", "w", "cat", "keep"], rows)


def penguins(target):
    try:
        import palmerpenguins  # noqa: PLC0415

        src = os.path.join(os.path.dirname(palmerpenguins.__file__), "data", "penguins.csv")
        shutil.copyfile(src, target)
    except ImportError:
        if not os.path.exists(target):
            raise SystemExit("pip install palmerpenguins (tests/requirements.txt) to fetch the data")


GENERATORS = {"tabular": tabular, "ordinal": ordinal, "scalers": scalers, "imputed": imputed, "penguins": penguins}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", help="write 20000-row variants of tabular, scalers, imputed into this folder")
    args = ap.parse_args()
    if args.large:
        os.makedirs(args.large, exist_ok=True)
        tabular(os.path.join(args.large, "tabular.csv"), n=20000, seed=21)
        scalers(os.path.join(args.large, "scalers.csv"), n=20000, seed=23)
        imputed(os.path.join(args.large, "imputed.csv"), n=20000, seed=24)
        return 0
    ref = os.path.join(ROOT, "tests", "parity", "fitted_reference.py")
    for name in CASE_NAMES:
        csv = os.path.join(CASES, name + ".csv")
        if name == "penguins":
            csv = os.path.join(ROOT, "sample_data", "penguins.csv")
        GENERATORS[name](csv)
        out = os.path.join(CASES, name + ".expected.json")
        subprocess.run(
            [sys.executable, ref, "reference", "--pipeline", os.path.join(CASES, name + ".toml"), "--input", csv, "--out", out],
            check=True,
        )
        print("wrote %s, %s" % (os.path.relpath(csv, ROOT), os.path.relpath(out, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
