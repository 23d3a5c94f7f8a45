"""Under a token budget, should the default rank questions per sample or per expected token? Paired over seeds.

For each batch (a pool of ../shared/data/pools, or several pools mixed into one batch) and each seed, the default
(``dynscaling-parallel``) runs under token budgets of 1.25 ... 5 *sample-equivalents* per question (a budget of
``b`` is ``b x questions x the pool's mean tokens per recorded sample``, prompt and completion), twice: as shipped
(a token budget caps the spend, the ranking is per sample) and with ``per_token=true`` (each question's index
divided by its expected cost of a sample). Spend is read back in the same unit, and at each equal spend (1.5, 2,
3, 4 sample-equivalents per question) the two are compared per seed, interpolated on each seed's curve as
``allocation.py`` does: ``per_token - default``, mean and 95% t-interval over seeds.

Replay pools record the text of each sample, not its tokens: the pools' costs are estimates (4 characters a
token, ``dynscaling.pools``), the same for both rankings.

    nice -n 10 python benchmarks/token_ranking.py --seeds 10 --out benchmarks/results/token_ranking
    python benchmarks/token_ranking.py --batch gpt4_gsm8k_x12 --batch 400:gpt4_gsm8k_x12+llama2-13b_gsm8k-400_pot_x48
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # allocation.py, beside this script

from allocation import Point, at_spend, mixed, resolve_pool, subset  # noqa: E402
from dynscaling import Budget, load_pool, replay  # noqa: E402
from dynscaling.bench import mean_ci95  # noqa: E402
from dynscaling.pools import Pool  # noqa: E402

BUDGETS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
SPENDS = (1.5, 2.0, 3.0, 4.0)
RANKINGS = {"default": "dynscaling-parallel", "per_token": "dynscaling-parallel:per_token=true"}
#: the batches of BENCHMARKS.md: every shared pool, then the three mixed batches of section 2
MIXES = ("400:gpt4_gsm8k_x12+llama2-13b_gsm8k-400_pot_x48",
         "100:gpt4_gsm8k_x12+qwen2.5-math-instruct_math-100_x8+chatgpt_date_natural-program_x10",
         "0:code-davinci-002_date_least-to-most_x40+gpt35-turbo_date_cot_t0.8_x20")


def batch_of(spec: str) -> Pool:
    """A pool file or name, or ``N:a+b+...``: the pools mixed into one batch, each cut to a seeded N-question
    subset (0: whole)."""
    if ":" not in spec:
        return load_pool(resolve_pool(spec))
    count, _, names = spec.partition(":")
    if not count.isdigit() or "+" not in names:
        sys.exit(f"--batch {spec!r}: expected a pool, or N:pool+pool (N questions of each, 0 for all)")
    pools = [load_pool(resolve_pool(name)) for name in names.split("+")]
    return mixed([subset(pool, int(count), 1) if int(count) else pool for pool in pools])


def mean_tokens(pool: Pool) -> float:
    return statistics.fmean(u.prompt_tokens + u.completion_tokens for e in pool.entries for u in e.usages)


def curve(pool: Pool, spec: str, seeds: int, budgets: tuple[float, ...]) -> list[Point]:
    questions, unit = len(pool.entries), mean_tokens(pool)
    points = []
    for budget in budgets:
        point = Point(f"budget={budget:g}")
        for seed in range(seeds):
            result = replay(pool, spec, Budget(tokens=round(budget * questions * unit)), seed=seed)
            point.spends.append(result.usage.total_tokens / (questions * unit))
            point.accuracies.append(result.accuracy or 0.0)
        points.append(point)
    return points


def compare(pool: Pool, seeds: int) -> dict[str, object]:
    budgets = tuple(b for b in BUDGETS if b <= pool.max_samples)
    curves = {name: curve(pool, spec, seeds, budgets) for name, spec in RANKINGS.items()}
    at: dict[str, object] = {}
    for spend in SPENDS:
        per_seed = {name: [at_spend(points, seed, spend) for seed in range(seeds)] for name, points in curves.items()}
        if any(v is None for values in per_seed.values() for v in values):
            continue
        default, per_token = per_seed["default"], per_seed["per_token"]
        difference, ci = mean_ci95([p - d for p, d in zip(per_token, default, strict=True)])  # type: ignore[operator]
        at[f"{spend:g}"] = {"default": statistics.fmean(default), "per_token": statistics.fmean(per_token),  # type: ignore[arg-type]
                            "difference": difference, "ci95": ci}
    return {"batch": pool.name, "questions": len(pool.entries), "mean_tokens": mean_tokens(pool), "at": at,
            "curves": {name: [vars(p) for p in points] for name, points in curves.items()}}


def table(records: list[dict[str, object]], seeds: int) -> list[str]:
    lines = [f"per_token=true minus the default (per sample), accuracy at equal tokens spent, {seeds} seeds "
             "(mean ± 95% t-interval; **bold**: the interval excludes 0):", "",
             "| batch | questions | " + " | ".join(f"@ {s:g}" for s in SPENDS) + " |",
             "|---|---:|" + "---:|" * len(SPENDS)]
    for record in records:
        at = record["at"]
        assert isinstance(at, dict)
        cells = []
        for spend in SPENDS:
            entry = at.get(f"{spend:g}")
            if entry is None:
                cells.append("—")
                continue
            text = f"{entry['difference']:+.4f} ± {entry['ci95']:.4f}"
            cells.append(f"**{text}**" if abs(entry["difference"]) > entry["ci95"] else text)
        lines.append(f"| {record['batch']} | {record['questions']} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", action="append", metavar="SPEC",
                        help="a pool (file or name), or N:pool+pool mixed into one batch (default: every shared "
                             "pool and the three mixes of BENCHMARKS.md)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write token_ranking.md and .json here")
    args = parser.parse_args()
    if args.seeds < 2:
        sys.exit("--seeds must be at least 2 (the intervals are over seeds)")
    specs = args.batch or [*(p.name.removesuffix(".jsonl.gz") for p in sorted(
        (Path(__file__).resolve().parents[2] / "shared" / "data" / "pools").glob("*.jsonl.gz"))), *MIXES]
    if not specs:
        sys.exit("no batches: pass --batch or put ../shared/data/pools beside the project")
    started = time.perf_counter()
    records = []
    for spec in specs:
        records.append(compare(batch_of(spec), args.seeds))
        print(f"{records[-1]['batch']}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    command = " ".join(["python benchmarks/token_ranking.py", *sys.argv[1:]])
    report = ["# Ranking under a token budget: per sample or per expected token", "", f"`{command}`, "
              f"{time.perf_counter() - started:.0f} s.", "", *table(records, args.seeds)]
    print("\n".join(report))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "token_ranking.md").write_text("\n".join(report) + "\n")
        (args.out / "token_ranking.json").write_text(json.dumps({"command": command, "seeds": args.seeds,
                                                                 "batches": records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
