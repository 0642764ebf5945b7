"""Rebuild prep's ``transform.json`` as a fitted scikit-learn ColumnTransformer.

    import json, pandas as pd, prep_sklearn
    df = pd.read_csv("new.csv")
    ct, names = prep_sklearn.build(json.load(open("out/tabular/transform.json")), df)
    X = ct.transform(df)        # X's columns are prep's output columns: `names`

Needs only the standard library, numpy and scikit-learn (>= 1.6, for
``sklearn.frozen.FrozenEstimator``; written against 1.9); the table you
transform is yours (a pandas or other DataFrame with the input columns;
``build`` fits the ColumnTransformer on its first row, pandas-style
``iloc``, which changes nothing). Each input column
gets one ``Pipeline`` of its steps (``SimpleImputer`` → ``OneHotEncoder`` /
``OrdinalEncoder`` or a scaler), a ``MissingIndicator(features="all")``
follows a column imputed with ``add_indicator``, other output columns pass
through, all in prep's output order (``output_columns``; renames are only
names). The fitted attributes are prep's: imputers and encoders are fitted
on a few synthetic rows chosen to give exactly the artifact's statistics,
categories and infrequent groups; scalers get their attributes set. Every
estimator is wrapped in ``FrozenEstimator``, so fitting the
ColumnTransformer (on any rows with the input columns) changes nothing.
The ColumnTransformer has ``verbose_feature_names_out=False``; its
``get_feature_names_out()`` are scikit-learn's names (``c_True`` for a
bool category), ``names`` are prep's.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
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

INFREQUENT = "infrequent_sklearn"


def _column(values, dtype):
    if dtype in ("float64", "int64"):
        return np.array(values, dtype=np.float64)
    return np.array(values, dtype=object)


def _fitted(est, data, name, first):
    """Fits `est` on one column; the first step of a chain is told the
    column's name (it will see it in the DataFrame the caller transforms)."""
    est.fit(data.reshape(-1, 1))
    if first:
        est.feature_names_in_ = np.array([name], dtype=object)
    return est


def _imputer(step, i, name, dtype, first):
    stat = step["statistics"][i]
    kw = {"strategy": step["strategy"]}
    if step["strategy"] == "constant":
        kw["fill_value"] = stat
    # [stat, stat, missing]: its mean, median, mode and constant are `stat`.
    imp = _fitted(SimpleImputer(**kw), _column([stat, stat, np.nan], dtype), name, first)
    return imp, ("float64" if isinstance(stat, float) else dtype)


def _encoder(step, i, name, dtype, first):
    cats = step["categories"][i]
    infrequent = step["infrequent_categories"][i] or []
    # Frequent categories twice, infrequent ones once, with min_frequency=2:
    # scikit-learn then finds exactly the artifact's infrequent group.
    rows = []
    for c in cats:
        rows.extend([c] if c in infrequent else [c, c])
    kw = {"categories": [cats], "handle_unknown": step["handle_unknown"]}
    if infrequent:
        kw["min_frequency"] = 2
    if step["method"] == "onehot":
        enc = OneHotEncoder(sparse_output=False, **kw)
    else:
        if step["handle_unknown"] == "use_encoded_value":
            kw["unknown_value"] = step["unknown_value"]
        enc = OrdinalEncoder(**kw)
    if dtype in ("float64", "int64"):
        data = np.array(rows, dtype=np.float64)
    elif dtype == "bool":
        data = np.array(rows, dtype=bool)
    else:
        data = np.array(rows, dtype=object)
    return _fitted(enc, data, name, first)


