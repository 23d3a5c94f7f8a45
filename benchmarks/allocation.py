"""Allocation benchmark: every method against self-consistency at equal *spent* samples, paired over seeds.

For each pool in ../shared/data/pools (or each --pool) and each seed (a seed fixes every question's sample
order, the same for every method, so comparisons are paired):

- budget methods, one curve point per budget (samples per question): ``sc`` at 1, 1.5, 2, ..., pool size; the
  default (``--default``, ``dynscaling-parallel`` as registered when the script runs), ``blend-asc`` and the
  ``oracle`` at 1, 1.25, ..., 4, then at most about 12% apart (4.5, 5, 5.5, ..., 42, 45, 48) up to the pool size;
- per-question stopping rules, one curve point per threshold, uncapped except by the pool: ``esc`` over its
  window ``w``, ``adaptive`` over its Beta threshold, ``consol`` over the SPRT margin (``p1``), ``ppr`` over
  ``delta``; each sweep runs from the loosest setting (about one sample per question), doubles its step where
  the spend grows slowly, and stops once the rule spends (nearly) the whole pool.

Then, for every method:

- **samples/q to target**: the smallest spend on the method's mean curve (mean spend, mean accuracy over seeds,
  sorted by spend) at which it reaches SC's whole-pool accuracy - 0.005, linearly interpolated between the two
  neighbouring points; and SC's figure over the method's;
- **accuracy at equal spend** 1.5, 2, 3, 4, 6, 8 samples/q (those <= pool size): per seed, the method's curve
  interpolated linearly at that spend (above the curve's largest spend it stays at its last point: the method
  stops there; below its smallest spend it is undefined). The best peer at a spend is the method other than the
  default and the oracle with the highest mean there; the default minus that peer, per seed, gives a paired 95%
  t-interval, flagged where the default is significantly below. (The best peer is picked on the same seeds,
  which favours the peer slightly.)
- the geometric mean over pools of SC's samples/q to target over each method's.

Writes ``allocation.md``, ``allocation.json`` and a figure, ``allocation.png`` / ``.svg`` (one panel per pool:
accuracy against samples/q spent, every method), to ``--out`` and prints the tables; ``--replot JSON`` redraws
the figure from a saved ``allocation.json``.

    nice -n 10 python benchmarks/allocation.py                 # all pools, 10 seeds
    nice -n 10 python benchmarks/allocation.py --quick --pool gpt4_gsm8k_x12
    nice -n 10 python benchmarks/allocation.py --mix --pool gpt4_gsm8k_x12 --pool llama2-13b_gsm8k-400_pot_x48 \
        --questions 400       # one batch of 400 questions of each: a batch that mixes difficulty distributions
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dynscaling import Budget, load_pool, replay
from dynscaling.allocators.stopping import CONSOL_ALPHA, CONSOL_BETA
from dynscaling.bench import mean_ci95
from dynscaling.pools import Pool

# The tables and the figure live beside this script; it is run as a file and loaded by path in the tests, so it
# loads them by path too rather than relying on sys.path.
_report_spec = importlib.util.spec_from_file_location("allocation_report", Path(__file__).resolve().parent
                                                      / "allocation_report.py")
assert _report_spec is not None and _report_spec.loader is not None
_report = sys.modules.get("allocation_report") or importlib.util.module_from_spec(_report_spec)
if "allocation_report" not in sys.modules:
    sys.modules["allocation_report"] = _report
    _report_spec.loader.exec_module(_report)
pool_table, summary_table, plot, read_saved = _report.pool_table, _report.summary_table, _report.plot, \
    _report.read_saved

TOLERANCE = 0.005
EQUAL_SPENDS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
DEFAULT = "dynscaling-parallel"
BUDGET_METHODS = ("sc", "default", "blend-asc", "oracle")
RULES = ("esc", "adaptive", "consol", "ppr")
#: a threshold sweep ends once the rule spends this share of the pool, or after MAX_POINTS points
SATURATED = 0.99
MAX_POINTS = 40
#: samples/q a sweep step should add at least; below it the step doubles
MIN_GAIN = 0.25
#: bootstrap resamples of the seeds for the interval on samples/q to target
RESAMPLES = 2000


@dataclass
class Point:
    """One parameter setting of one method, measured on every seed."""

    label: str
    spends: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    @property
    def spend(self) -> float:
        return statistics.fmean(self.spends)

    @property
    def accuracy(self) -> float:
        return statistics.fmean(self.accuracies)


# ---- grids ------------------------------------------------------------------------------------------------

def fine_budgets(size: int, quick: bool) -> list[float]:
    """Budgets at most about 12% apart above 4 samples/q, so that samples-to-target interpolates between close
    points. (A linear reading of a concave curve between far points could read the crossing late; measured on
    LLaMA-2 and gpt-3.5 T=0.8, the denser grid moved it by less than the seeds' spread, and not always earlier.)"""
    low = [1, 1.5, 2, 3, 4] if quick else [1 + i / 4 for i in range(13)]
    high = [6, 8, 12, 16, 24, 32, 48] if quick else [4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 9, 10, 11, 12, 13.5, 15, 16.5,
                                                      18, 20, 22, 24, 26.5, 29, 32, 35, 38.5, 42, 45, 48]
    return sorted({b for b in [*low, *high] if b <= size} | {float(size)})


def sc_budgets(size: int, quick: bool) -> list[float]:
    whole = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48] if quick else range(1, size + 1)
    return sorted({float(b) for b in whole if b <= size} | {1.5, float(size)})


