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
more votes drawn from the posterior predictive: the leader may change on the way. Votes for the leader and the
runner-up (or an answer tied with it) are followed exactly; a vote for any other answer moves ``V`` by what the
posterior predictive, a martingale, leaves for it, and keeps the gain the shape itself has ahead. So where no
leader can change within ``k`` votes, ``W_k = V`` to rounding (a 4-1 gains nothing from 3 votes, a 9-0 from 6);
when such a vote was taken as no change, the look-ahead drifted by up to 1.5e-3 per vote where it should read 0.
A question's index is ``rate * max_k (W_k - V) / k`` over ``k = 1..horizon``, the best gain per vote of any
look-ahead (one more vote never flips a 2-0, three can), times ``rate``, the
question's chance that a sample votes at all (its own, shrunk to the batch's), so abstentions are priced in. A
budget in tokens or dollars caps the spend but does not change the ranking unless ``per_token`` is set: then the
index is divided by the question's expected cost of a sample (``unit_cost``, set by the engine). A question with
no vote yet is worth a whole answer (``rate * V((1,))``), so first samples go out before second ones, and a
budget smaller than the batch reaches a random subset (ties break by a seeded random rank). No warm-up is forced:
any spend from one sample per question up is used well.

**Length groups.** A long answer is often a less reliable one, and the batch shows how much: the prior is fitted
separately within ``length_groups`` groups of questions by the mean length of their answers (``length_groups``:
terciles of the batch), each fit shrunk toward the whole batch's. So among questions whose one or two answers
agree, the ones that answered at length get the next samples first where the batch says long answers split, and
no sooner than the others where it does not. Lengths that are all equal (or not reported) give one group.

