"""Drivers feed the sans-I/O engine from a backend.

``run_replay`` is a plain synchronous loop for replay pools: one request at a time, no event loop, CPU speed.
"""

from __future__ import annotations

from .backends.replay import ReplayBackend
from .budget import Budget
from .engine import Engine
from .errors import ReplayRefusedError
from .pools import Pool
from .strategies import Strategy, parse_strategy
from .types import RunResult

__all__ = ["replay", "run_replay"]


def run_replay(engine: Engine, backend: ReplayBackend) -> RunResult:
    """Drive ``engine`` with recorded samples until it stops asking. Returns the run's result."""
    if engine.sampler.needs_live_model:
        raise ReplayRefusedError(
            f"strategy {engine.strategy.name} shows the model its earlier answers, which recorded samples cannot "
            "do; run it against a live model (--base-url), or use a parallel-sampling strategy such as "
            "dynscaling-parallel on replay pools")
    engine.run_sync(backend.draw_class)
    return engine.result()


def replay(pool: Pool, strategy: Strategy | str, budget: Budget, *, seed: int = 0) -> RunResult:
    """Run one strategy on one replay pool under one budget with one seed."""
    strategy = parse_strategy(strategy)
    engine = Engine(pool.questions, strategy, budget, seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries])
    return run_replay(engine, ReplayBackend(pool, seed))
