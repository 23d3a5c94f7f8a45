"""Allocators: which question gets the next sample, and when each one stops.

Each allocator's decisions are checked against the sample sequence the replay backend serves: a backend's
order for a question depends on the seed alone, so the whole sequence a question *would* get is known up front,
and the stopping rule can be recomputed from it independently.
"""

from __future__ import annotations

import math
import random
from collections import Counter

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
    leader_confidence,
    replay,
)
from dynscaling.allocators import (
    SCORES,
    AdaptiveAllocator,
    BanditAllocator,
    EscAllocator,
    OracleAllocator,
    UniformAllocator,
)
from dynscaling.answers import AnswerClusterer
from dynscaling.backends.replay import ReplayBackend
from dynscaling.pools import Pool, PoolQuestion

answer_lists = st.lists(st.lists(st.sampled_from(["1", "1", "2", "3", None]), min_size=1, max_size=8),
                        min_size=1, max_size=6)
seeds = st.integers(0, 2**16)


def make_pool(answers_per_question: list[list[str | None]]) -> Pool:
    """A pool held in memory, gold answer "1" everywhere."""
    entries = []
    for i, answers in enumerate(answers_per_question):
        clusterer = AnswerClusterer("number")
        classes = tuple(clusterer.assign(a) for a in answers)
        question = Question(f"q{i}", f"question {i}", "number", gold="1")
        entries.append(PoolQuestion(question, tuple(answers), tuple(answers), classes,
                                    tuple(Usage(completion_tokens=1) for _ in answers), clusterer))
    return Pool("memory", "<memory>", tuple(entries))


def full_orders(pool: Pool, seed: int) -> list[list[int | None]]:
    """Every question's classes in the order the replay backend serves them under ``seed``."""
    backend = ReplayBackend(pool, seed)
    return [[entry.classes[backend.draw(qi)] for _ in entry.classes] for qi, entry in enumerate(pool.entries)]


def step_by_step(pool: Pool, strategy: str, budget: int, seed: int,
                 before_each=None) -> Engine:  # noqa: ANN001
    """Drive the engine one request at a time from the replay backend, calling ``before_each(engine, qi)``
    before each sample is delivered (the tallies then show what the allocator saw when it chose ``qi``)."""
    engine = Engine(pool.questions, strategy, Budget(samples=budget), seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries])
    backend = ReplayBackend(pool, seed)
    while (request := engine.next_request()) is not None:
        qi = request.question_index
        if before_each is not None:
            before_each(engine, qi)
        try:
            position = backend.draw(qi)
        except Exception as error:  # PoolExhaustedError: the engine must close the question
            engine.fail(request, error)  # type: ignore[arg-type]
            continue
        entry = pool.entries[qi]
        engine.deliver_class(request, entry.classes[position], entry.usages[position])
    return engine


def scripted(questions: int, script: list[list[str | None]], strategy: str, budget: int = 1000,
             seed: int = 0) -> list[int]:
    """Run a strategy where question i's n-th sample answers ``script[i][n]``; returns samples per question."""
    engine = Engine([Question(f"q{i}", f"question {i}", "number", gold="1") for i in range(questions)], strategy,
                    Budget(samples=budget), seed=seed, needs_messages=False)
    while (request := engine.next_request()) is not None:
        answers = script[request.question_index]
        answer = answers[request.sample_index % len(answers)]
        engine.deliver(request, Sample(None if answer is None else f"The answer is {answer}.", answer))
    return [r.samples for r in engine.result().results]


