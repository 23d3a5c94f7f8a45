"""How far the default's allocation is from what perfect knowledge of each question's difficulty would allow.

The "known shares" allocator is told, for every question, how often each of its answers occurs in the whole pool,
*unlabelled*: that a question's 20 samples hold one answer 12 times, another 5, a third 2, and one abstention, but
not which answer is which. That is everything a verifier-free allocator could ever learn about a question's
difficulty from its answers, and more than the default can (it learns a prior for the batch, and for groups of
questions by answer length and form, from the tallies so far). With it, the rule is the default's own: sample the
question whose next samples most raise, per sample, the chance that its leader is the pool's plurality answer
(``--objective share``: its expected share of the votes, i.e. its chance of being right where shares are
calibrated), looking up to ``--horizon`` samples ahead, every probability exact under sampling without
replacement from that question's pool (as replay does).

It is a reference point, not a bound: the rule is greedy, and it aims at the pool's plurality, not the gold
answer, so on a pool where answer length says something about correctness beyond agreement the default may need
fewer samples. The gap it shows is the gap that better per-question information (not a better rule on the same
information) could close.

    python benchmarks/known_shares.py --against benchmarks/results/seeds30/allocation.json

reads each pool's seeds, target (SC's whole-pool accuracy - 0.005) and every method's samples/q to target from a
run of ``allocation.py``, runs the known-shares allocator on the same seeds and budget grid, and prints one table
(markdown; ``--out FILE`` also writes it with the points as JSON beside it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from heapq import heappop, heappush
from pathlib import Path
from typing import Any

from dynscaling import Budget, Engine, load_pool
from dynscaling.allocators import Allocator
from dynscaling.backends.replay import ReplayBackend
from dynscaling.drivers import run_replay
from dynscaling.pools import Pool

_HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("allocation_benchmark", _HERE / "allocation.py")
assert _spec is not None and _spec.loader is not None
allocation = sys.modules.get("allocation_benchmark") or importlib.util.module_from_spec(_spec)
if "allocation_benchmark" not in sys.modules:
    sys.modules["allocation_benchmark"] = allocation
    _spec.loader.exec_module(allocation)

Shape = tuple[int, ...]
#: the peers of allocation.py whose best figure the table shows
PEERS = ("blend-asc", "esc", "adaptive", "consol", "ppr")


def falling(x: int, k: int) -> int:
    """x (x-1) ... (x-k+1): ordered draws of k from x."""
    out = 1
    for i in range(k):
        out *= x - i
    return out


class Profile:
    """One question's whole-pool answer counts, unlabelled, and its abstentions; values every tally of it.

    A tally is a shape (vote counts, largest first) and its abstentions. The labels seen are matched to the
    pool's answers by every injective assignment consistent with the counts, weighted by the chance of drawing
    those counts without replacement. Answers of equal pool count are exchangeable, so the sum runs over how many
    labels of each observed count go to each pool count (a dynamic programme over the pool's distinct counts),
    not over labellings."""

    def __init__(self, counts: Sequence[int], abstentions: int, objective: str = "plurality") -> None:
        ordered = sorted((c for c in counts if c > 0), reverse=True)
        self.values = sorted(set(ordered), reverse=True)  # distinct pool counts; values[0] is the plurality's
        self.mult = [ordered.count(v) for v in self.values]
        self.voters = sum(ordered)
        self.abstentions = abstentions
        self.size = self.voters + abstentions
        self.share = objective == "share"
        self._posteriors: dict[Shape, tuple[float, dict[int, float]]] = {}
        self._lookahead: dict[tuple[Shape, int, int], float] = {}

    def _choices(self, cls: int, groups: list[tuple[int, int]]) -> list[tuple[tuple[int, ...], float]]:
        """How many labels of each observed group may go to pool count ``values[cls]``, and the weight of each."""
        v, mult = self.values[cls], self.mult[cls]
        ranges = [range(min(r, mult) + 1) if g <= v else range(1) for g, r in groups]
        out = []

        def walk(i: int, x: list[int], used: int) -> None:
            if i == len(groups):
                weight = float(falling(mult, used))
                for (g, _), xg in zip(groups, x, strict=True):
                    if xg:
                        weight *= float(falling(v, g)) ** xg / math.factorial(xg)
                out.append((tuple(x), weight))
                return
            for xg in ranges[i]:
                if used + xg > mult:
                    break
                x.append(xg)
                walk(i + 1, x, used + xg)
                x.pop()

        walk(0, [], 0)
        return out

    def posterior(self, shape: Shape) -> tuple[float, dict[int, float]]:
        """The leader's value (the chance it is the pool's plurality answer, or its expected share), and for each
        observed count the expected number of its labels' samples still in the pool."""
        known = self._posteriors.get(shape)
        if known is not None:
            return known
        if not shape:
            self._posteriors[shape] = result = (0.0, {})
            return result
        groups = sorted(Counter(shape).items(), reverse=True)
        full = tuple(r for _, r in groups)
        zero = tuple(0 for _ in groups)
        choices = [self._choices(cls, groups) for cls in range(len(self.values))]
        forward: list[dict[tuple[int, ...], float]] = [{full: 1.0}]
        for options in choices:
            level: dict[tuple[int, ...], float] = {}
            for state, weight in forward[-1].items():
                for x, w in options:
                    if all(a <= b for a, b in zip(x, state, strict=True)):
                        nxt = tuple(b - a for a, b in zip(x, state, strict=True))
                        level[nxt] = level.get(nxt, 0.0) + weight * w
            forward.append(level)
        total = forward[-1].get(zero, 0.0)
        if total <= 0.0:
            raise ValueError(f"shape {shape} cannot come from pool counts {self.values} x {self.mult}")
        backward: list[dict[tuple[int, ...], float]] = [{} for _ in forward]
        backward[-1] = {zero: 1.0}
        for cls in range(len(choices) - 1, -1, -1):
            after = backward[cls + 1]
            level = {}
            for state in forward[cls]:
                acc = 0.0
                for x, w in choices[cls]:
                    if all(a <= b for a, b in zip(x, state, strict=True)):
                        acc += w * after.get(tuple(b - a for a, b in zip(x, state, strict=True)), 0.0)
                level[state] = acc
            backward[cls] = level
        # expected[g][cls]: expected number of labels of observed group g matched to pool count values[cls]
        expected = [[0.0] * len(self.values) for _ in groups]
        for cls, options in enumerate(choices):
            after = backward[cls + 1]
            for state, weight in forward[cls].items():
                for x, w in options:
                    if any(x) and all(a <= b for a, b in zip(x, state, strict=True)):
                        mass = weight * w * after.get(tuple(b - a for a, b in zip(x, state, strict=True)), 0.0)
                        for gi, xg in enumerate(x):
                            if xg:
                                expected[gi][cls] += mass * xg
        leaders = groups[0][1]  # the labels with the most votes: the leader is one of them, and all are alike
        if self.share:
            value = sum(e * v for e, v in zip(expected[0], self.values, strict=True)) / total / leaders / self.voters
        else:
            value = expected[0][0] / total / leaders
        remaining = {g: sum(e * (v - g) for e, v in zip(expected[gi], self.values, strict=True)) / total
                     for gi, (g, _) in enumerate(groups)}
        self._posteriors[shape] = result = (value, remaining)
        return result

    def value(self, shape: Shape) -> float:
        return self.posterior(shape)[0]

    def after(self, shape: Shape, abstentions: int, k: int) -> float:
        """The leader's expected value after ``k`` more samples."""
        if k == 0:
            return self.value(shape)
        key = (shape, abstentions, k)
        known = self._lookahead.get(key)
        if known is not None:
            return known
        left = self.size - sum(shape) - abstentions
        if left <= 0:
            result = self.value(shape)
        else:
            _, remaining = self.posterior(shape)
            result = 0.0
            p_abstain = (self.abstentions - abstentions) / left
            if p_abstain > 0:
                result += p_abstain * self.after(shape, abstentions + 1, k - 1)
            seen = 0.0
            for g, mass in remaining.items():
                if mass > 1e-12:
                    p = mass / left
                    seen += p
                    grown = list(shape)
                    grown[grown.index(g)] = g + 1  # one label of count g gains a vote: which one does not matter
                    result += p * self.after(tuple(sorted(grown, reverse=True)), abstentions, k - 1)
            p_new = 1.0 - p_abstain - seen
            if p_new > 1e-12:
                result += p_new * self.after((*shape, 1), abstentions, k - 1)
        self._lookahead[key] = result
        return result

    def index(self, shape: Shape, abstentions: int, horizon: int) -> float:
        """The best expected gain per sample of any look-ahead up to ``horizon`` samples."""
        now = self.value(shape)
        return max((self.after(shape, abstentions, k) - now) / k for k in range(1, horizon + 1))


