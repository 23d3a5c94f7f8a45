"""The default allocator's fast paths against the plain computations they replace.

The look-ahead: ``AnswerModel`` fills ``[W_0, ..., W_k]`` of a shape in one pass, extending the lists of the
shapes it leads to as needed. The reference below is the recursion that defines ``W_k`` (one memoised call per
shape and horizon, as the allocator computed it before); the two must agree bit for bit, in whatever order
shapes and horizons are asked for, because the allocator's decisions compare these values exactly.

The lattice: after a refit, a large batch's model values every shape met so far at once, as arrays
(``shape_lattice``); the posteriors, look-aheads and indices must be the one-shape path's to the bit, and the
allocator's decisions the same whether it values the lattice or not.

The queue: ``BayesAllocator`` keeps its newest entry outside the heap until the next pop (one push-and-pop in
place of a push then a pop). Driven live with several requests in flight and answers landing out of order, it
must hand out the same questions as the same allocator pushing every entry at once.
"""

from __future__ import annotations

import random
from functools import cache
from heapq import heappush

import numpy as np
import pytest

from dynscaling import Budget, Question, Usage
from dynscaling.allocators import BayesAllocator, bayes
from dynscaling.allocators.answer_model import CELLS, AnswerModel, Shape, evidence
from dynscaling.allocators.shape_lattice import ShapeLattice
from dynscaling.answers import AnswerClusterer
from dynscaling.backends.replay import ReplayBackend
from dynscaling.engine import Engine
from dynscaling.errors import BackendError
from dynscaling.pools import Pool, PoolQuestion


def reference_lookahead(model: AnswerModel):  # noqa: ANN201 (a closure over the model)
    @cache
    def lookahead(shape: Shape, k: int) -> float:
        if k == 0 or not shape:
            return model.value(shape)
        value, to_leader, to_runner, _ = model.posterior(shape)
        v1 = shape[0]
        v2 = shape[1] if len(shape) > 1 else 0
        rest = shape[2:]
        after_leader = (v1 + 1, v2, *rest) if v2 else (v1 + 1, *rest)
        if not v2:
            return to_leader * lookahead(after_leader, k - 1) + (1.0 - to_leader) * lookahead((v1, 1), k - 1)
        runner = (v1, v2 + 1, *rest) if v2 + 1 <= v1 else (v2 + 1, v1, *rest)
        # a third answer's vote: the value the martingale leaves for it, plus this shape's gain over k - 1 votes
        old_leader = model.value(runner) if v2 < v1 else model.posterior(runner)[3]
        third = value - to_leader * model.value(after_leader) - to_runner * old_leader
        return (to_leader * lookahead(after_leader, k - 1) + to_runner * lookahead(runner, k - 1) + third
                + max(0.0, 1.0 - to_leader - to_runner) * (lookahead(shape, k - 1) - value))

    return lookahead


def shapes_up_to(votes: int) -> list[Shape]:
    """Every shape (partition) with 1..votes votes."""
    found: list[Shape] = []

    def grow(prefix: Shape, left: int, largest: int) -> None:
        if prefix:
            found.append(prefix)
        for part in range(min(left, largest), 0, -1):
            grow((*prefix, part), left - part, part)

    grow((), votes, votes)
    return found


SHAPES = shapes_up_to(7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_look_ahead_equals_the_step_by_step_recursion_bit_for_bit(seed: int) -> None:
    weights = np.random.default_rng(seed).dirichlet(np.ones(CELLS))
    model = AnswerModel(weights, horizon=6)
    reference = reference_lookahead(AnswerModel(weights, horizon=6))
    asked = [(shape, k) for shape in SHAPES for k in range(7)]
    random.Random(seed).shuffle(asked)  # lists are extended in any order: short first, long first, children first
    for shape, k in asked:
        assert model.lookahead(shape, k) == reference(shape, k), (shape, k)


def test_the_index_is_the_best_gain_per_vote_over_the_horizon() -> None:
    weights = np.random.default_rng(7).dirichlet(np.ones(CELLS))
    model = AnswerModel(weights, horizon=6)
    reference = reference_lookahead(AnswerModel(weights, horizon=6))
    for shape in SHAPES:
        now = model.value(shape)
        expected = max(0.0, max((reference(shape, k) - now) / k for k in range(1, 7)))
        assert model.index(shape) == expected, shape


def test_a_short_look_ahead_first_then_a_longer_one_extends_the_same_list() -> None:
    model = AnswerModel(np.full(CELLS, 1.0 / CELLS), horizon=6)
    reference = reference_lookahead(AnswerModel(np.full(CELLS, 1.0 / CELLS), horizon=6))
    assert model.lookahead((2, 1), 2) == reference((2, 1), 2)
    assert model.lookahead((2, 1), 6) == reference((2, 1), 6)
    assert model.lookahead((2, 1), 0) == model.value((2, 1))
    assert model.lookahead((), 3) == 0.0  # no vote yet: no answer to be right about


class PushAtOnce(BayesAllocator):
    """The reference queue: every entry goes into the heap as soon as it is made."""

    def _push(self, qi: int) -> None:
        super()._push(qi)
        if self._deferred is not None:
            heappush(self._heap, self._deferred)
            self._deferred = None


def small_pool(questions: int = 40, samples: int = 12, seed: int = 3) -> Pool:
    rng = random.Random(seed)
    entries = []
    for i in range(questions):
        clusterer = AnswerClusterer("text")
        share = rng.uniform(0.3, 0.95)
        answers = [None if rng.random() < 0.1 else "right" if rng.random() < share else f"wrong{rng.randint(1, 3)}"
                   for _ in range(samples)]
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "text", gold="right"), tuple(answers),
                                    tuple(answers), tuple(clusterer.assign(a) for a in answers),
                                    tuple(Usage(10, 20) for _ in answers), clusterer))
    return Pool("small", "<memory>", tuple(entries))


