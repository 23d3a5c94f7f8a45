"""The default allocator (``dynscaling-parallel``) step by step against a reference model written from its
docstring.

The allocator keeps a heap with versions, a waiting entry, memoised worths, settled refits that keep their models,
and pushes one question at a time; the reference below re-scores every question at every step from its tally and
the current models, which is slow and obviously the documented rule. Both use the same answer model
(``AnswerModel``, ``fit_weights``) and length groups (``LengthGroups``), tested on their own elsewhere; what is
checked here is the schedule and the choice:

- the prior is refitted once samples landed reach the batch size, then each time they grow by ``refit``, or by 10%
  while under three per question if the batch has length groups; a refit whose priors all moved less than 0.05
  keeps the models and waits twice as long;
- each length group's fit is shrunk toward the whole batch's, and a question is valued by its group's model;
- a question's priority is ``(votes + vote rate) / (samples + 1) * worth`` (worth: the index plus a 1e-9
  tie-break toward the least settled, or the whole batch's value of a first answer when it has no vote), divided
  by its expected cost of a sample when the budget is in tokens; the highest goes first, ties to a seeded
  shuffle; ``max_inflight``, ``cap`` and ``min_gain`` hold a question back; closed questions never come back;
- only samples that landed move the schedule: a failed request does not.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from allocator_driving import Events
from allocator_driving import drive as drive_agent
from dynscaling.allocators.answer_model import AnswerModel, fit_weights
from dynscaling.allocators.bayes import BayesAllocator
from dynscaling.allocators.length_groups import LengthGroups
from dynscaling.types import Usage
from dynscaling.votes import Tally

Sample = tuple[int | None, int]  # (answer class or None for an abstention, completion tokens)


def make_streams(seed: int, questions: int, length: int = 60, *, equal_lengths: bool = False) -> list[list[Sample]]:
    """Per question, the samples a source serves in order: unanimous to diffuse, some mute, and answer lengths that
    differ between questions (longer ones less reliable) unless ``equal_lengths``."""
    rng = random.Random(seed)
    streams = []
    for qi in range(questions):
        top = [0.95, 0.75, 0.55, 0.4, 0.3][qi % 5]
        mute = 0.85 if qi % 11 == 5 else 0.25 if qi % 7 == 3 else 0.03  # some questions mostly abstain
        tokens = 100 if equal_lengths else 40 + 25 * (qi % 6) + rng.randrange(10)
        stream: list[Sample] = []
        for _ in range(length):
            x = rng.random()
            cls = None if x < mute else 0 if x < mute + top else 1 + rng.randrange(4)
            stream.append((cls, tokens if equal_lengths else tokens + rng.randrange(20)))
        streams.append(stream)
    return streams


class Reference:
    """The documented rule, re-scoring every question at every step."""

    def __init__(self, tallies: list[Tally], usages: list[list[Usage]], budget: int | None, seed: int, *,
                 horizon: int = 6, min_gain: float = 0.0, refit: float = 1.5, prior_weight: float = 4.0,
                 cap: int | None = None, max_inflight: int = 1, length_groups: int = 3,
                 unit_cost: Callable[[int], float] | None = None) -> None:
        n = len(tallies)
        order = list(range(n))
        random.Random(seed).shuffle(order)
        self.rank = {qi: position for position, qi in enumerate(order)}
        self.tallies, self.n = tallies, n
        self.horizon, self.min_gain, self.refit, self.prior_weight = horizon, min_gain, refit, prior_weight
        self.cap, self.max_inflight, self.unit_cost = cap, max_inflight, unit_cost
        self.pending = [0] * n
        self.closed: set[int] = set()
        self.lengths = LengthGroups(length_groups, n)
        self.lengths.bind(usages)
        self.landed_samples = 0
        self.whole: AnswerModel | None = None
        self.groups: list[AnswerModel] = []
        self.refit_at = 0
        self.refit_now()

    def refit_now(self) -> None:
        t, n = self.landed_samples, self.n
        answered = [qi for qi in range(n) if self.tallies[qi].samples]
        cuts = self.lengths.cut_points(answered)
        growth = min(self.refit, 1.1) if cuts and t < 3 * n else self.refit
        self.refit_at = max(t + 1, math.ceil(t * growth), n)
        batch: dict[tuple[int, ...], int] = {}
        for qi in answered:
            batch[self.tallies[qi].shape] = batch.get(self.tallies[qi].shape, 0) + 1
        whole = fit_weights(batch, self.prior_weight)
        fits = [whole]
        if cuts:
            by_group: list[dict[tuple[int, ...], int]] = [{} for _ in range(len(cuts) + 1)]
            for qi in answered:
                own = by_group[self.lengths.group(qi, cuts)]
                own[self.tallies[qi].shape] = own.get(self.tallies[qi].shape, 0) + 1
            fits = [fit_weights(own, self.prior_weight, toward=whole) for own in by_group]
        if self.whole is not None and len(fits) == len(self.groups) and all(
                float(abs(new - old.weights).sum()) < 0.05
                for new, old in zip([whole, *fits], [self.whole, *self.groups], strict=True)):
            self.refit_at = max(t + 1, math.ceil(t * growth * growth))  # settled: same models, look later
            return
        votes = sum(x.samples - x.abstentions for x in self.tallies)
        samples = sum(x.samples for x in self.tallies)
        self.vote_rate = (votes + 1.0) / (samples + 1.0)
        self.lengths.cuts = cuts
        self.whole = AnswerModel(whole, self.horizon)
        self.groups = [AnswerModel(f, self.horizon) for f in fits] if cuts else [self.whole]

    def priority(self, qi: int) -> float | None:
        tally = self.tallies[qi]
        if qi in self.closed or self.pending[qi] >= self.max_inflight:
            return None
        if self.cap is not None and tally.samples + self.pending[qi] >= self.cap:
            return None
        if not tally.shape:
            assert self.whole is not None
            worth = self.whole.value((1,))
        else:
            model = self.groups[self.lengths.group(qi) if len(self.groups) > 1 else 0]
            worth = model.index(tally.shape) + 1e-9 * (1.0 - model.value(tally.shape))
        value = (tally.samples - tally.abstentions + self.vote_rate) / (tally.samples + 1.0) * worth
        if self.unit_cost is not None:
            value /= self.unit_cost(qi)
        return None if value < self.min_gain else value

    def next_question(self) -> int | None:
        scored = [(p, -self.rank[qi], qi) for qi in range(self.n) if (p := self.priority(qi)) is not None]
        return max(scored)[2] if scored else None

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1

    def landed(self, qi: int) -> None:  # the sample is in its tally and its usage list
        self.pending[qi] -= 1
        self.landed_samples += 1
        if self.landed_samples >= self.refit_at:
            self.refit_now()

    def sampled(self, qi: int) -> None:
        self.dispatched(qi)
        self.landed(qi)

    def abandoned(self, qi: int) -> None:
        self.pending[qi] -= 1

    def close(self, qi: int) -> None:
        self.closed.add(qi)


def drive(make: Callable[[list[Tally], list[list[Usage]]], object], streams: list[list[Sample]], budget: int, *,
          inflight: int = 0, fail_every: int = 0, closing: dict[int, int] | None = None, seed: int = 0) -> Events:
    """``allocator_driving.drive`` on a fresh allocator or reference (``make``), with the streams as the source:
    each sample's usage is appended before its answer is counted, as the engine does."""
    tallies = [Tally() for _ in streams]
    usages: list[list[Usage]] = [[] for _ in streams]

    def serve(qi: int) -> None:
        cls, tokens = streams[qi][tallies[qi].samples]
        usages[qi].append(Usage(prompt_tokens=30, completion_tokens=tokens))
        tallies[qi].add(cls)

    return drive_agent(make(tallies, usages), serve, budget, inflight=inflight, fail_every=fail_every,
                       closing=closing, seed=seed)


