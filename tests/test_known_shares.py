"""benchmarks/known_shares.py: its exact posterior against brute force over every labelling, and its allocator on
a small pool written here."""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from benchmark_scripts import BENCHMARKS, load_benchmark
from dynscaling import load_pool

SCRIPT = BENCHMARKS / "known_shares.py"
known_shares = load_benchmark("known_shares")
Profile = known_shares.Profile


def brute_force(counts: list[int], shape: tuple[int, ...]) -> tuple[float, float, dict[int, float]]:
    """Every injective labelling of the observed answers with the pool's answers, weighted by the chance of those
    counts drawn without replacement: (P(leader is a plurality answer), its expected share, remaining by count)."""
    top = max(counts)
    total = lead = share = 0.0
    remaining: Counter[int] = Counter()
    for slots in itertools.permutations(range(len(counts)), len(shape)):
        weight = math.prod(math.perm(counts[s], c) for s, c in zip(slots, shape, strict=True))
        if not weight:
            continue
        total += weight
        lead += weight * (counts[slots[0]] == top)  # shape[0] is a leader; every label of its count is alike
        share += weight * counts[slots[0]] / sum(counts)
        for s, c in zip(slots, shape, strict=True):
            remaining[c] += weight * (counts[s] - c)
    return lead / total, share / total, {c: remaining[c] / total for c in set(shape)}


@pytest.mark.parametrize(("counts", "shape"), [
    ([5, 3, 1, 1], (2, 1)), ([5, 3, 1, 1], (1, 1, 1)), ([4, 4, 2], (2, 2)), ([6, 1, 1, 1, 1], (1, 1, 1, 1)),
    ([3, 2, 2, 1, 1, 1], (2, 1, 1)), ([7, 2, 2, 1], (3, 2, 1)), ([10], (4,)), ([2, 2, 2, 2], (1,)),
])
def test_the_posterior_is_the_brute_force_sum_over_labellings(counts: list[int], shape: tuple[int, ...]) -> None:
    lead, share, remaining = brute_force(counts, shape)
    plurality, by_share = Profile(counts, 2), Profile(counts, 2, objective="share")
    value, expected = plurality.posterior(shape)
    assert value == pytest.approx(lead, rel=1e-12)
    assert by_share.value(shape) == pytest.approx(share, rel=1e-12)
    assert expected == pytest.approx(remaining, rel=1e-12)


def test_a_shape_the_pool_cannot_give_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot come from pool counts"):
        Profile([3, 1], 0).posterior((2, 2))


def test_the_look_ahead_of_one_sample_is_the_predictive_average() -> None:
    profile = Profile([5, 3, 1, 1], 2)
    _, remaining = profile.posterior((1, 1))
    left = 12 - 2
    to_seen = remaining[1] / left
    expected = (2 / left * profile.value((1, 1)) + to_seen * profile.value((2, 1))
                + (1 - 2 / left - to_seen) * profile.value((1, 1, 1)))
    assert profile.after((1, 1), 0, 1) == pytest.approx(expected, rel=1e-12)
    assert Profile([10], 0).index((1,), 0, 6) == 0.0  # a unanimous question is settled by its first answer


def write_pool(path: Path) -> None:
    """12 unanimous questions, 12 split 5-3-2 and 2 that never answer; 10 samples each."""
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for i in range(26):
            if i < 12:
                answers: list[str | None] = ["7"] * 10
            elif i < 24:
                answers = ["1"] * 5 + ["2"] * 3 + ["3"] * 2
            else:
                answers = [None] * 10
            out.write(json.dumps({"id": f"q{i}", "question": f"question {i}?", "answer_type": "number",
                                  "gold": "7" if i < 12 else "1",
                                  "samples": [{"text": f"the answer is {a}" if a else "no idea", "answer": a}
                                              for a in answers]}) + "\n")


def test_the_allocator_spends_one_sample_on_a_settled_question_and_none_on_a_silent_one(tmp_path: Path) -> None:
    path = tmp_path / "toy_x10.jsonl.gz"
    write_pool(path)
    pool = load_pool(path)
    profiles = known_shares.profiles_of(pool, "plurality")
    assert profiles[0] is profiles[11] and profiles[12] is profiles[23]  # one profile (and memo) per count pattern
    result = known_shares.run_known_shares(pool, profiles, budget=3.0, seed=1, horizon=6)
    spent = [r.samples for r in result.results]
    assert spent[:12] == [1] * 12
    assert spent[24:] == [0, 0]
    assert sum(spent[12:24]) == 78 - 12  # every sample past the settled questions' first went to the split ones
