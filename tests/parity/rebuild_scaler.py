"""Rebuild a scikit-learn StandardScaler from prep's scaler.json (the README
snippet, verbatim between the markers) and check that it transforms the
input to prep's output within 1e-9.

usage: rebuild_scaler.py SCALER_JSON INPUT_CSV OUTPUT_DIR
Exits 0 when every scaled value matches, 1 otherwise.
"""
import json
import pathlib
import sys

import numpy as np
import pandas as pd

scaler_path, input_csv, out_dir = sys.argv[1:4]

# --- README snippet begin ---
import json, numpy as np
from sklearn.preprocessing import StandardScaler

a = json.load(open(scaler_path))
s = StandardScaler(with_mean=a["with_mean"], with_std=a["with_std"])
s.mean_ = np.array(a["mean"])
s.var_ = None if a["var"] is None else np.array(a["var"])
s.scale_ = None if a["scale"] is None else np.array(a["scale"])
s.n_samples_seen_ = a["n_samples_seen"]
s.feature_names_in_ = np.array(a["feature_names"], dtype=object)
s.n_features_in_ = len(a["feature_names"])
# --- README snippet end ---

nulls = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]
df = pd.read_csv(input_csv, keep_default_na=False, na_values=nulls).dropna()
expected = s.transform(df[list(s.feature_names_in_)])

manifest = json.loads((pathlib.Path(out_dir) / "manifest.json").read_text())
rows = []
for shard in manifest[1:]:
    with open(pathlib.Path(out_dir) / shard) as f:
        rows.extend(json.loads(line) for line in f)
if len(rows) != len(expected):
    sys.exit(f"row count differs: prep {len(rows)} vs sklearn {len(expected)}")
worst = 0.0
for i, row in enumerate(rows):
    for j, name in enumerate(s.feature_names_in_):
        worst = max(worst, abs(row[name] - expected[i][j]))
print(f"rows={len(rows)} features={len(s.feature_names_in_)} max_abs_diff={worst:.3e}")
sys.exit(0 if worst <= 1e-9 else 1)
