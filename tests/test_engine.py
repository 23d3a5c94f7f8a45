"""The sans-I/O engine: its invariants under random pools, budgets, strategies, seeds and concurrency.

Pools are built in memory (as ``benchmarks/replay_speed.py`` does) and served by the real replay backend. The
synchronous runs go through ``Engine.run_sync``; the asynchronous ones through ``next_request`` /
``deliver`` / ``deliver_class`` / ``fail``, holding up to C requests and answering them in a random order, as
the asyncio driver will.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import (
    BackendError,
    Budget,
    ConfigError,
    Engine,
    InputError,
    PoolExhaustedError,
    Question,
    Sample,
    Usage,
    replay,
)
from dynscaling.answers import AnswerClusterer
from dynscaling.backends.replay import ReplayBackend
from dynscaling.pools import Pool, PoolQuestion

# Every strategy that can run on recorded samples, with a spread of parameters.
PARALLEL_STRATEGIES = [
    "single",
    "sc",
    "sc:cap=3",
    "esc",
    "esc:w=2,cap=6",
    "adaptive",
    "adaptive:threshold=0.8,cap=5",
    "dynscaling-parallel",
    "ucb:c=0.3",
    "ucb:score=margin,k0=1",
    "ucb:score=entropy,c=1.0",
    "ucb:score=voi,stop=0.9,cap=4",
    "ucb:k0=1,max_inflight=2",
    "oracle",
    "consol",
    "consol:p1=0.5002,max_trials=5",
    "ppr",
    "ppr:delta=0.2,cap=6",
    "blend-asc",
]

# Strategies that never stop a question early on these small pools: they serve every recorded sample.
EXHAUSTIVE_STRATEGIES = ["sc", "ucb:stop=1.0", "ucb:score=voi,c=0.5,stop=1.0",
                         "adaptive:threshold=0.999,cap=100"]

# A question's recorded answers: "1" is the gold answer, None a sample with no answer.
answer_lists = st.lists(st.lists(st.sampled_from(["1", "1", "2", "3", None]), min_size=1, max_size=8),
                        min_size=1, max_size=6)


def make_pool(answers_per_question: list[list[str | None]]) -> Pool:
    """A pool held in memory; texts state the answer so extraction from text finds the same class."""
    entries = []
    for i, answers in enumerate(answers_per_question):
        clusterer = AnswerClusterer("number")
        texts = tuple(None if a is None else f"Thinking about it... The answer is {a}." for a in answers)
        usages = tuple(Usage(prompt_tokens=10, completion_tokens=5 + 3 * j) for j in range(len(answers)))
        question = Question(f"q{i}", f"question {i}", "number", gold="1")
        entries.append(PoolQuestion(question, texts, tuple(answers), tuple(clusterer.assign(a) for a in answers),
                                    usages, clusterer))
    return Pool("memory", "<memory>", tuple(entries))


def new_engine(pool: Pool, strategy: str, budget: Budget, seed: int, **kwargs: object) -> Engine:
    return Engine(pool.questions, strategy, budget, seed=seed, needs_messages=False,
                  clusterers=[e.clusterer for e in pool.entries], **kwargs)  # type: ignore[arg-type]


def run_sync_recorded(pool: Pool, strategy: str, budget: Budget, seed: int) -> tuple[Engine, list[list[int]]]:
    """Run the fast synchronous loop on the real replay backend, recording the positions it serves."""
    engine = new_engine(pool, strategy, budget, seed)
    backend = ReplayBackend(pool, seed)
    served: list[list[int]] = [[] for _ in pool.entries]

    def draw(qi: int) -> tuple[int | None, Usage]:
        position = backend.draw(qi)
        served[qi].append(position)
        entry = pool.entries[qi]
        return entry.classes[position], entry.usages[position]

    engine.run_sync(draw)
    return engine, served


def run_concurrently(pool: Pool, strategy: str, budget: Budget, seed: int, concurrency: int, rng: random.Random,
                     *, fail_rate: float = 0.0, token_estimate: int | None = None) -> tuple[Engine, list[list[int]]]:
    """Hold up to ``concurrency`` requests, answer a random one of them each step; check the ledger every step."""
    kwargs = {} if token_estimate is None else {"estimate_cost": lambda q, m: (token_estimate, 0.0)}
    engine = new_engine(pool, strategy, budget, seed, **kwargs)
    backend = ReplayBackend(pool, seed)
    served: list[list[int]] = [[] for _ in pool.entries]
    held = []
    ledger = engine.ledger

    def check() -> None:
        assert engine.inflight == len(held) == ledger.reserved_samples
        if budget.samples is not None:
            assert ledger.spent_samples + ledger.reserved_samples <= budget.samples
        if budget.tokens is not None:
            assert ledger.spent_tokens + ledger.reserved_tokens <= budget.tokens
        for qi, entry in enumerate(pool.entries):
            assert engine.tallies[qi].samples <= len(entry.classes)

    for _ in range(10_000):
        while len(held) < concurrency:
            request = engine.next_request()
            if request is None:
                break
            held.append(request)
            check()
        if not held:
            break
        request = held.pop(rng.randrange(len(held)))
        qi = request.question_index
        if rng.random() < fail_rate:
            engine.fail(request, BackendError("timed out", retryable=True, kind="timeout"))
        else:
            try:
                position = backend.draw(qi)
            except PoolExhaustedError as error:
                engine.fail(request, error)
            else:
                served[qi].append(position)
                entry = pool.entries[qi]
                how = rng.randrange(3)
                if how == 0:
                    engine.deliver_class(request, entry.classes[position], entry.usages[position])
                elif how == 1:
                    engine.deliver(request, Sample(entry.texts[position], entry.answers[position],
                                                   entry.usages[position]))
                else:  # the engine extracts the answer from the text itself
                    engine.deliver(request, Sample(entry.texts[position], None, entry.usages[position]))
        check()
    else:
        pytest.fail("the engine never finished")
    assert engine.next_request() is None
    return engine, served


def assert_tallies_recount_what_was_served(pool: Pool, engine: Engine, served: list[list[int]]) -> None:
    for qi, entry in enumerate(pool.entries):
        positions = served[qi]
        assert len(positions) == len(set(positions)), "a recorded sample was served twice"
        assert len(positions) <= len(entry.classes)
        classes = [entry.classes[p] for p in positions]
        tally = engine.tallies[qi]
        assert tally.samples == len(positions)
        assert tally.counts == dict(Counter(c for c in classes if c is not None))
        assert tally.abstentions == classes.count(None)
        result = engine.question_result(qi)
        expected_votes = Counter(entry.answers[p] for p in positions if entry.answers[p] is not None)
        assert dict(result.votes) == dict(expected_votes)
        assert result.samples == len(positions)


budgets_in_samples = st.integers(min_value=0, max_value=60)


class TestSynchronousReplay:
    @settings(max_examples=150, deadline=None)
    @given(answer_lists, st.sampled_from(PARALLEL_STRATEGIES), budgets_in_samples, st.integers(0, 2**16))
    def test_the_budget_is_never_exceeded_and_no_sample_is_served_twice(self, answers: list, strategy: str,
                                                                        budget: int, seed: int) -> None:
        pool = make_pool(answers)
        engine, served = run_sync_recorded(pool, strategy, Budget(samples=budget), seed)
        result = engine.result()
        assert result.samples <= budget
        assert result.samples == sum(map(len, served))
        assert_tallies_recount_what_was_served(pool, engine, served)
        assert engine.ledger.reserved_samples == 0
        # a budget in samples alone is counted in locals during the loop: the ledger must still hold every token
        assert engine.ledger.spent_samples == result.samples
        assert engine.ledger.spent_tokens == sum(pool.entries[qi].usages[p].total_tokens
                                                 for qi, positions in enumerate(served) for p in positions)
        assert result.usage.total_tokens == engine.ledger.spent_tokens

    @settings(max_examples=80, deadline=None)
    @given(answer_lists, st.sampled_from(PARALLEL_STRATEGIES), st.integers(1, 20), st.integers(0, 200),
           st.integers(0, 2**16))
    def test_a_budget_in_samples_and_tokens_holds_both_caps(self, answers: list, strategy: str, samples: int,
                                                            tokens: int, seed: int) -> None:
        pool = make_pool(answers)
        engine, served = run_sync_recorded(pool, strategy, Budget(samples=samples, tokens=tokens), seed)
        assert engine.ledger.spent_samples <= samples
        assert engine.ledger.spent_tokens <= tokens
        assert engine.ledger.spent_samples == sum(t.samples for t in engine.tallies)
        # the one sample that can be served and not counted: the last, over the token cap, which ends the run
        assert sum(map(len, served)) - engine.ledger.spent_samples in (0, 1)
        assert engine.result().usage.total_tokens == engine.ledger.spent_tokens

    @settings(max_examples=60, deadline=None)
    @given(answer_lists, st.sampled_from(PARALLEL_STRATEGIES), budgets_in_samples, st.integers(0, 2**16))
    def test_a_run_repeated_with_the_same_seed_gives_identical_results(self, answers: list, strategy: str,
                                                                        budget: int, seed: int) -> None:
        pool = make_pool(answers)
        first = replay(pool, strategy, Budget(samples=budget), seed=seed)
        second = replay(pool, strategy, Budget(samples=budget), seed=seed)
        assert first == second
        recorded, _ = run_sync_recorded(pool, strategy, Budget(samples=budget), seed)
        assert recorded.result() == first  # replay() is this loop on the same backend

    def test_different_seeds_serve_different_sample_orders(self) -> None:
        pool = make_pool([["1", "2", "3", "1", "2", "3", None, "1"]] * 3)
        votes = {replay(pool, "sc", Budget(samples=3), seed=seed).results[0].votes for seed in range(20)}
        assert len(votes) > 1

    @settings(max_examples=60, deadline=None)
    @given(answer_lists, st.sampled_from(EXHAUSTIVE_STRATEGIES), st.integers(0, 2**16))
    def test_a_question_whose_pool_runs_dry_is_closed_after_one_exhausted_request(self, answers: list,
                                                                                  strategy: str,
                                                                                  seed: int) -> None:
        pool = make_pool(answers)
        engine, served = run_sync_recorded(pool, strategy, Budget(samples=10_000), seed)
        result = engine.result()
        assert [sorted(positions) for positions in served] == [list(range(len(a))) for a in answers]
        assert result.failures == {"exhausted": len(answers)}
        assert engine.allocator.closed == [True] * len(answers)
        assert result.samples == sum(map(len, answers))

    def test_self_consistency_with_more_budget_than_the_pool_serves_every_sample_once(self) -> None:
        pool = make_pool([["1", "2"], ["3"], ["1", None, "2", "1"]])
        engine, served = run_sync_recorded(pool, "sc", Budget(samples=100), seed=4)
        assert [sorted(s) for s in served] == [[0, 1], [0], [0, 1, 2, 3]]
        assert engine.result().failures == {"exhausted": 3}
        assert engine.allocator.closed == [True, True, True]
        assert engine.result().samples == 7

    def test_run_sync_refuses_an_engine_that_builds_messages(self) -> None:
        pool = make_pool([["1"]])
        engine = Engine(pool.questions, "sc", Budget(samples=1))
        with pytest.raises(ConfigError, match="parallel samples only"):
            engine.run_sync(lambda qi: (None, Usage()))


class TestAsynchronousInterface:
    @settings(max_examples=150, deadline=None)
    @given(answer_lists, st.sampled_from(PARALLEL_STRATEGIES), budgets_in_samples, st.integers(0, 2**16),
           st.integers(min_value=1, max_value=6), st.sampled_from([0.0, 0.0, 0.2]))
    def test_out_of_order_deliveries_keep_the_budget_and_the_tallies(self, answers: list, strategy: str,
                                                                     budget: int, seed: int, concurrency: int,
                                                                     fail_rate: float) -> None:
        pool = make_pool(answers)
        engine, served = run_concurrently(pool, strategy, Budget(samples=budget), seed, concurrency,
                                          random.Random(seed), fail_rate=fail_rate)
        assert engine.ledger.spent_samples <= budget
        assert engine.ledger.spent_samples == sum(map(len, served))
        assert engine.ledger.reserved_samples == 0
        assert_tallies_recount_what_was_served(pool, engine, served)

    @settings(max_examples=80, deadline=None)
    @given(answer_lists, st.sampled_from(PARALLEL_STRATEGIES), st.integers(0, 800), st.integers(0, 2**16),
           st.integers(min_value=1, max_value=6))
    def test_a_token_budget_holds_with_requests_in_flight(self, answers: list, strategy: str, tokens: int,
                                                          seed: int, concurrency: int) -> None:
        pool = make_pool(answers)
        worst = max(u.total_tokens for e in pool.entries for u in e.usages)
        engine, served = run_concurrently(pool, strategy, Budget(tokens=tokens), seed, concurrency,
                                          random.Random(seed), token_estimate=worst)
        assert engine.ledger.spent_tokens <= tokens
        assert engine.ledger.spent_tokens == sum(pool.entries[qi].usages[p].total_tokens
                                                 for qi, positions in enumerate(served) for p in positions)
        assert engine.result().usage.total_tokens == engine.ledger.spent_tokens
        assert_tallies_recount_what_was_served(pool, engine, served)

    @settings(max_examples=60, deadline=None)
    @given(answer_lists, st.sampled_from(EXHAUSTIVE_STRATEGIES), st.integers(0, 2**16), st.integers(0, 2**16),
           st.integers(min_value=2, max_value=6))
    def test_the_final_votes_do_not_depend_on_the_order_samples_come_back_in(self, answers: list, strategy: str,
                                                                             seed: int, order_seed: int,
                                                                             concurrency: int) -> None:
        pool = make_pool(answers)
        budget = Budget(samples=sum(map(len, answers)))
        in_order, _ = run_concurrently(pool, strategy, budget, seed, 1, random.Random(order_seed))
        shuffled, _ = run_concurrently(pool, strategy, budget, seed, concurrency, random.Random(order_seed + 1))
        for a, b in zip(in_order.tallies, shuffled.tallies, strict=True):
            assert (a.counts, a.v1, a.v2, a.abstentions, a.samples) == (b.counts, b.v1, b.v2, b.abstentions,
                                                                        b.samples)

    def test_requests_carry_the_samplers_messages_and_numbered_sample_indices(self) -> None:
        questions = [Question("a", "What is 2+2?", "number"), Question("b", "What is 3+3?", "number")]
        engine = Engine(questions, "sc", Budget(samples=6), seed=1)
        requests = [engine.next_request() for _ in range(6)]
        assert all(r is not None for r in requests)
        assert engine.next_request() is None  # six reserved: the cap is reached
        for qid in ("a", "b"):
            mine = [r for r in requests if r and r.question.id == qid]
            assert [r.sample_index for r in mine] == [0, 1, 2]
            for r in mine:
                assert r.messages == engine.sampler.messages(r.question, [], random.Random(0))
                assert r.messages[-1]["content"].startswith(r.question.text)

    def test_a_retryable_failure_releases_the_reservation_and_spends_nothing(self) -> None:
        questions = [Question("a", "What is 2+2?", "number", gold="4")]
        engine = Engine(questions, "sc", Budget(samples=1, tokens=100), seed=0, needs_messages=False,
                        estimate_cost=lambda q, m: (60, 0.0))
        request = engine.next_request()
        assert request is not None
        assert engine.next_request() is None  # the only sample is reserved
        assert (engine.ledger.reserved_samples, engine.ledger.reserved_tokens) == (1, 60)
        engine.fail(request, BackendError("rate limited", retryable=True, kind="rate_limit"))
        assert (engine.ledger.reserved_samples, engine.ledger.reserved_tokens) == (0, 0)
        assert (engine.ledger.spent_samples, engine.ledger.spent_tokens) == (0, 0)
        assert engine.inflight == 0
        assert engine.failure_kinds == {"rate_limit": 1}
        retry = engine.next_request()
        assert retry is not None and retry.question.id == "a"
        assert retry.sample_index == 1
        engine.deliver(retry, Sample("The answer is 4.", None, Usage(prompt_tokens=20, completion_tokens=10)))
        result = engine.result()
        assert (result.samples, result.usage.total_tokens, result.results[0].answer) == (1, 30, "4")
        assert result.failures == {"rate_limit": 1}
        assert result.accuracy == 1.0

    def test_a_question_that_keeps_failing_is_closed_after_max_failures(self) -> None:
        questions = [Question("a", "q", "number"), Question("b", "q", "number")]
        engine = Engine(questions, "sc", Budget(samples=100), seed=0, needs_messages=False, max_failures=2)
        failures_of_a = 0
        delivered_b = 0
        for _ in range(50):
            request = engine.next_request()
            if request is None:
                break
            if request.question.id == "a":
                failures_of_a += 1
                engine.fail(request, BackendError("server error", retryable=True, kind="server"))
            else:
                delivered_b += 1
                engine.deliver(request, Sample("The answer is 1", None))
        assert failures_of_a == 2
        assert engine.allocator.closed[0]
        assert engine.result().results[0].samples == 0
        assert delivered_b == engine.result().results[1].samples > 0
        assert engine.result().failures == {"server": 2}

    def test_a_request_held_for_lack_of_budget_is_sent_once_room_frees_up(self) -> None:
        questions = [Question("a", "q", "number"), Question("b", "q", "number")]
        engine = Engine(questions, "sc", Budget(tokens=100), seed=0, needs_messages=False,
                        estimate_cost=lambda q, m: (60, 0.0))
        first = engine.next_request()
        assert first is not None
        assert engine.next_request() is None  # 60 + 60 > 100: held
        engine.deliver(first, Sample("The answer is 1", None, Usage(prompt_tokens=10, completion_tokens=10)))
        second = engine.next_request()  # 20 spent: 20 + 60 fits
        assert second is not None
        assert second.question.id != first.question.id  # the held question, not a new pick
        engine.deliver(second, Sample("The answer is 2", None, Usage(prompt_tokens=10, completion_tokens=10)))
        assert engine.ledger.spent_tokens == 40


class TestEngineConstruction:
    def test_an_empty_batch_is_refused(self) -> None:
        with pytest.raises(InputError, match="the batch is empty"):
            Engine([], "sc", Budget(samples=1))

    def test_a_duplicate_question_id_is_refused_naming_the_id(self) -> None:
        questions = [Question("x", "q1"), Question("y", "q2"), Question("x", "q3")]
        with pytest.raises(InputError, match="field 'id'.*'x' appears more than once"):
            Engine(questions, "sc", Budget(samples=1))

    def test_the_oracle_needs_every_gold_answer(self) -> None:
        questions = [Question("x", "q1", gold="1"), Question("y", "q2")]
        with pytest.raises(ConfigError, match="gold answer for every question"):
            Engine(questions, "oracle", Budget(samples=1))

    def test_an_unknown_strategy_spec_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="unknown strategy"):
            Engine([Question("x", "q")], "nonsense", Budget(samples=1))