**An unusual form.** An answer's form says something before a second sample does: a GSM8K model's fraction or
negative answer is usually a slip (``answer_forms``). The questions whose leader has a form other than the one
most of the batch's leaders have get a prior of their own, fitted to their tallies and shrunk toward the batch's,
where there are at least a handful of them and their own fit explains their tallies better than the batch prior
by more than 3 nats (a log-likelihood ratio past Kass & Raftery's "strong" evidence): a few dozen questions
that do not differ would only add the noise of their own fit. So a question led by a fraction in a batch whose
fractions split is sampled again first; where every answer has one form (dates), or the unusual ones behave like
the rest (MATH's fractions), the allocator decides exactly as without the group.

**Refits.** The batch prior is refitted once every question could have an answer, then each time the samples
landed grow by 10% while they are fewer than three per question and the batch has length groups, or enough
questions led by an unusual form to test for a group of them (their priors move fastest then, and place every
second and third sample), then by ``refit``; a refit that barely moves any
group's prior keeps the models (and their memos) and waits longer. A new model of a large batch values every
shape met so far at once (``shape_lattice``), the same values to the bit.

A question retires when its index falls below ``min_gain`` (expected extra right answers a sample must buy; 0
spends the whole budget). The next question comes from a heap, ``O(log Q)`` per decision; values are memoised by
tally shape between refits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush, heappushpop

import numpy as np

from ..votes import Tally
from .answer_forms import AnswerForms
from .answer_model import LATTICE, AnswerModel, Shape, evidence, fit_weights
from .base import Allocator
from .base import check as _check
from .length_groups import LengthGroups

__all__ = ["BayesAllocator", "shape_of"]

#: a refit that moves the prior's weights by less than this (L1) keeps the current model
_REFIT_TOLERANCE = 0.05
#: until the samples landed reach this many per question, refit each time they grow by _EARLY_REFIT
_EARLY_SAMPLES = 3
_EARLY_REFIT = 1.1
#: value the whole shape lattice at a refit when the batch, or the last models' shapes, are 1/this of it
_LATTICE_SHARE = 4
#: the weight of "least settled first" among questions whose look-ahead sees no gain
_TIE_BREAK = 1e-9

#: keep the group of questions led by an unusual answer form only where its own fit explains its tallies better
#: than the batch prior by this many nats (log-likelihood ratio; Kass & Raftery's "strong" evidence, 2 ln B > 6)
_STRONG_EVIDENCE = 3.0

#: a queue entry: (-priority, random rank, question, version); a stale version is skipped when it comes out
_Entry = tuple[float, int, int, int]


def _log_likelihood_gain(shapes: dict[Shape, int], fit: np.ndarray, reference: np.ndarray) -> float:
    """How much better ``fit`` than ``reference`` explains these tallies: the log-likelihood ratio, in nats."""
    gain = 0.0
    for shape, count in shapes.items():
        if sum(shape) >= 2:  # one vote has the same likelihood under every cell
            row = evidence(shape)[0]
            gain += count * math.log(float(row @ fit) / float(row @ reference))
    return gain


@dataclass(frozen=True, slots=True)
class _Settings:
    """The settings read once per refit, not per sample (see ``BayesAllocator.__init__``)."""

    horizon: int
    refit: float
    prior_weight: float
    length_groups: int
    form_groups: bool
    per_token: bool


def _moved(new: np.ndarray, old: np.ndarray) -> float:
    return float(np.abs(new - old).sum())


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
        length_groups: fit the batch prior separately for this many groups of questions by answer length
            (``length_groups``); 1: one prior for the whole batch.
        form_groups: fit the batch prior apart for the questions whose leader's form is unusual for the batch
            (``answer_forms``).
        per_token: when the budget is in tokens or dollars, divide each question's index by its expected cost of
            a sample (``unit_cost``, set by the engine). Off by default: within a batch, a question's cost mostly
            tells how hard it is (long answers split more), and dividing by it moved samples from hard questions
            to easy ones: at equal tokens it lost at 9 of 32 pool-spend points of the recorded pools and won at 1
            (BENCHMARKS.md). Turn it on where questions differ in price for other reasons (long documents in some
            prompts, mixed models: there it won at 4 of 12 points).
    """

    def __init__(self, horizon: int = 6, min_gain: float = 0.0, refit: float = 1.5, prior_weight: float = 4.0,
                 cap: int | None = None, max_inflight: int = 1, length_groups: int = 3,
                 form_groups: bool = True, per_token: bool = False) -> None:
        _check(1 <= horizon <= 64, f"horizon must be in 1..64, got {horizon}")
        _check(0.0 <= min_gain < 1.0, f"min_gain must be in [0, 1), got {min_gain}")
        _check(refit > 1.0, f"refit must be > 1, got {refit}")
        _check(prior_weight >= 0.0, f"prior_weight must be >= 0, got {prior_weight}")
        _check(cap is None or cap >= 1, f"cap must be >= 1, got {cap}")
        _check(max_inflight >= 1, f"max_inflight must be >= 1, got {max_inflight}")
        _check(1 <= length_groups <= 10, f"length_groups must be in 1..10, got {length_groups}")
        # What is read once per refit lives in one attribute, what the hot path reads in its own: an instance of
        # 30 attributes or more no longer shares its dict's keys (CPython 3.11), and every attribute read on the
        # replay loop got 3-5% slower when the form groups took this class from 28 attributes to 32. A test keeps
        # the count below 30.
        self._settings = _Settings(horizon, refit, prior_weight, length_groups, form_groups, per_token)
        self.min_gain = min_gain
        self.cap = cap
        self.max_inflight = max_inflight
        self.unit_cost: Callable[[int], float] | None = None

    @property
    def per_token(self) -> bool:
        """Whether the engine should set ``unit_cost`` under a token or dollar budget."""
        return self._settings.per_token

    @property
    def horizon(self) -> int:
        return self._settings.horizon

    @property
    def refit(self) -> float:
        return self._settings.refit

    @property
    def prior_weight(self) -> float:
        return self._settings.prior_weight

    @property
    def length_groups(self) -> int:
        return self._settings.length_groups

    @property
    def form_groups(self) -> bool:
        return self._settings.form_groups

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
        self._lengths = LengthGroups(self.length_groups, n)
        self._lengths.bind(self.usages)
        self._forms = AnswerForms(self.clusterers if self.form_groups else None, n)
        self.model: AnswerModel | None = None
        self._models: list[AnswerModel] = []
        self._rebuild()

    # ---- priorities ----

    def _worth(self, shape: Shape, group: int) -> float:
        """A question's index before its vote rate and cost, memoised by shape for the current model of its
        length group: one dict lookup per decision on the hot path."""
        if not shape:
            worth = self.model.value((1,))  # a first answer, worth its chance of being the mode
        else:
            model = self._models[group]
            # Where no look-ahead within the horizon sees a gain (a close race judged settled, or one needing
            # more votes than the horizon), the least settled question goes first: a tie-break, far below any
            # real gain.
            worth = model.index(shape) + _TIE_BREAK * (1.0 - model.value(shape))
        self._worth_memos[group][shape] = worth
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
        group = self._group(qi, tally) if self._grouped else 0
        worth = self._worth_memos[group].get(shape)
        if worth is None:
            worth = self._worth(shape, group)
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

    def _group(self, qi: int, tally: Tally) -> int:
        """A question's group under the models in use: past the length groups when its leader's form is unusual."""
        if self._forms.usual is not None and self._forms.unusual(qi, tally.leader, self._forms.usual):
            return len(self._lengths.cuts) + 1
        return self._lengths.group(qi)

    def _group_fits(self, sampled: list[int], weights: np.ndarray, cuts: list[float],
                    usual: str | None) -> list[np.ndarray]:
        """Each group's prior. A length group's is the fit to all its questions' tallies, shrunk toward the whole
        batch's; that of the questions led by an unusual form is the fit to theirs, shrunk toward the batch's."""
        lengths = len(cuts) + 1
        if lengths == 1 and usual is None:
            return [weights]
        shapes: list[dict[Shape, int]] = [{} for _ in range(lengths + (usual is not None))]
        for qi in sampled:
            shape = self.tallies[qi].shape
            group = self._lengths.group(qi, cuts)
            own = shapes[group]
            own[shape] = own.get(shape, 0) + 1
            if self._forms.unusual(qi, self.tallies[qi].leader, usual):
                own = shapes[lengths]
                own[shape] = own.get(shape, 0) + 1
        fits = [fit_weights(own, self.prior_weight, toward=weights) if lengths > 1 else weights
                for own in shapes[:lengths]]
        if usual is not None:
            fit = fit_weights(shapes[lengths], self.prior_weight, toward=weights)
            # Kept only where the tallies say the unusual ones differ ("strong" evidence, Kass & Raftery): a group
            # of a few dozen questions that do not differ would only add the noise of its own fit.
            if _log_likelihood_gain(shapes[lengths], fit, weights) > _STRONG_EVIDENCE:
                fits.append(fit)
        return fits

    def _rebuild(self) -> None:
        tallies = self.tallies
        shapes: dict[Shape, int] = {}
        sampled: list[int] = []
        votes = samples = 0
        for qi, t in enumerate(tallies):
            if t.samples:
                shape = t.shape
                shapes[shape] = shapes.get(shape, 0) + 1
                sampled.append(qi)
                votes += t.samples - t.abstentions
                samples += t.samples
        # Until every question could have an answer the tallies say nothing about the prior (one vote has the
        # same likelihood under every cell): the first refit waits for as many samples as questions.
        cuts = self._lengths.cut_points(sampled)
        usual = None
        if self._forms.scans is not False and self._t >= len(tallies):  # every question could have an answer
            several = self._forms.scan([t.leader for t in tallies])
            if self._forms.scans is None:
                self._forms.scans = several
            usual = self._forms.choose_usual()
        # While questions hold a sample or two, the groups' priors move fastest and place every second and third
        # sample: refit more often then (also where the unusual forms' group is still to pass its evidence test).
        # With one group this bought nothing measurable, and costs time.
        early = (bool(cuts) or usual is not None) and self._t < _EARLY_SAMPLES * len(tallies)
        growth = min(self.refit, _EARLY_REFIT) if early else self.refit
        self._refit_at = max(self._t + 1, math.ceil(self._t * growth), len(tallies))
        weights = fit_weights(shapes, self.prior_weight)
        fits = self._group_fits(sampled, weights, cuts, usual)
        model = self.model
        settled = (model is not None and len(fits) == len(self._models)
                   and _moved(weights, model.weights) < _REFIT_TOLERANCE
                   and all(_moved(fit, old.weights) < _REFIT_TOLERANCE
                           for fit, old in zip(fits, self._models, strict=True)))
        if settled:
            # the priors have settled: keep the models, their memos and the heap, and look again less often
            self._refit_at = max(self._t + 1, math.ceil(self._t * growth * growth))
            return
        self._vote_rate = (votes + 1.0) / (samples + 1.0)
        self._lengths.cuts = cuts
        self._forms.usual = usual if len(fits) > len(cuts) + 1 else None  # None: no group of unusual forms
        self._grouped = len(fits) > 1
        self.model = AnswerModel(weights, self.horizon)
        previous = self._models
        self._models = [AnswerModel(fit, self.horizon) if fit is not weights else self.model for fit in fits]
        if model is not None and max(max(m.shapes_valued() for m in previous), len(tallies)) * _LATTICE_SHARE \
                >= len(LATTICE):
            # A batch this large (or the last models) values much of the lattice: cheaper all at once. A small
            # batch in a process that has met many shapes values its few one at a time.
            for group_model in self._models:
                group_model.value_lattice()
        self._worth_memos: list[dict[Shape, float]] = [{} for _ in self._models]
        self._heap = []
        self._deferred = None
        for qi in range(len(tallies)):
            self._push(qi)

    # ---- the allocator protocol ----

    def next_question(self) -> int | None:
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
        if self._t >= self._refit_at:
            self._rebuild()

    def abandoned(self, qi: int) -> None:
        # A failed request is no sample: the question goes back in the queue, but the refit schedule does not move,
        # so a resumed run (which never saw the failure) refits at the same tallies and decides the same.
        self.pending[qi] -= 1
        self.inflight -= 1
        self._push(qi)

    def _count(self, qi: int) -> None:
        # A refit happens when a sample lands, never when a request is asked for: a live run asks at moments a
        # journal replay does not (a request refused for budget, a question at max_inflight), and a refit must
        # see the same tallies in both, or a resubmitted run decides differently and pays for new samples.
        self._t += 1
        self._push(qi)
        if self._t >= self._refit_at:
            self._rebuild()

    def describe(self) -> str:
        return (f"bayes(horizon={self.horizon}, min_gain={self.min_gain}, refit={self.refit}, "
                f"prior_weight={self.prior_weight}, length_groups={self.length_groups}, "
                f"form_groups={str(self.form_groups).lower()}, per_token={str(self.per_token).lower()})")
