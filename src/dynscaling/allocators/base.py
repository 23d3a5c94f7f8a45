"""The allocator protocol and the per-question bookkeeping every allocator shares."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..answers import AnswerClusterer
from ..errors import ConfigError
from ..types import Usage
from ..votes import Tally

__all__ = ["Allocator", "check"]


class Allocator(ABC):
    """Base class: holds the tallies and the per-question bookkeeping every allocator needs."""

    tallies: Sequence[Tally]
    pending: list[int]
    inflight: int
    closed: list[bool]
    rng: random.Random
    usages: Sequence[Sequence[Usage]] | None
    clusterers: Sequence[AnswerClusterer] | None

    def start(self, tallies: Sequence[Tally], budget_samples: int | None, rng: random.Random,
              usages: Sequence[Sequence[Usage]] | None = None,
              clusterers: Sequence[AnswerClusterer] | None = None) -> None:
        """Called once before the first request. ``budget_samples`` is the batch's sample cap, if any;
        ``usages`` the engine's per-question usage lists, appended to as samples land, and ``clusterers`` its
        per-question answer classes (what each class's answer is); both read, never written."""
        self.tallies = tallies
        self.usages = usages
        self.clusterers = clusterers
        self.pending = [0] * len(tallies)
        self.inflight = 0
        self.closed = [False] * len(tallies)
        self.rng = rng
        self.budget_samples = budget_samples
        self._start()

    def _start(self) -> None:  # noqa: B027 (optional hook)
        pass

    @abstractmethod
    def next_question(self) -> int | None:
        """The question to sample now, or None when nothing should be dispatched at the moment."""

    def dispatched(self, qi: int) -> None:
        self.pending[qi] += 1
        self.inflight += 1

    def landed(self, qi: int) -> None:
        """A sample of ``qi`` (possibly an abstention) was counted in its tally."""
        self.pending[qi] -= 1
        self.inflight -= 1
        self._landed(qi)

    def _landed(self, qi: int) -> None:  # noqa: B027 (optional hook)
        pass

    def sampled(self, qi: int) -> None:
        """``dispatched`` and ``landed`` at once, for a synchronous source (replay) whose sample is already counted."""
        self.dispatched(qi)
        self.landed(qi)

    def abandoned(self, qi: int) -> None:
        """A request for ``qi`` ended without a sample (failed or cancelled)."""
        self.pending[qi] -= 1
        self.inflight -= 1
        self._landed(qi)

    def close(self, qi: int) -> None:
        self.closed[qi] = True

    def describe(self) -> str:
        return type(self).__name__


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)