def both(streams: list[list[Sample]], budget: int, seed: int, unit_cost: Callable[[int], float] | None = None,
         **params: object) -> tuple[Callable[..., object], Callable[..., object]]:
    def allocator(tallies: list[Tally], usages: list[list[Usage]]) -> BayesAllocator:
        made = BayesAllocator(**params)  # type: ignore[arg-type]
        made.unit_cost = unit_cost  # as the engine does: before start
        made.start(tallies, budget, random.Random(seed), usages)
        return made

    def reference(tallies: list[Tally], usages: list[list[Usage]]) -> Reference:
        return Reference(tallies, usages, budget, seed, unit_cost=unit_cost, **params)  # type: ignore[arg-type]

    return allocator, reference


SETTINGS = [
    {},
    {"refit": 1.2},
    {"refit": 1.2, "prior_weight": 0.0},  # no shrinkage: the fit moves at every refit, even in a tiny batch
    {"refit": 3.0, "prior_weight": 0.5},
    {"horizon": 3},
    {"length_groups": 1},
    {"length_groups": 2, "prior_weight": 20.0},
    {"cap": 5},
    {"cap": 1},
    {"min_gain": 0.002},
]


@pytest.mark.parametrize("params", SETTINGS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
@pytest.mark.parametrize(("questions", "per_q", "seed"), [(30, 4, 0), (30, 7, 1), (48, 2.5, 2), (9, 6, 3), (2, 12, 4),
                                                          (3, 9, 5), (5, 8, 6)])
def test_replay_decisions_match_the_reference(params: dict[str, object], questions: int, per_q: float,
                                              seed: int) -> None:
    streams = make_streams(seed, questions)
    budget = round(per_q * questions)
    allocator, reference = both(streams, budget, seed, **params)
    expected = drive(reference, streams, budget)
    assert drive(allocator, streams, budget) == expected
    if params.get("cap") == 1:
        assert sorted(qi for _, qi in expected) == list(range(questions))  # one sample each, then no more
    else:
        assert len(expected) > questions  # past the first answers, into the value of information


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_lengths_make_one_group_and_the_same_decisions(seed: int) -> None:
    streams = make_streams(seed, 30, equal_lengths=True)
    allocator, reference = both(streams, 150, seed)
    assert drive(allocator, streams, 150) == drive(reference, streams, 150)


@pytest.mark.parametrize("seed", [0, 4])
def test_a_token_budget_ranks_per_expected_cost(seed: int) -> None:
    streams = make_streams(seed, 30)
    allocator, reference = both(streams, 140, seed, unit_cost=lambda qi: 50.0 + 40.0 * (qi % 4))
    assert drive(allocator, streams, 140) == drive(reference, streams, 140)


@pytest.mark.parametrize(("inflight", "max_inflight"), [(3, 1), (6, 2), (8, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_live_decisions_match_the_reference_with_requests_in_flight(inflight: int, max_inflight: int,
                                                                    seed: int) -> None:
    streams = make_streams(seed, 30)
    allocator, reference = both(streams, 160, seed, max_inflight=max_inflight, cap=9)
    expected = drive(reference, streams, 160, inflight=inflight, seed=seed)
    assert drive(allocator, streams, 160, inflight=inflight, seed=seed) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_failed_requests_move_neither_the_schedule_nor_the_budget(seed: int) -> None:
    """A failed request is asked again later and does not count as a sample landed: the refits come when the
    samples that did land reach them, as a resumed run (which never saw the failures) has them."""
    streams = make_streams(seed, 30)
    allocator, reference = both(streams, 150, seed)
    expected = drive(reference, streams, 150, inflight=4, fail_every=5, seed=seed)
    assert drive(allocator, streams, 150, inflight=4, fail_every=5, seed=seed) == expected
    assert sum(event == "fail" for event, _ in expected) > 10


@pytest.mark.parametrize("inflight", [0, 3])
def test_closed_questions_never_come_back(inflight: int) -> None:
    streams = make_streams(5, 30)
    closing = {0: 4, 20: 11, 45: 0, 90: 17}
    allocator, reference = both(streams, 160, 5)
    expected = drive(reference, streams, 160, inflight=inflight, closing=closing, seed=5)
    got = drive(allocator, streams, 160, inflight=inflight, closing=closing, seed=5)
    assert got == expected
    for qi in closing.values():
        after = got[got.index(("close", qi)):]
        assert ("sample", qi) not in after and ("ask", qi) not in after
