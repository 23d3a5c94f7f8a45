"""Blend-ASC: a budget-fitting allocator across questions that blends two stopping statistics, in rounds."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..votes import leader_confidence
from .base import Allocator
from .base import check as _check
from .stopping import ppr_statistic

__all__ = ["BlendAscAllocator"]

#: a round samples one question in this many of those that can be sampled
ROUND_SHARE = 8


@lru_cache(maxsize=1 << 16)
def _terms(v1: int, v2: int, distinct: int) -> tuple[float, float]:
    """The two rankings' statistics of a tally, each scaled to [0, 1]: 2 * (1 - Beta confidence), s / (1 + s)."""
    s = ppr_statistic(v1, v2, distinct)
    return 2.0 * (1.0 - leader_confidence(v1, v2)), s / (1.0 + s)


class BlendAscAllocator(Allocator):
    """Blend-ASC (Feng et al. 2025, arXiv 2511.12309), *reconstructed*: its algorithm box is not available to
    us, only the public description "a hyperparameter-free, budget-fitting allocator that blends
    Adaptive-Consistency's Beta-posterior ranking (early) with PPR-1v1's (late), in batches". Our reading:

    - Round 0 gives every question one sample, in shuffled order.
    - Each later round ranks the questions that can still be sampled by
      ``(1 - w) * 2 * (1 - confidence) + w * s / (1 + s)``: ``confidence`` is Adaptive-Consistency's Beta
      posterior that the leader leads (``dynscaling.leader_confidence``), ``s`` the PPR-1v1 statistic
      (``ppr_statistic``), and ``w`` the share of the budget spent when the round starts, so the ranking moves
      from the first to the second as the budget is used; both terms are scaled to [0, 1]. The top
      ``ceil(n / 8)`` of the ``n`` rankable questions get one sample each; ties go to a per-run random order.
      Abstentions are samples like any other (they spend budget, do not vote, and leave the ranking as it was).
      Measured on four seeds of the chatgpt-date and GPT-4 GSM8K pools, rounds of n / 8 beat n / 2 at 1.5-4
      samples/q and matched n / 32; weighting the score by the share of samples that parse lost 0.5-1 point
      (rejected).
    - No threshold retires a question: the run spends exactly its sample budget (or stops when every question's
      pool is dry). With a budget in tokens or dollars only, ``w`` is paced against ``horizon`` samples per
      question and the cap ends the run.

    A round is ranked once, in numpy (``O(Q log Q)`` for ``Q / 8`` samples, so ``O(log Q)`` per sample). Live runs do
    not wait for a round to land: the next round is ranked when the current one has been dispatched, from the
    tallies in hand, without the questions still in flight.
    """

    def __init__(self, horizon: float = 8.0) -> None:
        _check(horizon >= 1.0, f"blend-asc horizon must be >= 1 sample per question, got {horizon}")
        self.horizon = horizon

    def _start(self) -> None:
        n = len(self.tallies)
        order = list(range(n))
        self.rng.shuffle(order)
        self._tiebreak = np.empty(n, dtype=np.int64)
        self._tiebreak[order] = np.arange(n)
        self._round: list[int] = order[::-1]  # popped from the end: round 0 in shuffled order
        self._spent = 0
        total = self.budget_samples if self.budget_samples is not None else self.horizon * n
        self._total = max(float(total), 1.0)
        # Each question's two statistics, refreshed when its tally changes, so a round ranks arrays.
        beta, ppr = _terms(0, 0, 0)
        self._beta = [beta] * n
        self._ppr = [ppr] * n

    def _score(self, qi: int, w: float) -> float:
        return (1.0 - w) * self._beta[qi] + w * self._ppr[qi]

    def _next_round(self) -> list[int]:
        w = min(1.0, self._spent / self._total)
        score = (1.0 - w) * np.array(self._beta) + w * np.array(self._ppr)
        rankable = np.flatnonzero(~(np.array(self.closed) | (np.array(self.pending) > 0)))
        if rankable.size == 0:
            return []
        size = math.ceil(rankable.size / ROUND_SHARE)
        if self.budget_samples is not None:  # the last round goes to the top of the ranking only
            size = min(size, max(1, self.budget_samples - self._spent - self.inflight))
        best = np.lexsort((self._tiebreak[rankable], -score[rankable]))[:size]
        return rankable[best][::-1].tolist()  # popped from the end: best first

    def next_question(self) -> int | None:
        for _ in range(2):
            while self._round:
                qi = self._round.pop()
                if not self.closed[qi]:
                    return qi
            self._round = self._next_round()
        return None

    def _landed(self, qi: int) -> None:
        self._spent += 1
        tally = self.tallies[qi]
        self._beta[qi], self._ppr[qi] = _terms(tally.v1, tally.v2, len(tally.counts))

    def abandoned(self, qi: int) -> None:  # a failed request spent nothing
        self.pending[qi] -= 1
        self.inflight -= 1

    def describe(self) -> str:
        return "blend-asc"
