"""The UCB bandit across questions (the first DynScaling scheduler) and its uncertainty scores."""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable

from ..votes import Tally, leader_confidence
from .base import Allocator
from .base import check as _check

__all__ = ["SCORES", "BanditAllocator"]


# ---- uncertainty scores for the bandit: higher means "more worth another sample" ----

def _beta_score(t: Tally) -> float:
    """Posterior probability that the current leader is not the most likely answer."""
    return 1.0 - leader_confidence(t.v1, t.v2)


def _margin_score(t: Tally) -> float:
    """One minus the normalised vote margin between the top two."""
    return 1.0 - (t.v1 - t.v2) / (t.votes + 1)


def _entropy_score(t: Tally) -> float:
    """Shannon entropy of the smoothed vote shares, abstentions as one more outcome, normalised to [0, 1]."""
    total = t.samples + 1
    counts = [*t.counts.values(), t.abstentions, 1]
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return h / math.log(len(counts)) if len(counts) > 1 else 0.0


@functools.lru_cache(maxsize=1 << 16)
def _two_way(a: int, b: int) -> float:
    """max(P(p_a > p_b), P(p_b > p_a)) under uniform priors: confidence in whichever of the two leads."""
    return leader_confidence(a, b) if a >= b else leader_confidence(b, a)


@functools.lru_cache(maxsize=1 << 18)
def _voi(v1: int, v2: int, votes: int, samples: int) -> float:
    r = (v1 + v2 + 1) / (samples + 2)  # chance the next sample lands in the top two (smoothed)
    q = (v1 + 1) / (v1 + v2 + 2)  # given that, chance it goes to the leader
    now = _two_way(v1, v2)
    after = q * _two_way(v1 + 1, v2) + (1 - q) * _two_way(v1, v2 + 1)
    return max(0.0, r * (after - now))


def _voi_score(t: Tally) -> float:
    """Value of information: expected one-step gain in the confidence that the leader is the top answer.

    Our own design. Unlike ``beta``, it shrinks like 1/sqrt(n) on a question that stays split after many
    samples, so hopeless questions stop absorbing the budget, and it accounts for abstentions (a question
    whose samples rarely parse gains little from one more).
    """
    return _voi(t.v1, t.v2, t.votes, t.samples)


SCORES: dict[str, Callable[[Tally], float]] = {
    "beta": _beta_score,
    "margin": _margin_score,
    "entropy": _entropy_score,
    "voi": _voi_score,
}


