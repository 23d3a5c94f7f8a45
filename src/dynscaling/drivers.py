"""Drivers feed the sans-I/O engine from a backend.

- ``run_replay`` / ``replay``: a plain synchronous loop over a replay pool; no event loop, CPU speed.
- ``arun``: the asyncio driver for live backends. It keeps up to ``concurrency`` requests in flight and asks the
  engine for the next request whenever any one returns: no rounds, no barrier, so one slow request never idles
  the others. With a journal it writes every sample as it arrives, and on a re-run replays the journal's events
  so the engine makes the same decisions again; only what was in flight at an interruption is requested anew.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .backends.replay import ReplayBackend
from .budget import Budget
from .engine import Engine, SampleRequest
from .errors import BackendError, ReplayRefusedError
from .journal import RunLog, stable_hash
from .pools import Pool
from .samplers import Message
from .strategies import Strategy, parse_strategy
from .types import RunResult, Sample

__all__ = ["AsyncBackend", "Progress", "arun", "replay", "run_replay", "sample_seed"]

logger = logging.getLogger("dynscaling.drivers")


def _refuse_live_only(engine: Engine) -> None:
    if engine.sampler.needs_live_model:
        raise ReplayRefusedError(
            f"strategy {engine.strategy.name} shows the model its earlier answers, which recorded samples cannot "
            "do; run it against a live model (--base-url), or use a parallel-sampling strategy such as "
            "dynscaling-parallel on replay pools")


def run_replay(engine: Engine, backend: ReplayBackend) -> RunResult:
    """Drive ``engine`` with recorded samples until it stops asking. Returns the run's result."""
    _refuse_live_only(engine)
    engine.run_sync(backend.draw_class)
    return engine.result()


def replay(pool: Pool, strategy: Strategy | str, budget: Budget, *, seed: int = 0) -> RunResult:
    """Run one strategy on one replay pool under one budget with one seed."""
    strategy = parse_strategy(strategy)
    if strategy.needs_live_model:
        raise ReplayRefusedError(
            f"strategy {strategy.name} shows the model its earlier answers, which recorded samples cannot do; run "
            "it against a live model (--base-url), or use dynscaling-parallel on replay pools")
    engine = Engine(pool.questions, strategy, budget, seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries])
    return run_replay(engine, ReplayBackend(pool, seed))