class TestUniform:
    @settings(max_examples=80, deadline=None)
    @given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 3), seeds)
    def test_a_budget_of_b_per_question_gives_exactly_b_to_every_question(self, questions: int, b: int,
                                                                          extra: int, seed: int) -> None:
        pool = make_pool([["1", "2", None, "3", "1"][: min(5, b + extra)] * 2] * questions)
        result = replay(pool, "sc", Budget(samples=b * questions), seed=seed)
        assert [r.samples for r in result.results] == [b] * questions

    @settings(max_examples=80, deadline=None)
    @given(st.integers(2, 8), st.integers(1, 30), seeds)
    def test_an_uneven_budget_differs_by_at_most_one_sample_between_questions(self, questions: int, budget: int,
                                                                              seed: int) -> None:
        pool = make_pool([["1"] * 8] * questions)
        result = replay(pool, "sc", Budget(samples=budget), seed=seed)
        counts = [r.samples for r in result.results]
        assert sum(counts) == min(budget, 8 * questions)
        assert max(counts) - min(counts) <= 1

    def test_the_partial_last_round_is_a_fair_draw_across_seeds(self) -> None:
        pool = make_pool([["1"] * 4] * 4)
        chosen = Counter()
        for seed in range(400):
            result = replay(pool, "sc", Budget(samples=5), seed=seed)
            chosen.update(r.question_id for r in result.results if r.samples == 2)
        assert set(chosen) == {"q0", "q1", "q2", "q3"}
        assert min(chosen.values()) > 60  # 100 expected each

    def test_single_gives_one_sample_per_question_whatever_the_budget(self) -> None:
        pool = make_pool([["1", "2", "3"]] * 5)
        result = replay(pool, "single", Budget(samples=100), seed=3)
        assert [r.samples for r in result.results] == [1] * 5

    def test_a_cap_stops_each_question_at_that_many_samples(self) -> None:
        pool = make_pool([["1"] * 8] * 3)
        result = replay(pool, "sc:cap=3", Budget(samples=100), seed=0)
        assert [r.samples for r in result.results] == [3, 3, 3]


SMALL_BUDGET_STRATEGIES = ["single", "sc", "esc", "adaptive", "dynscaling-parallel", "ucb:c=0.5",
                           "ucb:score=entropy", "oracle"]


class TestBudgetSmallerThanTheBatch:
    @settings(max_examples=100, deadline=None)
    @given(st.integers(2, 9), st.data(), st.sampled_from(SMALL_BUDGET_STRATEGIES), seeds)
    def test_it_gives_one_sample_to_exactly_b_questions(self, questions: int, data: st.DataObject, strategy: str,
                                                        seed: int) -> None:
        budget = data.draw(st.integers(1, questions - 1), label="budget")
        pool = make_pool([["1", "2", "1", None]] * questions)
        result = replay(pool, strategy, Budget(samples=budget), seed=seed)
        assert sorted(r.samples for r in result.results) == [0] * (questions - budget) + [1] * budget

    @settings(max_examples=80, deadline=None)
    @given(answer_lists, st.sampled_from([s for s in SMALL_BUDGET_STRATEGIES if s != "single"]),
           st.sampled_from([1.0, 1.5, 2.0, 3.0]), seeds)
    def test_a_budget_of_one_sample_per_question_reaches_every_question(self, answers: list, strategy: str,
                                                                       per_question: float, seed: int) -> None:
        pool = make_pool(answers)
        result = replay(pool, strategy, Budget(samples=math.ceil(per_question * len(answers))), seed=seed)
        assert all(r.samples >= 1 for r in result.results)

    def test_esc_with_a_fractional_budget_per_question_reaches_every_question(self) -> None:
        pool = make_pool([["1", "2", "1", "3", "1", "1", "2", "1"]] * 4)
        result = replay(pool, "esc", Budget(samples=6), seed=0)  # 1.5 per question: cap 2
        assert all(r.samples >= 1 for r in result.results), [r.samples for r in result.results]


