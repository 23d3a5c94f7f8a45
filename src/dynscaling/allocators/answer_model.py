"""A model of how a question's samples spread over answers, with a prior learned from the whole batch.

**Mode and field.** A question has one answer, its *mode*, that a sample gives with probability ``theta``; the
other samples fall in a *field* of other answers that behaves like a Chinese restaurant process with
concentration ``beta`` (small: the field is one rival answer; large: wrong answers rarely repeat). The vote
tally's probability under "the mode is the answer with ``c`` votes" is ``theta^c (1-theta)^(n-c)`` times the
Ewens probability of the field's partition, and under "the mode has not been seen" ``(1-theta)^n`` times the
Ewens probability of the whole partition, so the posterior of which answer is the mode is exact and cheap. It
sees what a model of the top two alone cannot: two agreeing samples among many possible answers are strong
evidence, and a 1-1 split in a diffuse question most likely holds neither.

**Diffuse questions.** A weak model's question can have no answer that half its samples give. Below one half,
a mode is the plurality only if the rest is scattered, so the grid's cells there (``DIFFUSE``) pair each
``theta`` with a wide field: no single other answer is expected to rival the mode. Without them the batch fit
of a diffuse batch piles its weight on ``theta = 0.5`` (LLaMA-2 GSM8K: 0.82 of it) and calls leaders of
scattered tallies settled that are not.

**The batch prior.** ``(theta, beta)`` lives on a grid; its weights are the batch's nonparametric maximum-
likelihood prior (EM over every question's tally), shrunk toward flat with the weight of ``prior_weight``
questions. Questions stopped adaptively do not bias it: the likelihood of a tally does not depend on a stopping
rule that looks only at tallies.

Tallies are keyed by their *shape*: the vote counts, largest first (abstentions do not enter: they carry no
information about which answer leads). Everything is memoised by shape for one set of weights.
"""

from __future__ import annotations

import math

import numpy as np

from .shape_lattice import LatticeValues, Shape, ShapeLattice, children

__all__ = ["LATTICE", "AnswerModel", "Shape", "fit_weights"]

#: every shape whose evidence has been computed in this process, for valuing them all at once after a refit
LATTICE = ShapeLattice()

THETAS = (0.5, 0.55, 0.65, 0.75, 0.85, 0.92, 0.97, 0.99, 1.0)
BETAS = (0.3, 3.0)
#: (theta, beta) cells of questions whose mode gets fewer than half the samples, each with a scattered field
DIFFUSE = ((0.2, 30.0), (0.3, 15.0), (0.4, 8.0))

_THETA = np.array([theta for theta in THETAS for _ in BETAS] + [theta for theta, _ in DIFFUSE])
_BETA = np.array([beta for _ in THETAS for beta in BETAS] + [beta for _, beta in DIFFUSE])
_LOG_THETA = np.log(_THETA)
with np.errstate(divide="ignore"):
    _LOG_REST = np.log1p(-_THETA)  # -inf at theta = 1: then no sample falls outside the mode
_LOG_BETA = np.log(_BETA)
_LGAMMA_BETA = np.array([math.lgamma(b) for b in _BETA])
CELLS = len(_THETA)

_EM_ITERATIONS = 40
_lgamma_beta_plus: dict[int, np.ndarray] = {}


def _lgamma_beta_plus_n(n: int) -> np.ndarray:
    found = _lgamma_beta_plus.get(n)
    if found is None:
        found = np.array([math.lgamma(b + n) for b in _BETA])
        _lgamma_beta_plus[n] = found
    return found


#: (c, votes, answers) -> (log-likelihood row, share row) of the hypothesis "the mode has c votes" (0: unseen)
_rows: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


