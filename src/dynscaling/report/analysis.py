"""What a report computes from a run's points and per-question rows: plain data in, plain data out (no
matplotlib): the samples each strategy needs to reach self-consistency's target, calibration of the confidence,
and the questions where strategies disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .formatting import _slug

#: self-consistency's best accuracy minus this is the headline's target
TOLERANCE = 0.005


#: equal-width confidence bins of the reliability diagrams
CALIBRATION_BINS = 10


#: strategies that are not methods: a 1-sample baseline and an upper bound that reads the gold answers
_REFERENCE = ("single", "oracle")


@dataclass(frozen=True)
class _Reach:
    """The fewest samples per question (spent) at which a strategy's mean accuracy reaches the target."""

    strategy: str
    samples: float | None
    budget: float | None
    accuracy: float | None


@dataclass(frozen=True)
class _Headline:
    pool: str
    sc_best: dict[str, Any]
    target: float
    reaches: list[_Reach]

    @property
    def sc_samples(self) -> float | None:
        return next((r.samples for r in self.reaches if r.strategy == self.sc_best["strategy"]), None)


@dataclass(frozen=True)
class _Bin:
    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class _Calibration:
    """Calibration of one strategy's confidence at one budget, over the graded questions it answered."""

    strategy: str
    budget: float
    bins: list[_Bin]
    answered: int
    unanswered: int
    ungraded: int
    accuracy: float
    confidence: float
    ece: float
    brier: float


@dataclass(frozen=True)
class _Disagreement:
    question_id: str
    rows: dict[str, dict[str, Any]]  # strategy -> its row at the drill-down budget
    core: bool  # the methods (not single, not oracle) disagree among themselves


def _base(strategy: str) -> str:
    return strategy.split(":", 1)[0]


def _is_reference(strategy: str) -> bool:
    return _base(strategy) in _REFERENCE


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _sc_label(strategies: Sequence[str]) -> str | None:
    """Plain ``sc`` if present, else the first ``sc:...`` variant."""
    if "sc" in strategies:
        return "sc"
    return next((s for s in strategies if _base(s) == "sc"), None)


def _headline(pool: str, points: Sequence[dict[str, Any]], tolerance: float) -> _Headline | None:
    strategies = _ordered(p["strategy"] for p in points)
    sc = _sc_label(strategies)
    if sc is None:
        return None
    best = max((p for p in points if p["strategy"] == sc),
               key=lambda p: (p["accuracy_mean"], -p["samples_per_question"]))
    target = best["accuracy_mean"] - tolerance
    reaches = []
    for strategy in strategies:
        reached = [p for p in points if p["strategy"] == strategy and p["accuracy_mean"] >= target - 1e-12]
        if not reached:
            reaches.append(_Reach(strategy, None, None, None))
            continue
        first = min(reached, key=lambda p: (p["samples_per_question"], p["budget"]))
        reaches.append(_Reach(strategy, first["samples_per_question"], first["budget"], first["accuracy_mean"]))
    return _Headline(pool, best, target, reaches)


def _calibrate(strategy: str, budget: float, rows: Sequence[dict[str, Any]], low: float) -> _Calibration:
    graded = [r for r in rows if r.get("correct") is not None]
    answered = [r for r in graded if r.get("answer") is not None]
    width = (1.0 - low) / CALIBRATION_BINS
    members: list[list[dict[str, Any]]] = [[] for _ in range(CALIBRATION_BINS)]
    for row in answered:
        index = min(CALIBRATION_BINS - 1, max(0, int((float(row["confidence"]) - low) / width)))
        members[index].append(row)
    bins, ece = [], 0.0
    for index, inside in enumerate(members):
        if not inside:
            bins.append(_Bin(low + index * width, low + (index + 1) * width, 0, math.nan, math.nan))
            continue
        confidence = sum(float(r["confidence"]) for r in inside) / len(inside)
        accuracy = sum(bool(r["correct"]) for r in inside) / len(inside)
        bins.append(_Bin(low + index * width, low + (index + 1) * width, len(inside), confidence, accuracy))
        ece += len(inside) / len(answered) * abs(accuracy - confidence)
    n = len(answered)
    return _Calibration(
        strategy, budget, bins, n, len(graded) - n, len(rows) - len(graded),
        accuracy=sum(bool(r["correct"]) for r in answered) / n if n else math.nan,
        confidence=sum(float(r["confidence"]) for r in answered) / n if n else math.nan,
        ece=ece if n else math.nan,
        brier=sum((float(r["confidence"]) - bool(r["correct"])) ** 2 for r in answered) / n if n else math.nan)


