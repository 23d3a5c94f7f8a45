"""Solving a batch against a live backend: the engine, the async driver and the journal put together.

Used by ``dynscaling solve`` and the server's batch endpoint; neither knows about the other.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .budget import Budget
from .drivers import AsyncBackend, Progress, RunStats, arun
from .engine import CostEstimate, Engine
from .errors import ConfigError
from .journal import Journal, stable_hash
from .samplers import Message, Prompts, estimate_tokens
from .strategies import Strategy, parse_strategy
from .types import Question, RunResult

__all__ = ["SolveConfig", "asolve", "unanswered", "worst_case_cost", "write_results"]


@dataclass(frozen=True)
class SolveConfig:
    """Everything that decides which samples a run asks for (and so keys the journal), plus the budget.

    Attributes:
        strategy: the strategy spec.
        budget: caps for the batch.
        seed: seeds the engine's choices and each request's ``seed``.
        concurrency: requests in flight at most.
        backend_identity: what makes a sample what it is at the backend: base URL, model, sampling parameters.
            Never the API key.
        max_tokens: the completion cap per request, needed to reserve a token or money budget safely.
        price_input / price_output: USD per million tokens, for money budgets and the bill.
        prompts: the samplers' wording, when not the defaults (part of what keys the journal).
    """

    strategy: Strategy | str
    budget: Budget
    seed: int = 0
    concurrency: int = 8
    backend_identity: Mapping[str, Any] | None = None
    max_tokens: int | None = None
    price_input: float = 0.0
    price_output: float = 0.0
    prompts: Prompts | None = None


def worst_case_cost(max_tokens: int | None, price_input: float, price_output: float,
                    budget: Budget) -> CostEstimate | None:
    """The reservation for one request: its prompt (estimated high) plus ``max_tokens`` of completion."""
    if budget.tokens is None and budget.usd is None:
        return None
    if max_tokens is None:
        raise ConfigError("a token or money budget needs --max-tokens, so that the worst case of a request is known "
                          "before it is sent")

    def estimate(question: Question, messages: list[Message] | None) -> tuple[int, float]:
        prompt = sum(estimate_tokens(m.get("content") or "") + 4 for m in messages or [])
        usd = (prompt * price_input + max_tokens * price_output) / 1e6
        return prompt + max_tokens, usd

    return estimate


async def asolve(questions: Sequence[Question], backend: AsyncBackend, config: SolveConfig, *,
                 journal_path: str | Path | None = None, fresh: bool = False,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_engine: Callable[[Engine], None] | None = None, stats: RunStats | None = None,
                 journal_wait: float = 0.0, breaker: int = 3) -> RunResult:
    """Answer ``questions`` with ``backend`` under ``config``; with a journal, resume whatever was paid for.

    ``fresh=True`` starts over for these questions: every sample journaled for them under this backend and seed
    is forgotten, whatever budget or strategy paid for it. ``on_engine`` is called with the engine before it
    starts (to read its samples afterwards); ``stats`` is filled in with what the run did (``RunStats``).
    ``journal_wait`` is how long to wait for another run holding the journal before ``JournalError``;
    ``breaker`` as in ``arun``."""
    strategy = parse_strategy(config.strategy)
    estimate = worst_case_cost(config.max_tokens, config.price_input, config.price_output, config.budget)
    kwargs: dict[str, Any] = {} if estimate is None else {"estimate_cost": estimate}
    engine = Engine(questions, strategy, config.budget, seed=config.seed, prompts=config.prompts, **kwargs)
    if on_engine is not None:
        on_engine(engine)
    if journal_path is None:
        return await arun(engine, backend, concurrency=config.concurrency, seed=config.seed, on_progress=on_progress,
                          stats=stats, breaker=breaker)
    with Journal(journal_path, wait=journal_wait) as journal:
        log = journal.open_run(
            sample_key={"backend": dict(config.backend_identity or {}), "seed": config.seed,
                        **({"prompts": asdict(config.prompts)} if config.prompts is not None else {})},
            # The batch enters the key as a hash: the journal's run rows never hold question text.
            # The budget is part of the run (its event order), not of the samples: a larger budget is a new run
            # that reuses every sample the smaller one paid for.
            run_key={"strategy": strategy.label, "budget": [config.budget.samples, config.budget.tokens,
                                                             config.budget.usd],
                     "questions": stable_hash([[q.id, q.text, q.answer_type] for q in questions])},
            fresh=fresh, question_ids=[q.id for q in questions])
        return await arun(engine, backend, concurrency=config.concurrency, log=log, seed=config.seed,
                          on_progress=on_progress, stats=stats, breaker=breaker)


def unanswered(result: RunResult, stats: RunStats) -> dict[str, str]:
    """Question id -> why it has no sample, for the questions the backend failed (not those the budget left out).

    A question that abstained (samples, but no extractable answer) counts as answered."""
    reasons: dict[str, str] = {}
    for r in result.results:
        if r.samples:
            continue
        reason = stats.question_errors.get(r.question_id)
        if reason is None and stats.stopped is not None:
            reason = f"not asked: {stats.stopped}"
        if reason is not None:
            reasons[r.question_id] = reason
    return reasons


def write_results(path: str | Path, result: RunResult, errors: Mapping[str, str] | None = None) -> None:
    """Write one JSON line per question, atomically: a killed run never leaves a half-written file.

    A question in ``errors`` (id -> reason) gets an ``"error"`` field saying why it has no answer."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    errors = errors or {}
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for r in result.results:
                row = r.to_dict()
                if r.question_id in errors:
                    row["error"] = errors[r.question_id]
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