def _hypothesis(c: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """One hypothesis of a tally of ``n`` votes over ``m`` answers, the mode holding ``c`` of them (0: not seen
    yet), over the grid cells: ``c log theta + field log(1 - theta) + (answers besides the mode) log beta +
    lgamma(beta) - lgamma(beta + field) - lgamma(c)`` (the unseen mode has no ``c`` terms: 0 log theta and - 0
    leave its row's bits as they are; a field of 0 at theta = 1 adds 0, not NaN), and the share of the next vote
    one field answer gets per vote it holds, ``(1 - theta) / (field votes + beta)``. Many shapes share a row."""
    key = (c, n, m)
    found = _rows.get(key)
    if found is not None:
        return found
    field = n - c
    rest = field * _LOG_REST if field else np.zeros(CELLS)
    others = m if c == 0 else m - 1
    loglik = (float(c) * _LOG_THETA + rest + float(others) * _LOG_BETA + _LGAMMA_BETA
              - _lgamma_beta_plus_n(field) - (math.lgamma(c) if c else 0.0))
    found = (loglik, (1.0 - _THETA) / (float(field) + _BETA))
    if len(_rows) < 1 << 16:
        _rows[key] = found
    return found


def hypotheses(shape: Shape) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """For a shape: the distinct vote counts ``c`` an observed mode could have (then 0: not seen yet), their
    multiplicities, and per hypothesis (rows) and grid cell (columns) the log-likelihood of the tally, up to a
    term that is the same for every hypothesis and cell, and the share of the next vote that one field answer
    gets per vote it holds (``_hypothesis``). Not kept: ``evidence``, its one caller, is."""
    n = sum(shape)
    m = len(shape)
    counts = sorted(set(shape), reverse=True)
    multiplicity = np.array([shape.count(c) for c in counts] + [1], dtype=float)
    rows = [_hypothesis(c, n, m) for c in counts] + [_hypothesis(0, n, m)]
    return counts, multiplicity, np.array([row[0] for row in rows]), np.array([row[1] for row in rows])


_evidence_cache: dict[Shape, np.ndarray] = {}


def evidence(shape: Shape) -> np.ndarray:
    """What the posterior needs of a shape, as rows over the grid cells, so that one product with the weights
    gives it: the tally's likelihood, its likelihood with the leader as the mode, the share of the next vote that
    goes to field answers per vote they hold, the corrections to that share where the leader (then the runner-up)
    is the mode, and the likelihood with the runner-up as the mode. All scaled by one constant, which cancels."""
    found = _evidence_cache.get(shape)
    if found is not None:
        return found
    counts, multiplicity, loglik, share = hypotheses(shape)
    likelihood = np.exp(loglik - loglik.max()) * multiplicity[:, None]  # (hypothesis, cell)
    v1 = shape[0]
    v2 = shape[1] if len(shape) > 1 else 0
    leader_group = counts.index(v1)
    leader = likelihood[leader_group] / multiplicity[leader_group]
    found = np.empty((6 if v2 else 4, CELLS))
    found[0] = likelihood.sum(axis=0)
    found[1] = leader
    found[2] = (likelihood * share).sum(axis=0)
    found[3] = leader * (_THETA - v1 * share[leader_group])
    if v2:
        runner_group = counts.index(v2)
        runner = likelihood[runner_group] / multiplicity[runner_group]
        found[4] = runner * (_THETA - v2 * share[runner_group])
        found[5] = runner
    if len(_evidence_cache) < 1 << 16:
        _evidence_cache[shape] = found
        LATTICE.add(shape, found)
    return found


def fit_weights(shapes: dict[Shape, int], prior_weight: float, toward: np.ndarray | None = None) -> np.ndarray:
    """The batch prior over the grid: EM for the mixture weights, shrunk toward ``toward`` (flat by default) by
    ``prior_weight`` questions' worth."""
    flat = np.full(CELLS, 1.0 / CELLS) if toward is None else toward
    rows = []
    counts = []
    for shape, count in shapes.items():
        if sum(shape) < 2:
            continue  # one vote has the same likelihood under every cell
        rows.append(evidence(shape)[0])
        counts.append(count)
    if not rows:
        return flat
    likelihood = np.vstack(rows)
    count = np.array(counts, dtype=float)
    weights = flat.copy()
    for _ in range(_EM_ITERATIONS):
        mix = likelihood * weights
        responsibility = mix / mix.sum(axis=1, keepdims=True)
        totals = count @ responsibility + prior_weight * flat
        weights = totals / totals.sum()
    return weights


class AnswerModel:
    """The values an allocator needs, for one set of grid weights, memoised by shape."""

    def __init__(self, weights: np.ndarray, horizon: int) -> None:
        self.weights = weights
        self.horizon = horizon
        self._posterior: dict[Shape, tuple[float, float, float, float]] = {}
        # shape -> [W_0, W_1, ..., W_k]: every look-ahead of a shape computed so far, in one list, so a shape's
        # look-aheads over all horizons cost one lookup and one pass, not one memoised call per horizon
        self._ahead: dict[Shape, list[float]] = {}
        self._index: dict[Shape, float] = {}
        self._lattice: LatticeValues | None = None
        # The lattice's values as lists, read one shape at a time when the memos miss: writing every shape into
        # the memos at a refit cost more than all the lookups of a run
        self._valued = 0
        self._leader: list[float] = []
        self._to_leader: list[float] = []
        self._to_runner: list[float] = []
        self._runner: list[float] = []
        self._gain: list[float] = []  # the index of each lattice shape; -1 where the lattice ends too early

    def value_lattice(self) -> None:
        """Value every shape of ``LATTICE`` at once (see ``shape_lattice``): the posteriors and the indices a
        refit's model would otherwise compute one shape at a time, bit for bit the same."""
        values = LATTICE.values(self.weights, self.horizon)
        self._lattice = values
        self._valued = len(values.leader)  # those valued (another thread may have added more since)
        self._leader = values.leader.tolist()
        self._to_leader = values.to_leader.tolist()
        self._to_runner = values.to_runner.tolist()
        self._runner = values.runner.tolist()
        now = values.ahead[0]
        gains = ((values.ahead[1:] - now) / np.arange(1, self.horizon + 1)[:, None]).max(axis=0)
        self._gain = np.where(values.depth >= self.horizon, np.where(gains > 0.0, gains, 0.0), -1.0).tolist()

    def shapes_valued(self) -> int:
        """How many shapes this model has a posterior for (at most; a shape may be both memoised and valued)."""
        return len(self._posterior) + self._valued

    def posterior(self, shape: Shape) -> tuple[float, float, float, float]:
        """(P(the leader is the mode), P(the next vote goes to the leader), P(it goes to the runner-up or an
        answer tied with it), P(the runner-up is the mode)); the last two 0 with no runner-up."""
        found = self._posterior.get(shape)
        if found is not None:
            return found
        if self._valued:
            i = LATTICE.number.get(shape, -1)
            if 0 <= i < self._valued:
                found = self._posterior[shape] = (self._leader[i], self._to_leader[i], self._to_runner[i],
                                                  self._runner[i])
                return found
        # The next vote goes to a block with b votes with theta if the block is the mode, else with
        # (1 - theta) b / (field + beta): summed over every hypothesis, then corrected on the rows where this
        # block is (one of the multiplicity blocks that are) the mode.
        rows = (evidence(shape) @ self.weights).tolist()
        total = rows[0]
        field_share = rows[2] / total
        leader = rows[1] / total
        to_leader = shape[0] * field_share + rows[3] / total
        # Any answer tied with the runner-up (the leader aside) leads to the same shape as a vote for the runner-up
        to_runner = shape[1:].count(shape[1]) * (shape[1] * field_share + rows[4] / total) if len(rows) > 4 else 0.0
        runner = rows[5] / total if len(rows) > 4 else 0.0
        found = (float(leader), to_leader, to_runner, runner)
        if len(self._posterior) < 1 << 18:
            self._posterior[shape] = found
        return found

    def value(self, shape: Shape) -> float:
        """P(the current leader is the mode); 0 with no vote (no answer)."""
        return self.posterior(shape)[0] if shape else 0.0

    def lookahead(self, shape: Shape, k: int) -> float:
        """Expected ``value`` after ``k`` more votes from the posterior predictive: the leader may change on the
        way. Votes for the leader and the runner-up are followed exactly (with no runner-up, any other vote
        starts one). A vote for a third answer is followed in the value, not in the gain: where it leads, the
        value is what the posterior predictive leaves for it (the leader's posterior is a martingale, so the
        third answers' children hold ``value - P(leader) value(after a leader vote) - P(runner-up) P(the old
        leader is the mode after a runner-up vote)``), and the gain over that is taken as this shape's. So
        where no leader can change within ``k`` votes, the look-ahead is ``value`` itself."""
        if k == 0 or not shape:
            return self.value(shape)
        return self._ahead_upto(shape, k)[k]

    def _ahead_upto(self, shape: Shape, k: int) -> list[float]:
        """``[lookahead(shape, 0), ..., lookahead(shape, j)]`` for some ``j >= k`` (``shape`` not empty)."""
        ahead = self._ahead.get(shape)
        if ahead is not None and len(ahead) > k:
            return ahead
        if ahead is None and self._lattice is not None:
            i = LATTICE.number.get(shape, -1)
            if 0 <= i < len(self._lattice.depth):  # valued with the lattice: as far as its shapes reach
                ahead = self._ahead[shape] = self._lattice.ahead[:self._lattice.depth[i] + 1, i].tolist()
                if len(ahead) > k:
                    return ahead
        now, to_leader, to_runner, _ = self.posterior(shape)
        if ahead is None:
            ahead = self._ahead[shape] = [now]
            if k == 0:
                return ahead
        done = len(ahead) - 1
        after_leader_shape, after_other_shape = children(shape)
        after_leader = self._ahead_upto(after_leader_shape, k - 1)
        after_other = self._ahead_upto(after_other_shape, k - 1)
        if len(shape) == 1:
            # every other vote starts a rival: exact, and what keeps a unanimous tally from looking improvable
            for j in range(done, k):
                ahead.append(to_leader * after_leader[j] + (1.0 - to_leader) * after_other[j])
        else:
            # A runner-up vote overtakes only with a strictly greater count; then it leads (``children``), and the
            # old leader's posterior is the new shape's runner-up's.
            stays = max(0.0, 1.0 - to_leader - to_runner)
            old_leader = after_other[0] if shape[1] < shape[0] else self.posterior(after_other_shape)[3]
            third = now - to_leader * after_leader[0] - to_runner * old_leader
            for j in range(done, k):
                ahead.append(to_leader * after_leader[j] + to_runner * after_other[j] + third
                             + stays * (ahead[j] - now))
        return ahead

    def index(self, shape: Shape) -> float:
        """The best expected gain per sample over look-aheads of 1..horizon samples."""
        found = self._index.get(shape)
        if found is not None:
            return found
        if self._valued:
            i = LATTICE.number.get(shape, -1)
            if 0 <= i < self._valued and self._gain[i] >= 0.0:
                found = self._index[shape] = self._gain[i]
                return found
        now = self.value(shape)
        ahead = self._ahead_upto(shape, self.horizon)
        found = max(0.0, max((ahead[k] - now) / k for k in range(1, self.horizon + 1)))
        self._index[shape] = found
        return found
