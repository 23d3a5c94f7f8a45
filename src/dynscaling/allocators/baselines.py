"""Per-question baselines: uniform (self-consistency), ESC, Adaptive-Consistency, and the oracle bound."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

from ..errors import ConfigError
from ..votes import leader_confidence
from .base import Allocator
from .base import check as _check

__all__ = ["AdaptiveAllocator", "EscAllocator", "OracleAllocator", "UniformAllocator"]


class UniformAllocator(Allocator):
    """Round-robin: every question gets one sample per round, in a freshly shuffled order each round.

    With a budget of ``b`` samples per question every question gets exactly ``b``; when the budget does not
    divide evenly, the questions of the last, partial round are a fair random draw. ``cap`` stops a question
    after that many samples (``cap=1`` is the single-sample baseline).
    """

    def __init__(self, cap: int | None = None) -> None:
        _check(cap is None or cap >= 1, f"uniform cap must be >= 1, got {cap}")
        self.cap = cap

    def _start(self) -> None:
        self._round: list[int] = []

    def next_question(self) -> int | None:
        # No count of rounds: the cap is on each question's samples (``_wants``), so a question whose request
        # failed is asked again in the next round instead of ending the run one sample short.
        n = len(self.tallies)
        for _ in range(2):
            while self._round:
                qi = self._round.pop()
                if self._wants(qi):
                    return qi
            order = [qi for qi in range(n) if self._wants(qi)]
            if not order:
                return None
            self.rng.shuffle(order)
            self._round = order
        return None

    def _wants(self, qi: int) -> bool:
        if self.closed[qi]:
            return False
        return self.cap is None or self.tallies[qi].samples + self.pending[qi] < self.cap


class EscAllocator(Allocator):
    """Early-stopping self-consistency (Li et al., ICLR 2024).

    Samples each question in windows of ``w``; a question stops after a window whose ``w`` answers are all the
    same class (no abstention in it), or at ``cap`` samples.
    """

    def __init__(self, w: int = 4, cap: int = 40) -> None:
        _check(w >= 1, f"ESC window w must be >= 1, got {w}")
        _check(cap >= 1, f"ESC cap must be >= 1, got {cap}")
        self.w = w
        self.cap = cap

    def _start(self) -> None:
        n = len(self.tallies)
        self._queue: deque[int] = deque()
        self._window_left = [0] * n
        self._window_size = [0] * n
        self._counts_before: list[dict[int, int]] = [{} for _ in range(n)]
        self._abstentions_before = [0] * n
        order = list(range(n))
        self.rng.shuffle(order)
        for qi in order:
            self._open_window(qi)
        # First windows go out interleaved (one sample of every question, then a second, ...), so that a
        # budget smaller than w samples per question still reaches every question.
        firsts = [qi for _ in range(self.w) for qi in order]
        sizes = dict.fromkeys(order, 0)
        interleaved = []
        for qi in firsts:
            if sizes[qi] < self._window_size[qi]:
                sizes[qi] += 1
                interleaved.append(qi)
        self._queue = deque(interleaved)

    def _open_window(self, qi: int) -> None:
        tally = self.tallies[qi]
        size = min(self.w, self.cap - tally.samples)
        if size <= 0 or self.closed[qi]:
            return
        self._window_left[qi] = self._window_size[qi] = size
        self._counts_before[qi] = dict(tally.counts)
        self._abstentions_before[qi] = tally.abstentions
        self._queue.extend([qi] * size)

    def next_question(self) -> int | None:
        while self._queue:
            qi = self._queue.popleft()
            if not self.closed[qi]:
                return qi
        return None

    def _landed(self, qi: int) -> None:
        self._window_left[qi] -= 1
        if self._window_left[qi] > 0:
            return
        tally = self.tallies[qi]
        before = self._counts_before[qi]
        grown = [c for c, v in tally.counts.items() if v > before.get(c, 0)]
        unanimous = (len(grown) == 1 and tally.abstentions == self._abstentions_before[qi]
                     and tally.counts[grown[0]] - before.get(grown[0], 0) == self._window_size[qi])
        if not unanimous:
            self._open_window(qi)


class AdaptiveAllocator(Allocator):
    """Adaptive-Consistency (Aggarwal et al., 2023) with the Beta stopping criterion.

    Samples each question one at a time (all questions in parallel) and stops it once the leader's confidence
    ``P(Binomial(v1+v2+1, 1/2) <= v1)`` reaches ``threshold``, or at ``cap`` samples.
    """

    def __init__(self, threshold: float = 0.95, cap: int = 40) -> None:
        _check(0.5 < threshold < 1.0, f"adaptive threshold must be in (0.5, 1), got {threshold}")
        _check(cap >= 1, f"adaptive cap must be >= 1, got {cap}")
        self.threshold = threshold
        self.cap = cap

    def _start(self) -> None:
        order = list(range(len(self.tallies)))
        self.rng.shuffle(order)
        self._ready: deque[int] = deque(order)

    def next_question(self) -> int | None:
        while self._ready:
            qi = self._ready.popleft()
            if not self.closed[qi]:
                return qi
        return None

    def _landed(self, qi: int) -> None:
        tally = self.tallies[qi]
        if tally.samples < self.cap and leader_confidence(tally.v1, tally.v2) < self.threshold:
            self._ready.append(qi)



class OracleAllocator(Allocator):
    """An evaluation-only upper bound on allocation: it knows which answer class is correct.

    It never sees future samples, only which of the current answers is right. Each step it samples the question
    that is currently wrong with the smallest deficit (leader's votes minus the correct answer's votes); it
    leaves right questions alone, and stops when none is wrong or every wrong one is out of samples.
    """

    def __init__(self, is_correct: Callable[[int, int], bool] | None = None) -> None:
        self.is_correct = is_correct

    def bind(self, is_correct: Callable[[int, int], bool]) -> None:
        self.is_correct = is_correct

    def _start(self) -> None:
        if self.is_correct is None:
            raise ConfigError("the oracle allocator needs gold answers (evaluation only)")
        order = list(range(len(self.tallies)))
        self.rng.shuffle(order)
        self._first: deque[int] = deque(order)
        # At most one entry per question: it is pushed when the question's requests are all back, and a question
        # is asked again only once popped, so no entry goes stale and none needs a version.
        self._heap: list[tuple[int, int]] = []

    def _deficit(self, qi: int) -> int | None:
        tally = self.tallies[qi]
        assert self.is_correct is not None
        if tally.leader is not None and self.is_correct(qi, tally.leader):
            return None
        right = max((v for c, v in tally.counts.items() if self.is_correct(qi, c)), default=0)
        return tally.v1 - right

    def next_question(self) -> int | None:
        while self._first:
            qi = self._first.popleft()
            if not self.closed[qi]:
                return qi
        while self._heap:
            _, qi = heapq.heappop(self._heap)
            if not self.closed[qi]:
                return qi
        return None

    def _landed(self, qi: int) -> None:
        deficit = self._deficit(qi)
        if deficit is not None and self.pending[qi] == 0:
            heapq.heappush(self._heap, (deficit, qi))
