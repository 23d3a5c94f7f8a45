"""Vote tallies and the leader's confidence (dynscaling.votes)."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import Tally, leader_confidence

# A sequence of samples: a vote for class 0..4, or None for an abstention.
samples_sequences = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=4)), max_size=60)


def beta_integral_exact(a: int, b: int, x: Fraction) -> Fraction:
    """I_x(a, b) for integer a, b >= 1, by integrating t^(a-1) (1-t)^(b-1) term by term, exactly."""
    integral = sum(Fraction((-1) ** j * math.comb(b - 1, j)) * x ** (a + j) / (a + j) for j in range(b))
    beta = Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))
    return integral / beta


def beta_integral_numeric(a: int, b: int, x: float, points: int = 200_001) -> float:
    """I_x(a, b) by the trapezoid rule on a fine grid, normalised with lgamma."""
    t = np.linspace(0.0, x, points)
    y = t ** (a - 1) * (1.0 - t) ** (b - 1)
    integral = float(np.sum((y[1:] + y[:-1]) * np.diff(t)) / 2.0)
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return integral / math.exp(log_beta)


def brute_force(sequence: list[int | None]) -> dict[str, object]:
    """Everything a tally should hold, recounted from scratch."""
    counts = Counter(c for c in sequence if c is not None)
    ordered = sorted(counts.values(), reverse=True)
    v1 = ordered[0] if ordered else 0
    v2 = ordered[1] if len(ordered) > 1 else 0
    leader = None
    if counts:
        # the leader is the class with the most votes that reached that count first
        reached_at: dict[int, int] = {}
        running: Counter[int] = Counter()
        for position, cls in enumerate(sequence):
            if cls is None:
                continue
            running[cls] += 1
            if running[cls] == v1 and cls not in reached_at:
                reached_at[cls] = position
        leader = min(reached_at, key=reached_at.__getitem__)
    return {"counts": dict(counts), "v1": v1, "v2": v2, "leader": leader, "samples": len(sequence),
            "abstentions": sum(c is None for c in sequence)}


def snapshot(tally: Tally) -> dict[str, object]:
    return {"counts": dict(tally.counts), "v1": tally.v1, "v2": tally.v2, "leader": tally.leader,
            "samples": tally.samples, "abstentions": tally.abstentions}


class TestLeaderConfidence:
    @pytest.mark.parametrize(("v1", "v2", "expected"), [(1, 0, 0.75), (4, 0, 0.96875), (1, 1, 0.5), (0, 0, 0.5)])
    def test_it_has_the_documented_exact_values(self, v1: int, v2: int, expected: float) -> None:
        assert leader_confidence(v1, v2) == expected

    @given(st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40))
    def test_it_equals_one_minus_the_regularised_incomplete_beta_at_one_half(self, v1: int, v2: int) -> None:
        expected = 1 - beta_integral_exact(v1 + 1, v2 + 1, Fraction(1, 2))
        assert leader_confidence(v1, v2) == pytest.approx(float(expected), abs=1e-12)

    @pytest.mark.parametrize(("v1", "v2"), [(1, 0), (3, 1), (5, 5), (7, 2), (12, 9)])
    def test_it_agrees_with_a_numerical_beta_integral(self, v1: int, v2: int) -> None:
        assert leader_confidence(v1, v2) == pytest.approx(1 - beta_integral_numeric(v1 + 1, v2 + 1, 0.5), abs=1e-8)

    @given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
    def test_the_confidences_of_the_two_ways_round_add_up_to_one(self, a: int, b: int) -> None:
        assert leader_confidence(a, b) + leader_confidence(b, a) == pytest.approx(1.0, abs=1e-12)

    # up to 30 votes: beyond about 50 the confidence rounds to exactly 1.0 in floating point
    @given(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=30))
    def test_one_more_vote_for_the_leader_raises_it_and_one_for_the_runner_up_lowers_it(self, v1: int,
                                                                                       v2: int) -> None:
        assert leader_confidence(v1 + 1, v2) > leader_confidence(v1, v2) > leader_confidence(v1, v2 + 1)

    @pytest.mark.parametrize(("v1", "v2"), [(-1, 0), (0, -1)])
    def test_negative_counts_are_rejected(self, v1: int, v2: int) -> None:
        with pytest.raises(ValueError, match="must be >= 0"):
            leader_confidence(v1, v2)


class TestTally:
    def test_a_new_tally_is_empty_with_no_leader(self) -> None:
        tally = Tally()
        assert (tally.leader, tally.v1, tally.v2, tally.samples, tally.abstentions, tally.votes) == (
            None, 0, 0, 0, 0, 0)
        assert tally.ranked() == []
        assert tally.confidence == 0.5

    @settings(max_examples=200)
    @given(samples_sequences)
    def test_incremental_state_matches_a_recount_after_every_sample(self, sequence: list[int | None]) -> None:
        tally = Tally()
        for i, cls in enumerate(sequence):
            tally.add(cls)
            assert snapshot(tally) == brute_force(sequence[: i + 1])
            assert tally.confidence == leader_confidence(tally.v1, tally.v2)

    def test_a_tie_goes_to_the_class_that_reached_the_count_first(self) -> None:
        tally = Tally()
        for cls in (3, 1, 1, 3):
            tally.add(cls)
        assert (tally.leader, tally.v1, tally.v2) == (1, 2, 2)
        tally.add(3)  # a strictly greater count overtakes
        assert (tally.leader, tally.v1, tally.v2) == (3, 3, 2)

    def test_an_equal_count_never_overtakes_the_leader(self) -> None:
        tally = Tally()
        for cls in (0, 1, 2):
            tally.add(cls)
        assert tally.leader == 0
        assert (tally.v1, tally.v2) == (1, 1)

    def test_abstentions_are_counted_but_never_vote(self) -> None:
        tally = Tally()
        for cls in (None, None, 2, None):
            tally.add(cls)
        assert tally.samples == 4
        assert tally.abstentions == 3
        assert tally.votes == 1
        assert tally.counts == {2: 1}
        assert (tally.leader, tally.v1, tally.v2) == (2, 1, 0)

    def test_only_abstentions_leave_no_leader(self) -> None:
        tally = Tally()
        for _ in range(5):
            tally.add(None)
        assert tally.leader is None
        assert tally.ranked() == []
        assert (tally.samples, tally.abstentions, tally.votes) == (5, 5, 0)

    @given(samples_sequences)
    def test_ranked_puts_the_leader_first_then_most_votes_then_lowest_class(self,
                                                                         sequence: list[int | None]) -> None:
        tally = Tally()
        for cls in sequence:
            tally.add(cls)
        expected = brute_force(sequence)
        counts: dict[int, int] = expected["counts"]  # type: ignore[assignment]
        ranked = tally.ranked()
        assert dict(ranked) == counts
        assert len(ranked) == len(counts)
        if counts:
            assert ranked[0] == (expected["leader"], expected["v1"])
            rest = ranked[1:]
            assert rest == sorted(rest, key=lambda cv: (-cv[1], cv[0]))

    def test_ranked_orders_a_known_tally(self) -> None:
        tally = Tally()
        for cls in (2, 0, 1, 1, 2, 0, 3, 1):
            tally.add(cls)
        assert tally.ranked() == [(1, 3), (0, 2), (2, 2), (3, 1)]

    @given(samples_sequences, st.randoms(use_true_random=False))
    def test_counts_and_top_two_do_not_depend_on_the_order_of_samples(self, sequence: list[int | None],
                                                                      rng) -> None:  # noqa: ANN001
        shuffled = list(sequence)
        rng.shuffle(shuffled)
        a, b = Tally(), Tally()
        for cls in sequence:
            a.add(cls)
        for cls in shuffled:
            b.add(cls)
        assert (a.counts, a.v1, a.v2, a.samples, a.abstentions) == (b.counts, b.v1, b.v2, b.samples, b.abstentions)
        assert a.confidence == b.confidence
        assert a.shape == b.shape


# Many classes, so that votes land on counts below the top and among equal counts (where the shape's update moves
# one count up past no other).
many_class_sequences = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=12)), max_size=120)


class TestTallyShape:
    @settings(max_examples=300)
    @given(many_class_sequences)
    def test_the_kept_shape_equals_the_sorted_counts_after_every_sample(self, sequence: list[int | None]) -> None:
        tally = Tally()
        assert tally.shape == ()
        for cls in sequence:
            tally.add(cls)
            assert tally.shape == tuple(sorted(tally.counts.values(), reverse=True))
            assert tally.shape[:2] == tuple(v for v in (tally.v1, tally.v2) if v)

    def test_a_vote_below_the_top_among_equal_counts_raises_one_of_them(self) -> None:
        tally = Tally()
        for cls in (0, 0, 0, 1, 2, 3, 3):
            tally.add(cls)
        assert tally.shape == (3, 2, 1, 1)
        tally.add(2)
        assert tally.shape == (3, 2, 2, 1)
        tally.add(1)
        assert tally.shape == (3, 2, 2, 2)
        tally.add(None)
        assert tally.shape == (3, 2, 2, 2)
