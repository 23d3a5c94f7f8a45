"""Empirical-Bayes value-of-information allocation across the batch: DynScaling's default scheduler.

What only an allocator across the whole batch can know is how the batch's questions behave. A batch of GPT-4
GSM8K questions is nearly all unanimous, so a first answer is almost surely the plurality answer; a LLaMA-2 batch
has many diffuse questions, where a 1-1 split most likely holds neither answer that will win. This allocator
learns that online (``answer_model``: a mode-and-field model of each question's answers with a prior fitted to
every tally of the batch) and gives each sample to the question where it most raises the expected number of
questions whose final plurality is the model's most likely answer: without a verifier, the best an allocator can
aim for.

**The value of a sample.** ``V(shape)`` is the posterior probability that the current leader (ties keep the
leader that got there first, as the vote does) is the question's mode. ``W_k`` is its expected value after ``k``
more votes drawn from the posterior predictive (votes for answers outside the top two are taken as no change):
the leader may change on the way. A question's index is ``rate * max_k (W_k - V) / k`` over ``k = 1..horizon``,
the best gain per vote of any look-ahead (one more vote never flips a 2-0, three can), times ``rate``, the
question's chance that a sample votes at all (its own, shrunk to the batch's), so abstentions are priced in. When
the budget is in tokens or dollars, the index is divided by the question's expected cost of a sample
(``unit_cost``, set by the engine). A question with no vote yet is worth a whole answer (``rate * V((1,))``), so
first samples go out before second ones, and a budget smaller than the batch reaches a random subset (ties
break by a seeded random rank). No warm-up is forced: any spend from one sample per question up is used well.

**Refits.** The batch prior is refitted once every question could have an answer, then each time the samples
landed grow by ``refit``; a refit that barely moves it keeps the model (and its memo) and waits longer. A new
model of a large batch values every shape met so far at once (``shape_lattice``), the same values to the bit.

A question retires when its index falls below ``min_gain`` (expected extra right answers a sample must buy; 0
spends the whole budget). The next question comes from a heap, ``O(log Q)`` per decision; values are memoised by
tally shape between refits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush, heappushpop

import numpy as np

from ..votes import Tally
from .answer_model import LATTICE, AnswerModel, Shape, fit_weights
from .base import Allocator
from .base import check as _check

__all__ = ["BayesAllocator", "shape_of"]

#: a refit that moves the prior's weights by less than this (L1) keeps the current model
_REFIT_TOLERANCE = 0.05
#: value the whole shape lattice at a refit when the batch, or the last model's shapes, are 1/this of it
_LATTICE_SHARE = 4
#: the weight of "least settled first" among questions whose look-ahead sees no gain
_TIE_BREAK = 1e-9

#: a queue entry: (-priority, random rank, question, version); a stale version is skipped when it comes out
_Entry = tuple[float, int, int, int]


def shape_of(tally: Tally) -> Shape:
    """A tally's vote counts, largest first (kept by the tally as it counts)."""
    return tally.shape