def profiles_of(pool: Pool, objective: str) -> list[Profile]:
    """Each question's profile; questions with the same counts share one (and its memos)."""
    shared: dict[tuple[tuple[int, ...], int], Profile] = {}
    out = []
    for entry in pool.entries:
        counts = tuple(sorted(Counter(c for c in entry.classes if c is not None).values(), reverse=True))
        key = (counts, sum(1 for c in entry.classes if c is None))
        if key not in shared:
            shared[key] = Profile(counts, key[1], objective)
        out.append(shared[key])
    return out


class KnownSharesAllocator(Allocator):
    """Evaluation only: the default's rule with each question's unlabelled pool counts known (module docstring)."""

    def __init__(self, profiles: Sequence[Profile], horizon: int = 6) -> None:
        self.profiles = profiles
        self.horizon = horizon

    def _start(self) -> None:
        order = list(range(len(self.tallies)))
        self.rng.shuffle(order)  # ties break by a seeded random rank, as in the default
        self._rank = {qi: position for position, qi in enumerate(order)}
        self._version = [0] * len(self.tallies)
        self._heap: list[tuple[float, int, int, int]] = []
        for qi in range(len(self.tallies)):
            self._push(qi)

    def _push(self, qi: int) -> None:
        self._version[qi] += 1
        tally, profile = self.tallies[qi], self.profiles[qi]
        if self.closed[qi] or self.pending[qi] or tally.samples >= profile.size:
            return
        shape = tally.shape
        priority = profile.index(shape, tally.abstentions, self.horizon) + 1e-9 * (1.0 - profile.value(shape))
        heappush(self._heap, (-priority, self._rank[qi], qi, self._version[qi]))

    def next_question(self) -> int | None:
        while self._heap:
            _, _, qi, version = heappop(self._heap)
            if version == self._version[qi] and not self.closed[qi]:
                return qi
        return None

    def _landed(self, qi: int) -> None:
        self._push(qi)


