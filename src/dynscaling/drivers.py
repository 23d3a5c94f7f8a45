"""Drivers feed the sans-I/O engine from a backend.

- ``run_replay`` / ``replay``: a plain synchronous loop over a replay pool; no event loop, CPU speed.
- ``arun``: the asyncio driver for live backends. It keeps up to ``concurrency`` requests in flight and asks the
  engine for the next request whenever any one returns: no rounds, no barrier, so one slow request never idles
  the others. With a journal it writes every sample as it arrives, and on a re-run replays the journal's events
  so the engine makes the same decisions again; only what was in flight at an interruption is requested anew.

**Failures are never final.** A failure is journaled as an event, not a result. On a re-run, the replay stops at
the first failure of a question that never got a sample: that request is sent again and the run goes on live from
there (every sample already paid for is still served from the journal by its key), so the same command retries
every question the backend failed and reuses the rest.

**Circuit breaker.** After ``breaker`` requests in a row fail for good with a connection-type error (the
backend's own retries used up), no new request is dispatched: what is in flight lands, everything is kept, and
``RunStats.stopped`` says why. A re-run of the same command resumes.

**The journal before anything else.** When the journal cannot be written (disk full, read-only), dispatching
stops at once; samples still in flight are counted in memory, and ``arun`` raises ``JournalError`` with the
result so far in ``RunStats.result``: a caller can still write out what was paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .backends.replay import ReplayBackend
from .budget import Budget
from .engine import Engine, SampleRequest
from .errors import BackendError, JournalError, PartialSamplesError, ReplayRefusedError
from .journal import RunLog, stable_hash
from .pools import Pool
from .samplers import Message
from .strategies import Strategy, parse_strategy
from .types import RunResult, Sample

__all__ = ["AsyncBackend", "Progress", "RunStats", "arun", "replay", "run_replay", "sample_seed"]

#: Failure kinds that say the endpoint itself is unusable, not one request: these trip the circuit breaker.
BREAKER_KINDS = frozenset({"connection", "dns", "timeout", "auth"})
#: Failure kinds that are final for a question: the source has nothing more to give (a replay pool used up).
FINAL_KINDS = frozenset({"exhausted"})

logger = logging.getLogger("dynscaling.drivers")


def _refuse_live_only(engine: Engine) -> None:
    if engine.sampler.needs_live_model:
        raise ReplayRefusedError(
            f"strategy {engine.strategy.name} shows the model its earlier answers, which recorded samples cannot "
            "do; run it against a live model (--base-url), or use a parallel-sampling strategy such as "
            "dynscaling-parallel on replay pools")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a replay. A replay makes reference cycles nowhere (tallies,
    tuples, numbers: all freed by reference counting), but it allocates enough of them that the collector's
    passes over the whole heap (the pool, the answer model's caches) took 10-15% of a run's time. Only a
    collector this call paused is restarted, so nesting, and a caller who turned it off, are left as they were."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_replay(engine: Engine, backend: ReplayBackend) -> RunResult:
    """Drive ``engine`` with recorded samples until it stops asking. Returns the run's result. The cyclic garbage
    collector is paused meanwhile, as in ``replay``."""
    _refuse_live_only(engine)
    with _collector_paused():
        engine.run_sync(backend.draw_class)
        return engine.result()


def replay(pool: Pool, strategy: Strategy | str, budget: Budget, *, seed: int = 0) -> RunResult:
    """Run one strategy on one replay pool under one budget with one seed.

    While it runs, Python's cyclic garbage collector is paused (process-wide; restarted when it returns or
    raises, unless it was off already): a replay frees everything it makes by reference counting, and the
    collector's passes cost 10-15% of its time."""
    strategy = parse_strategy(strategy)
    if strategy.needs_live_model:
        raise ReplayRefusedError(
            f"strategy {strategy.name} shows the model its earlier answers, which recorded samples cannot do; run "
            "it against a live model (--base-url), or use dynscaling-parallel on replay pools")
    with _collector_paused():
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


@dataclass
class RunStats:
    """What a live run did, beyond its result: filled in by ``arun`` when given one.

    Attributes:
        reused: samples served from the journal (paid for by an earlier run).
        new: samples paid for in this run.
        retried: questions whose earlier failures were not taken as final and were asked again.
        failed_requests: requests that failed for good in this run (after the backend's retries).
        question_errors: question id -> the last failure of that question in this run (already redacted).
        stopped: why dispatching stopped before the engine was done (circuit breaker, journal), else None.
        result: the run's result; set even when ``arun`` raises ``JournalError``.
    """

    reused: int = 0
    new: int = 0
    retried: int = 0
    failed_requests: int = 0
    question_errors: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    result: RunResult | None = None


