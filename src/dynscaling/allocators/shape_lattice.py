"""Every tally shape the answer model has met, numbered, so that a new model can value all of them at once.

After a refit the answer model has new weights, and every shape's posterior and look-ahead must be computed
anew. One shape at a time that is a few numpy calls on 18-cell arrays and a Python recursion: a third of the
default allocator's replay time. What does not depend on the weights is kept here: each shape's evidence rows,
stacked in one array per number of rows, and the shapes that one more vote for the leader, or for the runner-up
(with none, for a new answer), leads to. A model then gets the posterior, the look-ahead for every horizon and
the index of all of them in a few array operations (``values``).

Each cell goes through the same floating-point operations in the same order as on the one-shape path (a stacked
matrix-vector product runs the same kernel on each slice; the rest is elementwise), so the values are the same
to the bit: the allocator compares them exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["LatticeValues", "ShapeLattice", "children"]

#: vote counts, largest first
Shape = tuple[int, ...]


def children(shape: Shape) -> tuple[Shape, Shape]:
    """The shapes after one more vote for the leader, and for the runner-up (with none, for a new answer).

    A runner-up vote overtakes only with a strictly greater count; then it leads."""
    v1 = shape[0]
    if len(shape) == 1:
        return (v1 + 1,), (v1, 1)
    v2 = shape[1]
    rest = shape[2:]
    return (v1 + 1, v2, *rest), (v1, v2 + 1, *rest) if v2 + 1 <= v1 else (v2 + 1, v1, *rest)


@dataclass(frozen=True)
class LatticeValues:
    """One model's values of every shape in the lattice, by shape number.

    Attributes:
        leader: P(the leader is the mode).
        to_leader: P(the next vote goes to the leader).
        to_runner: P(the next vote goes to the runner-up or an answer tied with it); 0 with none.
        runner: P(the runner-up is the mode); 0 with none.
        ahead: ``ahead[k, i]`` is shape i's look-ahead over k votes, valid for ``k <= depth[i]``.
        depth: the longest look-ahead whose shapes are all in the lattice.
    """

    leader: np.ndarray
    to_leader: np.ndarray
    to_runner: np.ndarray
    runner: np.ndarray
    ahead: np.ndarray
    depth: np.ndarray


class _Rows:
    """A growable array of rows. A row is appended to a list (one shape at a time, so it must be cheap) and the
    rows appended since the last read are copied into the array in one go when it is read (once per valuation):
    neither a shape's append nor a valuation copies the rows before them. Rows have shape ``row``, unless None:
    then the shape of the first one appended."""

    def __init__(self, dtype: type, row: tuple[int, ...] | None = None) -> None:
        self.dtype = dtype
        self.row = row
        self.data = np.empty((0, *(row or ())), dtype=dtype)
        self.size = 0  # rows in ``data``
        self.pending: list = []  # rows appended since, in order

    def append(self, row: object) -> None:
        self.pending.append(row)

    def write(self, i: int, column: int, value: object) -> None:
        """Set one cell of row ``i`` (a pending row must be a list)."""
        if i >= self.size:
            self.pending[i - self.size][column] = value
        else:
            self.data[i, column] = value

    def view(self) -> np.ndarray:
        """The rows so far, as one array (a view: later appends do not change it; ``write`` may)."""
        if self.pending:
            block = np.array(self.pending, dtype=self.dtype)
            if self.row is None:
                self.row = block.shape[1:]
                self.data = np.empty((0, *self.row), dtype=self.dtype)
            block = block.reshape(len(self.pending), *self.row)
            need = self.size + len(block)
            if need > len(self.data):
                grown = np.empty((max(64, 2 * need), *self.row), dtype=self.dtype)
                grown[:self.size] = self.data[:self.size]
                self.data = grown
            self.data[self.size:need] = block
            self.size = need
            self.pending = []
        return self.data[:self.size]


class ShapeLattice:
    """Shapes numbered as their evidence is computed, with their evidence and children (see the module doc)."""

    def __init__(self) -> None:
        self.shapes: list[Shape] = []
        self.number: dict[Shape, int] = {}
        # per shape: v1, v2 (0 with none), the answers other than the leader with the runner-up's count, and its
        # number of evidence rows (4 without a runner-up, 6 with one)
        self._counts = _Rows(float, (4,))
        # per shape: the number of the shape after a vote for the leader, and after one for the runner-up (or a
        # new answer); -1: not met yet
        self._children = _Rows(np.intp, (2,))
        self._waiting: dict[Shape, list[tuple[int, int]]] = {}  # a child not met yet -> (parent, column)
        # evidence by number of rows, and each one's shape number
        self._evidence = {rows: _Rows(float) for rows in (4, 6)}
        self._members = {rows: _Rows(np.intp, ()) for rows in (4, 6)}
        # One lattice serves every model of the process: engines in several threads must not interleave the
        # appends of one shape's columns, nor value the lattice half-way through one.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.shapes)

    def add(self, shape: Shape, evidence: np.ndarray) -> None:
        """Number a shape whose evidence (``answer_model.evidence``) was just computed."""
        with self._lock:
            self._add(shape, evidence)

    def _add(self, shape: Shape, evidence: np.ndarray) -> None:
        if shape in self.number:
            return
        i = len(self.shapes)
        self.shapes.append(shape)
        self.number[shape] = i
        runner = len(shape) > 1
        self._counts.append((shape[0], shape[1] if runner else 0, shape[1:].count(shape[1]) if runner else 0,
                             len(evidence)))
        self._evidence[len(evidence)].append(evidence)
        self._members[len(evidence)].append(i)
        numbers = []
        for column, child in enumerate(children(shape)):
            j = self.number.get(child, -1)
            numbers.append(j)
            if j < 0:
                self._waiting.setdefault(child, []).append((i, column))
        self._children.append(numbers)
        for parent, column in self._waiting.pop(shape, ()):
            self._children.write(parent, column, i)

    def values(self, weights: np.ndarray, horizon: int) -> LatticeValues:
        """Every shape's posterior and look-ahead up to ``horizon`` votes under ``weights``, as arrays."""
        with self._lock:
            n = len(self.shapes)
            counts = self._counts.view()
            v1, v2, ties, rows = counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]
            family = self._children.view().copy()  # a later shape fills in its parents' children
            lead, other = family[:, 0], family[:, 1]
            stacks = {count: (self._evidence[count].view(), self._members[count].view()) for count in (4, 6)}
        leader = np.empty(n)
        to_leader = np.empty(n)
        to_runner = np.zeros(n)
        runner = np.zeros(n)
        for count in (4, 6):
            stack, members = stacks[count]
            if not len(members):
                continue
            product = stack @ weights  # (members, rows): the same kernel per slice as one shape alone
            total = product[:, 0]
            field_share = product[:, 2] / total
            leader[members] = product[:, 1] / total
            to_leader[members] = v1[members] * field_share + product[:, 3] / total
            if count == 6:
                to_runner[members] = ties[members] * (v2[members] * field_share + product[:, 4] / total)
                runner[members] = product[:, 5] / total
        met = (lead >= 0) & (other >= 0)
        alone = rows == 4  # no runner-up: every other vote starts a rival
        rival = 1.0 - to_leader
        stays = np.maximum(0.0, 1.0 - to_leader - to_runner)
        # what the third answers' children hold (``AnswerModel.lookahead``); a runner-up that overtakes (a tie
        # broken) leaves the old leader as the new shape's runner-up
        old_leader = np.where(v2 < v1, leader[other], runner[other])
        third = leader - to_leader * leader[lead] - to_runner * old_leader
        ahead = np.empty((horizon + 1, n))
        ahead[0] = leader
        depth = np.zeros(n, dtype=np.intp)
        valid = np.ones(n, dtype=bool)
        for k in range(1, horizon + 1):
            before = ahead[k - 1]
            after_leader = to_leader * before[lead]  # lead = -1 reads a wrong cell, masked by ``valid``
            ahead[k] = np.where(alone, after_leader + rival * before[other],
                                after_leader + to_runner * before[other] + third + stays * (before - leader))
            valid = valid & met & valid[lead] & valid[other]
            depth[valid] = k
        return LatticeValues(leader, to_leader, to_runner, runner, ahead, depth)