class BayesAllocator(Allocator):
    """Empirical-Bayes value-of-information allocation (see the module docstring).

    Args:
        horizon: the longest look-ahead, in votes.
        min_gain: retire a question whose index is below this (expected extra right answers per sample).
        refit: refit the batch prior each time the samples landed grow by this factor.
        prior_weight: how many questions' worth of a flat prior the fit is shrunk toward.
        cap: at most this many samples per question.
        max_inflight: requests of one question in flight at once (live runs).
    """

    def __init__(self, horizon: int = 6, min_gain: float = 0.0, refit: float = 1.5, prior_weight: float = 4.0,
                 cap: int | None = None, max_inflight: int = 1) -> None:
        _check(1 <= horizon <= 64, f"horizon must be in 1..64, got {horizon}")
        _check(0.0 <= min_gain < 1.0, f"min_gain must be in [0, 1), got {min_gain}")
        _check(refit > 1.0, f"refit must be > 1, got {refit}")
        _check(prior_weight >= 0.0, f"prior_weight must be >= 0, got {prior_weight}")
        _check(cap is None or cap >= 1, f"cap must be >= 1, got {cap}")
        _check(max_inflight >= 1, f"max_inflight must be >= 1, got {max_inflight}")
        self.horizon = horizon
        self.min_gain = min_gain
        self.refit = refit
        self.prior_weight = prior_weight
        self.cap = cap
        self.max_inflight = max_inflight
        self.unit_cost: Callable[[int], float] | None = None

    def _start(self) -> None:
        n = len(self.tallies)
        order = list(range(n))
        self.rng.shuffle(order)
        self._rank = [0] * n
        for position, qi in enumerate(order):
            self._rank[qi] = position
        self._version = [0] * n
        self._heap: list[_Entry] = []
        self._deferred: _Entry | None = None
        self._t = 0
        self._refit_at = 0
        self.model: AnswerModel | None = None
        self._rebuild()

    # ---- priorities ----

    def _worth(self, shape: Shape) -> float:
        """A question's index before its vote rate and cost, memoised by shape for the current model: one dict
        lookup per decision on the hot path."""
        model = self.model
        if not shape:
            worth = model.value((1,))  # a first answer, worth its chance of being the mode
        else:
            # Where no look-ahead within the horizon sees a gain (a close race judged settled, or one needing
            # more votes than the horizon), the least settled question goes first: a tie-break, far below any
            # real gain.
            worth = model.index(shape) + _TIE_BREAK * (1.0 - model.value(shape))
        self._worth_memo[shape] = worth
        return worth

    def _push(self, qi: int) -> None:
        self._version[qi] += 1
        pending = self.pending[qi]
        if pending >= self.max_inflight or self.closed[qi]:
            return
        tally = self.tallies[qi]
        if self.cap is not None and tally.samples + pending >= self.cap:
            return
        shape = tally.shape
        worth = self._worth_memo.get(shape)
        if worth is None:
            worth = self._worth(shape)
        samples = tally.samples
        # the chance a sample votes at all: the question's own rate, shrunk to the batch's
        priority = (samples - tally.abstentions + self._vote_rate) / (samples + 1.0) * worth
        if self.unit_cost is not None:
            priority /= self.unit_cost(qi)
        if priority < self.min_gain:
            return
        # The newest entry waits outside the heap: in replay the next call pops right after this push, and one
        # push-and-pop (heappushpop) costs one sift where a push then a pop cost two. The heap plus the waiting
        # entry are the queue; keys are unique (rank), so the order they come out in is the same.
        if self._deferred is not None:
            heappush(self._heap, self._deferred)
        self._deferred = (-priority, self._rank[qi], qi, self._version[qi])

    def _rebuild(self) -> None:
        tallies = self.tallies
        shapes: dict[Shape, int] = {}
        votes = samples = 0
        for t in tallies:
            if t.samples:
                shape = t.shape
                shapes[shape] = shapes.get(shape, 0) + 1
                votes += t.samples - t.abstentions
                samples += t.samples
        # Until every question could have an answer the tallies say nothing about the prior (one vote has the
        # same likelihood under every cell): the first refit waits for as many samples as questions.
        self._refit_at = max(self._t + 1, math.ceil(self._t * self.refit), len(tallies))
        weights = fit_weights(shapes, self.prior_weight)
        model = self.model
        if model is not None and float(np.abs(weights - model.weights).sum()) < _REFIT_TOLERANCE:
            # the prior has settled: keep the model, its memo and the heap, and look again less often
            self._refit_at = max(self._t + 1, math.ceil(self._t * self.refit * self.refit))
            return
        self._vote_rate = (votes + 1.0) / (samples + 1.0)
        self.model = AnswerModel(weights, self.horizon)
        if model is not None and max(model.shapes_valued(), len(tallies)) * _LATTICE_SHARE >= len(LATTICE):
            # A batch this large (or the last model) values much of the lattice: cheaper all at once. A small
            # batch in a process that has met many shapes values its few one at a time.
            self.model.value_lattice()
        self._worth_memo: dict[Shape, float] = {}
        self._heap = []
        self._deferred = None
        for qi in range(len(tallies)):
            self._push(qi)

    # ---- the allocator protocol ----

    def next_question(self) -> int | None:
        if self._t >= self._refit_at:
            self._rebuild()
        heap = self._heap
        version = self._version
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            _, _, qi, v = heappushpop(heap, deferred)
            if v == version[qi] and not self.closed[qi]:
                return qi
        while heap:
            _, _, qi, v = heappop(heap)
            if v == version[qi] and not self.closed[qi]:
                return qi
        return None

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1
        self.inflight += 1
        self._push(qi)  # another request of it may go out (max_inflight > 1), ranked as it stands

    def landed(self, qi: int) -> None:
        self.pending[qi] -= 1
        self.inflight -= 1
        self._count(qi)

    def sampled(self, qi: int) -> None:  # the replay loop's hot path: one sample dispatched and counted at once
        self._t += 1
        self._push(qi)

    def _landed(self, qi: int) -> None:
        self._count(qi)

    def _count(self, qi: int) -> None:
        self._t += 1
        self._push(qi)

    def describe(self) -> str:
        return f"bayes(horizon={self.horizon}, min_gain={self.min_gain}, refit={self.refit})"
