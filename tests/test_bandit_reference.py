"""The UCB bandit (``ucb``) step by step against a reference model written from its docstring.

The allocator keeps a heap, versions and a refresh schedule so that each step is O(log Q); the reference below
re-scores every question at every step, which is slow and obviously right. Both are driven by the same answer
streams and the same seeded generator, and must pick the same question at every step: warm-up in shuffled
rounds, then the highest ``score + c * sqrt(ln t / n)`` (ties to the lower index), with ``ln t`` refreshed when
``t`` has grown by half, retirement at ``cap`` samples or at confidence ``>= stop``, and the bar raised towards
``stop_max`` once every question has settled.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

from dynscaling.allocators import SCORES, BanditAllocator
from dynscaling.votes import Tally, leader_confidence


def make_streams(seed: int, questions: int = 9, length: int = 400) -> list[list[int | None]]:
    """Per question, the answer classes a source serves in order: some near-unanimous, some split, some mute."""
    rng = random.Random(seed)
    streams = []
    for qi in range(questions):
        kind = qi % 3
        weights = [[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.3, 0.2, 0.5]][kind]  # last: share of abstentions
        stream: list[int | None] = []
        for _ in range(length):
            x = rng.random()
            stream.append(0 if x < weights[0] else 1 if x < weights[0] + weights[1] else None)
        streams.append(stream)
    return streams


def reference(streams: list[list[int | None]], budget: int, seed: int, *, score: str, c: float, k0: int,
              stop: float, cap: int | None, stop_max: float | None, closing: dict[int, int] | None = None) -> list[int]:
    """The questions in the order the documented rule samples them, re-scoring everything at every step.
    ``closing`` maps a step to a question closed before it (the engine closes one whose requests keep failing):
    a closed question is never asked again."""
    n = len(streams)
    rng = random.Random(seed)
    tallies = [Tally() for _ in streams]
    order: list[int] = []
    closed: set[int] = set()

    def close_due() -> None:
        if closing and len(order) in closing:
            closed.add(closing[len(order)])

    def draw(qi: int) -> None:
        tallies[qi].add(streams[qi][tallies[qi].samples])
        order.append(qi)

    for _ in range(k0):  # warm-up: one round at a time, in a freshly shuffled order, taken from its end
        close_due()
        round_order = [qi for qi in range(n) if qi not in closed]
        rng.shuffle(round_order)
        for qi in reversed(round_order):
            close_due()
            if qi in closed:
                continue
            if len(order) == budget:
                return order
            draw(qi)

    bar, top = stop, stop if stop_max is None else stop_max
    t, log_t, refresh_at = len(order), 0.0, 0

    def refresh() -> None:
        nonlocal log_t, refresh_at
        log_t = math.log(max(t, 2))
        refresh_at = max(t + 1, int(t * 1.5))

    def retired(qi: int) -> bool:
        tally = tallies[qi]
        if qi in closed or cap is not None and tally.samples >= cap:
            return True
        return tally.samples >= k0 and leader_confidence(tally.v1, tally.v2) >= bar

    def priority(qi: int) -> float:
        tally = tallies[qi]
        return SCORES[score](tally) + c * math.sqrt(log_t / max(tally.samples, 1))

    while len(order) < budget:
        close_due()
        if t >= refresh_at:
            refresh()
        live = [qi for qi in range(n) if not retired(qi)]
        if not live:
            if bar >= top:
                break
            bar = min(top, 1.0 - (1.0 - bar) / 5.0)
            refresh()
            continue
        draw(max(live, key=lambda qi: (priority(qi), -qi)))
        t += 1
    return order


def allocator_order(streams: list[list[int | None]], budget: int, seed: int, *, synchronous: bool,
                    closing: dict[int, int] | None = None, **params: object) -> list[int]:
    """The questions in the order ``BanditAllocator`` picks them, driven like the engine drives it."""
    allocator = BanditAllocator(**params)  # type: ignore[arg-type]
    tallies = [Tally() for _ in streams]
    allocator.start(tallies, budget, random.Random(seed))
    order: list[int] = []
    while len(order) < budget:
        if closing and len(order) in closing:
            allocator.close(closing[len(order)])
        qi = allocator.next_question()
        if qi is None:
            break
        order.append(qi)
        if synchronous:  # replay: the sample is counted, then reported
            tallies[qi].add(streams[qi][tallies[qi].samples])
            allocator.sampled(qi)
        else:  # a live source, one request at a time
            allocator.dispatched(qi)
            tallies[qi].add(streams[qi][tallies[qi].samples])
            allocator.landed(qi)
    return order


GRID = list(itertools.product(
    ["beta", "margin", "entropy", "voi"],  # score
    [0.0, 0.3, 1.0],  # c (1.0: the bonus at its full size, not a special case)
    [1, 2],  # k0
    [0.75, 0.95],  # stop (0.75 is the confidence of a single vote: >= and > differ on it)
    [None, 6],  # cap
))


@pytest.mark.parametrize(("score", "c", "k0", "stop", "cap"), GRID)
@pytest.mark.parametrize("synchronous", [True, False], ids=["replay", "live"])
def test_each_step_is_the_documented_rule(score: str, c: float, k0: int, stop: float, cap: int | None,
                                          synchronous: bool) -> None:
    streams = make_streams(seed=k0 * 10 + (cap or 0))
    params = dict(score=score, c=c, k0=k0, stop=stop, cap=cap, stop_max=None)
    budget = 9 * 14
    expected = reference(streams, budget, seed=3, **params)  # type: ignore[arg-type]
    assert allocator_order(streams, budget, 3, synchronous=synchronous, **params) == expected


# Unanimous but for one dissenting vote, at a different position in each question (none in the first).
UNANIMOUS: list[list[int | None]] = [[1 if i == at else 0 for i in range(40)] for at in (99, 2, 5, 8)]


@pytest.mark.parametrize("stop_max", [0.95, 0.99, 0.999])
@pytest.mark.parametrize("score", ["beta", "voi"])
@pytest.mark.parametrize("unanimous", [False, True], ids=["mixed", "unanimous"])
def test_raising_the_bar_follows_the_documented_schedule(stop_max: float, score: str, unanimous: bool) -> None:
    """Everything settles at 0.75 early; the bar then rises 0.75 -> 0.95 -> 0.99 ... up to ``stop_max``. On
    unanimous questions each level is a number of samples: (4, 0) is the first tally above 0.95, (6, 0) above
    0.99, so a schedule of other steps (0.958, 0.993, ...) would stop them elsewhere."""
    streams = UNANIMOUS if unanimous else make_streams(seed=5)
    params = dict(score=score, c=0.3, k0=1, stop=0.75, cap=None, stop_max=stop_max)
    budget = len(streams) * 30
    expected = reference(streams, budget, seed=8, **params)  # type: ignore[arg-type]
    assert allocator_order(streams, budget, 8, synchronous=True, **params) == expected
    without = reference(streams, budget, seed=8, **{**params, "stop_max": None})  # type: ignore[arg-type]
    assert len(expected) > len(without)  # the raised bar spent budget the fixed one left unspent


def test_the_reference_is_not_trivially_round_robin() -> None:
    """The comparison above would prove little if both sides just cycled through the questions."""
    streams = make_streams(seed=1)
    order = reference(streams, 9 * 14, seed=3, score="beta", c=0.3, k0=2, stop=0.95, cap=None, stop_max=None)
    counts = [order.count(qi) for qi in range(9)]
    assert max(counts) >= 3 * min(counts) and len(order) == 9 * 14


def test_a_request_in_flight_counts_towards_the_bonus() -> None:
    """With two requests allowed per question, one already in flight lowers that question's bonus: of two
    questions with equal tallies, the other one goes next."""
    allocator = BanditAllocator(score="beta", c=5.0, k0=1, stop=0.99, max_inflight=2)
    tallies = [Tally() for _ in range(2)]
    allocator.start(tallies, None, random.Random(0))
    for _ in range(2):  # warm-up: one sample each, both split 0 / 1 after the exploit step below
        qi = allocator.next_question()
        assert qi is not None
        allocator.dispatched(qi)
        tallies[qi].add(0)
        allocator.landed(qi)
    first = allocator.next_question()
    assert first is not None
    allocator.dispatched(first)
    assert allocator.next_question() == 1 - first


def test_at_a_refresh_a_request_in_flight_counts_towards_the_bonus() -> None:
    """The same when ``ln t`` is refreshed while a request is out: of two questions with equal tallies, the one
    with a request in flight has the smaller bonus, so the other goes next."""
    allocator = BanditAllocator(score="beta", c=5.0, k0=1, stop=0.99, max_inflight=2)
    tallies = [Tally() for _ in range(3)]
    allocator.start(tallies, None, random.Random(0))
    for _ in range(3):  # warm-up: one vote for class 0 each
        qi = allocator.next_question()
        assert qi is not None
        allocator.dispatched(qi)
        tallies[qi].add(0)
        allocator.landed(qi)
    assert allocator.next_question() == 0  # all equal: the lowest index
    allocator.dispatched(0)
    assert allocator.next_question() == 1  # question 0 now counts its request in flight
    allocator.dispatched(1)
    tallies[1].add(0)
    allocator.landed(1)  # t has grown by a third: the next decision refreshes ln t and re-scores everyone
    assert allocator.next_question() == 2  # (1, 0) with one in flight ranks below (1, 0) with none


def test_a_question_whose_requests_failed_is_asked_again() -> None:
    """A request that ended without a sample leaves its question with fewer samples, so a larger bonus: it is
    asked again rather than passed over (here: its first four requests fail)."""
    allocator = BanditAllocator(score="beta", c=5.0, k0=1, stop=0.99)
    tallies = [Tally() for _ in range(2)]
    allocator.start(tallies, None, random.Random(0))
    order = []
    for failed in (False, True, True, True, True):  # four failures: the last is scored between two refreshes
        qi = allocator.next_question()
        assert qi is not None
        order.append(qi)
        allocator.dispatched(qi)
        if failed:
            allocator.abandoned(qi)
        else:
            tallies[qi].add(0)
            allocator.landed(qi)
    assert order[1] == order[2] == order[3] == order[4] != order[0]
    assert allocator.next_question() == order[1]


@pytest.mark.parametrize("k0", [1, 2])
@pytest.mark.parametrize("closing", [{0: 2, 1: 7}, {4: 5, 12: 3, 30: 0}], ids=["at-start", "mid-run"])
def test_a_closed_question_is_never_asked_again(k0: int, closing: dict[int, int]) -> None:
    """Closed before the first request, during the warm-up (its round already shuffled) or while it waits in
    the queue with a priority."""
    streams = make_streams(seed=2)
    params = dict(score="beta", c=0.3, k0=k0, stop=0.95, cap=None, stop_max=None)
    expected = reference(streams, 9 * 10, seed=6, closing=closing, **params)  # type: ignore[arg-type]
    for step, qi in closing.items():
        assert qi not in expected[step:]
    assert allocator_order(streams, 9 * 10, 6, synchronous=True, closing=closing, **params) == expected


@pytest.mark.parametrize("questions", [2, 3, 4])
@pytest.mark.parametrize("score", ["beta", "voi"])
def test_small_batches_refresh_on_the_same_schedule(questions: int, score: str) -> None:
    """With 2-4 questions the first refresh comes at t = 2-4, where ``t + 1`` and ``1.5 t`` are close."""
    streams = make_streams(seed=questions, questions=questions)
    params = dict(score=score, c=1.0, k0=1, stop=0.99, cap=None, stop_max=None)
    expected = reference(streams, questions * 12, seed=1, **params)  # type: ignore[arg-type]
    assert allocator_order(streams, questions * 12, 1, synchronous=True, **params) == expected


def test_the_warm_up_counts_samples_a_question_already_has() -> None:
    """On a resumed run the tallies arrive holding the journal's samples: the warm-up tops each question up to
    ``k0`` and does not ask again for what is there."""
    allocator = BanditAllocator(score="beta", c=0.3, k0=2, stop=0.99, cap=2)
    tallies = [Tally() for _ in range(3)]
    tallies[0].add(0)
    tallies[0].add(0)
    tallies[1].add(1)
    allocator.start(tallies, None, random.Random(0))
    asked = []
    while (qi := allocator.next_question()) is not None:
        asked.append(qi)
        tallies[qi].add(0)
        allocator.sampled(qi)
    assert sorted(asked) == [1, 2, 2]


def test_with_two_requests_allowed_a_question_can_have_two_in_flight() -> None:
    """``max_inflight=2``: the question most worth a sample gets a second request before the first lands."""
    allocator = BanditAllocator(score="beta", c=0.0, k0=1, stop=0.99, max_inflight=2)
    tallies = [Tally() for _ in range(2)]
    allocator.start(tallies, None, random.Random(0))
    for _ in range(2):
        qi = allocator.next_question()
        assert qi is not None
        allocator.dispatched(qi)
        tallies[qi].add(None if qi == 0 else 0)  # question 0 abstains: it stays the most uncertain
        allocator.landed(qi)
    assert allocator.next_question() == 0
    allocator.dispatched(0)
    assert allocator.next_question() == 0


class TestParameters:
    def test_the_defaults(self) -> None:
        allocator = BanditAllocator()
        assert (allocator.score_name, allocator.c, allocator.k0, allocator.stop, allocator.cap,
                allocator.max_inflight, allocator.stop_max) == ("beta", 0.3, 2, 0.95, None, 1, 0.95)

    def test_stop_max_may_equal_stop(self) -> None:
        assert BanditAllocator(stop=0.9, stop_max=0.9).stop_max == 0.9

    @pytest.mark.parametrize(("params", "message"), [
        ({"stop": 1.5}, "stop threshold must be in (0.5, 1], got 1.5"),
        ({"stop_max": 1.0}, "stop_max must be in [stop, 1), got 1.0 with stop=0.95"),
        ({"stop_max": 1.5}, "stop_max must be in [stop, 1), got 1.5 with stop=0.95"),
    ])
    def test_a_bound_is_refused_with_its_message(self, params: dict, message: str) -> None:
        from dynscaling.errors import ConfigError

        with pytest.raises(ConfigError) as caught:
            BanditAllocator(**params)
        assert str(caught.value) == message


def test_at_a_refresh_a_request_in_flight_counts_towards_the_cap() -> None:
    """``cap=2`` with two requests allowed per question: a question holding one sample and one request in flight
    is full when ``ln t`` is refreshed, and gets no third request."""
    allocator = BanditAllocator(score="beta", c=5.0, k0=1, stop=0.99, cap=2, max_inflight=2)
    tallies = [Tally() for _ in range(3)]
    allocator.start(tallies, None, random.Random(0))
    for _ in range(3):  # warm-up: one vote each, t = 3, the next refresh at t = 4
        qi = allocator.next_question()
        assert qi is not None
        allocator.dispatched(qi)
        tallies[qi].add(0)
        allocator.landed(qi)
    assert allocator.next_question() == 0
    allocator.dispatched(0)  # question 0: one sample, one in flight, so full
    assert allocator.next_question() == 1
    allocator.dispatched(1)
    tallies[1].add(0)
    allocator.landed(1)  # t = 4: the next decision refreshes
    assert allocator.next_question() == 2
    allocator.dispatched(2)
    assert allocator.next_question() is None  # every question is full or in flight to its cap