def run_known_shares(pool: Pool, profiles: Sequence[Profile], budget: float, seed: int, horizon: int) -> Any:
    """One replay of the known-shares allocator (the default's sampler and vote; only the allocation differs)."""
    engine = Engine(pool.questions, "dynscaling-parallel", Budget(samples=max(1, round(budget * len(pool.entries)))),
                    seed=seed, needs_messages=False, clusterers=[e.clusterer for e in pool.entries],
                    allocator=KnownSharesAllocator(profiles, horizon))
    return run_replay(engine, ReplayBackend(pool, seed))


def known_shares_curve(pool: Pool, seeds: int, target: float, objective: str, horizon: int
                       ) -> Iterator[Any]:
    """Points of the known-shares curve on allocation.py's grid, until its mean reaches ``target``."""
    profiles = profiles_of(pool, objective)
    for budget in allocation.fine_budgets(pool.max_samples, quick=False):
        point = allocation.Point(f"budget={budget:g}")
        for seed in range(seeds):
            result = run_known_shares(pool, profiles, budget, seed, horizon)
            point.spends.append(result.samples / len(pool.entries))
            point.accuracies.append(result.accuracy or 0.0)
        yield point
        if point.accuracy >= target:
            return


def _geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| pool | sc | default | best peer | known shares | oracle | default / known shares |\n"
            "|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        known = "not reached" if r["known_shares"] is None else f"{r['known_shares']:.2f}"
        ratio = "" if r["known_shares"] is None else f"{r['default'] / r['known_shares']:.2f}"
        lines.append(f"| {r['pool']} | {r['sc']:.2f} | {r['default']:.2f} | {r['best_peer']:.2f} ({r['peer']}) | "
                     f"{known} | {r['oracle']:.2f} | {ratio} |")
    complete = [r for r in rows if r["known_shares"] is not None]
    if complete:
        def mean(key: str) -> str:
            return f"{_geomean([r['sc'] / r[key] for r in complete]):.2f}x"
        lines.append(f"| **geometric mean of SC / method** ({len(complete)} pools) | 1.00x | {mean('default')} | "
                     f"{mean('best_peer')} | {mean('known_shares')} | {mean('oracle')} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, required=True, help="an allocation.json written by allocation.py")
    parser.add_argument("--pools", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/pools")
    parser.add_argument("--pool", action="append", help="only this pool (repeatable)")
    parser.add_argument("--objective", choices=("plurality", "share"), default="plurality")
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the table here (and the points as JSON beside it)")
    args = parser.parse_args()
    try:
        saved = json.loads(args.against.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"error: {args.against}: cannot read it as allocation.py's JSON ({error})")
    seeds = int(saved["seeds"])
    rows, points = [], {}
    started = time.monotonic()
    for record in saved["pools"]:
        name = record["pool"]
        if args.pool and name not in args.pool:
            continue
        path = args.pools / f"{name}.jsonl.gz"
        if not path.exists():
            print(f"skipped {name}: {path} is absent", file=sys.stderr)
            continue
        pool = load_pool(path)
        curve = list(known_shares_curve(pool, seeds, record["target"], args.objective, args.horizon))
        reach = record["samples_to_target"]
        peers = {m: reach[m] for m in PEERS if reach.get(m) is not None}
        peer = min(peers, key=peers.__getitem__)
        rows.append({"pool": name, "sc": reach["sc"], "default": reach["default"], "best_peer": peers[peer],
                     "peer": peer, "oracle": reach["oracle"],
                     "known_shares": allocation.spend_to_reach(curve, record["target"])})
        points[name] = [{"label": p.label, "spends": p.spends, "accuracies": p.accuracies} for p in curve]
        print(f"{name}: known shares {rows[-1]['known_shares']} samples/q to target "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    text = (f"Known-shares allocator ({args.objective}, horizon {args.horizon}), {seeds} seeds, against "
            f"{args.against}; samples/q to SC's whole-pool accuracy - 0.005:\n\n{table(rows)}\n")
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps({
            "command": " ".join(sys.argv), "objective": args.objective, "horizon": args.horizon, "seeds": seeds,
            "against": str(args.against), "rows": rows, "points": points,
            "seconds": round(time.monotonic() - started, 1)}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
