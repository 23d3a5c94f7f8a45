"""Per-question sequential stopping rules from the literature: ConSol's SPRT and PPR-1v1.

Each question is sampled on its own until its rule says stop (or it reaches its cap); questions never compete
for samples, so an uncapped run's decisions for a question depend only on that question's own sample order.
Questions are served round-robin (one sample each, then a second, ...), so a batch budget that ends the run early
ends it with the samples spread evenly. Abstentions consume budget, count towards the cap and do not vote.
"""

from __future__ import annotations

import math
from collections import deque
from functools import lru_cache

from ..votes import Tally
from .base import Allocator
from .base import check as _check

__all__ = ["ConsolAllocator", "PprAllocator", "ppr_statistic", "sprt_decides"]


class _SequentialRule(Allocator):
    """A per-question rule that asks, whenever a question's current batch of votes is in, for ``t`` more votes
    (0: stop). The batch is served round-robin with the other questions; an abstention is replaced by one more
    request (the batch counts votes), up to ``cap`` samples per question."""

    cap: int

    def _more_votes(self, tally: Tally) -> int:
        raise NotImplementedError

    def _start(self) -> None:
        n = len(self.tallies)
        self._target = [0] * n  # the vote count at which the current batch is complete
        self._queued = [False] * n
        self._ready: deque[int] = deque()
        order = list(range(n))
        self.rng.shuffle(order)
        for qi in order:
            self._target[qi] = self._more_votes(self.tallies[qi])
            self._enqueue(qi)

    def _wants(self, qi: int) -> bool:
        tally = self.tallies[qi]
        pending = self.pending[qi]
        return (not self.closed[qi] and tally.votes + pending < self._target[qi]
                and tally.samples + pending < self.cap)

    def _enqueue(self, qi: int) -> None:
        if not self._queued[qi] and self._wants(qi):
            self._queued[qi] = True
            self._ready.append(qi)

    def next_question(self) -> int | None:
        ready = self._ready
        while ready:
            qi = ready.popleft()
            self._queued[qi] = False
            if self._wants(qi):
                return qi
        return None

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1
        self.inflight += 1
        self._enqueue(qi)  # the rest of its batch may go out alongside (live runs), behind the other questions

    def _landed(self, qi: int) -> None:
        tally = self.tallies[qi]
        if self.pending[qi] == 0 and tally.votes >= self._target[qi] and tally.samples < self.cap:
            self._target[qi] = tally.votes + self._more_votes(tally)
        self._enqueue(qi)

    def sampled(self, qi: int) -> None:  # the replay loop's hot path: dispatched and landed at once
        self._landed(qi)


# ---- ConSol: Wald's SPRT on the leader against the runner-up ----------------------------------------------

#: ConSol's published defaults (``consol.confidence_models.SprtConfidenceModel``).
CONSOL_P1 = 0.5001
CONSOL_ALPHA = 0.05
CONSOL_BETA = 1 - 0.05 - 0.000024
CONSOL_MAX_TRIALS = 256


def sprt_decides(first: int, second: int, p1: float = CONSOL_P1, alpha: float = CONSOL_ALPHA,
                 beta: float = CONSOL_BETA) -> bool:
    """Whether Wald's SPRT reaches a decision on the leader's share ``p`` of the top two's votes.

    H0: ``p = 1/2`` against H1: ``p = p1``. The log likelihood ratio of ``first`` leader votes and ``second``
    runner-up votes is ``first * ln(p1 / 0.5) + second * ln((1 - p1) / 0.5)``; the test accepts H1 when it reaches
    ``ln((1 - beta) / alpha)`` and accepts H0 (the top two are not told apart) when it falls to
    ``ln(beta / (1 - alpha))``. Either way it stops.
    """
    llr = first * math.log(p1 / 0.5) + second * math.log((1 - p1) / 0.5)
    return llr >= math.log((1 - beta) / alpha) or llr <= math.log(beta / (1 - alpha))


