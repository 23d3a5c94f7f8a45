"""The peers as strategies: ConSol's SPRT, PPR-1v1 and Blend-ASC.

Each stopping rule is pinned to its formula on tallies worked out by hand, then run through the engine on
scripted questions (question i's n-th sample is known) and on small synthetic pools; no shared data needed.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import (
    Budget,
    ConfigError,
    Engine,
    PoolExhaustedError,
    Question,
    Sample,
    Usage,
    parse_strategy,
    replay,
)
from dynscaling.allocators.stopping import ppr_statistic, sprt_decides
from dynscaling.answers import AnswerClusterer
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.votes import leader_confidence

PEERS = ["consol", "ppr", "blend-asc"]


def make_pool(answers_per_question: list[list[str | None]], tokens: int = 1) -> Pool:
    """A pool held in memory, gold answer "1" everywhere, each sample costing ``tokens`` completion tokens."""
    entries = []
    for i, answers in enumerate(answers_per_question):
        clusterer = AnswerClusterer("number")
        classes = tuple(clusterer.assign(a) for a in answers)
        question = Question(f"q{i}", f"question {i}", "number", gold="1")
        entries.append(PoolQuestion(question, tuple(answers), tuple(answers), classes,
                                    tuple(Usage(completion_tokens=tokens) for _ in answers), clusterer))
    return Pool("memory", "<memory>", tuple(entries))


def synthetic_pool(questions: int, samples: int, seed: int) -> Pool:
    """Questions of mixed difficulty: the right answer "1" with probability 0.35-0.95, else one of 2-4, and 5%
    of samples unparsable."""
    rng = random.Random(seed)
    rows = []
    for _ in range(questions):
        top = rng.uniform(0.35, 0.95)
        rows.append([None if (u := rng.random()) < 0.05 else "1" if u < 0.05 + 0.95 * top
                     else str(rng.randint(2, 4)) for _ in range(samples)])
    return make_pool(rows)


def scripted(script: list[list[str | None]], strategy: str, budget: int = 1000, seed: int = 0) -> list[int]:
    """Run a strategy where question i's n-th sample answers ``script[i][n]``; returns samples per question."""
    engine = Engine([Question(f"q{i}", f"question {i}", "number", gold="1") for i in range(len(script))],
                    strategy, Budget(samples=budget), seed=seed, needs_messages=False)
    while (request := engine.next_request()) is not None:
        answer = script[request.question_index][request.sample_index]
        engine.deliver(request, Sample(None if answer is None else f"The answer is {answer}.", answer))
    return [r.samples for r in engine.result().results]


class TestSprtFormula:
    """ConSol's defaults: p1 = 0.5001, alpha = 0.05, beta = 1 - 0.05 - 0.000024. By hand: a leader vote adds
    ln(1.0002) = 0.00019998, a runner-up vote ln(0.9998) = -0.00020002; H1 is accepted at ln(0.050024 / 0.05)
    = 0.00047988 and H0 at ln(0.949976 / 0.95) = -0.000025263."""

    @pytest.mark.parametrize(("first", "second", "decides"), [
        (0, 0, False),
        (2, 0, False),  # 0.00039996 < 0.00047988
        (3, 0, True),  # 0.00059994
        (4, 2, False),  # 0.00079992 - 0.00040004 = 0.00039988
        (5, 2, True),  # 0.00059986
        (1, 1, False),  # -4e-8
        (631, 631, False),  # 631 * -4.0000001e-8 = -0.00002524: not yet below the H0 line
        (632, 632, True),  # -0.00002528: the top two are declared indistinguishable
    ])
    def test_the_default_test_decides_where_the_hand_computed_ratio_crosses_a_line(
            self, first: int, second: int, decides: bool) -> None:
        assert sprt_decides(first, second) is decides

    def test_a_larger_p1_needs_a_smaller_margin(self) -> None:
        # ln(1.0004) = 0.00039992 per vote: 2 votes ahead (0.00079984) is past 0.00047988, 1 is not.
        assert sprt_decides(2, 0, p1=0.5002) and not sprt_decides(1, 0, p1=0.5002)
        # ln(1.00014) = 0.000139990 per vote: 4 votes ahead (0.00055996) passes, 3 (0.00041997) does not.
        assert sprt_decides(4, 0, p1=0.50007) and not sprt_decides(3, 0, p1=0.50007)


