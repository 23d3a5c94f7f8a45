"""Benchmarks on replay pools: strategies x budgets x seeds, with 95% intervals over seeds.

Every point is measured, never assumed: each (pool, strategy, budget) is replayed once per seed (a seed fixes
every question's sample order and every random choice), and the point reports the mean accuracy with a 95%
Student-t interval over seeds, and the samples per question actually *spent* (strategies that stop early spend
less than the budget). The interval covers the randomness of sample order, not the choice of questions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget
from .drivers import AsyncBackend, RunStats, replay
from .engine import Engine
from .errors import ConfigError
from .pools import Pool
from .strategies import Strategy, parse_strategy
from .types import Question, RunResult

__all__ = ["BenchPoint", "arun_live_bench", "headline", "mean_ci95", "run_bench"]

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t interval (0 for a single value)."""
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    df = len(values) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


@dataclass(frozen=True)
class BenchPoint:
    """One (pool, strategy, budget) point averaged over seeds."""

    pool: str
    strategy: str
    budget: float
    seeds: int
    accuracy_mean: float
    accuracy_ci95: float
    samples_per_question: float
    tokens_per_question: float
    parse_rate: float
    accuracies: list[float] = field(repr=False)
    cost_per_question: float = 0.0
    #: live benches: questions left with no answer because the backend failed, summed over seeds (counted wrong
    #: in ``accuracies``; the same command asks for them again)
    unanswered: int = 0

    def to_dict(self) -> dict[str, object]:
        record = asdict(self)
        for key in ("accuracy_mean", "accuracy_ci95", "samples_per_question", "tokens_per_question", "parse_rate"):
            record[key] = round(record[key], 6)
        record["cost_per_question"] = round(self.cost_per_question, 8)
        record["accuracies"] = [round(a, 6) for a in self.accuracies]
        return record


def _budgets_for(strategy: Strategy, budgets: Sequence[float]) -> list[float]:
    return [1.0] if strategy.name == "single" else list(budgets)


def run_bench(pools: Sequence[Pool], strategies: Iterable[Strategy | str], budgets: Sequence[float], seeds: int,
              progress: Callable[[str], None] | None = None,
              on_result: Callable[[Pool, Strategy, float, int, RunResult], None] | None = None) -> list[BenchPoint]:
    """Replay every strategy at every budget (samples per question) with ``seeds`` seeds on every pool.

    ``on_result`` sees every run's full result (per question), e.g. to keep seed 0 for a report."""
    parsed = [parse_strategy(s) for s in strategies]
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if not budgets or any(b <= 0 for b in budgets):
        raise ConfigError(f"budgets must be positive samples per question, got {list(budgets)}")
    refused = [s.label for s in parsed if s.needs_live_model]
    if refused:
        raise ConfigError(f"{', '.join(refused)} need a live model (they show the model its earlier answers); "
                          "replay pools serve recorded independent samples only")
    points: list[BenchPoint] = []
    for pool in pools:
        questions = len(pool.entries)
        for strategy in parsed:
            for budget in _budgets_for(strategy, budgets):
                if progress:
                    progress(f"{pool.name}: {strategy.label} at {budget:g} samples/question")
                total = Budget(samples=max(1, round(budget * questions)))
                accuracies, spent, tokens, parse, cost = [], [], [], [], []
                for seed in range(seeds):
                    result = replay(pool, strategy, total, seed=seed)
                    if on_result is not None:
                        on_result(pool, strategy, budget, seed, result)
                    accuracies.append(result.accuracy or 0.0)
                    spent.append(result.samples / questions)
                    tokens.append(result.usage.total_tokens / questions)
                    parse.append(result.parse_rate)
                    cost.append(result.usage.cost_usd / questions)
                mean, ci = mean_ci95(accuracies)
                points.append(BenchPoint(pool.name, strategy.label, budget, seeds, mean, ci,
                                         statistics.fmean(spent), statistics.fmean(tokens), statistics.fmean(parse),
                                         accuracies, statistics.fmean(cost)))
    return points


@dataclass(frozen=True)
class Headline:
    """Samples per question a strategy needs to come within ``tolerance`` of self-consistency on the whole pool."""

    pool: str
    strategy: str
    target: float
    samples_per_question: float | None
    pool_samples: float

    @property
    def fraction_of_pool(self) -> float | None:
        if self.samples_per_question is None:
            return None
        return self.samples_per_question / self.pool_samples


