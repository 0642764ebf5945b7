"""The floor: Polars parses the input once and sums the numeric columns.
Nothing is cleaned, scaled or written; no job can read its input faster
than this. (For Parquet input only the numeric columns are decoded.)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import NULL_VALUES, parse_args  # noqa: E402


def main() -> int:
    args = parse_args(__doc__, output=False)
    import polars as pl

    if args.input_format == "csv":
        lf = pl.scan_csv(args.inputs, null_values=NULL_VALUES)
    else:
        lf = pl.scan_parquet(args.inputs)
    numeric = [c for c, t in lf.collect_schema().items() if t.is_numeric()]
    sums = lf.select([pl.col(c).sum() for c in numeric]).collect(engine="streaming")
    print(sums.row(0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
