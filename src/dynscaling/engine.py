"""The sans-I/O engine: tallies + allocator + budget ledger, and nothing that waits.

The engine answers two calls. ``next_request()`` says what to sample next (a question, the messages its sampler
built, a budget reservation) or None. ``deliver(request, sample)`` / ``fail(request, error)`` say what came back.
It never performs I/O, so one engine serves the fast synchronous replay loop and the asyncio live driver alike
(``dynscaling.drivers``), and its invariants can be tested without a network.

Finished when ``next_request()`` returns None and ``inflight == 0``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .allocators import Allocator, OracleAllocator
from .answers import AnswerClusterer, answers_match, canonical_key, extract_answer
from .budget import Budget, Ledger, Reservation
from .errors import BackendError, ConfigError, InputError
from .samplers import Attempt, Message, Prompts, Sampler
from .strategies import Strategy, parse_strategy
from .types import Question, QuestionResult, RunResult, Sample, Usage
from .votes import Tally

__all__ = ["Engine", "SampleRequest"]

logger = logging.getLogger("dynscaling.engine")

#: reserve(question, messages) -> (tokens, usd): the worst case a request may cost, held before it is sent.
CostEstimate = Callable[[Question, "list[Message] | None"], tuple[int, float]]


def _free(question: Question, messages: list[Message] | None) -> tuple[int, float]:
    return 0, 0.0


@dataclass(slots=True)
class SampleRequest:
    """One sample to produce.

    Attributes:
        question_index: position of the question in the batch.
        question: the question.
        sample_index: this question's n-th request (0-based); with the run it keys the journal.
        messages: the chat messages to send, or None when the sampler needs none (replay of parallel samples).
        reservation: what the ledger holds for this request until it is settled or released.
    """

    question_index: int
    question: Question
    sample_index: int
    messages: list[Message] | None
    reservation: Reservation


class Engine:
    """Runs one strategy over one batch under one budget. See the module docstring.

    Args:
        questions: the batch (non-empty, unique ids).
        strategy: a ``Strategy`` or a spec string such as ``"dynscaling-parallel:c=0.3"``.
        budget: the caps for the whole batch.
        seed: seeds every random choice (order of questions, chain selection), so a run is reproducible.
        needs_messages: build chat messages for each request (live backends); replay of parallel samples
            skips it.
        estimate_cost: the worst-case (tokens, usd) of a request, reserved before dispatch.
        clusterers: per-question answer clusterers to share (replay pools precompute them).
        max_failures: a question whose requests fail this many times for good is closed.
        prompts: the wording the sampler uses (``dynscaling.Prompts``), instead of the defaults.
    """

    def __init__(self, questions: Sequence[Question], strategy: Strategy | str, budget: Budget, *, seed: int = 0,
                 needs_messages: bool = True, estimate_cost: CostEstimate = _free,
                 clusterers: Sequence[AnswerClusterer] | None = None, max_failures: int = 3,
                 sampler: Sampler | None = None, allocator: Allocator | None = None,
                 prompts: Prompts | None = None) -> None:
        if not questions:
            raise InputError("the batch is empty: there is no question to answer")
        ids = [q.id for q in questions]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, c in Counter(ids).items() if c > 1)
            raise InputError(f"question id {duplicate!r} appears more than once in the batch", field="id")
        self.questions = list(questions)
        self.strategy = parse_strategy(strategy)
        self.budget = budget
        self.ledger = Ledger(budget)
        self.seed = seed
        self.rng = random.Random(seed)
        n = len(self.questions)
        per_question = budget.samples / n if budget.samples is not None else None
        if sampler is None or allocator is None:
            built_sampler, built_allocator = self.strategy.build(per_question, prompts)
            sampler = sampler or built_sampler
            allocator = allocator or built_allocator
        self.sampler = sampler
        self.allocator = allocator
        self.needs_messages = needs_messages or sampler.needs_live_model
        self.estimate_cost = estimate_cost
        self.max_failures = max_failures
        self.tallies = [Tally() for _ in range(n)]
        self.clusterers = list(clusterers) if clusterers is not None else [
            AnswerClusterer(q.answer_type) for q in self.questions]
        self._costs: list[list[Usage]] = [[] for _ in range(n)]  # summed at result time: cheaper per sample
        self.attempts: list[list[Attempt]] = [[] for _ in range(n)]
        self.requested = [0] * n
        self.failures = [0] * n
        self.failure_kinds: Counter[str] = Counter()
        self.inflight = 0
        self._held: int | None = None
        if isinstance(self.allocator, OracleAllocator):
            if any(q.gold is None for q in self.questions):
                raise ConfigError("the oracle strategy needs a gold answer for every question (evaluation only)")
            self.allocator.bind(self.is_correct)
        if (budget.tokens is not None or budget.usd is not None) and getattr(self.allocator, "per_token", False):
            self.allocator.unit_cost = self._expected_cost  # rank samples per token (or dollar), not per sample
        self.allocator.start(self.tallies, budget.samples, self.rng, usages=self._costs,
                             clusterers=self.clusterers)

    def _expected_cost(self, qi: int) -> float:
        """The expected cost of one more sample of ``qi`` in the budget's unit (dollars when the budget caps
        dollars, else tokens): its own mean so far, shrunk toward the batch's mean; 1 before any sample."""
        usd = self.budget.usd is not None
        spent = self.ledger.spent_usd if usd else self.ledger.spent_tokens
        batch = spent / self.ledger.spent_samples if self.ledger.spent_samples else 0.0
        own = sum(u.cost_usd if usd else u.prompt_tokens + u.completion_tokens for u in self._costs[qi])
        cost = (own + batch) / (len(self._costs[qi]) + 1)
        return cost if cost > 0 else 1.0

    # ---- the two calls -------------------------------------------------------------------------------------

    def next_request(self) -> SampleRequest | None:
        """The next sample to produce, with its budget reserved; None when nothing should be sent now."""
        qi = self._held if self._held is not None else self.allocator.next_question()
        if qi is None:
            return None
        question = self.questions[qi]
        # The sampler's choices (which earlier answers a chain shows) are drawn from the request's own seed, not
        # the run's shared generator: a request the budget holds back is built again later, and a journal
        # replay builds each request once, so a shared draw would drift and a resumed run would ask for other
        # prompts than the ones it paid for.
        messages = (self.sampler.messages(question, self.attempts[qi],
                                          random.Random(f"{self.seed}:{question.id}:{self.requested[qi]}"))
                    if self.needs_messages else None)
        if self.estimate_cost is _free:
            reservation = self.ledger.reserve()
        else:
            tokens, usd = self.estimate_cost(question, messages)
            reservation = self.ledger.reserve(tokens, usd)
        if reservation is None:
            self._held = qi  # retried when a settled request frees room; dropped when the run ends
            return None
        self._held = None
        self.allocator.dispatched(qi)
        self.inflight += 1
        index = self.requested[qi]
        self.requested[qi] += 1
        return SampleRequest(qi, question, index, messages, reservation)

    def deliver(self, request: SampleRequest, sample: Sample) -> None:
        """A sample came back: extract its answer (if the backend did not) and count it."""
        answer = sample.answer
        truncated = sample.finish_reason == "length"  # cut off mid-way: its last number is not its answer
        if answer is None and sample.text and not truncated:
            answer = extract_answer(sample.text, request.question.answer_type)
        cls = self.clusterers[request.question_index].assign(answer)
        if sample.text and not truncated:  # chains show them to the model; the server returns one of them
            chain = bool(request.messages) and any(m.get("role") == "assistant" for m in request.messages or [])
            self.attempts[request.question_index].append(Attempt(sample.text, cls, chain))
        self.deliver_class(request, cls, sample.usage)

    def deliver_class(self, request: SampleRequest, cls: int | None, usage: Usage) -> None:
        """Count a sample whose answer class is already known (replay pools precompute them)."""
        qi = request.question_index
        self.inflight -= 1
        self.ledger.settle(request.reservation, usage)
        self._costs[qi].append(usage)
        self.tallies[qi].add(cls)
        self.allocator.landed(qi)

    def fail(self, request: SampleRequest, error: BackendError) -> None:
        """A request ended without a sample (the backend's own retries, if any, are used up). Nothing was spent.
        A question whose requests fail ``max_failures`` times is closed, so a poisoned prompt cannot loop."""
        self.inflight -= 1
        self.ledger.release(request.reservation)
        self._failed(request.question_index, error)

    def _failed(self, qi: int, error: BackendError) -> None:
        self.failure_kinds[error.kind] += 1
        if error.kind == "exhausted":
            self.allocator.close(qi)
        elif error.kind != "cancelled":  # an interrupted run says nothing about the question
            self.failures[qi] += 1
            if self.failures[qi] >= self.max_failures:
                logger.warning("closing question %s after %d failures: %s", self.questions[qi].id,
                               self.failures[qi], error)
                self.allocator.close(qi)
        self.allocator.abandoned(qi)

    # ---- results -------------------------------------------------------------------------------------------

    def is_correct(self, qi: int, cls: int) -> bool:
        """Whether answer class ``cls`` of question ``qi`` matches its gold answer (evaluation only)."""
        question = self.questions[qi]
        clusterer = self.clusterers[qi]
        return _grade(clusterer.key(cls), clusterer.representative(cls), question.gold, question.answer_type)

    def question_usage(self, qi: int) -> Usage:
        prompt = completion = cached = reasoning = 0
        usd = 0.0
        for u in self._costs[qi]:  # summed inline: this runs once per sample of every run
            prompt += u.prompt_tokens
            completion += u.completion_tokens
            cached += u.cached_tokens
            reasoning += u.reasoning_tokens
            usd += u.cost_usd
        return Usage(prompt, completion, cached, reasoning, usd)

    def run_sync(self, draw: Callable[[int], tuple[int | None, Usage]]) -> None:
        """Run to the end with an in-process source of samples (replay): ``draw(question_index)`` returns the
        next sample's answer class and cost, or raises ``BackendError``.

        The same allocator, ledger and tallies as ``next_request``/``deliver_class``, one sample at a time, minus
        the request object per sample: this loop is what makes benches run at CPU speed. With a budget in samples
        alone the ledger is a count kept in locals and settled when the loop ends.
        """
        if self.needs_messages or self.estimate_cost is not _free:
            raise ConfigError("run_sync serves parallel samples only; use next_request/deliver for live backends")
        allocator = self.allocator
        ledger = self.ledger
        tallies = self.tallies
        costs = self._costs
        requested = self.requested
        charge = ledger.charge
        can_reserve = ledger.can_reserve
        next_question = allocator.next_question
        sampled = allocator.sampled
        counted = self.budget.tokens is None and self.budget.usd is None
        room = ledger.room()
        spent = tokens = 0
        usd = 0.0
        held, self._held = self._held, None
        try:
            while True:
                if held is not None:
                    qi, held = held, None
                else:
                    qi = next_question()
                    if qi is None:
                        return
                if spent >= room if counted else not can_reserve():
                    self._held = qi
                    return
                requested[qi] += 1
                try:
                    cls, usage = draw(qi)
                except BackendError as error:
                    allocator.dispatched(qi)
                    self._failed(qi, error)
                    continue
                if counted:
                    spent += 1
                    tokens += usage.prompt_tokens + usage.completion_tokens
                    usd += usage.cost_usd
                elif not charge(usage):  # over a token or money cap: the run ends here, as a live run would
                    return
                costs[qi].append(usage)
                tallies[qi].add(cls)
                sampled(qi)
        finally:
            ledger.spent_samples += spent
            ledger.spent_tokens += tokens
            ledger.spent_usd += usd

    def samples_detail(self, qi: int) -> list[dict[str, object]]:
        """The complete samples of a live run's question, for reports: text, answer, whether it saw a chain."""
        clusterer = self.clusterers[qi]
        return [{"text": a.text, "answer": None if a.answer_class is None else clusterer.representative(a.answer_class),
                 "chain": a.chain} for a in self.attempts[qi]]

    def question_result(self, qi: int) -> QuestionResult:
        tally = self.tallies[qi]
        clusterer = self.clusterers[qi]
        question = self.questions[qi]
        answer = clusterer.representative(tally.leader) if tally.leader is not None else None
        correct: bool | None = None
        if question.gold is not None:
            correct = tally.leader is not None and self.is_correct(qi, tally.leader)
        return QuestionResult(
            question_id=question.id,
            answer=answer,
            confidence=tally.confidence,
            votes=tuple((clusterer.representative(c), v) for c, v in tally.ranked()),
            samples=tally.samples,
            abstentions=tally.abstentions,
            usage=self.question_usage(qi),
            correct=correct,
        )

    def result(self) -> RunResult:
        results = tuple(self.question_result(qi) for qi in range(len(self.questions)))
        total = Usage()
        for r in results:
            total.add(r.usage)
        return RunResult(results=results, samples=self.ledger.spent_samples, usage=total,
                         failures=dict(self.failure_kinds))


@lru_cache(maxsize=1 << 18)
def _grade(key: str, representative: str, gold: str | None, answer_type: str) -> bool:
    """Grading by the class's canonical key, cached across runs (benches grade the same classes many times)."""
    if gold is None:
        return False
    if key == canonical_key(gold, answer_type):
        return True
    return answer_type == "latex" and answers_match(representative, gold, answer_type)