def consol_p1(margin: int) -> float:
    """The ``p1`` with which ConSol's SPRT (default alpha, beta) accepts once the leader is ``margin`` votes ahead
    of an empty runner-up: ``margin * ln(p1/0.5)`` reaches the acceptance line, ``margin - 1`` does not."""
    accept = math.log((1 - CONSOL_BETA) / CONSOL_ALPHA)
    return 0.5 * math.exp(accept / (margin - 0.5))


def rule_setting(rule: str, strictness: float, size: int) -> tuple[str, str] | None:
    """(label, strategy spec) of a per-question rule at ``strictness`` >= 0 (0: about one sample per question),
    uncapped except by the pool; None past the point where even a unanimous question would need the whole pool."""
    if strictness > size + 2:
        return None
    if rule == "esc":
        w = 1 + round(strictness)
        return (f"w={w}", f"esc:w={w},cap={size}") if w <= size else None
    if rule == "adaptive":
        threshold = 1 - 0.3 * 2 ** -strictness
        return f"threshold={threshold:.10g}", f"adaptive:threshold={threshold!r},cap={size}"
    if rule == "consol":
        margin = 1 + round(strictness)
        return (f"margin={margin}", f"consol:p1={consol_p1(margin)!r},max_trials={size}") if margin <= size else None
    if rule == "ppr":
        delta = 2 ** -strictness
        return f"delta={delta:.6g}", f"ppr:delta={delta!r},cap={size}"
    raise ValueError(rule)


def sweep(pool: Pool, rule: str, seeds: int, quick: bool) -> list[Point]:
    """A rule's curve from its loosest setting upwards. The step in strictness doubles whenever a step adds
    less than MIN_GAIN samples/q, so the points spread over the spend range instead of piling up where the rule
    has plateaued; the sweep ends once the rule spends (nearly) the whole pool."""
    integral = rule in ("esc", "consol")
    step = (2.0 if quick else 1.0) if integral else (1.0 if quick else 0.5)
    strictness, points, seen = 0.0, [], set()
    while len(points) < MAX_POINTS and (setting := rule_setting(rule, strictness, pool.max_samples)):
        label, spec = setting
        if label not in seen:
            seen.add(label)
            point = measure(pool, spec, label, float(pool.max_samples), seeds)
            if points and point.spend - points[-1].spend < MIN_GAIN:
                step *= 2
            points.append(point)
            if point.spend >= SATURATED * pool.samples_per_question:
                break
        strictness += step
    return points


# ---- measuring --------------------------------------------------------------------------------------------

def measure(pool: Pool, spec: str, label: str, budget: float, seeds: int) -> Point:
    questions = len(pool.entries)
    point = Point(label)
    for seed in range(seeds):
        result = replay(pool, spec, Budget(samples=max(1, round(budget * questions))), seed=seed)
        point.spends.append(result.samples / questions)
        point.accuracies.append(result.accuracy or 0.0)
    return point


def measure_pool(pool: Pool, seeds: int, quick: bool, default: str) -> dict[str, list[Point]]:
    size = pool.max_samples
    specs = {"sc": "sc", "default": default, "blend-asc": "blend-asc", "oracle": "oracle"}
    curves: dict[str, list[Point]] = {}
    for method, spec in specs.items():
        grid = sc_budgets(size, quick) if method == "sc" else fine_budgets(size, quick)
        curves[method] = [measure(pool, spec, f"budget={b:g}", b, seeds) for b in grid]
    for rule in RULES:
        curves[rule] = sweep(pool, rule, seeds, quick)
    return curves


