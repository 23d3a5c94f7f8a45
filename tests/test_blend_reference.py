"""Blend-ASC (``blend-asc``) round by round against a reference model written from its docstring, and the
bookkeeping every allocator shares (``Allocator.pending`` / ``inflight``).

The allocator ranks rounds with numpy over arrays it refreshes as samples land; the reference below recomputes
every question's score from its tally at each round, in plain Python. Both are driven by the same answer streams
and seeded generator and must hand out the same questions in the same order: round 0 in shuffled order, then
rounds of the top ``ceil(n / 8)`` rankable questions by ``(1 - w) * 2 * (1 - confidence) + w * s / (1 + s)``,
``w`` the share of the budget spent, ties to the shuffled order, the last round cut to what the budget has left.
"""

from __future__ import annotations

import math
import random

import pytest

from allocator_driving import Events
from allocator_driving import drive as drive_agent
from dynscaling.allocators import BlendAscAllocator
from dynscaling.allocators.baselines import OracleAllocator, UniformAllocator
from dynscaling.allocators.stopping import ppr_statistic
from dynscaling.strategies import parse_strategy
from dynscaling.votes import Tally, leader_confidence


def make_streams(seed: int, questions: int, length: int = 200) -> list[list[int | None]]:
    """Per question, the answer classes a source serves in order: unanimous, split, diffuse, mostly mute."""
    rng = random.Random(seed)
    kinds = [[0.95, 0.05, 0.0], [0.5, 0.45, 0.0], [0.35, 0.25, 0.1], [0.3, 0.1, 0.5]]  # last: abstentions
    streams = []
    for qi in range(questions):
        top, second, mute = kinds[qi % len(kinds)]
        stream: list[int | None] = []
        for _ in range(length):
            x = rng.random()
            if x < mute:
                stream.append(None)
            elif x < mute + top:
                stream.append(0)
            elif x < mute + top + second:
                stream.append(1)
            else:
                stream.append(2 + rng.randrange(4))
        streams.append(stream)
    return streams


def score(tally: Tally, w: float) -> float:
    s = ppr_statistic(tally.v1, tally.v2, len(tally.counts))
    return (1.0 - w) * 2.0 * (1.0 - leader_confidence(tally.v1, tally.v2)) + w * s / (1.0 + s)


class Reference:
    """The documented rule, with the engine's calls: ``next_question``, then ``dispatched``; later ``landed``
    (the sample counted) or ``abandoned`` (a failed request: no sample, nothing spent)."""

    def __init__(self, questions: int, budget: int | None, seed: int, horizon: float = 8.0) -> None:
        rng = random.Random(seed)
        order = list(range(questions))
        rng.shuffle(order)
        self.position = {qi: i for i, qi in enumerate(order)}
        self.round = list(order)  # served from the front
        self.tallies = [Tally() for _ in range(questions)]
        self.pending = [0] * questions
        self.closed: set[int] = set()
        self.spent = 0
        self.budget = budget
        self.total = max(float(budget if budget is not None else horizon * questions), 1.0)

    def next_round(self) -> list[int]:
        w = min(1.0, self.spent / self.total)
        rankable = [qi for qi in range(len(self.tallies)) if qi not in self.closed and not self.pending[qi]]
        size = math.ceil(len(rankable) / 8)
        if self.budget is not None:
            size = min(size, max(1, self.budget - self.spent - sum(self.pending)))
        ranked = sorted(rankable, key=lambda qi: (-score(self.tallies[qi], w), self.position[qi]))
        return ranked[:size]

    def next_question(self) -> int | None:
        self.round = [qi for qi in self.round if qi not in self.closed]
        if not self.round:
            self.round = self.next_round()
        return self.round.pop(0) if self.round else None

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1

    def landed(self, qi: int) -> None:  # the sample is already in its tally
        self.pending[qi] -= 1
        self.spent += 1

    def abandoned(self, qi: int) -> None:
        self.pending[qi] -= 1

    def close(self, qi: int) -> None:
        self.closed.add(qi)


def drive(agent: Reference | BlendAscAllocator, streams: list[list[int | None]], budget: int, *, inflight: int,
          fail_every: int = 0, closing: dict[int, int] | None = None, seed: int = 0) -> Events:
    """``allocator_driving.drive`` with the streams as the source, always live (``inflight`` >= 1)."""
    served = [0] * len(streams)

    def serve(qi: int) -> None:
        agent.tallies[qi].add(streams[qi][served[qi]])
        served[qi] += 1

    return drive_agent(agent, serve, budget, inflight=inflight, fail_every=fail_every, closing=closing, seed=seed)


def allocator(questions: int, budget: int | None, seed: int, horizon: float = 8.0) -> BlendAscAllocator:
    blend = BlendAscAllocator(horizon=horizon)
    blend.start([Tally() for _ in range(questions)], budget, random.Random(seed))
    return blend


CASES = [(questions, budget_per_q, seed) for questions in (1, 3, 8, 17, 40) for budget_per_q in (1, 2.5, 6)
         for seed in (0, 1)]


