"""Converts the generated CSV to Parquet (not timed): Polars streaming
``sink_parquet`` with its defaults (zstd), prep's null spellings read as
null, so NA/NaN fields are nulls in the Parquet file too."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import NULL_VALUES  # noqa: E402


def main() -> int:
    import polars as pl

    src, dst = sys.argv[1], sys.argv[2]
    tmp = dst + ".tmp"
    pl.scan_csv(src, null_values=NULL_VALUES).sink_parquet(tmp)
    os.replace(tmp, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