class AsyncBackend(Protocol):
    """What the live driver needs from a backend."""

    async def agenerate(self, messages: list[Message], n: int = 1, *, seed: int | None = None) -> list[Sample]:
        """``n`` samples for ``messages``; raises ``BackendError`` once its own retries are used up."""
        ...


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for progress displays, taken after every sample that lands."""

    samples: int
    budget_samples: int | None
    inflight: int
    tokens: int
    cost_usd: float
    failures: int
    reused: int


def sample_seed(run_seed: int, question_id: str, sample_index: int) -> int:
    """The ``seed`` sent with a request: distinct per sample, stable across re-runs."""
    key = f"{run_seed}\0{question_id}\0{sample_index}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") & 0x7FFFFFFF


def _messages_hash(request: SampleRequest) -> str:
    return stable_hash(request.messages)


class _LiveRun:
    def __init__(self, engine: Engine, backend: AsyncBackend, concurrency: int, log: RunLog | None, seed: int,
                 on_progress: Callable[[Progress], None] | None) -> None:
        self.engine = engine
        self.backend = backend
        self.concurrency = concurrency
        self.log = log
        self.seed = seed
        self.on_progress = on_progress
        self.tasks: dict[asyncio.Task[list[Sample]], list[tuple[SampleRequest, str]]] = {}
        self.inflight = 0  # requests (samples) sent and not yet landed
        self._finished: deque[asyncio.Task[list[Sample]]] = deque()
        self._wake = asyncio.Event()
        self.reused = 0
        self.failures = 0
        # issued by the engine and not yet sent, with whether the journal already holds their request event
        self.ready: list[tuple[SampleRequest, bool]] = []

    # ---- resume: replay the journal's events through the engine ----
    def replay_events(self) -> None:
        log = self.log
        if log is None:
            return
        outstanding: dict[tuple[str, int], SampleRequest] = {}
        events = log.events()
        replayed = 0
        for event in events:
            key = (event.question_id, event.sample_index)
            if event.kind == "request":
                request = self.engine.next_request()
                if request is None:
                    break
                if ((request.question.id, request.sample_index) != key
                        or _messages_hash(request) != event.messages_hash):
                    self.ready.append((request, False))  # diverged (other budget or strategy): live from here
                    break
                outstanding[key] = request
            else:
                request = outstanding.pop(key, None)
                if request is None:
                    break
                if event.kind == "result":
                    sample = log.lookup(event.question_id, event.sample_index, event.messages_hash or "")
                    if sample is None:
                        outstanding[key] = request
                        break
                    self.engine.deliver(request, sample)
                    self.reused += 1
                else:
                    self.engine.fail(request, BackendError(f"recorded failure: {event.detail}",
                                                           kind=event.detail or "error"))
            replayed += 1
        if replayed < len(events):
            logger.info("journal replay diverged after %d of %d events; continuing live", replayed, len(events))
            log.truncate_events(replayed)
        # requests issued before the interruption whose results never came: send them now (order kept)
        self.ready[:0] = [(request, True) for request in outstanding.values()]
        if replayed:
            logger.info("resumed: %d samples from the journal, %d requests to send again", self.reused,
                        len(outstanding))

    # ---- the live loop ----
    def _limit(self) -> int:
        hint = getattr(self.backend, "suggested_concurrency", None)
        return max(1, min(self.concurrency, hint)) if isinstance(hint, int) else self.concurrency

    def _take(self, free: int) -> list[tuple[SampleRequest, bool]]:
        """Up to ``free`` requests: first those left over from a resume, then new ones from the engine."""
        taken: list[tuple[SampleRequest, bool]] = []
        while len(taken) < free:
            if self.ready:
                taken.append(self.ready.pop(0))
                continue
            request = self.engine.next_request()
            if request is None:
                break
            taken.append((request, False))
        return taken

    def _dispatch(self, batch: list[tuple[SampleRequest, bool]]) -> None:
        """Serve what the journal holds; send the rest, one request with ``n`` choices per group of requests
        for the same messages (one prefill for several samples)."""
        groups: dict[str, list[list[tuple[SampleRequest, str]]]] = {}  # question id -> groups of equal prompts
        for request, logged in batch:
            digest = _messages_hash(request) if self.log is not None else ""  # keys the journal only
            if self.log is not None:
                if not logged:
                    self.log.record_request(request.question.id, request.sample_index, digest)
                cached = self.log.lookup(request.question.id, request.sample_index, digest)
                if cached is not None:  # paid for by an earlier run: never pay twice
                    self.engine.deliver(request, cached)
                    self.log.record_result(request.question.id, request.sample_index, digest, cached, None,
                                           new=False)
                    self.reused += 1
                    self._report()
                    continue
            same_question = groups.setdefault(request.question.id, [])
            for group in same_question:
                if group[0][0].messages == request.messages:
                    group.append((request, digest))
                    break
            else:
                same_question.append([(request, digest)])
        for members in (group for same_question in groups.values() for group in same_question):
            first = members[0][0]
            assert first.messages is not None
            seed = sample_seed(self.seed, first.question.id, first.sample_index)
            task = asyncio.ensure_future(self.backend.agenerate(first.messages, len(members), seed=seed))
            task.add_done_callback(self._finished.append)
            task.add_done_callback(lambda _: self._wake.set())
            self.tasks[task] = members
            self.inflight += len(members)

    def _land(self, task: asyncio.Task[list[Sample]]) -> None:
        members = self.tasks.pop(task)
        self.inflight -= len(members)
        error = task.exception()
        samples: list[Sample] = [] if error is not None else list(task.result())
        for position, (request, digest) in enumerate(members):
            failure = error
            if failure is None and position >= len(samples):
                failure = BackendError(f"the backend returned {len(samples)} choices of {len(members)} asked",
                                       retryable=True, kind="fewer_choices")
            if failure is not None:
                if not isinstance(failure, BackendError):
                    failure = BackendError(f"{type(failure).__name__}: {failure}", kind="error")
                self.failures += 1
                self.engine.fail(request, failure)
                if self.log is not None:
                    self.log.record_failure(request.question.id, request.sample_index, digest, failure.kind)
                level = logging.DEBUG if failure.kind == "exhausted" else logging.WARNING
                logger.log(level, "sample %s#%d failed: %s", request.question.id, request.sample_index, failure)
                continue
            sample = samples[position]
            self.engine.deliver(request, sample)
            if self.log is not None:
                self.log.record_result(request.question.id, request.sample_index, digest, sample,
                                       request.messages, new=True)
        self._report()

    def _report(self) -> None:
        if self.on_progress is None:
            return
        ledger = self.engine.ledger
        self.on_progress(Progress(ledger.spent_samples, self.engine.budget.samples, self.inflight,
                                  ledger.spent_tokens, ledger.spent_usd, self.failures, self.reused))

    async def run(self) -> RunResult:
        self.replay_events()
        try:
            while True:
                while self.inflight < self._limit():
                    batch = self._take(self._limit() - self.inflight)
                    if not batch:
                        break
                    self._dispatch(batch)
                if not self.tasks:
                    break  # the engine has nothing more to ask (journal hits were served inline above)
                # Completions arrive through the tasks' callbacks: O(1) per sample, where asyncio.wait would
                # re-register on every task in flight each time one returns.
                await self._wake.wait()
                self._wake.clear()
                while self._finished:
                    self._land(self._finished.popleft())
        except BaseException:
            await self._cancel_all()
            raise
        return self.engine.result()

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            for request, _ in self.tasks.pop(task):
                self.engine.fail(request, BackendError("cancelled", kind="cancelled"))
        self._finished.clear()
        self.inflight = 0


async def arun(engine: Engine, backend: AsyncBackend, *, concurrency: int = 8, log: RunLog | None = None,
               seed: int = 0, on_progress: Callable[[Progress], None] | None = None) -> RunResult:
    """Drive ``engine`` against a live backend until it stops asking. See the module docstring."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    count_prompt_tokens = getattr(backend, "count_prompt_tokens", None)
    if count_prompt_tokens is not None:  # a backend with a real tokenizer (local models): chains fit its context
        engine.sampler.fit_context(count_prompt_tokens, backend.prompt_token_limit,  # type: ignore[attr-defined]
                                   getattr(backend, "count_tokens", None))
    return await _LiveRun(engine, backend, concurrency, log, seed, on_progress).run()