def live_decisions(allocator: BayesAllocator, pool: Pool, seed: int, in_flight: int) -> list[int]:
    """Questions in the order the engine asks for them, with up to ``in_flight`` requests out and answers landing
    in a seeded random order."""
    engine = Engine(pool.questions, "dynscaling-parallel", Budget(samples=6 * len(pool.entries)), seed=seed,
                    needs_messages=False, clusterers=[e.clusterer for e in pool.entries], allocator=allocator)
    backend = ReplayBackend(pool, seed)
    landing = random.Random(seed)
    asked: list[int] = []
    out = []
    while True:
        while len(out) < in_flight and (request := engine.next_request()) is not None:
            asked.append(request.question_index)
            out.append(request)
        if not out:
            return asked
        request = out.pop(landing.randrange(len(out)))
        try:
            sample = backend.sample(request.question_index)
        except BackendError as error:  # the question's recorded samples are used up: it is closed
            engine.fail(request, error)
            continue
        engine.deliver(request, sample)


@pytest.mark.parametrize(("max_inflight", "in_flight"), [(1, 1), (1, 4), (3, 5)])
def test_the_waiting_entry_hands_out_the_same_questions_as_pushing_at_once(max_inflight: int,
                                                                          in_flight: int) -> None:
    pool = small_pool()
    for seed in range(3):
        fast = live_decisions(BayesAllocator(max_inflight=max_inflight), pool, seed, in_flight)
        reference = live_decisions(PushAtOnce(max_inflight=max_inflight), pool, seed, in_flight)
        assert fast == reference
        assert len(set(fast)) == len(pool.entries)


LATTICE_ORDERS = {
    "as met": SHAPES,
    "reversed": SHAPES[::-1],  # children numbered before their parents
    # No unanimous shape at all (closed under one more vote): then no shape has four evidence rows; and shape 0
    # as some parent's runner-up child
    "split only": [shape for shape in SHAPES if len(shape) > 1][::-1],
    "split only, (2, 2) first": [(2, 2)] + [shape for shape in SHAPES if len(shape) > 1 and shape != (2, 2)],
}


@pytest.mark.parametrize("order", list(LATTICE_ORDERS))
def test_the_lattice_values_every_shape_as_the_one_shape_path_does_bit_for_bit(order: str) -> None:
    lattice = ShapeLattice()
    for shape in LATTICE_ORDERS[order]:  # shapes of up to 7 votes: a shape of n votes reaches the edge in 7 - n
        lattice.add(shape, evidence(shape))
    weights = np.random.default_rng(11).dirichlet(np.ones(CELLS))
    values = lattice.values(weights, horizon=6)
    one_shape = AnswerModel(weights, horizon=6)
    reference = reference_lookahead(AnswerModel(weights, horizon=6))
    for i, shape in enumerate(lattice.shapes):
        posterior = (values.leader[i], values.to_leader[i], values.to_runner[i], values.runner[i])
        assert tuple(map(float, posterior)) == one_shape.posterior(shape), shape
        assert values.depth[i] == min(6, 7 - sum(shape)), shape
        for k in range(values.depth[i] + 1):
            assert values.ahead[k, i] == reference(shape, k), (shape, k)


def test_a_model_that_valued_the_lattice_gives_the_values_of_one_that_did_not() -> None:
    for shape in SHAPES:
        evidence(shape)  # in the process's lattice
    weights = np.random.default_rng(12).dirichlet(np.ones(CELLS))
    valued = AnswerModel(weights, horizon=6)
    valued.value_lattice()
    lazy = AnswerModel(weights, horizon=6)
    assert valued.shapes_valued() >= len(SHAPES) > lazy.shapes_valued()
    for shape in [*SHAPES, (9, 3, 1), (12,), (5, 5, 2)]:  # the last ones reach past the lattice's edge
        assert valued.index(shape) == lazy.index(shape), shape
        assert valued.posterior(shape) == lazy.posterior(shape), shape
        for k in range(7):
            assert valued.lookahead(shape, k) == lazy.lookahead(shape, k), (shape, k)


def replay_decisions(pool: Pool, budget: Budget, seed: int) -> list[int]:
    engine = Engine(pool.questions, "dynscaling-parallel", budget, seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries])
    backend = ReplayBackend(pool, seed)
    decisions: list[int] = []

    def draw(qi: int) -> tuple[int | None, Usage]:
        decisions.append(qi)
        return backend.draw_class(qi)

    engine.run_sync(draw)
    return decisions


@pytest.mark.parametrize("budget", [Budget(samples=1500), Budget(tokens=40_000)])
def test_valuing_the_lattice_at_refits_changes_no_decision(monkeypatch: pytest.MonkeyPatch, budget: Budget) -> None:
    pool = small_pool(questions=300, samples=16)
    for seed in range(2):
        monkeypatch.setattr(bayes, "_LATTICE_SHARE", 10**9)  # every refit values the whole lattice
        always = replay_decisions(pool, budget, seed)
        monkeypatch.setattr(bayes, "_LATTICE_SHARE", 0)  # never
        never = replay_decisions(pool, budget, seed)
        assert always == never
        assert len(always) > len(pool.entries)