@pytest.mark.parametrize(("questions", "per_q", "seed"), CASES)
@pytest.mark.parametrize("inflight", [1, 5])
def test_blend_matches_the_reference(questions: int, per_q: float, seed: int, inflight: int) -> None:
    streams = make_streams(seed, questions)
    budget = max(1, round(per_q * questions))
    expected = drive(Reference(questions, budget, seed), streams, budget, inflight=inflight, seed=seed)
    got = drive(allocator(questions, budget, seed), streams, budget, inflight=inflight, seed=seed)
    assert got == expected
    assert sum(e == "land" for e, _ in got) == budget  # no threshold retires a question: the budget is spent


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("inflight", [1, 4])
def test_failed_requests_spend_nothing_and_their_question_is_ranked_again(seed: int, inflight: int) -> None:
    """A failed request (``abandoned``) spends none of the budget: ``w`` and the last round's size do not count it,
    and a question whose only requests failed is ranked as one with no votes."""
    questions, budget = 12, 40
    streams = make_streams(seed, questions)
    expected = drive(Reference(questions, budget, seed), streams, budget, inflight=inflight, fail_every=3, seed=seed)
    got = drive(allocator(questions, budget, seed), streams, budget, inflight=inflight, fail_every=3, seed=seed)
    assert got == expected
    assert sum(e == "fail" for e, _ in got) > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_closed_questions_are_never_asked_again(seed: int) -> None:
    questions, budget = 10, 50
    streams = make_streams(seed, questions)
    closing = {3: 2, 17: 5, 30: 0}
    expected = drive(Reference(questions, budget, seed), streams, budget, inflight=2, closing=closing, seed=seed)
    got = drive(allocator(questions, budget, seed), streams, budget, inflight=2, closing=closing, seed=seed)
    assert got == expected
    for step, qi in closing.items():
        closed_at = got.index(("close", qi))
        assert ("ask", qi) not in got[closed_at:], step


@pytest.mark.parametrize("horizon", [1.0, 2.0, 8.0, None])
def test_without_a_sample_budget_the_blend_is_paced_by_horizon(horizon: float | None) -> None:
    """With a budget in tokens or dollars only (no sample cap), ``w`` is the samples spent over ``horizon`` per
    question (8 by default), and stays at 1 past it: the ranking is then PPR-1v1's alone."""
    questions, samples = 9, 100  # past horizon * questions for horizons 1 and 2; near it for 8
    streams = make_streams(4, questions)
    reference = Reference(questions, None, 4, horizon=8.0 if horizon is None else horizon)
    expected = drive(reference, streams, samples, inflight=1)
    blend = BlendAscAllocator() if horizon is None else BlendAscAllocator(horizon=horizon)
    blend.start([Tally() for _ in range(questions)], None, random.Random(4))
    got = drive(blend, streams, samples, inflight=1)
    assert got == expected


def test_a_budget_smaller_than_the_batch_reaches_a_random_subset_in_shuffled_order() -> None:
    streams = make_streams(0, 20)
    got = [qi for event, qi in drive(allocator(20, 7, 5), streams, 7, inflight=1) if event == "ask"]
    order = list(range(20))
    random.Random(5).shuffle(order)
    assert got == order[:7]


# ---- the bookkeeping every allocator shares ----

BASE_STRATEGIES = ["blend-asc", "sc", "adaptive", "esc", "consol", "ppr", "oracle", "dynscaling-parallel", "ucb"]


@pytest.mark.parametrize("name", BASE_STRATEGIES)
@pytest.mark.parametrize("questions", [2, 6])
def test_pending_and_inflight_count_the_requests_not_yet_back(name: str, questions: int) -> None:
    """``pending[qi]`` and ``inflight`` are what an allocator decides with (caps, in-flight bonuses, the last
    round's size): each request asked for counts until it lands or fails, whatever the allocator. With two
    questions and three requests in flight, some question has two at once."""
    _, alloc = parse_strategy(name).build()
    if isinstance(alloc, OracleAllocator):
        alloc.bind(lambda qi, cls: cls == 0)
    tallies = [Tally() for _ in range(questions)]
    alloc.start(tallies, 60, random.Random(0))
    flying: list[int] = []
    rng = random.Random(1)
    most = 0
    for step in range(40):
        while len(flying) < 3 and (qi := alloc.next_question()) is not None:
            alloc.dispatched(qi)
            flying.append(qi)
        if not flying:
            break
        assert alloc.inflight == len(flying)
        assert alloc.pending == [flying.count(qi) for qi in range(questions)]
        most = max(most, max(alloc.pending))
        qi = flying.pop(rng.randrange(len(flying)))
        if step % 4 == 3:
            alloc.abandoned(qi)
        else:
            tallies[qi].add(step % 3)
            alloc.landed(qi)
        assert alloc.inflight == len(flying)
        assert alloc.pending == [flying.count(qi) for qi in range(questions)]
    assert alloc.inflight == len(flying)
    assert most >= 1


def test_describe_names_the_allocator() -> None:
    assert BlendAscAllocator().describe() == "blend-asc"
    assert UniformAllocator().describe() == "UniformAllocator"  # the base class's: the class's own name
