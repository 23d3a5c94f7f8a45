"""ConSol's SPRT and PPR-1v1 (``consol``, ``ppr``) against reference models written from their documentation.

Each rule decides a question from that question's own votes only, so the reference runs one question at a time to
its stop: how many samples it takes follows from its answer stream alone, whatever else is in the batch and
whether requests go out one by one (replay) or a batch at a time (live). The order questions are served in is
round-robin from one shuffle of the batch, so a budget that ends the run early leaves the samples spread evenly.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Callable

import pytest

from dynscaling.allocators import ConsolAllocator, PprAllocator
from dynscaling.allocators.base import Allocator
from dynscaling.allocators.stopping import sprt_decides
from dynscaling.votes import Tally


def make_streams(seed: int, questions: int = 10, length: int = 300) -> list[list[int | None]]:
    """Answer streams from unanimous to split, some often unparsed (None), in several classes."""
    rng = random.Random(seed)
    streams = []
    for qi in range(questions):
        leader = [0.95, 0.7, 0.5, 0.4, 0.34][qi % 5]
        mute = [0.0, 0.1, 0.3][qi % 3]
        stream: list[int | None] = []
        for _ in range(length):
            if rng.random() < mute:
                stream.append(None)
            else:
                x = rng.random()
                stream.append(0 if x < leader else 1 if x < leader + (1 - leader) * 0.6 else 2 + int(x * 7) % 3)
        streams.append(stream)
    return streams


def llr(first: int, second: int, p1: float) -> float:
    return first * math.log(p1 / 0.5) + second * math.log((1 - p1) / 0.5)


def consol_rule(p1: float, alpha: float, beta: float) -> Callable[[int, int], bool]:
    """Wald's SPRT of H0 ``p = 1/2`` against H1 ``p = p1`` on the leader's share of the top two: stop at either
    line."""
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    return lambda first, second: not lower < llr(first, second, p1) < upper


def consol_samples(stream: list[int | None], p1: float, alpha: float, beta: float, max_trials: int) -> int:
    """Samples ConSol takes on one question: batches of the fewest votes that could decide, until it decides."""
    decides = consol_rule(p1, alpha, beta)
    tally = Tally()
    while tally.samples < max_trials:
        if tally.v1 > 0 and decides(tally.v1, tally.v2):
            break
        batch = next((t for t in range(1, max_trials + 1) if decides(tally.v1 + t, tally.v2)), max_trials)
        target = tally.votes + batch
        while tally.votes < target and tally.samples < max_trials:  # an abstention is asked again
            tally.add(stream[tally.samples])
    return tally.samples


def ppr_samples(stream: list[int | None], delta: float, cap: int) -> int:
    """Samples PPR-1v1 takes on one question: one vote at a time until the statistic is at most delta with
    ``v1 > v2``."""
    tally = Tally()
    while tally.samples < cap:
        v1, v2, k = tally.v1, tally.v2, len(tally.counts)
        n = v1 + v2
        if v1 > v2 and max(k - 1, 1) * (n + 1) * math.comb(n, v1) / 2 ** n <= delta:
            break
        tally.add(stream[tally.samples])
    return tally.samples


def round_robin(stops: list[int], budget: int, seed: int) -> list[int]:
    """The replay order: one shuffle of the batch, then one sample per question per turn until each stops."""
    order = list(range(len(stops)))
    random.Random(seed).shuffle(order)
    queue, taken, served = deque(qi for qi in order if stops[qi]), [0] * len(stops), []
    while queue and len(served) < budget:
        qi = queue.popleft()
        taken[qi] += 1
        served.append(qi)
        if taken[qi] < stops[qi]:
            queue.append(qi)
    return served


def run(allocator: Allocator, streams: list[list[int | None]], budget: int, seed: int,
        live: bool) -> list[int]:
    """The questions in the order the allocator has them sampled, driven the way the engine drives it: replay
    counts each sample as it is asked for; live sends every request the allocator wants, then they land in
    order."""
    tallies = [Tally() for _ in streams]
    allocator.start(tallies, budget, random.Random(seed))
    served: list[int] = []
    while len(served) < budget:
        if not live:
            qi = allocator.next_question()
            if qi is None:
                break
            served.append(qi)
            tallies[qi].add(streams[qi][tallies[qi].samples])
            allocator.sampled(qi)
            continue
        out = []
        while len(served) + len(out) < budget and (qi := allocator.next_question()) is not None:
            allocator.dispatched(qi)
            out.append(qi)
        if not out:
            break
        for qi in out:
            served.append(qi)
            tallies[qi].add(streams[qi][tallies[qi].samples])
            allocator.landed(qi)
    return served


CONSOL_GRID = list(itertools.product(
    [0.5001, 0.5002, 0.50007, 0.6],  # p1: 3, 2 and 4 votes ahead with the defaults' lines; 0.6 a coarser test
    [(0.05, 1 - 0.05 - 0.000024), (0.1, 0.3), (0.05, 0.5)],  # (alpha, beta): the defaults, and lines H0 can reach
    [6, 40],  # max_trials
))


@pytest.mark.parametrize(("p1", "lines", "max_trials"), CONSOL_GRID)
@pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
def test_consol_takes_the_documented_samples_per_question(p1: float, lines: tuple[float, float], max_trials: int,
                                                          live: bool) -> None:
    alpha, beta = lines
    streams = make_streams(seed=max_trials)
    stops = [consol_samples(s, p1, alpha, beta, max_trials) for s in streams]
    served = run(ConsolAllocator(p1=p1, alpha=alpha, beta=beta, max_trials=max_trials), streams, 10**6, 4, live)
    assert [served.count(qi) for qi in range(len(streams))] == stops
    if not live:
        assert served == round_robin(stops, 10**6, seed=4)


@pytest.mark.parametrize(("delta", "cap"), list(itertools.product([0.05, 0.2, 0.5, 1.0], [5, 40])))
@pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
def test_ppr_takes_the_documented_samples_per_question(delta: float, cap: int, live: bool) -> None:
    streams = make_streams(seed=cap + 1)
    stops = [ppr_samples(s, delta, cap) for s in streams]
    served = run(PprAllocator(delta=delta, cap=cap), streams, 10**6, 5, live)
    assert [served.count(qi) for qi in range(len(streams))] == stops
    if not live:
        assert served == round_robin(stops, 10**6, seed=5)


@pytest.mark.parametrize("strategy", ["consol", "ppr"])
@pytest.mark.parametrize("budget", [7, 23, 61])
def test_a_budget_that_ends_the_run_early_ends_it_round_robin(strategy: str, budget: int) -> None:
    streams = make_streams(seed=9)
    if strategy == "consol":
        stops = [consol_samples(s, 0.5001, 0.05, 1 - 0.05 - 0.000024, 256) for s in streams]
        allocator: Allocator = ConsolAllocator()
    else:
        stops = [ppr_samples(s, 0.05, 40) for s in streams]
        allocator = PprAllocator()
    assert run(allocator, streams, budget, 2, live=False) == round_robin(stops, budget, seed=2)


def test_the_references_stop_questions_at_different_points() -> None:
    """The comparisons above would prove little if every question took the same number of samples."""
    streams = make_streams(seed=40)
    consol = [consol_samples(s, 0.5001, 0.05, 1 - 0.05 - 0.000024, 40) for s in streams]
    ppr = [ppr_samples(s, 0.05, 40) for s in streams]
    assert len(set(consol)) >= 4 and len(set(ppr)) >= 4
    assert min(consol) == 3 and max(consol) == 40  # a unanimous start stops at 3 ahead; a split one at the cap


def test_the_sprt_stops_on_either_line_itself() -> None:
    """With p1 = 0.75, alpha = 0.5, beta = 0.25 both lines are ratios a single vote reaches exactly in floating
    point: one leader vote makes the ratio 1.5 = (1 - beta) / alpha, one runner-up vote 0.5 = beta / (1 - alpha).
    Wald's test stops *at* a line, not only beyond it."""
    assert sprt_decides(1, 0, 0.75, 0.5, 0.25)
    assert sprt_decides(0, 1, 0.75, 0.5, 0.25)
    assert not sprt_decides(0, 0, 0.75, 0.5, 0.25)
    assert not sprt_decides(1, 1, 0.75, 0.5, 0.25)


def test_the_defaults_are_the_papers() -> None:
    assert ConsolAllocator().describe() == "consol(p1=0.5001, alpha=0.05, beta=0.949976, max_trials=256)"
    assert PprAllocator().describe() == "ppr(delta=0.05, cap=40)"