class TestBandit:
    @settings(max_examples=80, deadline=None)
    @given(st.integers(1, 6), st.integers(1, 3), st.sampled_from(["beta", "margin", "entropy", "voi"]),
           st.sampled_from([0.0, 0.5]), seeds)
    def test_it_warms_every_question_up_with_k0_shuffled_rounds_before_exploiting(
            self, questions: int, k0: int, score: str, c: float, seed: int) -> None:
        pool = make_pool([["1", "2", "1", None, "3", "1", "2", "2"]] * questions)
        order: list[int] = []
        step_by_step(pool, f"ucb:k0={k0},score={score},c={c}", 10 * questions, seed,
                     lambda engine, qi: order.append(qi))
        for round_number in range(k0):
            assert sorted(order[round_number * questions:(round_number + 1) * questions]) == list(range(questions))

    def test_warm_up_rounds_are_shuffled_differently_by_different_seeds(self) -> None:
        pool = make_pool([["1", "2"]] * 6)
        firsts = set()
        for seed in range(10):
            order: list[int] = []
            step_by_step(pool, "ucb:k0=1", 6, seed, lambda engine, qi, picks=order: picks.append(qi))
            firsts.add(tuple(order))
        assert len(firsts) > 1

    @settings(max_examples=100, deadline=None)
    @given(answer_lists, st.integers(1, 3), st.sampled_from(sorted(SCORES)), st.sampled_from([0.8, 0.95, 1.0]),
           st.integers(1, 50), seeds)
    def test_without_exploration_bonus_it_samples_the_active_question_with_the_highest_score(
            self, answers: list, k0: int, score: str, stop: float, budget: int, seed: int) -> None:
        pool = make_pool(answers)
        score_of = SCORES[score]

        def check(engine: Engine, qi: int) -> None:
            tallies, closed = engine.tallies, engine.allocator.closed
            if not all(t.samples >= k0 or closed[j] for j, t in enumerate(tallies)):
                assert tallies[qi].samples < k0, "exploited before every question was warmed up"
                return
            active = [j for j, t in enumerate(tallies)
                      if not closed[j] and not leader_confidence(t.v1, t.v2) >= stop]
            assert qi in active, "a retired or closed question was sampled"
            assert score_of(tallies[qi]) == max(score_of(tallies[j]) for j in active)

        step_by_step(pool, f"ucb:k0={k0},score={score},stop={stop},c=0", budget, seed, check)

    @settings(max_examples=60, deadline=None)
    @given(answer_lists, st.integers(1, 2), st.sampled_from([0.8, 0.95]), seeds)
    def test_a_question_retires_once_its_leader_is_settled(self, answers: list, k0: int, stop: float,
                                                           seed: int) -> None:
        pool = make_pool(answers)
        engine = step_by_step(pool, f"ucb:k0={k0},stop={stop}", 1000, seed)
        for qi, (tally, order) in enumerate(zip(engine.tallies, full_orders(pool, seed), strict=True)):
            # it stops at the first point past warm-up where the leader is settled, or when the pool runs dry
            expected = len(order)
            for n in range(k0, len(order) + 1):
                counts = sorted(Counter(c for c in order[:n] if c is not None).values(), reverse=True) + [0, 0]
                if leader_confidence(counts[0], counts[1]) >= stop:
                    expected = n
                    break
            assert tally.samples == expected, qi

    @settings(max_examples=80, deadline=None)
    @given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(1, 8), seeds)
    def test_with_requests_in_flight_it_warms_up_first_and_respects_max_inflight(
            self, questions: int, k0: int, max_inflight: int, concurrency: int, seed: int) -> None:
        pool = make_pool([["1", "2", "1", None, "3", "1", "2", "2"]] * questions)
        engine = Engine(pool.questions, f"ucb:k0={k0},max_inflight={max_inflight},stop=1.0",
                        Budget(samples=6 * questions), seed=seed, needs_messages=False,
                        clusterers=[e.clusterer for e in pool.entries])
        backend, rng, held = ReplayBackend(pool, seed), random.Random(seed), []
        order: list[int] = []
        while True:
            while len(held) < concurrency and (request := engine.next_request()) is not None:
                order.append(request.question_index)
                held.append(request)
                if len(order) > k0 * questions:  # past warm-up: a question has at most max_inflight requests out
                    assert sum(r.question_index == request.question_index for r in held) <= max_inflight
            if not held:
                break
            request = held.pop(rng.randrange(len(held)))
            try:
                position = backend.draw(request.question_index)
            except PoolExhaustedError as error:
                engine.fail(request, error)
                continue
            entry = pool.entries[request.question_index]
            engine.deliver_class(request, entry.classes[position], entry.usages[position])
        for round_number in range(k0):
            assert sorted(order[round_number * questions:(round_number + 1) * questions]) == list(range(questions))
        assert engine.ledger.spent_samples == 6 * questions

    @pytest.mark.parametrize("seed", range(3))
    def test_with_requests_in_flight_it_exploits_only_once_every_warm_up_sample_has_landed(self,
                                                                                          seed: int) -> None:
        questions = [Question("a", "q", "number"), Question("b", "q", "number")]
        engine = Engine(questions, "ucb:k0=1", Budget(samples=10), seed=seed, needs_messages=False)
        first, second = engine.next_request(), engine.next_request()
        assert first is not None and second is not None
        engine.deliver(first, Sample("The answer is 1", "1"))
        assert engine.next_request() is None  # the other warm-up sample is still in flight

    def test_a_cap_stops_a_question_that_never_settles(self) -> None:
        assert scripted(2, [["1", "2"], ["1", "2"]], "dynscaling-parallel:cap=5") == [5, 5]


