"""Samplers: the exact messages sent for one more sample, and the refusal to fake live sampling on replay."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import (
    Budget,
    ConfigError,
    IntegratedSampler,
    ParallelSampler,
    Prompts,
    Question,
    ReplayRefusedError,
    SequentialSampler,
    bundled_pools,
    load_pool,
    replay,
)
from dynscaling.samplers import Attempt, estimate_tokens

QUESTION = Question("q1", "Natalia sold 48 clips in April and half as many in May. How many in total?", "number")
SHORT = Prompts(question="Q: {question} [{format_hint}]", format_hints=(("number", "say N"),),
                reconsider="AGAIN", fresh_solution="FRESH", revise="REVISE")
OPENING = [{"role": "user", "content": f"Q: {QUESTION.text} [say N]"}]


def chain(*texts: str, closing: str = "FRESH") -> list[dict[str, str]]:
    """The opening turn, then each text as an assistant turn answered by AGAIN, the last one by ``closing``."""
    messages = list(OPENING)
    for i, text in enumerate(texts):
        messages.append({"role": "assistant", "content": text})
        messages.append({"role": "user", "content": closing if i == len(texts) - 1 else "AGAIN"})
    return messages


def shown(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant"]


class TestPrompts:
    @pytest.mark.parametrize("answer_type", ["number", "date", "latex", "choice", "text"])
    def test_the_user_turn_is_the_question_then_a_blank_line_then_the_format_hint(self, answer_type: str) -> None:
        question = Question("x", "What is the answer?", answer_type)  # type: ignore[arg-type]
        hint = dict(Prompts().format_hints)[answer_type]
        assert hint  # every answer type has a hint
        assert Prompts().opening(question) == [{"role": "user", "content": f"What is the answer?\n\n{hint}"}]

    def test_the_latex_hint_asks_for_a_boxed_answer(self) -> None:
        assert "\\boxed{}" in dict(Prompts().format_hints)["latex"]

    def test_a_system_message_comes_first_when_set(self) -> None:
        prompts = Prompts(system="You are careful.")
        messages = prompts.opening(QUESTION)
        assert messages[0] == {"role": "system", "content": "You are careful."}
        assert [m["role"] for m in messages] == ["system", "user"]


class TestParallelSampler:
    def test_it_sends_the_question_alone_whatever_came_before(self) -> None:
        sampler = ParallelSampler(SHORT)
        earlier = [Attempt("The answer is 72.", 0), Attempt("The answer is 96.", 1)]
        assert sampler.messages(QUESTION, [], random.Random(0)) == OPENING
        assert sampler.messages(QUESTION, earlier, random.Random(0)) == OPENING
        assert not sampler.needs_live_model


class TestIntegratedSampler:
    def test_the_first_k0_samples_are_plain_independent_ones(self) -> None:
        sampler = IntegratedSampler(k0=3, m=2, prompts=SHORT)
        attempts = [Attempt("A: 72", 0), Attempt("A: 96", 1)]
        for n in range(3):
            assert sampler.messages(QUESTION, attempts[:n], random.Random(n)) == OPENING
        assert sampler.needs_live_model

    def test_later_samples_show_m_earlier_attempts_as_assistant_turns_then_ask_for_a_fresh_solution(self) -> None:
        sampler = IntegratedSampler(k0=2, m=2, prompts=SHORT)
        attempts = [Attempt("first: 72", 0), Attempt("second: 96", 1)]
        messages = sampler.messages(QUESTION, attempts, random.Random(1))
        assert messages in (chain("first: 72", "second: 96"), chain("second: 96", "first: 72"))

    def test_the_default_wording_asks_to_reconsider_and_then_for_a_fresh_complete_solution(self) -> None:
        prompts = Prompts()
        sampler = IntegratedSampler(k0=1, m=2)
        messages = sampler.messages(QUESTION, [Attempt("x 72", 0), Attempt("y 96", 1)], random.Random(0))
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
        assert messages[2]["content"] == prompts.reconsider
        assert messages[4]["content"] == prompts.fresh_solution
        assert "fresh" in prompts.fresh_solution and "final answer" in prompts.fresh_solution

    def test_the_order_of_the_attempts_is_shuffled_by_the_rng_and_reproducible(self) -> None:
        sampler = IntegratedSampler(k0=1, m=3, prompts=SHORT)
        attempts = [Attempt("a 1", 0), Attempt("b 2", 1), Attempt("c 3", 2)]
        orders = {tuple(shown(sampler.messages(QUESTION, attempts, random.Random(seed)))) for seed in range(40)}
        assert len(orders) == 6  # every order of three shows up
        assert all(sorted(order) == ["a 1", "b 2", "c 3"] for order in orders)
        again = [sampler.messages(QUESTION, attempts, random.Random(7)) for _ in range(2)]
        assert again[0] == again[1]

    def test_an_abstaining_attempt_is_not_always_shown_in_the_same_place(self) -> None:
        sampler = IntegratedSampler(k0=1, m=2, prompts=SHORT)
        attempts = [Attempt("no idea", None), Attempt("says 72", 0)]
        orders = {tuple(shown(sampler.messages(QUESTION, attempts, random.Random(seed)))) for seed in range(20)}
        assert orders == {("no idea", "says 72"), ("says 72", "no idea")}

    @settings(max_examples=200)
    @given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=10), st.integers(1, 4),
           st.integers(0, 2**16))
    def test_when_earlier_answers_disagree_the_chain_shows_as_many_different_answers_as_fit(
            self, classes: list[int], m: int, seed: int) -> None:
        attempts = [Attempt(f"attempt {i} says {c}", c) for i, c in enumerate(classes)]
        sampler = IntegratedSampler(k0=1, m=m, prompts=SHORT)
        texts = shown(sampler.messages(QUESTION, attempts, random.Random(seed)))
        by_text = {a.text: a.answer_class for a in attempts}
        assert len(texts) == min(m, len(attempts))
        assert len(set(texts)) == len(texts)  # no attempt twice
        assert len({by_text[t] for t in texts}) == min(m, len(set(classes)))

    def test_a_chain_of_two_from_three_agreeing_and_one_dissenting_answer_always_includes_the_dissent(self) -> None:
        sampler = IntegratedSampler(k0=2, m=2, prompts=SHORT)
        attempts = [Attempt("says 72 (a)", 0), Attempt("says 72 (b)", 0), Attempt("says 72 (c)", 0),
                    Attempt("says 96", 1)]
        for seed in range(30):
            assert "says 96" in shown(sampler.messages(QUESTION, attempts, random.Random(seed)))

    def test_the_token_limit_drops_the_longest_attempts_first(self) -> None:
        attempts = [Attempt("x" * 50, 0), Attempt("y" * 10, 1), Attempt("z" * 30, 2)]
        sampler = IntegratedSampler(k0=1, m=3, max_chain_tokens=45, prompts=SHORT, count_tokens=len)
        for seed in range(10):
            assert sorted(shown(sampler.messages(QUESTION, attempts, random.Random(seed)))) == ["y" * 10, "z" * 30]
        tighter = IntegratedSampler(k0=1, m=3, max_chain_tokens=25, prompts=SHORT, count_tokens=len)
        assert shown(tighter.messages(QUESTION, attempts, random.Random(0))) == ["y" * 10]

    def test_with_no_attempt_under_the_limit_the_sample_is_an_independent_one(self) -> None:
        sampler = IntegratedSampler(k0=1, m=2, max_chain_tokens=5, prompts=SHORT, count_tokens=len)
        assert sampler.messages(QUESTION, [Attempt("long attempt", 0)], random.Random(0)) == OPENING

    def test_the_default_token_count_is_a_high_estimate(self) -> None:
        assert estimate_tokens("") == 1
        assert estimate_tokens("a" * 300) == 101

    def test_abstaining_attempts_are_shown_only_when_answered_ones_run_out(self) -> None:
        sampler = IntegratedSampler(k0=2, m=2, prompts=SHORT)
        attempts = [Attempt("says 72 (a)", 0), Attempt("says 72 (b)", 0), Attempt("says 72 (c)", 0),
                    Attempt("I am not sure", None)]
        for seed in range(20):
            assert "I am not sure" not in shown(sampler.messages(QUESTION, attempts, random.Random(seed)))

    def test_an_abstaining_attempt_fills_the_chain_when_nothing_else_is_left(self) -> None:
        sampler = IntegratedSampler(k0=1, m=3, prompts=SHORT)
        attempts = [Attempt("says 72", 0), Attempt("I am not sure", None), Attempt("says 96", 1)]
        for seed in range(10):
            assert sorted(shown(sampler.messages(QUESTION, attempts, random.Random(seed)))) == [
                "I am not sure", "says 72", "says 96"]

    def test_attempts_without_text_are_never_shown(self) -> None:
        sampler = IntegratedSampler(k0=1, m=3, prompts=SHORT)
        attempts = [Attempt("", None), Attempt("says 72", 0)]
        assert sampler.messages(QUESTION, attempts, random.Random(0)) == chain("says 72")

    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"k0": 0}, "k0 must be >= 1, got 0"),
        ({"m": 0}, "m must be >= 1, got 0"),
        ({"max_chain_tokens": -1}, "max_chain_tokens must be >= 0, got -1"),
    ])
    def test_bad_parameters_are_refused_naming_the_value(self, kwargs: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            IntegratedSampler(**kwargs)


class TestSequentialSampler:
    def test_the_first_sample_is_the_question_alone(self) -> None:
        assert SequentialSampler(prompts=SHORT).messages(QUESTION, [], random.Random(0)) == OPENING

    def test_each_later_sample_revises_only_the_previous_attempt(self) -> None:
        sampler = SequentialSampler(prompts=SHORT)
        attempts = [Attempt("one: 72", 0), Attempt("two: 96", 1), Attempt("three: 72", 0)]
        assert sampler.messages(QUESTION, attempts, random.Random(0)) == chain("three: 72", closing="REVISE")

    def test_the_default_wording_asks_for_a_corrected_solution(self) -> None:
        messages = SequentialSampler().messages(QUESTION, [Attempt("one: 72", 0)], random.Random(0))
        assert messages[-1] == {"role": "user", "content": Prompts().revise}
        assert messages[-2] == {"role": "assistant", "content": "one: 72"}

    def test_a_previous_attempt_without_text_or_over_the_limit_is_not_shown(self) -> None:
        sampler = SequentialSampler(max_chain_tokens=5, prompts=SHORT, count_tokens=len)
        assert sampler.messages(QUESTION, [Attempt("ok", 0), Attempt("", None)], random.Random(0)) == OPENING
        assert sampler.messages(QUESTION, [Attempt("too long", 0)], random.Random(0)) == OPENING
        assert sampler.messages(QUESTION, [Attempt("fits", 0)], random.Random(0)) == chain("fits",
                                                                                            closing="REVISE")


@pytest.fixture(scope="module")
def pool():  # noqa: ANN201
    return load_pool(bundled_pools()[0])


class TestReplayRefusesLiveOnlySamplers:
    @pytest.mark.parametrize("strategy", ["dynscaling", "dynscaling:k0=2,m=2", "sequential", "integrated-uniform"])
    def test_a_strategy_that_shows_earlier_answers_is_refused_with_a_fix(self, pool, strategy: str) -> None:  # noqa: ANN001
        with pytest.raises(ReplayRefusedError) as raised:
            replay(pool, strategy, Budget(samples=10))
        message = str(raised.value)
        assert strategy.split(":")[0] in message
        assert "live model" in message
        assert "dynscaling-parallel" in message  # the fix on replay pools

    def test_the_parallel_variant_runs_on_the_same_pool(self, pool) -> None:  # noqa: ANN001
        result = replay(pool, "dynscaling-parallel", Budget(samples=2 * len(pool.entries)))
        assert 0 < result.samples <= 2 * len(pool.entries)
