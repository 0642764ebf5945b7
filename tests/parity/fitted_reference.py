#!/usr/bin/env python3
"""scikit-learn reference for prep's fitted steps (CONTRACT §9).

From a pipeline file and its input CSV, builds what scikit-learn does for
it, independently of prep: pandas reads the CSV (prep's null tokens),
rows with a null in a checked column are dropped, the columns of every
[impute]/[encode]/[scale] group are resolved from the pandas dtypes, and a
ColumnTransformer of Pipeline([SimpleImputer, OneHotEncoder/OrdinalEncoder
or a scaler]) per column (plus MissingIndicator(features="all")) is fitted
on the cleaned table.

    fitted_reference.py reference --pipeline P.toml --input in.csv --out expected.json
        writes the fitted attributes (transform.json's step layout, with a
        tolerance per attribute) and the transformed rows (golden files)
    fitted_reference.py check --pipeline P.toml --input in.csv --output OUT_DIR [--rebuild]
                              [--new new.csv --applied APPLY_DIR]
        compares prep's OUT_DIR/transform.json and shards with the live
        reference; --rebuild also checks python/prep_sklearn.py's rebuild
        against prep's rows; --new/--applied compare `prep apply` on new data
        (unknown categories, nulls, values out of the fitted range) with the
        reference's transform of it; prints a JSON report

Exit codes: 0 match, 1 mismatch, 2 usage, 3 pandas/scikit-learn missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tomllib
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NA_VALUES = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]

try:
    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )
except ImportError as e:  # pragma: no cover
    sys.stderr.write("fitted_reference.py: needs pandas and scikit-learn (%s)\n" % e)
    sys.exit(3)

warnings.filterwarnings("ignore", category=UserWarning)


def groups(cfg, kind):
    g = cfg.get(kind)
    if g is None:
        return [{}] if kind == "scale" else []
    return g if isinstance(g, list) else [g]


def read(path):
    df = pd.read_csv(path, keep_default_na=False, na_values=NA_VALUES)
    for c in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            df[c] = df[c].astype(object)
    return df


def numeric(df, c):
    return pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])


def resolve(cfg, df):
    """Column groups as prep resolves them (input order)."""
    cols = list(df.columns)
    order = lambda xs: [c for c in cols if c in xs]  # noqa: E731
    encode = [order(g["columns"]) for g in groups(cfg, "encode")]
    encoded = {c for g in encode for c in g}
    listed = {c for g in groups(cfg, "impute") if isinstance(g["columns"], list) for c in g["columns"]}
    impute = []
    for g in groups(cfg, "impute"):
        if isinstance(g["columns"], list):
            impute.append(order(g["columns"]))
        else:
            ex = set(g.get("exclude", []))
            impute.append([c for c in cols if numeric(df, c) and c not in ex and c not in listed])
    slisted = {c for g in groups(cfg, "scale") if isinstance(g.get("columns"), list) for c in g["columns"]}
    scale = []
    for g in groups(cfg, "scale"):
        if isinstance(g.get("columns", "numeric"), list):
            scale.append(order(g["columns"]))
        else:
            ex = set(g.get("exclude", []))
            scale.append([c for c in cols if numeric(df, c) and c not in ex and c not in encoded and c not in slisted])
    imputed = {c for g in impute for c in g}
    dn = cfg.get("clean", {}).get("drop_nulls", "any")
    checked = [c for c in cols if c not in imputed] if dn == "any" else ([] if dn == "none" else dn)
    return impute, encode, scale, checked


def label(v):
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def py(v):
    """numpy scalars → JSON-able Python values."""
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else f
    return v


def scaler_of(g):
    m = g.get("method", "standard")
    if m == "standard":
        return StandardScaler(with_mean=g.get("with_mean", True), with_std=g.get("with_std", True))
    if m == "minmax":
        return MinMaxScaler(feature_range=tuple(g.get("feature_range", [0.0, 1.0])), clip=g.get("clip", False))
    if m == "maxabs":
        return MaxAbsScaler()
    return RobustScaler(
        with_centering=g.get("with_centering", True),
        with_scaling=g.get("with_scaling", True),
        quantile_range=tuple(g.get("quantile_range", [25.0, 75.0])),
        unit_variance=g.get("unit_variance", False),
    )


def encoder_of(g):
    mf = g.get("min_frequency", 1)
    kw = {
        "handle_unknown": g.get("handle_unknown", "error"),
        "min_frequency": None if mf == 1 else mf,
        "max_categories": g.get("max_categories", 0) or None,
    }
    if g.get("method", "onehot") == "onehot":
        return OneHotEncoder(sparse_output=False, **kw)
    if kw["handle_unknown"] == "use_encoded_value":
        kw["unknown_value"] = g.get("unknown_value", -1)
    return OrdinalEncoder(**kw)


def reference(pipeline, input_csv):
    cfg = tomllib.load(open(pipeline, "rb"))
    df = read(input_csv)
    impute, encode, scale, checked = resolve(cfg, df)
    clean = df.dropna(subset=checked).reset_index(drop=True) if checked else df
    ig, eg, sg = groups(cfg, "impute"), groups(cfg, "encode"), groups(cfg, "scale")
    find = lambda gs, cs, c: next(((g, i) for i, (g, l) in enumerate(zip(gs, cs)) if c in l), (None, None))  # noqa: E731
    out_cols = cfg.get("output", {}).get("columns") or list(df.columns)
    rename = cfg.get("output", {}).get("rename", {})
    transformers, names, chains, col_tol = [], [], {}, {}
    for c in out_cols:
        imp, ii = find(ig, impute, c)
        enc, ei = find(eg, encode, c)
        sc, si = find(sg, scale, c)
        steps = []
        if imp is not None:
            kw = {"strategy": imp.get("strategy", "mean")}
            if kw["strategy"] == "constant":
                kw["fill_value"] = imp["fill_value"]
                kw["keep_empty_features"] = True
            steps.append(("impute", SimpleImputer(**kw)))
        if enc is not None:
            steps.append(("encode", encoder_of(enc)))
        if sc is not None and enc is None:
            steps.append(("scale", scaler_of(sc)))
        if steps:
            p = Pipeline(steps)
            transformers.append((c, p, [c]))
            chains[c] = (p, (imp, ii), (enc, ei), (sc, si))
        else:
            transformers.append((c, "passthrough", [c]))
        if imp is not None and imp.get("add_indicator", False):
            transformers.append((c + "_missing", MissingIndicator(features="all"), [c]))
    ct = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)
    X = ct.fit_transform(clean)
    # The ColumnTransformer fits clones: read the fitted ones.
    for c in list(chains):
        chains[c] = (ct.named_transformers_[c],) + chains[c][1:]

    # prep's names for the output columns.
    for name, est, cols in ct.transformers_:
        if name == "remainder":
            continue
        c = cols[0]
        to = rename.get(c, c)
        if isinstance(est, MissingIndicator):
            names.append(to + "_missing")
        elif isinstance(est, Pipeline) and "encode" in est.named_steps and isinstance(est.named_steps["encode"], OneHotEncoder):
            e = est.named_steps["encode"]
            cats = list(e.categories_[0])
            inf = e.infrequent_categories_[0] if e._infrequent_enabled else None
            inf = [] if inf is None else list(inf)
            names.extend(to + "_" + label(v) for v in cats if v not in inf)
            if inf:
                names.append(to + "_infrequent_sklearn")
        else:
            names.append(to)
    # Fitted attributes in transform.json's step layout.
    steps = []
    for gi, (g, cols) in enumerate(zip(ig, impute)):
        st = [py(chains[c][0].named_steps["impute"].statistics_[0]) for c in cols if c in chains]
        exact = g.get("strategy", "mean") != "mean"
        steps.append({"step": "impute", "columns": cols, "statistics": st, "tolerance": {"statistics": 0.0 if exact else 1e-12}})
    for g, cols in zip(eg, encode):
        cats, infs = [], []
        for c in cols:
            e = chains[c][0].named_steps["encode"]
            cats.append([py(v) for v in e.categories_[0]])
            inf = e.infrequent_categories_[0] if e._infrequent_enabled else None
            infs.append(None if inf is None else [py(v) for v in inf])
        steps.append({"step": "encode", "columns": cols, "categories": cats, "infrequent_categories": infs, "tolerance": {}})
    for g, cols in zip(sg, scale):
        m = g.get("method", "standard")
        ests = [chains[c][0].named_steps["scale"] for c in cols]
        mean_imputed = any(
            chains[c][1][0] is not None and chains[c][1][0].get("strategy", "mean") == "mean" for c in cols
        )
        soft = 1e-12 if mean_imputed else 0.0
        d = {"step": "scale", "method": m, "columns": cols}
        attrs = {
            "standard": [("mean", 1e-12), ("var", 1e-10), ("scale", 1e-10)],
            "minmax": [("data_min", soft), ("data_max", soft), ("data_range", 1e-12), ("scale", 1e-12), ("min", 1e-12)],
            "maxabs": [("max_abs", soft), ("scale", soft)],
            "robust": [("center", soft), ("scale", soft if not g.get("unit_variance") else 1e-12)],
        }[m]
        tol = {}
        for k, t in attrs:
            vals = [getattr(e, k + "_") for e in ests]
            d[k] = None if any(v is None for v in vals) else [py(v[0]) for v in vals]
            tol[k] = t
        if m == "standard":
            seen = [int(np.max(e.n_samples_seen_)) for e in ests]
            d["n_samples_seen"] = (seen[0] if seen else 0) if len(set(seen)) <= 1 else seen
            for c, e in zip(cols, ests):
                if e.scale_ is not None and e.mean_ is not None:
                    col_tol[rename.get(c, c)] = 1e-12 * abs(float(e.mean_[0])) / float(e.scale_[0])
        d["tolerance"] = tol
        steps.append(d)
    rows = [[py(v) for v in r] for r in X.tolist()]
    return {
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "n_rows_fitted": len(clean),
        "steps": steps,
        "output_columns": names,
        "row_tolerance": col_tol,
        "rows": rows,
        "clean": clean,
        "ct": ct,
    }


def prep_rows(out_dir):
    manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
    rows = []
    for shard in manifest[1:]:
        with open(os.path.join(out_dir, shard)) as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def close(a, b, rel):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def compare_rows(names, want, got_rows, extra):
    problems, worst = [], 0.0
    if len(want) != len(got_rows):
        return ["row count: reference %d, prep %d" % (len(want), len(got_rows))], worst
    for i, (w, g) in enumerate(zip(want, got_rows)):
        if list(g.keys()) != names:
            return ["row %d: prep columns %s, reference %s" % (i, list(g.keys()), names)], worst
        for name, x in zip(names, w):
            y = g[name]
            if isinstance(x, str) or isinstance(y, str) or x is None or y is None:
                if x != y and not (x is None and y is None):
                    problems.append("row %d %s: reference %r, prep %r" % (i, name, x, y))
                continue
            d = abs(float(x) - float(y))
            worst = max(worst, d)
            if d > 1e-9 * max(1.0, abs(float(x))) + extra.get(name, 0.0):
                problems.append("row %d %s: reference %r, prep %r" % (i, name, x, y))
        if len(problems) > 20:
            break
    return problems, worst


def check(args):
    ref = reference(args.pipeline, args.input)
    artifact = json.load(open(os.path.join(args.output, "transform.json")))
    problems = []
    if artifact["n_rows_fitted"] != ref["n_rows_fitted"]:
        problems.append("n_rows_fitted: reference %d, prep %d" % (ref["n_rows_fitted"], artifact["n_rows_fitted"]))
    if len(artifact["steps"]) != len(ref["steps"]):
        problems.append("steps: reference %d, prep %d" % (len(ref["steps"]), len(artifact["steps"])))
    for i, (want, got) in enumerate(zip(ref["steps"], artifact["steps"])):
        for k, v in want.items():
            if k == "tolerance":
                continue
            if not close(v, got.get(k), want["tolerance"].get(k, 0.0)):
                problems.append("step %d (%s) %s: reference %r, prep %r" % (i, want["step"], k, v, got.get(k)))
    if artifact["output_columns"] != ref["output_columns"]:
        problems.append("output_columns: reference %s, prep %s" % (ref["output_columns"], artifact["output_columns"]))
    rows = prep_rows(args.output)
    p, worst = compare_rows(ref["output_columns"], ref["rows"], rows, ref["row_tolerance"])
    problems += p
    report = {"rows": len(rows), "max_abs_diff": worst, "versions": ref["versions"]}
    if args.rebuild:
        sys.path.insert(0, os.path.join(ROOT, "python"))
        import prep_sklearn  # noqa: PLC0415

        ct, names = prep_sklearn.build(artifact, ref["clean"])
        X = ct.transform(ref["clean"])
        want = [[py(v) for v in r] for r in X.tolist()]
        p, rworst = compare_rows(names, want, rows, {})
        problems += ["rebuild: " + x for x in p]
        report["rebuild_max_abs_diff"] = rworst
    if args.new:
        X = ref["ct"].transform(read(args.new))
        want = [[py(v) for v in r] for r in X.tolist()]
        p, aworst = compare_rows(ref["output_columns"], want, prep_rows(args.applied), ref["row_tolerance"])
        problems += ["apply: " + x for x in p]
        report["apply_max_abs_diff"] = aworst
    report["ok"] = not problems
    report["problems"] = problems[:30]
    print(json.dumps(report, indent=1))
    return 0 if not problems else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reference")
    r.add_argument("--pipeline", required=True)
    r.add_argument("--input", required=True)
    r.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--pipeline", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    c.add_argument("--rebuild", action="store_true")
    c.add_argument("--new", help="new data that prep apply transformed")
    c.add_argument("--applied", help="prep apply's output folder for --new")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        return check(args)
    ref = reference(args.pipeline, args.input)
    ref.pop("clean")
    ref.pop("ct")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps(ref, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