# ---- analysis ---------------------------------------------------------------------------------------------

def spend_to_reach(points: Sequence[Point], target: float, seeds: Sequence[int] | None = None) -> float | None:
    """The smallest spend at which the mean curve (over ``seeds``, by default all) reaches ``target``,
    interpolated between neighbours."""
    if seeds is None:
        curve = sorted((p.spend, p.accuracy) for p in points)
    else:
        curve = sorted((statistics.fmean(p.spends[i] for i in seeds), statistics.fmean(p.accuracies[i] for i in seeds))
                       for p in points)
    for i, (spend, accuracy) in enumerate(curve):
        if accuracy >= target:
            if i == 0:
                return spend
            s0, a0 = curve[i - 1]
            return s0 + (target - a0) * (spend - s0) / (accuracy - a0)
    return None


def at_spend(points: Sequence[Point], seed: int, spend: float) -> float | None:
    """One seed's accuracy at ``spend`` on a method's curve (None below the curve's smallest spend)."""
    by_spend: dict[float, list[float]] = {}
    for p in points:
        by_spend.setdefault(round(p.spends[seed], 9), []).append(p.accuracies[seed])
    xs = sorted(by_spend)
    ys = [statistics.fmean(by_spend[x]) for x in xs]
    if spend < xs[0] - 1e-9:
        return None
    return float(np.interp(spend, xs, ys))  # flat beyond the largest spend


def equal_spend(curves: dict[str, list[Point]], seeds: int, spend: float) -> dict[str, list[float]]:
    """Per method with a value on every seed: its accuracy at ``spend``, per seed."""
    found = {}
    for method, points in curves.items():
        values = [at_spend(points, seed, spend) for seed in range(seeds)]
        if all(v is not None for v in values):
            found[method] = [float(v) for v in values if v is not None]
    return found


def reach_difference(curves: dict[str, list[Point]], method: str, peer: str, seeds: int,
                     resamples: int = RESAMPLES) -> tuple[float, float, float] | None:
    """How sure the seeds make ``method``'s samples/q to target minus ``peer``'s: a paired bootstrap over seeds
    (each resample draws seeds with replacement; both methods' mean curves and SC's target are taken on the same
    draw). Returns the 2.5% and 97.5% quantiles of the difference and the share of resamples where ``method``
    needs no more than ``peer``; None when too few resamples reach the target for both."""
    rng = random.Random(0)
    whole = max(curves["sc"], key=lambda p: p.spend)
    differences = []
    for _ in range(resamples):
        drawn = [rng.randrange(seeds) for _ in range(seeds)]
        target = statistics.fmean(whole.accuracies[i] for i in drawn) - TOLERANCE
        mine, theirs = spend_to_reach(curves[method], target, drawn), spend_to_reach(curves[peer], target, drawn)
        if mine is not None and theirs is not None:
            differences.append(mine - theirs)
    if len(differences) < resamples // 2:
        return None
    differences.sort()
    low = differences[int(0.025 * len(differences))]
    high = differences[min(len(differences) - 1, int(0.975 * len(differences)))]
    return low, high, sum(d <= 0 for d in differences) / len(differences)


def analyse(name: str, questions: int, pool_size: int, curves: dict[str, list[Point]],
            seeds: int) -> dict[str, object]:
    whole = max(curves["sc"], key=lambda p: p.spend)
    target = whole.accuracy - TOLERANCE
    reach = {m: spend_to_reach(points, target) for m, points in curves.items()}
    # the peer that reaches the target with the fewest samples (picked on all seeds, which favours the peer)
    peers = {m: r for m, r in reach.items() if m not in ("sc", "default", "oracle") and r is not None}
    versus: dict[str, object] = {}
    if reach.get("default") is not None and peers:
        best = min(peers, key=lambda m: peers[m])
        versus = {"peer": best, "difference": reach["default"] - peers[best]}
        found = reach_difference(curves, "default", best, seeds)
        if found is not None:
            versus.update(ci95=[found[0], found[1]], share_not_more=found[2])
    sc = reach["sc"]
    ratio = {m: (sc / r if sc is not None and r else None) for m, r in reach.items()}
    spends: dict[str, dict[str, object]] = {}
    for spend in (s for s in EQUAL_SPENDS if s <= pool_size):
        values = equal_spend(curves, seeds, spend)
        entry: dict[str, object] = {"accuracy": {m: mean_ci95(v) for m, v in values.items()}}
        peers = {m: v for m, v in values.items() if m not in ("default", "oracle")}
        if "default" in values and peers:
            best = max(peers, key=lambda m: statistics.fmean(peers[m]))
            diff, ci = mean_ci95([d - b for d, b in zip(values["default"], peers[best], strict=True)])
            entry.update(best_peer=best, difference=diff, ci95=ci, below=diff + ci < 0)
        spends[f"{spend:g}"] = entry
    return {"pool": name, "questions": questions, "pool_size": pool_size, "sc_whole_pool": whole.accuracy,
            "target": target, "samples_to_target": reach, "ratio_to_sc": ratio, "reach_vs_best_peer": versus,
            "equal_spend": spends}