class TestConsol:
    def test_a_unanimous_question_takes_one_batch_of_three(self) -> None:
        assert scripted([["1"] * 10], "consol") == [3]

    def test_after_a_split_batch_the_next_batch_is_what_could_reach_a_margin_of_three(self) -> None:
        # 1, 2, 1 -> (2, 1): a batch of 2 could make (4, 1); it does.
        assert scripted([["1", "2", "1", "1", "1", "2", "2", "2"]], "consol") == [5]
        # 1, 2, 2 -> leader 2 at (2, 1); 1, 1 -> (3, 2) with 1 leading; batch 2 more -> (5, 2).
        assert scripted([["1", "2", "2", "1", "1", "1", "1", "2", "2"]], "consol") == [7]

    def test_an_abstention_is_replaced_within_the_batch(self) -> None:
        assert scripted([[None, "1", "1", "1", "2"]], "consol") == [4]

    def test_max_trials_counts_samples_abstentions_included(self) -> None:
        assert scripted([["1", "2"] * 10], "consol:max_trials=6") == [6]
        assert scripted([[None] * 10], "consol:max_trials=5") == [5]

    def test_the_max_trials_default_follows_the_budget_per_question(self) -> None:
        # 2 questions, budget 8: max_trials 4, so the split question stops at 4 and the budget is not all spent.
        assert scripted([["1", "2"] * 10, ["1"] * 10], "consol", budget=8) == [4, 3]

    def test_a_whole_batch_goes_out_at_once_on_a_live_engine(self) -> None:
        engine = Engine([Question("q0", "question", "number")], "consol", Budget(samples=100), needs_messages=False)
        requests = [engine.next_request() for _ in range(4)]
        assert [r.question_index if r else None for r in requests] == [0, 0, 0, None]


class TestPprFormula:
    @pytest.mark.parametrize(("v1", "v2", "distinct", "expected"), [
        (1, 0, 1, 2 * 1 / 2),  # K - 1 taken as 1: the runner-up not seen yet
        (8, 0, 1, 9 * 1 / 256),
        (3, 1, 2, 5 * 4 / 16),
        (6, 1, 3, 2 * 8 * 7 / 128),
        (5, 5, 4, 3 * 11 * 252 / 1024),
    ])
    def test_the_statistic_is_k_minus_1_times_n_plus_1_times_a_binomial_over_2_to_the_n(
            self, v1: int, v2: int, distinct: int, expected: float) -> None:
        assert ppr_statistic(v1, v2, distinct) == pytest.approx(expected, rel=1e-12)

    def test_delta_0_05_stops_a_unanimous_question_at_eight_votes(self) -> None:
        # (7 + 1) / 2^7 = 0.0625 > 0.05 >= (8 + 1) / 2^8 = 0.035
        assert scripted([["1"] * 20], "ppr:delta=0.05") == [8]

    def test_delta_0_2_stops_a_unanimous_question_at_five_votes(self) -> None:
        # (4 + 1) / 16 = 0.3125 > 0.2 >= (5 + 1) / 32 = 0.1875
        assert scripted([["1"] * 20], "ppr:delta=0.2") == [5]

    def test_a_second_answer_doubles_the_statistic_with_k(self) -> None:
        # 2, 1 x 8: at (8, 1) K = 2: 10 * 9 / 512 = 0.176 <= 0.2, while (7, 1): 9 * 8 / 256 = 0.28.
        assert scripted([["2"] + ["1"] * 20], "ppr:delta=0.2") == [9]
        # With a third answer seen, (8, 1) gives 2 * 0.176 = 0.35 > 0.2; (9, 1): 2 * 11 * 10 / 1024 = 0.215;
        # (10, 1): 2 * 12 * 11 / 2048 = 0.129.
        assert scripted([["2", "3"] + ["1"] * 20], "ppr:delta=0.2") == [12]

    def test_delta_1_stops_at_the_first_vote_and_abstentions_do_not_count(self) -> None:
        assert scripted([[None, None, "1", "1"]], "ppr:delta=1") == [3]


