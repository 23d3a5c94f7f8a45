"""Reference figures of the replay pools: self-consistency over each whole pool and single-sample accuracy, mean
over seeds, with the recorded answers read both ways (``--answers upstream`` and ``extract``).

    python benchmarks/reference_figures.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dynscaling import load_pool
from dynscaling.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "pools"
    paths = sorted(folder.glob("*.jsonl.gz"))
    if not paths:
        sys.exit(f"no pools in {folder}")
    for path in paths:
        cells = []
        for mode in ("upstream", "extract"):
            pool = load_pool(path, answers=mode)
            whole = run_bench([pool], ["sc"], [float(pool.max_samples)], args.seeds)[0]
            single = run_bench([pool], ["single"], [1.0], args.seeds)[0]
            cells.append(f"{mode}: {whole.accuracy_mean:.4f} / {single.accuracy_mean:.4f}")
        print(f"{pool.name:42s} " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
