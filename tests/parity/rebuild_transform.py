"""Rebuild prep's transform.json as a fitted scikit-learn ColumnTransformer
(the README snippet, verbatim between the markers, using
python/prep_sklearn.py) and check that its transform gives prep's output
within 1e-9.

usage: rebuild_transform.py TRANSFORM_JSON INPUT_CSV OUTPUT_DIR
(the pipeline must drop no rows, e.g. pipelines/penguins.toml, with JSON
Lines output). Exits 0 when every value matches, 1 otherwise.
"""
import json
import pathlib
import sys

transform_path, input_csv, out_dir = sys.argv[1:4]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))

# --- README snippet begin ---
import json, pandas as pd
import prep_sklearn  # python/prep_sklearn.py: stdlib + numpy + scikit-learn

df = pd.read_csv(input_csv, keep_default_na=False, na_values=["", "NA", "N/A", "NULL", "null", "NaN", "nan"])
ct, names = prep_sklearn.build(json.load(open(transform_path)), df)
X = ct.transform(df)  # a fitted ColumnTransformer: prep's output columns `names`, in order
# --- README snippet end ---

manifest = json.loads((pathlib.Path(out_dir) / "manifest.json").read_text())
rows = []
for shard in manifest[1:]:
    with open(pathlib.Path(out_dir) / shard) as f:
        rows.extend(json.loads(line) for line in f)
if len(rows) != len(X):
    sys.exit(f"row count differs: prep {len(rows)} vs sklearn {len(X)}")
worst = 0.0
for i, row in enumerate(rows):
    if list(row) != names:
        sys.exit(f"row {i}: columns {list(row)} vs {names}")
    for j, name in enumerate(names):
        a, b = X[i][j], row[name]
        if isinstance(b, str) or isinstance(a, str):
            if a != b:
                sys.exit(f"row {i} {name}: sklearn {a!r} vs prep {b!r}")
            continue
        worst = max(worst, abs(float(a) - float(b)))
print(f"rows={len(rows)} columns={len(names)} max_abs_diff={worst:.3e}")
sys.exit(0 if worst <= 1e-9 else 1)