class ConsolAllocator(_SequentialRule):
    """ConSol (Lee et al. 2025, arXiv 2503.17587): sample until an SPRT on the leader against the runner-up
    decides, in batches.

    Follows the authors' package (``consol``, ``SprtConfidenceModel`` and ``ConfidentSolver``): with the current
    top two ``(first, second)``, the next batch is the smallest number ``t`` of further votes with which the test
    *could* decide (``sprt_decides(first + t, second)``, the case where all ``t`` go to the leader), capped by
    what is left of ``max_trials``; ``t = 0`` stops. No vote can decide the test mid-batch, so batching changes
    when the samples are requested, not the outcome. Defaults are theirs: ``p1 = 0.5001``, ``alpha = 0.05``,
    ``beta = 1 - 0.05 - 0.000024``, ``max_trials = 256``; with them the test accepts H1 once the leader is 3 votes
    ahead and practically never accepts H0. ``p1`` sets the margin (``p1 = 0.5002`` stops 2 ahead, ``0.50007`` 4).

    One difference: ConSol re-asks until it has ``max_trials`` *parsed* answers, which never ends on a question
    whose answers never parse; here ``max_trials`` counts samples, abstentions included.
    """

    def __init__(self, p1: float = CONSOL_P1, alpha: float = CONSOL_ALPHA, beta: float = CONSOL_BETA,
                 max_trials: int = CONSOL_MAX_TRIALS) -> None:
        _check(0.5 < p1 < 1.0, f"consol p1 must be in (0.5, 1), got {p1}")
        _check(0.0 < alpha < 1.0, f"consol alpha must be in (0, 1), got {alpha}")
        _check(0.0 < beta < 1.0, f"consol beta must be in (0, 1), got {beta}")
        _check(alpha + beta < 1.0, f"consol needs alpha + beta < 1 for an SPRT, got {alpha} + {beta:.6g} (the "
                                   "default beta is 1 - 0.05 - 0.000024: give beta with alpha)")
        _check(max_trials >= 1, f"consol max_trials must be >= 1, got {max_trials}")
        self.p1 = p1
        self.alpha = alpha
        self.beta = beta
        self.cap = max_trials

    def _decides(self, first: int, second: int) -> bool:
        return sprt_decides(first, second, self.p1, self.alpha, self.beta)

    def _more_votes(self, tally: Tally) -> int:
        first, second = tally.v1, tally.v2
        if first > 0 and self._decides(first, second):
            return 0
        # The smallest t >= 1 with which the test itself decides. A search, not a closed form: t is the votes
        # the leader still lacks (a few with ConSol's lines), and a closed form needs nudging at the float boundary.
        t = 1
        while not self._decides(first + t, second) and t < self.cap:
            t += 1
        return min(t, self.cap - tally.samples)

    def describe(self) -> str:
        # 10 significant digits: the default beta is 1 - 0.05 - 0.000024, which prints as 0.9499759999999999
        return f"consol(p1={self.p1:.10g}, alpha={self.alpha:.10g}, beta={self.beta:.10g}, max_trials={self.cap})"


# ---- PPR-1v1 --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1 << 16)
def _ppr_pair(v1: int, v2: int) -> float:
    n = v1 + v2
    return (n + 1) * math.comb(n, v1) / (1 << n)  # exact integers until the one division


def ppr_statistic(v1: int, v2: int, distinct: int) -> float:
    """PPR-1v1's statistic ``(K - 1) * (v1 + v2 + 1) * C(v1 + v2, v1) / 2^(v1 + v2)``, K = ``distinct``.

    ``(v1 + v2 + 1) * C(v1 + v2, v1) / 2^(v1 + v2)`` is the Beta(1, 1) posterior density, at 1/2, of the
    leader's share of the top two's votes: the inverse of the prior-posterior-ratio martingale against "the
    runner-up is at least as likely", and ``K - 1`` is a union bound over the other answers. ``K - 1`` is taken
    as at least 1: with one distinct answer the runner-up is an answer not yet seen (0 votes), and a factor of
    0 would stop every question at its first vote whatever ``delta``.
    """
    return max(distinct - 1, 1) * _ppr_pair(v1, v2)


class PprAllocator(_SequentialRule):
    """PPR-1v1 (Jain et al. 2022, the prior-posterior-ratio test of the mode against the runner-up): sample a
    question one vote at a time until ``ppr_statistic(v1, v2, K) <= delta`` with ``v1 > v2``, K the number of
    distinct answers seen, or ``cap`` samples. With one answer seen it stops at ``v1`` unanimous votes once
    ``(v1 + 1) / 2^v1 <= delta`` (8 votes at ``delta = 0.05``, 5 at 0.2)."""

    def __init__(self, delta: float = 0.05, cap: int = 40) -> None:
        _check(0.0 < delta <= 1.0, f"ppr delta must be in (0, 1], got {delta}")
        _check(cap >= 1, f"ppr cap must be >= 1, got {cap}")
        self.delta = delta
        self.cap = cap

    def _more_votes(self, tally: Tally) -> int:
        if tally.v1 > tally.v2 and ppr_statistic(tally.v1, tally.v2, len(tally.counts)) <= self.delta:
            return 0
        return 1

    def describe(self) -> str:
        return f"ppr(delta={self.delta}, cap={self.cap})"