class BanditAllocator(Allocator):
    """Bandit allocation across questions: DynScaling's scheduler.

    Warm-up: every question gets ``k0`` samples, one round at a time in shuffled order (so a budget smaller
    than the batch gives one sample to a fair random subset). Then the next sample goes to the question with the
    highest priority ``score(tally) + c * sqrt(ln t / n_i)`` (UCB), from a heap. A question retires when its
    leader's confidence reaches ``stop`` or it has ``cap`` samples; the engine stops when every question has
    retired or the budget is spent.

    ``ln t`` is refreshed whenever ``t`` has grown by half (and the heap rebuilt): the bonus changes slowly
    in ``t``, and this keeps each step ``O(log Q)`` instead of re-scoring every question.
    """

    def __init__(self, score: str = "beta", c: float = 0.3, k0: int = 2, stop: float = 0.95,
                 cap: int | None = None, max_inflight: int = 1, stop_max: float | None = None) -> None:
        _check(score in SCORES, f"unknown bandit score {score!r}; expected one of {', '.join(SCORES)}")
        _check(c >= 0, f"exploration bonus c must be >= 0, got {c}")
        _check(k0 >= 1, f"k0 must be >= 1, got {k0}")
        _check(0.5 < stop <= 1.0, f"stop threshold must be in (0.5, 1], got {stop}")
        _check(cap is None or cap >= k0, f"cap must be >= k0 ({k0}), got {cap}")
        _check(max_inflight >= 1, f"max_inflight must be >= 1, got {max_inflight}")
        _check(stop_max is None or stop <= stop_max < 1.0,
               f"stop_max must be in [stop, 1), got {stop_max} with stop={stop}")
        self.score_name = score
        self.score = SCORES[score]
        self.c = c
        self.k0 = k0
        self.stop = stop
        self.stop_max = stop if stop_max is None else stop_max
        self.cap = cap
        self.max_inflight = max_inflight

    def _start(self) -> None:
        n = len(self.tallies)
        self._warmup: list[int] = []
        self._warm_round = 0
        self._heap: list[tuple[float, int, int]] = []
        self._version = [0] * n
        self._stop = self.stop
        self._t = 0
        self._log_t = 0.0
        self._refresh_at = 0

    def _priority(self, qi: int) -> float:
        tally = self.tallies[qi]
        if self.c == 0.0:
            return self.score(tally)
        n = tally.samples + self.pending[qi]
        return self.score(tally) + self.c * math.sqrt(self._log_t / max(n, 1))

    def _retired(self, qi: int) -> bool:
        tally = self.tallies[qi]
        if self.closed[qi]:
            return True
        if self.cap is not None and tally.samples + self.pending[qi] >= self.cap:
            return True
        return tally.samples >= self.k0 and leader_confidence(tally.v1, tally.v2) >= self._stop

    def _push(self, qi: int) -> None:
        """Re-score ``qi`` and put it back in the heap unless it is retired (hot path: kept inline)."""
        self._version[qi] += 1
        pending = self.pending[qi]
        if pending >= self.max_inflight or self.closed[qi]:
            return
        tally = self.tallies[qi]
        n = tally.samples + pending
        if self.cap is not None and n >= self.cap:
            return
        confidence = leader_confidence(tally.v1, tally.v2)
        if tally.samples >= self.k0 and confidence >= self._stop:
            return
        priority = 1.0 - confidence if self.score is _beta_score else self.score(tally)  # beta: no second lookup
        if self.c:
            priority += self.c * math.sqrt(self._log_t / (n or 1))
        heapq.heappush(self._heap, (-priority, qi, self._version[qi]))

    def _next_warmup(self) -> int | None:
        n = len(self.tallies)
        while True:
            while self._warmup:
                qi = self._warmup.pop()
                if not self.closed[qi] and self.tallies[qi].samples + self.pending[qi] < self._warm_round:
                    return qi
            if self._warm_round >= self.k0:
                return None
            self._warm_round += 1
            order = [qi for qi in range(n) if not self.closed[qi]]
            self.rng.shuffle(order)
            self._warmup = order
            if not order:
                return None

    def next_question(self) -> int | None:
        if self._warm_round < self.k0 or self._warmup:
            qi = self._next_warmup()
            if qi is not None:
                return qi
            if self.inflight:
                return None  # the heap is built once every warm-up sample has landed
        if self._refresh_at == 0 and self.inflight:
            return None  # the last warm-up requests are out: exploit only once they have landed
        if self._t >= self._refresh_at:
            self._rebuild()
        while True:
            heap = self._heap
            version = self._version
            while heap:
                _, qi, v = heapq.heappop(heap)
                if v != version[qi]:
                    continue
                if self.closed[qi]:
                    continue
                return qi
            if self.inflight or self._stop >= self.stop_max:
                return None
            # Every question has settled at the current threshold and budget remains: raise the bar.
            self._stop = min(self.stop_max, 1.0 - (1.0 - self._stop) / 5.0)
            self._rebuild()

    def _rebuild(self) -> None:
        self._log_t = math.log(max(self._t, 2))
        self._refresh_at = max(self._t + 1, int(self._t * 1.5))
        self._heap = []
        for qi in range(len(self.tallies)):
            self._version[qi] += 1
            if self.pending[qi] < self.max_inflight and not self._retired(qi):
                self._heap.append((-self._priority(qi), qi, self._version[qi]))
        heapq.heapify(self._heap)

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1
        self.inflight += 1
        if self.max_inflight > 1 and self._refresh_at:
            self._push(qi)

    def landed(self, qi: int) -> None:  # hot path: overrides the base method instead of calling through it
        self.pending[qi] -= 1
        self.inflight -= 1
        self._t += 1
        if self._refresh_at:  # after warm-up: re-score the question that changed
            self._push(qi)

    def sampled(self, qi: int) -> None:  # the replay loop's hot path: nothing was ever pending
        self._t += 1
        if self._refresh_at:
            self._push(qi)

    def _landed(self, qi: int) -> None:
        self._t += 1
        if self._refresh_at:
            self._push(qi)

    def describe(self) -> str:
        return f"bandit(score={self.score_name}, c={self.c}, k0={self.k0}, stop={self.stop})"


