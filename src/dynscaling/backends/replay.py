"""The replay backend: serves a pool's recorded samples in a seeded random order, without replacement.

Each question's order is a permutation drawn from the seed alone (not from the order questions are asked for),
so two strategies replayed with the same seed see the same sample sequences: their comparison is paired.
When a question's samples are used up it raises ``PoolExhaustedError``; it never repeats a sample.
"""

from __future__ import annotations

import numpy as np

from ..errors import PoolExhaustedError
from ..pools import Pool
from ..types import Sample, Usage

__all__ = ["ReplayBackend"]


class ReplayBackend:
    """Recorded samples of one pool under one seed. Use a fresh backend for each run."""

    def __init__(self, pool: Pool, seed: int = 0) -> None:
        self.pool = pool
        self.seed = seed
        rng = np.random.default_rng(seed)
        sizes = np.fromiter((len(e.classes) for e in pool.entries), dtype=np.int64, count=len(pool.entries))
        keys = rng.random((len(sizes), int(sizes.max())))
        keys[np.arange(keys.shape[1])[None, :] >= sizes[:, None]] = np.inf
        orders = np.argsort(keys, axis=1)
        self._order: list[list[int]] = [row[:size].tolist() for row, size in zip(orders, sizes, strict=True)]
        self._next = [0] * len(sizes)
        self._classes = [e.classes for e in pool.entries]
        self._usages = [e.usages for e in pool.entries]

    @property
    def served(self) -> int:
        """Samples served so far."""
        return sum(self._next)

    def draw(self, question_index: int) -> int:
        """The position (in the pool) of the question's next unseen sample."""
        position = self._next[question_index]
        order = self._order[question_index]
        if position >= len(order):
            raise PoolExhaustedError(self.pool.entries[question_index].question.id)
        self._next[question_index] = position + 1
        return order[position]

    def draw_class(self, question_index: int) -> tuple[int | None, Usage]:
        """The next sample's answer class and cost: all the fast replay loop needs (``draw`` inlined: this runs
        once per sample of every bench)."""
        position = self._next[question_index]
        order = self._order[question_index]
        if position >= len(order):
            raise PoolExhaustedError(self.pool.entries[question_index].question.id)
        self._next[question_index] = position + 1
        sample = order[position]
        return self._classes[question_index][sample], self._usages[question_index][sample]

    def sample(self, question_index: int) -> Sample:
        """The next sample in full."""
        position = self.draw(question_index)
        entry = self.pool.entries[question_index]
        return Sample(entry.texts[position], entry.answers[position], entry.usages[position], "stop")

    def remaining(self, question_index: int) -> int:
        return len(self._order[question_index]) - self._next[question_index]
