"""What both renderings of a report say: the run's facts, how to read the numbers, the rows of each table."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis import CALIBRATION_BINS, TOLERANCE, _base, _is_reference, _ordered, _Pool
from .formatting import _accuracy, _money, _number, _pct

_SECRET = re.compile(r"key|secret|token|password|authori[sz]ation", re.IGNORECASE)


def _strategy_summaries() -> dict[str, str]:
    from ..strategies import STRATEGIES

    return {name: spec.summary for name, spec in STRATEGIES.items()}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynscaling")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class _Context:
    meta: dict[str, Any]
    pools: list[_Pool]
    colors: dict[str, str]
    svgs: dict[str, str]
    pngs: dict[str, str]
    max_questions: int
    has_questions: bool

    @property
    def strategies(self) -> list[str]:
        return list(self.colors)

    @property
    def seeds(self) -> int:
        return max(int(p["seeds"]) for pool in self.pools for p in pool.points)

    @property
    def budgets(self) -> list[float]:
        listed = self.meta.get("budgets")
        if isinstance(listed, list) and listed:
            return [float(b) for b in listed]
        return sorted({float(p["budget"]) for pool in self.pools for p in pool.points})


_Fact = tuple[str, "str | list[tuple[str, str | None]]"]


def _facts(c: _Context) -> list[_Fact]:
    """(label, plain text) rows describing the run; pools are a list of (text, file path or None)."""
    meta = c.meta
    facts: list[_Fact] = []
    source = meta.get("source")
    if source == "replay":
        facts.append(("source", "replay of recorded model outputs (no model was called)"))
    elif source == "live":
        facts.append(("source", "live: the model was called for every sample"))
    elif source:
        facts.append(("source", str(source)))
    for key in ("dataset", "model", "base_url"):
        if meta.get(key):
            facts.append((key.replace("_", " "), _without_credentials(str(meta[key]))))
    facts.append(("pools" if len(c.pools) > 1 else "pool", _pool_facts(c)))
    if meta.get("questions") is not None:
        facts.append(("questions", str(meta["questions"])))
    if meta.get("answers"):
        facts.append(("answers", f"{meta['answers']} (how recorded answers were read)"))
    facts.append(("budgets", ", ".join(f"{b:g}" for b in c.budgets) + " samples per question (nominal)"))
    facts.append(("seeds", f"{c.seeds} (random sample orders per point)"))
    if meta.get("created"):
        facts.append(("date", str(meta["created"]).replace("T", " ").replace("Z", " UTC")))
    known = {"source", "dataset", "model", "base_url", "pools", "questions", "answers", "strategies", "budgets",
             "seeds", "created"}
    for key, value in meta.items():
        if key not in known:
            shown = "(hidden)" if _SECRET.search(key) else _without_credentials(str(value))
            facts.append((key.replace("_", " "), shown))
    return facts


def _without_credentials(text: str) -> str:
    """``https://user:key@host/v1`` -> ``https://***@host/v1``: a report gets shared, a key must not be in it."""
    return re.sub(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text, flags=re.IGNORECASE)


def _pool_facts(c: _Context) -> list[tuple[str, str | None]]:
    """One line per pool: name, number of questions, and the file it came from when run.json names it."""
    paths = [str(p) for p in c.meta.get("pools") or []]
    lines = []
    for pool in c.pools:
        size = f"{pool.questions} questions" if pool.questions else "questions not recorded"
        path = next((p for p in paths if re.fullmatch(re.escape(pool.name) + r"(\.jsonl)?(\.gz)?",
                                                      Path(p).name)), None)
        lines.append((f"{pool.name} ({size})", path))
    return lines


def _reading(c: _Context) -> list[str]:
    """How to read the numbers, one paragraph each (plain text)."""
    lines = [
        f"Accuracy is the mean over {c.seeds} seeds ± the half-width of the 95% Student-t interval over seeds, in "
        "percent. A seed fixes the random order in which each question's samples arrive (and every random choice), "
        "so the interval covers sample-order randomness, not the choice of questions.",
        "Spend (samples, tokens and dollars per question) is what was actually spent, averaged over questions and "
        "seeds, not the nominal budget: strategies that stop early spend less than their budget, so the plots put "
        "spend, not budget, on the x axis.",
    ]
    if c.meta.get("source") == "replay":
        lines.append("Tokens on replay pools are estimates (4 characters per token): pools record no usage. "
                     "Dollar figures appear only when the run priced its requests.")
    if any(_base(s) == "oracle" for s in c.strategies):
        lines.append("oracle reads the gold answers to decide where to spend: an upper bound for allocation, "
                     "not a method.")
    lines.append("Confidence is the strategy's posterior probability that its leading answer stays ahead with "
                 "more votes (P(Binomial(v1 + v2 + 1, 1/2) ≤ v1) for the top two vote counts v1 ≥ v2); "
                 "calibration shows how far that is from the probability of being right.")
    if c.has_questions:
        lines.append("Calibration and the drill-down use the per-question results of seed 0.")
    return lines


def _sampling_error(pool: _Pool) -> str | None:
    """What the choice of questions alone adds, which the bands leave out (binomial 95% at SC's best)."""
    if not pool.questions:
        return None
    p = pool.headline.sc_best["accuracy_mean"] if pool.headline else max(x["accuracy_mean"] for x in pool.points)
    half = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / pool.questions)
    return (f"With {pool.questions} questions, the choice of questions alone adds about ±{100 * half:.1f} points "
            f"(binomial 95% at {_pct(p)}%), which the bands over seeds do not include.")