def _shared_pools() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "pools"


def subset(pool: Pool, questions: int, seed: int) -> Pool:
    """A seeded random ``questions``-question subset of ``pool``, in the pool's order, named for it."""
    if not 1 <= questions <= len(pool.entries):
        sys.exit(f"{pool.path}: --questions must be in 1..{len(pool.entries)} for this pool, got {questions}")
    if questions == len(pool.entries):
        return pool
    picked = sorted(random.Random(seed).sample(range(len(pool.entries)), questions))
    return Pool(f"{pool.name}_sub{questions}", pool.path, tuple(pool.entries[i] for i in picked), pool.answer_source)


def mixed(pools: Sequence[Pool]) -> Pool:
    """One batch of several pools' questions, in the order given, each id prefixed with its pool's name so the
    ids stay unique: a batch whose questions come from different difficulty distributions (a user's files
    concatenated), where one batch prior fits none of them well."""
    sources = {pool.answer_source for pool in pools}
    if len(sources) != 1:
        sys.exit(f"--mix: the pools were read with different answer sources ({', '.join(sorted(sources))})")
    entries = tuple(replace(entry, question=replace(entry.question, id=f"{pool.name}/{entry.question.id}"))
                    for pool in pools for entry in pool.entries)
    return Pool("mix_" + "+".join(pool.name for pool in pools), " + ".join(pool.path for pool in pools), entries,
                sources.pop())