def sample_seed(run_seed: int, question_id: str, sample_index: int) -> int:
    """The ``seed`` sent with a request: distinct per sample, stable across re-runs.

    Consecutive samples of a question get consecutive seeds, so a request for samples ``k..k+n-1`` with ``n``
    choices sent with ``sample_seed(k)`` asks for what the samples would have been alone, and a backend that
    refills missing choices with ``seed + i`` asks for the same ones again: how requests are grouped (which
    depends on timing and interruptions) never changes what a seeded server returns for a sample."""
    key = f"{run_seed}\0{question_id}".encode()
    return (int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") & 0x3FFFFFFF) + sample_index


def _messages_hash(request: SampleRequest) -> str:
    return stable_hash(request.messages)


class _LiveRun:
    def __init__(self, engine: Engine, backend: AsyncBackend, concurrency: int, log: RunLog | None, seed: int,
                 on_progress: Callable[[Progress], None] | None, stats: RunStats, breaker: int) -> None:
        self.engine = engine
        self.stats = stats
        self.breaker = breaker
        self._failures_in_a_row = 0
        self.journal_error: JournalError | None = None
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
        answered = {e.question_id for e in events if e.kind == "result"}
        # questions the backend failed that never got a sample: their failures are not final
        retry = {e.question_id for e in events
                 if e.kind == "failure" and e.detail not in FINAL_KINDS and e.question_id not in answered}
        self.stats.retried = len(retry)
        replayed = 0
        for event in events:
            if event.kind == "failure" and event.question_id in retry:
                break  # from here on, live: this request is sent again (it is still outstanding)
            key = (event.question_id, event.sample_index)
            if event.kind == "request":
                request = self.engine.next_request()
                if request is None:
                    logger.info("journal replay: the journal's next request is %s#%d, the run asks for none",
                                key[0], key[1])
                    break
                if ((request.question.id, request.sample_index) != key
                        or _messages_hash(request) != event.messages_hash):
                    logger.info("journal replay: the journal's next request is %s#%d, the run's is %s#%d%s",
                                key[0], key[1], request.question.id, request.sample_index,
                                "" if (request.question.id, request.sample_index) != key else " (other prompt)")
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
                    self.stats.reused += 1
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
        if self.stats.stopped is not None:
            return taken
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
                    self.reused += 1
                    self.stats.reused += 1
                    self._journal(self.log.record_result, request.question.id, request.sample_index, digest,
                                  cached, None, new=False)
                    self._report()
                    continue
            same_question = groups.setdefault(request.question.id, [])
            for group in same_question:
                # consecutive indices only: choice i of the request is then sample k+i (see sample_seed)
                last = group[-1][0]
                if last.messages == request.messages and last.sample_index + 1 == request.sample_index:
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
        if isinstance(error, PartialSamplesError):
            samples = list(error.samples)  # paid for: kept and counted, only the rest failed
        if error is None or samples:
            self._failures_in_a_row = 0
        for position, (request, digest) in enumerate(members):
            failure: BaseException | None = None
            if position >= len(samples):  # the choices that did arrive are counted whatever became of the rest
                failure = error or BackendError(f"the backend returned {len(samples)} choices of {len(members)} "
                                                "asked", retryable=True, kind="fewer_choices")
            if failure is not None:
                if not isinstance(failure, BackendError):
                    failure = BackendError(f"{type(failure).__name__}: {failure}", kind="error")
                self.failures += 1
                self.engine.fail(request, failure)
                if failure.kind not in FINAL_KINDS:
                    self.stats.failed_requests += 1
                    self.stats.question_errors[request.question.id] = str(failure)
                if self.log is not None:
                    self._journal(self.log.record_failure, request.question.id, request.sample_index, digest,
                                  failure.kind)
                # per request at INFO: the run's summary gathers the failures, with the upstream's words
                level = logging.DEBUG if failure.kind == "exhausted" else logging.INFO
                logger.log(level, "sample %s#%d failed: %s", request.question.id, request.sample_index, failure)
                continue
            sample = samples[position]
            self.engine.deliver(request, sample)
            self.stats.new += 1
            if self.log is not None:
                self._journal(self.log.record_result, request.question.id, request.sample_index, digest, sample,
                              request.messages, new=True)
        if error is not None and not samples and isinstance(error, BackendError) and error.kind in BREAKER_KINDS:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= self.breaker and self.stats.stopped is None:
                self.stats.stopped = (f"stopped after {self._failures_in_a_row} requests in a row failed "
                                      f"({error.kind}): {error}")
                logger.warning("circuit breaker: %s", self.stats.stopped)
        self._report()

    def _journal(self, write: Callable[..., None], *args: object, **kwargs: object) -> None:
        """Write through to the journal; when it cannot be written, stop dispatching and keep going in memory."""
        if self.journal_error is not None:
            return
        try:
            write(*args, **kwargs)
        except JournalError as error:
            self.journal_error = error
            self.stats.stopped = str(error)
            logger.error("%s", error)

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
            with contextlib.suppress(Exception):  # never mask what stopped the run
                self.stats.result = self.engine.result()
            raise
        self.stats.result = self.engine.result()
        if self.journal_error is not None:
            raise self.journal_error
        return self.stats.result

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
               seed: int = 0, on_progress: Callable[[Progress], None] | None = None,
               stats: RunStats | None = None, breaker: int = 3) -> RunResult:
    """Drive ``engine`` against a live backend until it stops asking. See the module docstring.

    ``stats`` (optional) is filled in with what the run did; ``breaker`` is how many requests in a row may fail
    for good with a connection-type error before no new one is sent."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if breaker < 1:
        raise ValueError(f"breaker must be >= 1, got {breaker}")
    count_prompt_tokens = getattr(backend, "count_prompt_tokens", None)
    if count_prompt_tokens is not None:  # a backend with a real tokenizer (local models): chains fit its context
        engine.sampler.fit_context(count_prompt_tokens, backend.prompt_token_limit,  # type: ignore[attr-defined]
                                   getattr(backend, "count_tokens", None))
    run = _LiveRun(engine, backend, concurrency, log, seed, on_progress, stats or RunStats(), breaker)
    return await run.run()
