"""Vote tallies and the leader's confidence.

The confidence of a tally whose top two classes hold ``v1 >= v2`` votes is the posterior probability that the
leader stays ahead: ``P(Binomial(v1 + v2 + 1, 1/2) <= v1)``, computed exactly with ``math.comb``. It equals
``1 - I_0.5(v1 + 1, v2 + 1)`` (the regularised incomplete Beta function). Values: (1, 0) -> 0.75,
(4, 0) -> 0.96875, (1, 1) -> 0.5.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

__all__ = ["Tally", "leader_confidence"]


@lru_cache(maxsize=1 << 16)
def leader_confidence(v1: int, v2: int) -> float:
    """``P(Binomial(v1 + v2 + 1, 1/2) <= v1)``: how sure we are that the class with ``v1`` votes leads."""
    if v1 < 0 or v2 < 0:
        raise ValueError(f"vote counts must be >= 0, got ({v1}, {v2})")
    n = v1 + v2 + 1
    return sum(comb(n, k) for k in range(v1 + 1)) / (1 << n)


class Tally:
    """The votes of one question over classes ``0, 1, 2, ...`` (see ``AnswerClusterer``).

    The leader is the class with the most votes; among equals, the one that reached the count first. That rule
    is deterministic given the order samples arrive in, and needs no random tie-break.

    ``shape`` is the vote counts, largest first (``sorted(counts.values(), reverse=True)`` as a tuple): what an
    allocator that values tallies by shape looks up once per decision, so it is kept up to date here, not sorted
    anew each time.
    """

    __slots__ = ("counts", "leader", "v1", "v2", "samples", "abstentions", "shape")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.shape: tuple[int, ...] = ()
        self.leader: int | None = None
        self.v1 = 0
        self.v2 = 0
        self.samples = 0
        self.abstentions = 0

    def add(self, cls: int | None) -> None:
        """Count one sample: a vote for ``cls``, or an abstention when ``cls`` is None."""
        self.samples += 1
        if cls is None:
            self.abstentions += 1
            return
        before = self.counts.get(cls, 0)
        count = before + 1
        self.counts[cls] = count
        shape = self.shape
        if not before:
            self.shape = shape + (1,)
        elif shape[0] == before:  # the usual case: a vote for (one of) the most voted
            self.shape = (count,) + shape[1:]
        else:
            # Raising the first of the counts equal to ``before`` keeps the order: the one before it is larger.
            i = shape.index(before)
            self.shape = shape[:i] + (count,) + shape[i + 1:]
        if cls == self.leader:
            self.v1 = count
        elif count > self.v1:
            # A strictly greater count overtakes; an equal count does not (the leader got there first).
            self.v2 = self.v1
            self.leader = cls
            self.v1 = count
        elif count > self.v2:
            self.v2 = count

    @property
    def votes(self) -> int:
        return self.samples - self.abstentions

    @property
    def confidence(self) -> float:
        return leader_confidence(self.v1, self.v2)

    def ranked(self) -> list[tuple[int, int]]:
        """(class, votes) pairs, leader first, then by votes, then by class number (first seen first)."""
        rest = sorted((-v, c) for c, v in self.counts.items() if c != self.leader)
        ranked = [(c, -negative) for negative, c in rest]
        return ranked if self.leader is None else [(self.leader, self.v1), *ranked]