class TestEsc:
    @settings(max_examples=100, deadline=None)
    @given(answer_lists, st.integers(1, 4), st.integers(1, 9), seeds)
    def test_it_stops_a_question_after_its_first_unanimous_window_or_at_the_cap(self, answers: list, w: int,
                                                                               cap: int, seed: int) -> None:
        pool = make_pool(answers)
        result = replay(pool, f"esc:w={w},cap={cap}", Budget(samples=1000), seed=seed)
        for r, order in zip(result.results, full_orders(pool, seed), strict=True):
            n = 0
            while n < min(cap, len(order)):
                window = order[n:min(n + w, cap)]
                n += len(window)
                if len(window) == min(w, cap - (n - len(window))) and None not in window and len(set(window)) == 1:
                    break
            assert r.samples == min(n, len(order))

    def test_a_unanimous_first_window_stops_at_w(self) -> None:
        assert scripted(1, [["7"]], "esc:w=3,cap=12") == [3]

    def test_a_split_window_opens_another(self) -> None:
        assert scripted(1, [["1", "2", "1", "1", "1", "1"]], "esc:w=3,cap=12") == [6]

    def test_an_abstention_breaks_unanimity(self) -> None:
        assert scripted(1, [["1", None, "1", "1", "1", "1"]], "esc:w=3,cap=12") == [6]

    def test_a_never_unanimous_question_stops_at_the_cap(self) -> None:
        assert scripted(1, [["1", "2"]], "esc:w=3,cap=10") == [10]

    def test_its_cap_follows_the_budget_per_question_unless_set(self) -> None:
        assert scripted(3, [["1", "2"]] * 3, "esc:w=4", budget=9) == [3, 3, 3]


class TestAdaptive:
    @settings(max_examples=100, deadline=None)
    # 0.75 and 0.96875 are exactly the confidences of (1, 0) and (4, 0): reaching the threshold is enough
    @given(answer_lists, st.sampled_from([0.7, 0.75, 0.8, 0.9, 0.95, 0.96875, 0.99]), st.integers(1, 9), seeds)
    def test_it_stops_a_question_once_the_leader_confidence_reaches_the_threshold(
            self, answers: list, threshold: float, cap: int, seed: int) -> None:
        pool = make_pool(answers)
        result = replay(pool, f"adaptive:threshold={threshold},cap={cap}", Budget(samples=1000), seed=seed)
        for r, order in zip(result.results, full_orders(pool, seed), strict=True):
            expected = min(cap, len(order))
            for n in range(1, expected + 1):
                counts = sorted(Counter(c for c in order[:n] if c is not None).values(), reverse=True) + [0, 0]
                if leader_confidence(counts[0], counts[1]) >= threshold:
                    expected = n
                    break
            assert r.samples == expected

    def test_a_unanimous_question_stops_at_four_samples_for_0_95(self) -> None:
        # (3, 0) -> 0.9375 < 0.95 <= 0.96875 <- (4, 0)
        assert scripted(1, [["5"]], "adaptive:threshold=0.95,cap=40") == [4]

    def test_reaching_the_threshold_exactly_is_enough(self) -> None:
        assert scripted(1, [["5"]], "adaptive:threshold=0.75,cap=40") == [1]

    def test_abstentions_do_not_add_confidence(self) -> None:
        assert scripted(1, [["5", None]], "adaptive:threshold=0.95,cap=40") == [7]


