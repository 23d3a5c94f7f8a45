"""The baseline allocators (``sc``/``single``, ``esc``, ``adaptive``, the oracle) on the behaviour a benchmark
relies on: their published defaults, their caps with resumed questions, failed requests asked again, the
oracle's construction."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from dynscaling.allocators.base import Allocator
from dynscaling.allocators.baselines import AdaptiveAllocator, EscAllocator, OracleAllocator, UniformAllocator
from dynscaling.errors import ConfigError
from dynscaling.votes import Tally


def run(allocator: Allocator, streams: list[list[int | None]], budget: int = 10_000,
        tallies: list[Tally] | None = None, fails: Callable[[int, int], bool] | None = None) -> list[int]:
    """Drive ``allocator`` one request at a time, as the engine does; ``fails(qi, request)`` makes a request fail
    (``abandoned``). Returns the questions in the order asked."""
    tallies = tallies if tallies is not None else [Tally() for _ in streams]
    allocator.start(tallies, budget, random.Random(0))
    asked: list[int] = []
    landed = 0
    while landed < budget:
        qi = allocator.next_question()
        if qi is None:
            break
        allocator.dispatched(qi)
        asked.append(qi)
        if fails is not None and fails(qi, asked.count(qi)):
            allocator.abandoned(qi)
            continue
        tallies[qi].add(streams[qi][tallies[qi].samples])
        allocator.landed(qi)
        landed += 1
    return asked


ALTERNATING: list[int | None] = [i % 2 for i in range(100)]  # never unanimous, never confident
UNANIMOUS: list[int | None] = [0] * 100


def test_esc_defaults_are_windows_of_4_and_a_cap_of_40() -> None:
    """Li et al.'s defaults: a question whose answers keep splitting stops at 40 samples; one whose first window
    of 4 is unanimous stops at 4."""
    asked = run(EscAllocator(), [ALTERNATING, UNANIMOUS])
    assert asked.count(0) == 40
    assert asked.count(1) == 4


def test_adaptive_default_cap_is_40() -> None:
    asked = run(AdaptiveAllocator(), [ALTERNATING, UNANIMOUS])
    assert asked.count(0) == 40
    assert asked.count(1) < 40


def test_esc_first_windows_go_out_interleaved() -> None:
    """One sample of every question, then a second, ...: a budget under w samples per question still reaches
    every question, and each question's first window is whole before its second opens."""
    streams = [ALTERNATING] * 5
    asked = run(EscAllocator(w=3, cap=40), streams)
    first = asked[:5]
    assert sorted(first) == list(range(5))
    assert asked[:15] == first * 3


def test_esc_never_asks_a_resumed_question_already_at_its_cap() -> None:
    tallies = [Tally() for _ in range(3)]
    for _ in range(6):
        tallies[1].add(_ % 2)  # resumed with 6 samples, cap 6
    for _ in range(4):
        tallies[2].add(_ % 2)  # resumed with 4: one window of 2 left
    asked = run(EscAllocator(w=4, cap=6), [ALTERNATING] * 3, tallies=tallies)
    assert asked.count(1) == 0
    assert asked.count(2) == 2
    assert asked.count(0) == 6
    assert [t.samples for t in tallies] == [6, 6, 6]


@pytest.mark.parametrize("cap", [1, 3])
def test_sc_asks_again_for_a_sample_whose_request_failed(cap: int) -> None:
    """With a cap (``single``, or ``sc`` capped at the budget per question), a failed request leaves its question
    a sample short: it is asked again in a later round, so every question ends with ``cap`` samples."""
    streams = [ALTERNATING] * 4
    tallies = [Tally() for _ in streams]
    asked = run(UniformAllocator(cap=cap), streams, tallies=tallies, fails=lambda qi, n: qi == 2 and n == 1)
    assert [t.samples for t in tallies] == [cap] * 4
    assert asked.count(2) == cap + 1


def test_sc_without_a_cap_spends_the_budget_evenly() -> None:
    tallies = [Tally() for _ in range(4)]
    run(UniformAllocator(), [ALTERNATING] * 4, budget=10, tallies=tallies)
    assert sorted(t.samples for t in tallies) == [2, 2, 3, 3]


def test_the_oracle_takes_its_grader_in_the_constructor_or_later() -> None:
    streams: list[list[int | None]] = [[1, 1, 0, 0, 0, 0] * 10, UNANIMOUS]
    right = lambda qi, cls: cls == 0  # noqa: E731
    built = run(OracleAllocator(right), streams)
    bound = OracleAllocator()
    bound.bind(right)
    assert run(bound, streams) == built
    assert built.count(1) == 1  # right from its first sample: left alone
    assert built.count(0) == 5  # wrong until the correct answer leads: 1, 1, 0, 0, 0


def test_the_oracle_without_gold_answers_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as caught:
        OracleAllocator().start([Tally()], 10, random.Random(0))
    assert str(caught.value) == "the oracle allocator needs gold answers (evaluation only)"


def test_sc_counts_requests_in_flight_towards_its_cap() -> None:
    """Live, several requests of one question can be out at once: the cap counts them, so a capped question is
    never asked for more samples than its cap, whatever has come back yet."""
    allocator = UniformAllocator(cap=2)
    allocator.start([Tally(), Tally()], 100, random.Random(0))
    asked = []
    for _ in range(10):  # bounded: an allocator that ignores its cap would hand out questions forever
        qi = allocator.next_question()
        if qi is None:
            break
        allocator.dispatched(qi)  # none lands
        asked.append(qi)
    assert sorted(asked) == [0, 0, 1, 1]
