"""Allocator rules a user picks a strategy for: how Blend-ASC paces its ranking by the budget (through the
engine, on fixed answer streams), and the bandit's uncertainty scores, each pinned to its documented formula on
known tallies."""

from __future__ import annotations

import math

import pytest

from dynscaling import Budget, Engine, Question, Usage
from dynscaling.allocators import SCORES
from dynscaling.votes import Tally

# Each question's answer classes in the order a replay serves them (None: a sample with no answer). Five
# questions whose Beta and PPR rankings disagree late in the run, so the pacing shows in the order served.
STREAMS: list[list[int | None]] = [
    [0, 1, None, 1, 0, None, 1, None, 0, None, None, None],
    [1, 2, 0, None, 2, 1, None, 0, 1, 0, 0, 0],
    [0, None, 1, 2, 0, 0, 0, 0, 0, 0, None, 2],
    [None, 1, None, 0, 0, None, 2, None, 1, 2, 2, 1],
    [0, 1, None, 0, 2, None, 1, 0, 0, 0, 1, 0],
]


def served_order(strategy: str, budget: Budget, streams: list[list[int | None]] = STREAMS) -> list[int]:
    """The questions in the order the engine sampled them, one token per sample."""
    engine = Engine([Question(f"q{i}", "q", "number") for i in range(len(streams))], strategy, budget,
                    needs_messages=False, seed=1)
    served: list[int] = []

    def draw(qi: int) -> tuple[int | None, Usage]:
        served.append(qi)
        return streams[qi][sum(1 for s in served if s == qi) - 1], Usage(prompt_tokens=1)

    engine.run_sync(draw)
    return served


class TestBlendAscPacing:
    """Blend-ASC moves from the Beta ranking to PPR's as the budget is spent; with a sample budget it paces
    against that budget, and only a token or dollar budget falls back to ``horizon`` samples per question."""

    def test_with_a_sample_budget_the_horizon_changes_nothing(self) -> None:
        budget = Budget(samples=4 * len(STREAMS))
        assert served_order("blend-asc:horizon=2", budget) == served_order("blend-asc:horizon=8", budget)

    def test_a_token_budget_paces_against_the_horizon(self) -> None:
        samples = 4 * len(STREAMS)
        by_samples = served_order("blend-asc", Budget(samples=samples))
        # one token per sample: the token cap ends the run after the same number of samples (the last draw is
        # the one that goes over, and is not counted)
        assert served_order("blend-asc:horizon=4", Budget(tokens=samples))[:samples] == by_samples
        assert served_order("blend-asc:horizon=8", Budget(tokens=samples))[:samples] != by_samples


def tally(*answers: int | None) -> Tally:
    counted = Tally()
    for answer in answers:
        counted.add(answer)
    return counted


class TestBanditScores:
    """Higher means more worth another sample (``ucb:score=...``)."""

    @pytest.mark.parametrize(("answers", "expected"), [
        ((0, 0, 0, 1), 1 - (3 - 1) / (4 + 1)),
        ((0, 1, None), 1 - 0 / (2 + 1)),
        ((0, 0, 0, 0, 0), 1 - 5 / 6),
        ((), 1.0),
    ])
    def test_margin_is_one_minus_the_normalised_margin_of_the_top_two(self, answers: tuple, expected: float) -> None:
        assert SCORES["margin"](tally(*answers)) == pytest.approx(expected)

    @staticmethod
    def entropy(counts: list[int]) -> float:
        """Shannon entropy of the smoothed shares (one pseudo-outcome added), normalised by its maximum."""
        total = sum(counts)
        return -sum(c / total * math.log(c / total) for c in counts if c) / math.log(len(counts))

    @pytest.mark.parametrize(("answers", "shares"), [
        ((0, 0, 1, None), [2, 1, 1, 1]),  # two answers, one abstention, the pseudo-outcome
        ((None, None), [2, 1]),  # abstentions only
        ((0, 0, 0, 0), [4, 0, 1]),
        ((0, 1, 2), [1, 1, 1, 0, 1]),
    ])
    def test_entropy_of_the_smoothed_vote_shares_with_abstentions(self, answers: tuple, shares: list[int]) -> None:
        assert SCORES["entropy"](tally(*answers)) == pytest.approx(self.entropy(shares))

    def test_entropy_is_zero_before_any_sample_and_orders_split_above_settled(self) -> None:
        assert SCORES["entropy"](tally()) == 0.0
        assert SCORES["entropy"](tally(0, 1, 2, 3)) > SCORES["entropy"](tally(0, 0, 0, 1)) > 0.0

    def test_value_of_information_ignores_abstentions_except_through_the_chance_of_a_vote(self) -> None:
        # the same top two; more abstentions make the next sample less likely to count
        assert SCORES["voi"](tally(0, 1)) > SCORES["voi"](tally(0, 1, None, None)) > 0.0

    @staticmethod
    def confidence(a: int, b: int) -> float:
        """Confidence in whichever of two classes leads: P(Binomial(a + b + 1, 1/2) <= max(a, b))."""
        n = a + b + 1
        return sum(math.comb(n, k) for k in range(max(a, b) + 1)) / 2 ** n

    @pytest.mark.parametrize("answers", [
        (), (None, None), (0, 1), (0, 1, None, None), (0, 0, 1, 1), (0, 1, 2), (0, 0, 1, 1, 2, None),
        (0, 1, 0, 1, 0, 1, 2, 2, None),  # ties: the only tallies with a positive value
        (0,), (0, 0, 1), (0, 0, 0, 1, None), (0, 1, 0, 1, 2, 2, 2),  # a leader ahead: the gain clipped at 0
    ])
    def test_value_of_information_is_the_expected_one_step_gain_in_confidence(self, answers: tuple) -> None:
        """The chance the next sample lands in the top two (smoothed: (v1 + v2 + 1) / (samples + 2)), times the
        expected change in the confidence that the leader of the two leads, the next vote going to the leader
        with the smoothed share (v1 + 1) / (v1 + v2 + 2); never negative."""
        t = tally(*answers)
        v1, v2 = t.v1, t.v2
        hit = (v1 + v2 + 1) / (t.samples + 2)
        to_leader = (v1 + 1) / (v1 + v2 + 2)
        after = to_leader * self.confidence(v1 + 1, v2) + (1 - to_leader) * self.confidence(v1, v2 + 1)
        assert SCORES["voi"](t) == pytest.approx(max(0.0, hit * (after - self.confidence(v1, v2))), abs=1e-15)