def resolve_pool(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    for candidate in (_shared_pools() / name, _shared_pools() / f"{name}.jsonl.gz"):
        if candidate.exists():
            return candidate
    sys.exit(f"no pool {name!r}: give a file or the name of a pool in {_shared_pools()}")


def write_report(summaries: list[dict[str, object]], records: list[dict[str, object]], run: dict[str, Any],
                 out: Path) -> list[str]:
    """Write ``allocation.md``, ``allocation.json`` and the figure into ``out``; returns the report's lines. ``run``:
    the run's ``default``, ``seeds``, ``quick``, ``command``, ``seconds`` and ``cpu_seconds``, saved with it."""
    methods = [*BUDGET_METHODS, *RULES]
    command = run.get("command") or ("python benchmarks/allocation.py" + (" --quick" if run["quick"] else "")
                                     + f" --seeds {run['seeds']}")
    report = [f"# Allocation at equal spend ({'quick' if run['quick'] else 'full'} run)", "",
              f"`{command}`, default = `{run['default']}`, {run['seeds']} seeds, {len(records)} pool(s), "
              f"{run['seconds']:.0f} s ({run['cpu_seconds']:.0f} s of CPU).",
              f"Target: SC's whole-pool accuracy - {TOLERANCE}. Accuracy: mean ± 95% t-interval over seeds.", "",
              "## Samples per question to reach the target", "", *summary_table(summaries, methods, RESAMPLES), ""]
    for summary in summaries:
        report += pool_table(summary, methods, run["default"])
    (out / "allocation.md").write_text("\n".join(report) + "\n")
    saved = {**run, "command": command, "seconds": round(run["seconds"], 1),
             "cpu_seconds": round(run["cpu_seconds"], 1), "pools": records}
    (out / "allocation.json").write_text(json.dumps(saved, indent=1) + "\n")
    plot(records, run["default"], run["seeds"], TOLERANCE, out)
    return report


def reanalysed(saved: dict[str, Any]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The summaries and records of a saved run, analysed again from its curves (nothing is replayed)."""
    summaries, records = [], []
    for number, record in enumerate(saved["pools"]):
        missing = next((m for m in ("sc", "default") if not record["curves"].get(m)), None)
        if missing is not None:
            sys.exit(f"pools[{number}] ({record['pool']}) has no {missing!r} curve to analyse")
        try:
            curves = {m: [Point(**p) for p in points] for m, points in record["curves"].items()}
        except TypeError as error:
            sys.exit(f"pools[{number}] ({record['pool']}): a curve point is not label/spends/accuracies ({error})")
        short = next((f"{m} {p.label}" for m, points in curves.items() for p in points
                      if len(p.spends) != saved["seeds"] or len(p.accuracies) != saved["seeds"]), None)
        if short is not None:
            sys.exit(f"pools[{number}] ({record['pool']}): curve point {short} does not hold one spend and one "
                     f"accuracy per seed ({saved['seeds']})")
        summaries.append(analyse(record["pool"], record["questions"], record["pool_size"], curves, saved["seeds"]))
        records.append({**summaries[-1], "curves": record["curves"]})
    return summaries, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", action="append", help="pool file or name in ../shared/data/pools (default: all)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 10; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer seeds, coarser grids: a smoke run")
    parser.add_argument("--default", default=DEFAULT, help=f"the strategy spec under test (default {DEFAULT})")
    parser.add_argument("--questions", type=int, default=None, metavar="N",
                        help="replay a random N-question subset of each pool (the same subset for every method and "
                             "seed, drawn with --subset-seed): how the methods fare on smaller batches")
    parser.add_argument("--subset-seed", type=int, default=1)
    parser.add_argument("--mix", action="store_true",
                        help="replay the --pool files (each cut to --questions when given) as one batch instead of "
                             "one batch each: how the methods fare when a batch mixes difficulty distributions")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="draw allocation.png/.svg into --out from an allocation.json already written, and stop")
    parser.add_argument("--reanalyse", type=Path, metavar="JSON",
                        help="analyse the curves of an allocation.json already written again (this version's "
                             "tables and intervals) and write every output into --out, replaying nothing")
    args = parser.parse_args()
    if args.replot:
        saved = read_saved(args.replot)
        args.out.mkdir(parents=True, exist_ok=True)
        print("\n".join(map(str, plot(saved["pools"], saved["default"], saved["seeds"], TOLERANCE, args.out))))
        return
    if args.reanalyse:
        saved = read_saved(args.reanalyse)
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            summaries, records = reanalysed(saved)
        except SystemExit as stop:
            sys.exit(f"{args.reanalyse}: {stop.code}")
        run = {"default": saved["default"], "seeds": saved["seeds"], "quick": bool(saved.get("quick")),
               "command": saved.get("command"), "seconds": saved.get("seconds", 0.0),
               "cpu_seconds": saved.get("cpu_seconds", 0.0)}
        print("\n".join(write_report(summaries, records, run, args.out)))
        return
    seeds = args.seeds or (3 if args.quick else 10)
    if seeds < 2:
        sys.exit("--seeds must be at least 2 (the intervals are over seeds)")
    paths = [resolve_pool(p) for p in args.pool] if args.pool else sorted(_shared_pools().glob("*.jsonl.gz"))
    if not paths:
        sys.exit("no pools: pass --pool or put ../shared/data/pools beside the project")
    args.out.mkdir(parents=True, exist_ok=True)
    started, started_cpu = time.perf_counter(), time.process_time()
    if args.mix and len(paths) < 2:
        sys.exit("--mix needs at least two --pool")
    def batches() -> Iterator[Pool]:  # one pool in memory at a time, unless they are mixed into one batch
        pools = (load_pool(path) for path in paths)
        if args.questions is not None:
            pools = (subset(pool, args.questions, args.subset_seed) for pool in pools)
        yield from [mixed(list(pools))] if args.mix else pools

    summaries, records = [], []
    for pool in batches():
        t0 = time.perf_counter()
        curves = measure_pool(pool, seeds, args.quick, args.default)
        summaries.append(analyse(pool.name, len(pool.entries), pool.max_samples, curves, seeds))
        records.append({**summaries[-1], "curves": {m: [vars(p) for p in points] for m, points in curves.items()}})
        print(f"{pool.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    run = {"default": args.default, "seeds": seeds, "quick": args.quick,
           "command": " ".join(["python benchmarks/allocation.py", *sys.argv[1:]]),
           "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - started_cpu}
    print("\n".join(write_report(summaries, records, run, args.out)))


if __name__ == "__main__":
    main()