class TestOracle:
    @settings(max_examples=100, deadline=None)
    @given(answer_lists, st.integers(1, 60), seeds)
    def test_it_never_samples_a_question_whose_leader_is_already_correct(self, answers: list, budget: int,
                                                                         seed: int) -> None:
        pool = make_pool(answers)

        def check(engine: Engine, qi: int) -> None:
            tally = engine.tallies[qi]
            if tally.samples:
                assert tally.leader is None or not engine.is_correct(qi, tally.leader)
                wrong = [j for j, t in enumerate(engine.tallies) if t.samples and not engine.allocator.closed[j]
                         and (t.leader is None or not engine.is_correct(j, t.leader))]

                def deficit(j: int) -> int:
                    t = engine.tallies[j]
                    return t.v1 - max((v for c, v in t.counts.items() if engine.is_correct(j, c)), default=0)

                if all(t.samples for t in engine.tallies):
                    assert deficit(qi) == min(deficit(j) for j in wrong)

        engine = step_by_step(pool, "oracle", budget, seed, check)
        if budget >= sum(map(len, answers)):  # enough budget: every question ends right or out of samples
            for qi, tally in enumerate(engine.tallies):
                right = tally.leader is not None and engine.is_correct(qi, tally.leader)
                assert right or tally.samples == len(answers[qi])

    def test_it_stops_once_every_question_is_right(self) -> None:
        assert scripted(3, [["1"], ["1"], ["1"]], "oracle") == [1, 1, 1]

    def test_it_keeps_sampling_a_wrong_question_until_the_gold_answer_leads(self) -> None:
        assert scripted(2, [["1"], ["2", "1", "1"]], "oracle") == [1, 3]

    def test_it_needs_gold_answers(self) -> None:
        with pytest.raises(ConfigError, match="needs gold answers"):
            OracleAllocator().start([], None, random.Random(0))


class TestAllocatorValidation:
    @pytest.mark.parametrize(("build", "message"), [
        (lambda: UniformAllocator(cap=0), "uniform cap must be >= 1, got 0"),
        (lambda: EscAllocator(w=0), "ESC window w must be >= 1, got 0"),
        (lambda: EscAllocator(cap=0), "ESC cap must be >= 1, got 0"),
        (lambda: AdaptiveAllocator(threshold=0.5), r"adaptive threshold must be in \(0.5, 1\), got 0.5"),
        (lambda: AdaptiveAllocator(threshold=1.0), r"adaptive threshold must be in \(0.5, 1\), got 1.0"),
        (lambda: AdaptiveAllocator(cap=0), "adaptive cap must be >= 1, got 0"),
        (lambda: BanditAllocator(score="nope"), "unknown bandit score 'nope'; expected one of beta, margin"),
        (lambda: BanditAllocator(c=-0.1), "exploration bonus c must be >= 0, got -0.1"),
        (lambda: BanditAllocator(k0=0), "k0 must be >= 1, got 0"),
        (lambda: BanditAllocator(stop=0.5), r"stop threshold must be in \(0.5, 1\], got 0.5"),
        (lambda: BanditAllocator(k0=3, cap=2), r"cap must be >= k0 \(3\), got 2"),
        (lambda: BanditAllocator(max_inflight=0), "max_inflight must be >= 1, got 0"),
    ])
    def test_a_parameter_out_of_range_names_the_value_and_the_range(self, build, message: str) -> None:  # noqa: ANN001
        with pytest.raises(ConfigError, match=message):
            build()