def _calibrations(rows: Sequence[dict[str, Any]]) -> list[_Calibration]:
    """Every strategy at the largest budget it ran. Bins span [0.5, 1] when no confidence is below 0.5 (a
    leader's confidence never is), else [0, 1]."""
    strategies = _ordered(r["strategy"] for r in rows)
    low = 0.5 if all(float(r["confidence"]) >= 0.5 for r in rows if r.get("answer") is not None) else 0.0
    found = []
    for strategy in strategies:
        budget = max(float(r["budget"]) for r in rows if r["strategy"] == strategy)
        chosen = [r for r in rows if r["strategy"] == strategy and float(r["budget"]) == budget]
        found.append(_calibrate(strategy, budget, chosen, low))
    return found


def _drill_budgets(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The largest budget common to every strategy that ran more than one; a strategy that ran only one budget
    (single) keeps it."""
    budgets: dict[str, set[float]] = {}
    for row in rows:
        budgets.setdefault(row["strategy"], set()).add(float(row["budget"]))
    several = [b for b in budgets.values() if len(b) > 1] or list(budgets.values())
    common = set.intersection(*several) if several else set()
    top = max(common) if common else None
    chosen = {}
    for strategy, options in budgets.items():
        below = [b for b in options if top is None or b <= top]
        chosen[strategy] = max(below) if below else min(options)
    return chosen


def _disagreements(rows: Sequence[dict[str, Any]], budgets: Mapping[str, float]) -> list[_Disagreement]:
    """Questions whose correctness differs across strategies, the methods' own disagreements first, then the most
    evenly split."""
    by_question: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if float(row["budget"]) == budgets.get(row["strategy"]):
            by_question.setdefault(str(row["id"]), {})[row["strategy"]] = row
    methods = [s for s in budgets if not _is_reference(s)]
    found = []
    for question_id, chosen in by_question.items():
        verdicts = [bool(r["correct"]) for r in chosen.values() if r.get("correct") is not None]
        if len(set(verdicts)) < 2:
            continue
        core = len({bool(chosen[s]["correct"]) for s in methods
                    if s in chosen and chosen[s].get("correct") is not None}) > 1
        found.append((not core, -min(verdicts.count(True), verdicts.count(False)), len(found),
                      _Disagreement(question_id, chosen, core)))
    return [item[-1] for item in sorted(found, key=lambda item: item[:3])]


@dataclass
class _Pool:
    name: str
    slug: str
    points: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    headline: _Headline | None
    calibrations: list[_Calibration]
    drill_budgets: dict[str, float]
    disagreements: list[_Disagreement]

    @property
    def questions(self) -> int | None:
        return len({str(r["id"]) for r in self.rows}) or None

    @property
    def has_samples(self) -> bool:
        return any("samples_detail" in r for r in self.rows)

    @property
    def has_cost(self) -> bool:
        return any(p.get("cost_per_question", 0) > 0 for p in self.points)


def _analyse(points: list[dict[str, Any]], questions: list[dict[str, Any]]) -> list[_Pool]:
    pools, taken = [], set()
    for name in _ordered(p["pool"] for p in points):
        ours = [p for p in points if p["pool"] == name]
        strategies = {p["strategy"] for p in ours}
        rows = [r for r in questions if r["pool"] == name and r["strategy"] in strategies and r.get("seed", 0) == 0]
        budgets = _drill_budgets(rows) if rows else {}
        pools.append(_Pool(name, _slug(name, taken), ours, rows, _headline(name, ours, TOLERANCE),
                           _calibrations(rows) if rows else [], budgets,
                           _disagreements(rows, budgets) if rows else []))
    return pools
