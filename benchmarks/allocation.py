"""Allocation benchmark on the replay pools: is the bandit at least as good as every parallel baseline?

For every pool in ../shared/data/pools (or --pool), over --seeds seeds:

1. self-consistency, dynscaling-parallel (defaults) and the oracle at budgets {2,3,4,6,8,12,16} (paired: the same
   seed gives every strategy the same sample order), with the paired difference bandit - SC and its 95% interval;
2. ESC (w in 2,3,4,6) and adaptive-consistency (threshold in 0.8,0.9,0.95,0.99) swept over caps, each point
   compared with the bandit run at exactly that point's spend (paired over seeds);
3. the headline: the fewest samples per question with which each strategy comes within 0.005 of
   self-consistency over the whole pool.

Writes a Markdown report (tables for BENCHMARKS.md), a JSON file of every point and one plot per pool.

    python benchmarks/allocation.py --seeds 20 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dynscaling import load_pool
from dynscaling.bench import BenchPoint, mean_ci95, run_bench
from dynscaling.pools import Pool
from dynscaling.report import plot_accuracy

BUDGETS = [2, 3, 4, 6, 8, 12, 16]
FINE = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48]
BANDIT = "dynscaling-parallel"
EQUAL_SPEND_BANDIT = "dynscaling-parallel:stop_max=0.999"
TOLERANCE = 0.005


def _shared_pools() -> list[Path]:
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "pools"
    return sorted(folder.glob("*.jsonl.gz"))


def _paired(a: BenchPoint, b: BenchPoint) -> tuple[float, float]:
    return mean_ci95([x - y for x, y in zip(a.accuracies, b.accuracies, strict=True)])


def bench_pool(pool: Pool, seeds: int) -> tuple[list[BenchPoint], list[str]]:
    lines: list[str] = []
    full_budget = pool.max_samples
    budgets = [b for b in BUDGETS if b <= full_budget]
    fine = sorted({b for b in FINE if b <= full_budget} | set(budgets))
    main = run_bench([pool], ["sc", BANDIT, "oracle"], fine, seeds)
    full = run_bench([pool], ["sc"], [float(full_budget)], seeds)[0]
    get = {(p.strategy, p.budget): p for p in main}
    lines.append(f"### {pool.name} ({len(pool.entries)} questions x {pool.samples_per_question:g} samples; "
                 f"SC over the whole pool {full.accuracy_mean:.4f})\n")
    lines.append("| budget | SC | dynscaling-parallel | bandit - SC (paired) | oracle | bandit samples/q spent |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for b in budgets:
        sc, bandit, oracle = get[("sc", b)], get[(BANDIT, b)], get[("oracle", b)]
        diff, ci = _paired(bandit, sc)
        verdict = "" if diff + ci >= 0 else " **below**"
        lines.append(f"| {b} | {sc.accuracy_mean:.4f} ± {sc.accuracy_ci95:.4f} | {bandit.accuracy_mean:.4f} ± "
                     f"{bandit.accuracy_ci95:.4f} | {diff:+.4f} ± {ci:.4f}{verdict} | {oracle.accuracy_mean:.4f} | "
                     f"{bandit.samples_per_question:.2f} |")
    # Baselines swept over their parameters, each compared with the bandit run at exactly its spend (same seeds,
    # so the comparison is paired). The bandit there anneals its settle threshold (stop_max=0.999) so that it can
    # spend as much as the baseline did; with the default it would stop earlier, spending less.
    sweeps: list[BenchPoint] = []
    for w in (2, 3, 4, 6):
        sweeps += run_bench([pool], [f"esc:w={w}"], [c for c in fine if c >= w], seeds)
    for threshold in (0.8, 0.9, 0.95, 0.99):
        sweeps += run_bench([pool], [f"adaptive:threshold={threshold}"], fine, seeds)
    worse, better, equal_spend = [], 0, []
    for p in sweeps:
        twin = run_bench([pool], [EQUAL_SPEND_BANDIT], [p.samples_per_question], seeds)[0]
        equal_spend.append(twin)
        diff, ci = _paired(twin, p)
        if diff + ci < 0:
            worse.append((p, twin, diff, ci))
        elif diff - ci > 0:
            better += 1
    lines.append("")
    lines.append(f"ESC (w = 2, 3, 4, 6) and adaptive-consistency (threshold = 0.8, 0.9, 0.95, 0.99) swept over caps: "
                 f"{len(sweeps)} points. At each point's spend, the bandit is significantly better at {better}, "
                 f"within the interval at {len(sweeps) - better - len(worse)}, significantly worse at {len(worse)}.")
    for p, twin, diff, ci in worse:
        lines.append(f"- {p.strategy} cap {p.budget:g}: {p.accuracy_mean:.4f} at {p.samples_per_question:.2f} "
                     f"samples/q; bandit {twin.accuracy_mean:.4f} ({diff:+.4f} ± {ci:.4f})")
    # Headline
    target = full.accuracy_mean - TOLERANCE
    lines.append("")
    lines.append(f"Samples per question to reach SC's whole-pool accuracy within {TOLERANCE} (target {target:.4f}):")
    curves: dict[str, list[BenchPoint]] = {}
    for p in main + sweeps + equal_spend:
        curves.setdefault(p.strategy.split(":")[0] if p.strategy.startswith(("esc", "adaptive")) else p.strategy,
                          []).append(p)
    for name, curve in curves.items():
        reached = [p.samples_per_question for p in curve if p.accuracy_mean >= target]
        best = min(reached) if reached else None
        share = "" if best is None else f" ({best / pool.samples_per_question:.0%} of the pool)"
        lines.append(f"- {name}: {'not reached' if best is None else f'{best:.2f}'}{share}")
    lines.append("")
    return main + sweeps + equal_spend + [full], lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", action="append", type=Path, help="pool file (default: all of ../shared)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    paths = args.pool or _shared_pools()
    if not paths:
        sys.exit("no pools: pass --pool or put ../shared/data/pools beside the project")
    args.out.mkdir(parents=True, exist_ok=True)
    report = [f"Seeds: {args.seeds}. Accuracy is mean ± 95% t-interval over seeds (sample orders).\n"]
    records: list[dict[str, object]] = []
    started = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        pool = load_pool(path)
        points, lines = bench_pool(pool, args.seeds)
        report += lines
        records += [p.to_dict() for p in points]
        plot_accuracy([p for p in points if p.strategy in ("sc", BANDIT, "oracle", "esc:w=4",
                                                           "adaptive:threshold=0.95")], args.out)
        print(f"{pool.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    report.append(f"Total time {time.perf_counter() - started:.0f} s.")
    (args.out / "allocation.md").write_text("\n".join(report) + "\n")
    (args.out / "allocation.json").write_text(json.dumps(records) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