class TestBlendAsc:
    @settings(max_examples=40, deadline=None)
    @given(st.integers(2, 12), st.integers(1, 40), st.integers(0, 2**16))
    def test_it_spends_exactly_the_sample_budget_when_the_pool_allows(self, questions: int, budget: int,
                                                                       seed: int) -> None:
        pool = synthetic_pool(questions, 8, seed)
        result = replay(pool, "blend-asc", Budget(samples=budget), seed=seed)
        assert result.samples == min(budget, 8 * questions)

    def test_the_first_round_gives_every_question_one_sample(self) -> None:
        pool = synthetic_pool(16, 8, 0)
        result = replay(pool, "blend-asc", Budget(samples=16), seed=3)
        assert [r.samples for r in result.results] == [1] * 16

    def test_later_rounds_go_to_split_questions_first(self) -> None:
        # After round 0 every question looks alike (one vote); a second vote shows which are split, and from
        # then on the split questions outrank the unanimous ones.
        script = [["1"] * 30] * 4 + [["1", "2", "3", "1", "2", "1"] * 5] * 4
        samples = scripted(script, "blend-asc", budget=24)
        assert sum(samples) == 24
        assert max(samples[:4]) <= 2 and sum(samples[4:]) >= 16, samples

    def test_a_token_budget_ends_the_run_without_passing_the_cap(self) -> None:
        pool = synthetic_pool(10, 8, 1)
        result = replay(pool, "blend-asc", Budget(tokens=25), seed=0)
        assert result.samples == 25 and result.usage.total_tokens == 25


class TestEveryPeer:
    @pytest.mark.parametrize("strategy", PEERS)
    def test_the_same_seed_gives_the_same_run(self, strategy: str) -> None:
        pool = synthetic_pool(30, 12, 2)
        runs = [replay(pool, strategy, Budget(samples=120), seed=5) for _ in range(2)]
        assert [r.votes for r in runs[0].results] == [r.votes for r in runs[1].results]

    @settings(max_examples=60, deadline=None)
    @given(st.integers(2, 9), st.data(), st.sampled_from(PEERS), st.integers(0, 2**16))
    def test_a_budget_smaller_than_the_batch_gives_one_sample_to_exactly_b_questions(
            self, questions: int, data: st.DataObject, strategy: str, seed: int) -> None:
        budget = data.draw(st.integers(1, questions - 1), label="budget")
        pool = make_pool([["1", "2", "1", None]] * questions)
        result = replay(pool, strategy, Budget(samples=budget), seed=seed)
        assert sorted(r.samples for r in result.results) == [0] * (questions - budget) + [1] * budget

    @pytest.mark.parametrize("strategy", ["consol:max_trials=40", "ppr:cap=40", "blend-asc"])
    @pytest.mark.parametrize("cap", [Budget(tokens=300), Budget(usd=75.0)])
    def test_a_token_or_dollar_cap_ends_the_run(self, strategy: str, cap: Budget) -> None:
        # Split questions that no rule settles, each sample 1 token and $0.25: the cap is what ends the run.
        pool = make_pool([["1", "2"] * 20] * 20)
        engine = Engine(pool.questions, strategy, cap, needs_messages=False,
                        clusterers=[e.clusterer for e in pool.entries])
        cost = Usage(completion_tokens=1, cost_usd=0.25)

        def in_order(qi: int) -> tuple[int | None, Usage]:  # 1, 2, 1, 2, ...: never 3 ahead, never 8 unanimous
            classes = pool.entries[qi].classes
            if engine.requested[qi] > len(classes):
                raise PoolExhaustedError(f"q{qi}")
            return classes[engine.requested[qi] - 1], cost

        engine.run_sync(in_order)
        result = engine.result()
        assert result.samples == 300 and result.usage.total_tokens == 300
        if not strategy.startswith("blend"):  # the per-question rules serve questions round-robin
            assert max(r.samples for r in result.results) - min(r.samples for r in result.results) <= 1

    @pytest.mark.parametrize(("strategy", "budget"), [("consol:max_trials=40", 40), ("ppr:cap=40", 40),
                                                      ("blend-asc", 4)])
    def test_on_a_synthetic_pool_split_questions_get_more_samples_and_the_vote_beats_one_sample(
            self, strategy: str, budget: int) -> None:
        pool = synthetic_pool(200, 40, 4)
        single = [replay(pool, "single", Budget(samples=200), seed=s).accuracy for s in range(3)]
        result = [replay(pool, strategy, Budget(samples=200 * budget), seed=s) for s in range(3)]
        assert sum(r.accuracy for r in result) > sum(single) + 3 * 0.03  # three points above one sample
        shares = [entry.answers.count("1") / len(entry.answers) for entry in pool.entries]
        easy = [r.samples for r, share in zip(result[0].results, shares, strict=True) if share > 0.85]
        hard = [r.samples for r, share in zip(result[0].results, shares, strict=True) if share < 0.55]
        assert sum(hard) / len(hard) > 1.5 * sum(easy) / len(easy)