def headline(points: Sequence[BenchPoint], pools: Sequence[Pool], tolerance: float = 0.005) -> list[Headline]:
    """For every pool and strategy: the fewest samples per question spent whose mean accuracy reaches
    self-consistency's full-pool accuracy minus ``tolerance`` (None when no measured budget reaches it).

    Self-consistency's full-pool accuracy is measured here, over the same seeds (ties break by sample order).
    """
    found: list[Headline] = []
    for pool in pools:
        full = run_bench([pool], ["sc"], [float(pool.max_samples)], seeds=max(p.seeds for p in points))[0]
        target = full.accuracy_mean - tolerance
        by_strategy: dict[str, list[BenchPoint]] = {}
        for point in points:
            if point.pool == pool.name:
                by_strategy.setdefault(point.strategy, []).append(point)
        for strategy, series in by_strategy.items():
            reached = [p.samples_per_question for p in series if p.accuracy_mean >= target]
            found.append(Headline(pool.name, strategy, full.accuracy_mean,
                                  min(reached) if reached else None, pool.samples_per_question))
    return found


def accuracy_interval(correct: Sequence[bool]) -> float:
    """Half-width of the normal 95% interval of an accuracy over questions (one live run, no seeds)."""
    n = len(correct)
    if n == 0:
        return 0.0
    p = sum(correct) / n
    return 1.96 * math.sqrt(p * (1 - p) / n)


def live_strategy(strategy: Strategy, largest_budget: float) -> Strategy:
    """Cap the bandit's samples per question at the sweep's largest budget (unless the user set a cap), so that
    every point of a live curve draws from the samples of its largest point and the curve costs no more."""
    adaptive = ("dynscaling", "dynscaling-parallel", "dynscaling-ucb", "ucb")
    if strategy.name in adaptive and "cap" not in dict(strategy.params):
        return Strategy(strategy.name, (*strategy.params, ("cap", max(1, math.ceil(largest_budget)))))
    return strategy


async def arun_live_bench(questions: Sequence[Question], backend: AsyncBackend, strategies: Iterable[Strategy | str],
                          budgets: Sequence[float], *, seeds: int = 1, name: str = "live",
                          journal_path: str | Path | None = None, concurrency: int = 8,
                          backend_identity: Mapping[str, Any] | None = None, max_tokens: int | None = None,
                          progress: Callable[[str], None] | None = None,
                          on_result: Callable[[Strategy, float, int, RunResult, Engine], None] | None = None,
                          ) -> list[BenchPoint]:
    """Run strategies x budgets x seeds against a live backend, sharing samples through one journal.

    Independent samples of a question are keyed by (backend, seed, question, index, prompt), so self-consistency
    at budget 8 reuses the samples of budget 4, and ESC, adaptive and dynscaling-parallel reuse them too: the
    whole curve costs about what its largest point costs. With one seed the interval is over questions.
    """
    from .solve import SolveConfig, asolve, unanswered

    parsed = [parse_strategy(s) for s in strategies]
    largest = max(budgets)
    points: list[BenchPoint] = []
    n = len(questions)
    for strategy in parsed:
        run_strategy = live_strategy(strategy, largest)
        for budget in _budgets_for(strategy, budgets):
            accuracies, spent, tokens, parse, cost, correct = [], [], [], [], [], []
            missing = 0
            for seed in range(seeds):
                if progress:
                    progress(f"{name}: {strategy.label} at {budget:g} samples/question, seed {seed}")
                config = SolveConfig(run_strategy, Budget(samples=max(1, round(budget * n))), seed=seed,
                                     concurrency=concurrency, backend_identity=backend_identity,
                                     max_tokens=max_tokens)
                engines: list[Engine] = []
                stats = RunStats()
                result = await asolve(questions, backend, config, journal_path=journal_path, on_engine=engines.append,
                                      stats=stats)
                missing += len(unanswered(result, stats))
                if on_result is not None:
                    on_result(strategy, budget, seed, result, engines[0])
                accuracies.append(result.accuracy or 0.0)
                spent.append(result.samples / n)
                tokens.append(result.usage.total_tokens / n)
                parse.append(result.parse_rate)
                cost.append(result.usage.cost_usd / n)
                correct = [bool(r.correct) for r in result.results]
            mean, ci = mean_ci95(accuracies)
            if seeds == 1:
                ci = accuracy_interval(correct)
            points.append(BenchPoint(name, strategy.label, budget, seeds, mean, ci, statistics.fmean(spent),
                                     statistics.fmean(tokens), statistics.fmean(parse), accuracies,
                                     statistics.fmean(cost), missing))
    return points
