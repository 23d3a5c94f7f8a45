"""Paired replay speed: this checkout against an earlier commit, in one process, run alternately.

On a shared machine a figure moves by tens of percent between identical runs, so "before" and "after" measured
minutes apart say little. This loads the package as it was at ``--against`` (extracted with ``git archive`` into a
temporary directory and imported as ``dynscaling_old``; every import inside the package is relative) next to the
current one, warms both on every seed used, then alternates one ``replay`` of each on the same synthetic pool
(``replay_speed.py``'s) and seed, and reports each side's median samples per CPU second and the median of the
pairs' ratios. Both sides must return the same answers, or it stops.

    python benchmarks/replay_speed_paired.py [--against 891b12c] [--strategy dynscaling-parallel] [--pairs 8]
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

import dynscaling
from dynscaling.pools import Pool
from replay_speed import synthetic_pool

ROOT = Path(__file__).resolve().parent.parent


def load_old(revision: str, into: Path) -> ModuleType:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src/dynscaling"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        # our own repository's archive; the "data" filter where this Python has it (3.10.12+, 3.11.4+)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # noqa: S202
    (into / "src" / "dynscaling").rename(into / "dynscaling_old")
    sys.path.insert(0, str(into))
    return importlib.import_module("dynscaling_old")


def rate(package: ModuleType, pool: Pool, strategy: str, samples: int, seed: int) -> tuple[float, list[str | None]]:
    cpu = time.process_time()
    result = package.replay(pool, strategy, package.Budget(samples=samples), seed=seed)
    return result.samples / (time.process_time() - cpu), [r.answer for r in result.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="891b12c", help="the commit to compare with")
    parser.add_argument("--strategy", default="dynscaling-parallel")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=16, help="samples per question")
    args = parser.parse_args()
    pool = synthetic_pool(args.questions, 48)
    samples = int(args.budget * args.questions)
    with tempfile.TemporaryDirectory() as folder:
        old = load_old(args.against, Path(folder))
        seeds = range(min(3, args.pairs))
        for package in (old, dynscaling):  # the answer model's caches are per process: warm both alike
            for seed in seeds:
                rate(package, pool, args.strategy, samples, seed)
        before: list[float] = []
        after: list[float] = []
        for pair in range(args.pairs):
            seed = pair % len(seeds)
            old_rate, old_answers = rate(old, pool, args.strategy, samples, seed)
            new_rate, new_answers = rate(dynscaling, pool, args.strategy, samples, seed)
            if old_answers != new_answers:
                raise SystemExit(f"seed {seed}: the two versions answer differently")
            before.append(old_rate)
            after.append(new_rate)
    ratios = [b / a for a, b in zip(before, after, strict=True)]
    print(f"{args.strategy}: {args.against} median {statistics.median(before):,.0f} samples per CPU second, now "
          f"{statistics.median(after):,.0f}; paired ratio median {statistics.median(ratios):.2f} (min "
          f"{min(ratios):.2f}, max {max(ratios):.2f}) over {args.pairs} pairs; load average "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