class TestValidation:
    @pytest.mark.parametrize(("spec", "message"), [
        ("consol:p1=0.5", "p1 must be in (0.5, 1)"),
        ("consol:p1=1", "p1 must be in (0.5, 1)"),  # each bound is open: its own value is refused
        ("consol:p1=1.5", "p1 must be in (0.5, 1)"),
        ("consol:alpha=0", "alpha must be in (0, 1)"),
        ("consol:alpha=1,beta=0.01", "alpha must be in (0, 1), got 1"),
        ("consol:alpha=1.5,beta=0.01", "alpha must be in (0, 1), got 1.5"),
        ("consol:beta=1.5", "beta must be in (0, 1)"),
        ("consol:alpha=0.01,beta=0", "beta must be in (0, 1), got 0"),
        ("consol:alpha=0.01,beta=1", "beta must be in (0, 1), got 1"),
        ("consol:alpha=0.5,beta=0.6", "alpha + beta < 1"),
        ("consol:alpha=0.5,beta=0.5", "consol needs alpha + beta < 1 for an SPRT, got 0.5 + 0.5 (the default beta "
                                      "is 1 - 0.05 - 0.000024: give beta with alpha)"),
        ("consol:max_trials=0", "max_trials must be >= 1"),
        ("consol:max_trials=x", "max_trials must be a whole number"),
        ("ppr:delta=0", "delta must be in (0, 1]"),
        ("ppr:delta=1.5", "delta must be in (0, 1]"),
        ("ppr:cap=0", "cap must be >= 1"),
        ("blend-asc:horizon=0.5", "horizon must be >= 1"),
        ("blend-asc:stop=0.9", "has no parameter 'stop'"),
    ])
    def test_a_bad_parameter_is_a_one_line_config_error(self, spec: str, message: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_strategy(spec)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_blend_ranks_by_beta_early_and_ppr_late() -> None:
    """At w = 0 (nothing spent) the score is 2 * (1 - Beta confidence); at w = 1 it is s / (1 + s)."""
    from dynscaling.allocators import BlendAscAllocator
    from dynscaling.votes import Tally

    allocator = BlendAscAllocator()
    tally = Tally()
    allocator.start([tally], 10, random.Random(0))
    for cls in (0, 0, 1):
        tally.add(cls)
        allocator.sampled(0)
    s = 4 * 3 / 8  # K = 2: (2 + 1 + 1) * C(3, 2) / 2^3
    assert allocator._score(0, 0.0) == pytest.approx(2 * (1 - leader_confidence(2, 1)))
    assert allocator._score(0, 1.0) == pytest.approx(s / (1 + s))
    assert allocator._score(0, 0.5) == pytest.approx((1 - leader_confidence(2, 1)) + s / (1 + s) / 2)
    assert math.isclose(leader_confidence(2, 1), 11 / 16)