def _scaler(step, i, name, first):
    m = step["method"]
    if m == "standard":
        s = StandardScaler(with_mean=step["with_mean"], with_std=step["with_std"])
    elif m == "minmax":
        s = MinMaxScaler(feature_range=tuple(step["feature_range"]), clip=step["clip"])
    elif m == "maxabs":
        s = MaxAbsScaler()
    else:
        s = RobustScaler(
            with_centering=step["with_centering"],
            with_scaling=step["with_scaling"],
            quantile_range=tuple(step["quantile_range"]),
            unit_variance=step["unit_variance"],
        )
    _fitted(s, np.array([0.0, 1.0]), name, first)
    arr = lambda k: None if step[k] is None else np.array([step[k][i]], dtype=np.float64)  # noqa: E731
    if m == "standard":
        s.mean_, s.var_, s.scale_ = arr("mean"), arr("var"), arr("scale")
        seen = step["n_samples_seen"]
        s.n_samples_seen_ = seen[i] if isinstance(seen, list) else seen
    elif m == "minmax":
        for k in ("data_min", "data_max", "data_range", "scale", "min"):
            setattr(s, k + "_", arr(k))
        s.n_samples_seen_ = step["n_samples_seen"]
    elif m == "maxabs":
        s.max_abs_, s.scale_ = arr("max_abs"), arr("scale")
        s.n_samples_seen_ = step["n_samples_seen"]
    else:
        s.center_, s.scale_ = arr("center"), arr("scale")
    return s


def _chain(artifact, name):
    """The fitted Pipeline of every step that reads input column `name`."""
    dtypes = {c["name"]: c["dtype"] for c in artifact["input_columns"]}
    dtype = dtypes.get(name, "string")
    steps = []
    for step in artifact["steps"]:
        if name not in step["columns"]:
            continue
        i = step["columns"].index(name)
        first = not steps
        if step["step"] == "impute":
            est, dtype = _imputer(step, i, name, dtype, first)
        elif step["step"] == "encode":
            est = _encoder(step, i, name, dtype, first)
        else:
            est = _scaler(step, i, name, first)
        steps.append((step["step"], est))
    return Pipeline(steps)


def _blocks(artifact):
    """Output names per one-hot encoded input column (before renames)."""
    out = {}
    for step in artifact["steps"]:
        if step["step"] != "encode" or step["method"] != "onehot":
            continue
        names = iter(step["feature_names_out"])
        for col, inf in zip(step["columns"], step["infrequent_categories"]):
            n = len(step["categories"][step["columns"].index(col)]) - len(inf or [])
            out[col] = [next(names) for _ in range(n + (1 if inf else 0))]
    return out


def build(artifact, sample):
    """(fitted ColumnTransformer, output column names) for a transform.json;
    `sample`: a DataFrame with the input columns (its first row is used)."""
    if artifact.get("format") != "prep-transform":
        raise ValueError("not a prep transform.json (format %r)" % artifact.get("format"))
    step_cols = [c for s in artifact["steps"] for c in s["columns"]]
    indicators = {
        c + "_missing": c
        for s in artifact["steps"]
        if s["step"] == "impute" and s["add_indicator"]
        for c in s["columns"]
    }
    blocks = _blocks(artifact)
    block_of = {n: c for c, names in blocks.items() for n in names}
    transformers = []
    sources = artifact["output_sources"]
    k = 0
    while k < len(sources):
        p = sources[k]
        if p in block_of:
            c = block_of[p]
            transformers.append(("%d_%s" % (k, c), FrozenEstimator(_chain(artifact, c)), [c]))
            k += len(blocks[c])
            continue
        if p in indicators and p not in step_cols:
            ind = MissingIndicator(features="all", missing_values=np.nan)
            _fitted(ind, np.array([np.nan, 0.0]), indicators[p], True)
            transformers.append(("%d_%s" % (k, p), FrozenEstimator(ind), [indicators[p]]))
        elif p in step_cols:
            transformers.append(("%d_%s" % (k, p), FrozenEstimator(_chain(artifact, p)), [p]))
        else:
            transformers.append(("%d_%s" % (k, p), "passthrough", [p]))
        k += 1
    ct = ColumnTransformer(
        transformers, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )
    ct.fit(_safe_row(artifact, sample))
    return ct, list(artifact["output_columns"])


def _safe_row(artifact, sample):
    """The first row of `sample` with known values in the encoded and imputed
    columns, so that transforming it (which fitting does) cannot fail."""
    row = sample.iloc[:1].copy()
    for step in artifact["steps"]:
        for i, c in enumerate(step["columns"]):
            if step["step"] == "encode" and step["categories"][i]:
                row[c] = [step["categories"][i][0]]
            elif step["step"] == "impute" and c not in _encoded(artifact):
                row[c] = [step["statistics"][i]]
    return row


def _encoded(artifact):
    return {c for s in artifact["steps"] if s["step"] == "encode" for c in s["columns"]}