def _best_points(points: Sequence[dict[str, Any]]) -> set[int]:
    """Indices of the points with the best mean accuracy among the methods (not single, not oracle) at each
    budget, when at least two methods ran it and they do not all tie."""
    best: set[int] = set()
    for budget in {p["budget"] for p in points}:
        at = [i for i, p in enumerate(points) if p["budget"] == budget and not _is_reference(p["strategy"])]
        if len(at) < 2:
            continue
        top = max(round(points[i]["accuracy_mean"], 6) for i in at)
        leaders = [i for i in at if round(points[i]["accuracy_mean"], 6) == top]
        if len(leaders) < len(at):  # when every method ties, no one stands out
            best.update(leaders)
    return best


def _cost_rows(pool: _Pool) -> tuple[list[str], list[list[str]], list[bool], list[bool]]:
    """Headers, rows, whether each row starts a strategy, whether its accuracy is the best at its budget."""
    headers = ["strategy", "budget", "accuracy (%)", "samples/q", "tokens/q"]
    if pool.has_cost:
        headers.append("$/q")
    headers.append("parse rate")
    rows, groups, bold, previous = [], [], [], None
    best = {id(pool.points[i]) for i in _best_points(pool.points)}
    for strategy in _ordered(p["strategy"] for p in pool.points):
        for p in sorted((p for p in pool.points if p["strategy"] == strategy), key=lambda p: p["budget"]):
            bold.append(id(p) in best)
            row = [strategy, f"{p['budget']:g}", _accuracy(p), _number(p["samples_per_question"]),
                   _number(p["tokens_per_question"], 0)]
            if pool.has_cost:
                row.append(_money(p.get("cost_per_question", 0.0)))
            row.append(f"{p['parse_rate']:.3f}")
            rows.append(row)
            groups.append(strategy != previous)
            previous = strategy
    return headers, rows, groups, bold


def _headline_rows(c: _Context) -> list[list[str]]:
    rows = []
    for pool in c.pools:
        h = pool.headline
        if h is None:
            continue
        for reach in h.reaches:
            share = ""
            if reach.samples is not None and h.sc_samples:
                share = f"{reach.samples / h.sc_samples:.0%}"
            rows.append([pool.name, reach.strategy,
                         "not reached" if reach.samples is None else _number(reach.samples),
                         "" if reach.budget is None else f"{reach.budget:g}",
                         "" if reach.accuracy is None else _pct(reach.accuracy), share])
    return rows


_HEADLINE_HEADERS = ["pool", "strategy", "samples/q to reach", "at budget", "accuracy (%)", "of sc's samples"]


def _headline_intro(c: _Context, targets_in_text: bool = True) -> str:
    targets = "; ".join(f"{p.name}: sc's best {_pct(p.headline.sc_best['accuracy_mean'])}% at budget "
                        f"{p.headline.sc_best['budget']:g}, target {_pct(p.headline.target)}%"
                        for p in c.pools if p.headline)
    return (f"The fewest samples per question spent (mean over seeds) at which each strategy's mean accuracy comes "
            f"within {TOLERANCE} of self-consistency's best accuracy measured in this run"
            f"{f' ({targets})' if targets_in_text else ''}. Only the "
            "budgets of this run are measured, so a strategy may need less than shown. 'of sc's samples' compares "
            "with what sc itself needs to reach the same target.")


def _calibration_rows(pool: _Pool) -> list[list[str]]:
    rows = []
    for cal in pool.calibrations:
        def value(x: float, digits: int = 3) -> str:
            return "–" if math.isnan(x) else f"{x:.{digits}f}"

        rows.append([cal.strategy, f"{cal.budget:g}", str(cal.answered), str(cal.unanswered), _pct(cal.accuracy),
                     _pct(cal.confidence), value(cal.ece), value(cal.brier)])
    return rows


_CALIBRATION_HEADERS = ["strategy", "budget", "answered", "no answer", "accuracy (%)", "mean confidence (%)", "ECE",
                        "Brier"]


def _calibration_note(pool: _Pool) -> str:
    low = pool.calibrations[0].bins[0].low
    ungraded = sum(c.ungraded for c in pool.calibrations)
    note = (f"Each strategy at the largest budget it ran, over the questions it answered (a question with no "
            f"answer makes no claim and is counted apart). {CALIBRATION_BINS} equal-width confidence bins over "
            f"[{low:g}, 1]; ECE = Σ (questions in bin / answered) × |accuracy − mean confidence|; Brier = mean "
            "squared gap between confidence and correctness (0 or 1).")
    if ungraded:
        note += f" {ungraded} rows without a gold answer are left out."
    return note


def _drill_budget_text(pool: _Pool) -> str:
    groups: dict[float, list[str]] = {}
    for strategy, budget in pool.drill_budgets.items():
        groups.setdefault(budget, []).append(strategy)
    main = max(groups, key=lambda b: len(groups[b]))
    text = f"budget {main:g}"
    others = [f"{', '.join(s)} at {b:g}" for b, s in groups.items() if b != main]
    return text + (f" ({'; '.join(others)})" if others else "")


def _missing_questions(c: _Context) -> str:
    if not c.has_questions:
        return ("This run has no questions.jsonl (per-question results), so there is nothing to show here; "
                "'dynscaling bench --out DIR' writes it.")
    return "questions.jsonl has no rows for this pool."


def _disagreement_intro(pool: _Pool, limit: int) -> str:
    total = len(pool.disagreements)
    core = sum(d.core for d in pool.disagreements)
    text = (f"{total} of {pool.questions} questions are right for some strategies and wrong for others at "
            f"{_drill_budget_text(pool)}, seed 0.")
    if total and core:
        text += (f" {core} of them split the methods themselves (single and oracle aside): those come first, "
                 "the most evenly split first.")
    elif total:
        text += " None splits the methods themselves: each differs only from single or oracle."
    if total > limit:
        text += f" The first {limit} are shown."
    return text
