"""What the engine makes of the samples it is given, and what it asks of its callers: the answer a backend
already extracted, cut-off samples, the per-sample detail of a live run, the cost it reserves and ranks by, and
interrupted requests. Everything runs in process, through the engine's public calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from dynscaling import BackendError, Budget, ConfigError, Engine, InputError, Question, Sample, Usage
from dynscaling.allocators import Allocator
from dynscaling.samplers import Message, ParallelSampler, Prompts


def ask(engine: Engine) -> list:
    """Every request the engine wants sent now."""
    requests = []
    while (request := engine.next_request()) is not None:
        requests.append(request)
    return requests


class TestWhatASampleCountsFor:
    def test_an_answer_the_backend_extracted_wins_over_the_text(self) -> None:
        engine = Engine([Question("a", "What is 3+4?", "number")], "sc", Budget(samples=1), needs_messages=False)
        [request] = ask(engine)
        engine.deliver(request, Sample("I first thought 5. The answer is 5.", "7"))
        result = engine.result().results[0]
        assert (result.answer, result.votes, result.abstentions) == ("7", (("7", 1),), 0)

    def test_a_sample_cut_off_by_the_token_limit_abstains_and_is_never_shown_again(self) -> None:
        # the last number of a cut-off text is wherever the model stopped, not its answer
        engine = Engine([Question("a", "What is 3+4?", "number")], "integrated-uniform:k0=1", Budget(samples=3))
        [first, second, third] = ask(engine)
        engine.deliver(first, Sample("Let me add: 3 + 4 = 7, so the answer is 7.", None, finish_reason="stop"))
        engine.deliver(second, Sample("Counting 3, then 4 more, I get 12", None, finish_reason="length"))
        engine.deliver(third, Sample("The answer is 7.", None, finish_reason="stop"))
        result = engine.result().results[0]
        assert (result.samples, result.abstentions, result.votes) == (3, 1, (("7", 2),))
        shown = [d["text"] for d in engine.samples_detail(0)]
        assert shown == ["Let me add: 3 + 4 = 7, so the answer is 7.", "The answer is 7."]

    def test_a_sample_that_stopped_normally_is_read_even_with_a_number_at_the_end(self) -> None:
        engine = Engine([Question("a", "What is 3+4?", "number")], "sc", Budget(samples=1), needs_messages=False)
        [request] = ask(engine)
        engine.deliver(request, Sample("Counting 3, then 4 more, I get 7", None, finish_reason="stop"))
        assert engine.result().results[0].answer == "7"


class TestSamplesDetail:
    def test_each_sample_of_a_live_run_is_listed_with_its_answer_and_whether_it_saw_a_chain(self) -> None:
        engine = Engine([Question("a", "What is 3+4?", "number"), Question("b", "What is 1+1?", "number")],
                        "integrated-uniform:k0=1", Budget(samples=4), seed=3)
        delivered = 0
        while (request := engine.next_request()) is not None:  # one at a time: each sees the ones before
            text = "I cannot tell." if request.question.id == "b" and request.sample_index == 0 else \
                f"So the answer is {7 if request.question.id == 'a' else 2}."
            engine.deliver(request, Sample(text, None))
            delivered += 1
        assert delivered == 4
        assert engine.samples_detail(0) == [
            {"text": "So the answer is 7.", "answer": "7", "chain": False},
            {"text": "So the answer is 7.", "answer": "7", "chain": True},
        ]
        assert engine.samples_detail(1) == [
            {"text": "I cannot tell.", "answer": None, "chain": False},
            {"text": "So the answer is 2.", "answer": "2", "chain": True},
        ]

    def test_a_question_never_sampled_has_no_detail(self) -> None:
        engine = Engine([Question("a", "q", "number"), Question("b", "q", "number")], "sc", Budget(samples=1))
        [request] = ask(engine)
        engine.deliver(request, Sample("The answer is 1.", None))
        other = 1 - request.question_index
        assert engine.samples_detail(other) == []


class TestWhatARequestCarries:
    def test_replay_of_independent_samples_builds_no_messages(self) -> None:
        engine = Engine([Question("a", "What is 3+4?", "number")], "sc", Budget(samples=2), needs_messages=False)
        assert [r.messages for r in ask(engine)] == [None, None]

    def test_the_cost_estimate_sees_the_question_and_the_exact_messages_sent(self) -> None:
        seen: list[tuple[Question, list[Message] | None]] = []

        def by_length(question: Question, messages: list[Message] | None) -> tuple[int, float]:
            seen.append((question, messages))
            return sum(len(m["content"]) for m in messages or []), 0.0

        questions = [Question("short", "1+1?", "number"), Question("long", "What is " + "1+" * 40 + "1?", "number")]
        engine = Engine(questions, "sc", Budget(tokens=10_000), estimate_cost=by_length)
        requests = [engine.next_request() for _ in range(2)]
        assert [(r.question, r.messages) for r in requests if r] == seen
        assert {q.id for q, _ in seen} == {"short", "long"}
        assert engine.ledger.reserved_tokens == sum(sum(len(m["content"]) for m in r.messages) for r in requests if r)


class TestTheCostAnAllocatorRanksBy:
    """With a token or dollar cap and ``per_token=true``, the empirical-Bayes allocator ranks a question by its
    gain per unit of cost: the question's mean cost so far, shrunk toward the batch's mean (one pseudo-sample of
    it), 1 before any. Without ``per_token`` it ranks per sample under every cap."""

    PER_TOKEN = "dynscaling-parallel:max_inflight=2,per_token=true"

    def questions(self) -> list[Question]:
        return [Question("a", "q", "number"), Question("b", "q", "number")]

    def deliver_all(self, engine: Engine, usage_of: dict[str, Usage]) -> None:
        for request in ask(engine):
            engine.deliver(request, Sample("The answer is 1.", None, usage_of[request.question.id]))

    def test_in_tokens_under_a_token_cap(self) -> None:
        engine = Engine(self.questions(), self.PER_TOKEN, Budget(samples=4, tokens=10_000), needs_messages=False)
        unit_cost = engine.allocator.unit_cost
        assert unit_cost is not None
        assert (unit_cost(0), unit_cost(1)) == (1.0, 1.0)
        self.deliver_all(engine, {"a": Usage(prompt_tokens=60, completion_tokens=40, cost_usd=5.0),
                                  "b": Usage(prompt_tokens=6, completion_tokens=4, cost_usd=0.5)})
        assert [t.samples for t in engine.tallies] == [2, 2]
        batch = 220 / 4  # 2 x 100 + 2 x 10 tokens over 4 samples
        assert unit_cost(0) == pytest.approx((200 + batch) / 3)
        assert unit_cost(1) == pytest.approx((20 + batch) / 3)

    def test_in_dollars_under_a_dollar_cap(self) -> None:
        engine = Engine(self.questions(), self.PER_TOKEN, Budget(samples=4, usd=100.0), needs_messages=False)
        unit_cost = engine.allocator.unit_cost
        self.deliver_all(engine, {"a": Usage(prompt_tokens=60, completion_tokens=40, cost_usd=0.02),
                                  "b": Usage(prompt_tokens=6, completion_tokens=4, cost_usd=0.001)})
        batch = 0.042 / 4
        assert unit_cost(0) == pytest.approx((0.04 + batch) / 3)
        assert unit_cost(1) == pytest.approx((0.002 + batch) / 3)

    def test_free_samples_count_as_one_unit(self) -> None:
        engine = Engine(self.questions(), self.PER_TOKEN, Budget(samples=4, tokens=10_000), needs_messages=False)
        self.deliver_all(engine, {"a": Usage(), "b": Usage()})
        assert (engine.allocator.unit_cost(0), engine.allocator.unit_cost(1)) == (1.0, 1.0)

    def test_a_sample_budget_alone_ranks_per_sample(self) -> None:
        engine = Engine(self.questions(), "dynscaling-parallel:per_token=true", Budget(samples=4),
                        needs_messages=False)
        assert engine.allocator.unit_cost is None

    @pytest.mark.parametrize("budget", [Budget(tokens=10_000), Budget(usd=100.0)])
    def test_by_default_a_token_or_dollar_cap_ranks_per_sample(self, budget: Budget) -> None:
        engine = Engine(self.questions(), "dynscaling-parallel", budget, needs_messages=False)
        assert engine.allocator.unit_cost is None
        assert "per_token=false" in engine.allocator.describe()


class TestInterruptedRequests:
    def test_cancelled_requests_never_close_a_question(self) -> None:
        # an interrupted run (Ctrl-C) cancels what is in flight: that says nothing about the question
        engine = Engine([Question("a", "q", "number")], "sc", Budget(samples=2), needs_messages=False,
                        max_failures=2)
        for _ in range(5):
            [first, second] = ask(engine)
            engine.fail(first, BackendError("cancelled", kind="cancelled"))
            engine.fail(second, BackendError("cancelled", kind="cancelled"))
        assert not engine.allocator.closed[0]
        assert engine.result().failures == {"cancelled": 10}
        for request in ask(engine):
            engine.deliver(request, Sample("The answer is 1.", None))
        assert engine.result().results[0].samples == 2

    def test_run_sync_names_itself_and_the_calls_to_use_instead(self) -> None:
        engine = Engine([Question("a", "q", "number")], "sc", Budget(samples=1))
        with pytest.raises(ConfigError) as raised:
            engine.run_sync(lambda qi: (None, Usage()))
        assert str(raised.value).startswith("run_sync serves parallel samples only")
        assert str(raised.value).endswith("use next_request/deliver for live backends")


class ScriptedAllocator(Allocator):
    """A user's own allocator (``Engine(allocator=...)``) that picks questions from a fixed script."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)

    def next_question(self) -> int | None:
        return self.script.pop(0) if self.script else None


def record_draws(drawn: list[int]) -> Callable[[int], tuple[int | None, Usage]]:
    def draw(qi: int) -> tuple[int | None, Usage]:
        drawn.append(qi)
        return None, Usage()

    return draw


class TestAPickThatDidNotFitIsKept:
    """An allocator's pick that the budget could not hold at that moment is sent once room frees up, whichever
    loop (``next_request`` or ``run_sync``) runs next; it is never replaced by a later pick."""

    def questions(self) -> list[Question]:
        return [Question(f"q{i}", "q", "number") for i in range(3)]

    def test_held_by_next_request_then_served_by_run_sync(self) -> None:
        engine = Engine(self.questions(), "sc", Budget(samples=2), needs_messages=False,
                        allocator=ScriptedAllocator([0, 1, 2, 0]))
        first, second = engine.next_request(), engine.next_request()
        assert engine.next_request() is None  # picked 2, no room: held
        engine.fail(first, BackendError("timed out", retryable=True, kind="timeout"))
        drawn: list[int] = []
        engine.run_sync(record_draws(drawn))
        assert drawn == [2]
        assert second is not None and engine.inflight == 1

    def test_held_by_run_sync_then_sent_by_next_request(self) -> None:
        engine = Engine(self.questions(), "sc", Budget(samples=2), needs_messages=False,
                        allocator=ScriptedAllocator([0, 1, 2, 0]))
        live = engine.next_request()
        drawn: list[int] = []
        engine.run_sync(record_draws(drawn))  # draws 1; picks 2 with no room left: held
        assert drawn == [1]
        engine.fail(live, BackendError("timed out", retryable=True, kind="timeout"))
        request = engine.next_request()
        assert request is not None and request.question_index == 2


class TestResultsOfAQuestion:
    def test_per_question_usage_sums_every_kind_of_token_and_the_money(self) -> None:
        engine = Engine([Question("a", "q", "number")], "sc", Budget(samples=2), needs_messages=False)
        costs = [Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=3, reasoning_tokens=2, cost_usd=0.25),
                 Usage(prompt_tokens=20, completion_tokens=7, cached_tokens=4, reasoning_tokens=6, cost_usd=0.5)]
        for request, usage in zip(ask(engine), costs, strict=True):
            engine.deliver(request, Sample("The answer is 1.", None, usage))
        result = engine.result()
        assert result.results[0].usage == Usage(30, 12, 7, 8, 0.75)
        assert result.usage == Usage(30, 12, 7, 8, 0.75)

    def test_a_latex_answer_written_differently_from_the_gold_is_graded_by_its_value(self) -> None:
        engine = Engine([Question("a", "Expand x(x+2).", "latex", gold="2x+x^2")], "sc", Budget(samples=1),
                        needs_messages=False)
        [request] = ask(engine)
        engine.deliver(request, Sample("So it is \\boxed{x^2+2x}.", None))
        result = engine.result()
        assert (result.results[0].answer, result.results[0].correct, result.accuracy) == ("x^2+2x", True, 1.0)

    def test_without_a_gold_answer_correctness_is_unknown_not_false(self) -> None:
        engine = Engine([Question("a", "q", "number")], "sc", Budget(samples=1), needs_messages=False)
        [request] = ask(engine)
        engine.deliver(request, Sample("The answer is 1.", None))
        result = engine.result()
        assert result.results[0].correct is None
        assert result.results[0].to_dict()["correct"] is None
        assert result.accuracy is None


class TestDefaults:
    def test_the_default_seed_is_seed_zero(self) -> None:
        questions = [Question(f"q{i}", "q", "number") for i in range(6)]

        def order(**seed: int) -> list[str]:
            engine = Engine(questions, "sc", Budget(samples=6), needs_messages=False, **seed)
            return [r.question.id for r in ask(engine)]

        assert order() == order(seed=0)
        assert order() != order(seed=1)  # the order is seeded at all, so the comparison above means something

    def test_by_default_a_question_is_closed_after_three_failures(self) -> None:
        engine = Engine([Question("a", "q", "number")], "sc", Budget(samples=10), needs_messages=False)
        for attempt in range(3):
            assert not engine.allocator.closed[0], f"closed after {attempt} failures"
            request = engine.next_request()
            assert request is not None
            engine.fail(request, BackendError("server error", retryable=True, kind="server"))
        assert engine.allocator.closed[0]
        assert engine.next_request() is None

    def test_closing_a_question_is_logged_with_its_id_the_count_and_the_last_error(
            self, caplog: pytest.LogCaptureFixture) -> None:
        engine = Engine([Question("poisoned-7", "q", "number")], "sc", Budget(samples=10), needs_messages=False,
                        max_failures=2)
        with caplog.at_level(logging.WARNING, logger="dynscaling.engine"):
            for _ in range(2):
                engine.fail(engine.next_request(), BackendError("HTTP 400: prompt too long", kind="error"))
        assert [r.getMessage() for r in caplog.records] == [
            "closing question poisoned-7 after 2 failures: HTTP 400: prompt too long"]

    def test_an_empty_batch_is_refused_in_one_line_saying_so(self) -> None:
        with pytest.raises(InputError) as raised:
            Engine([], "sc", Budget(samples=1))
        assert str(raised.value) == "the batch is empty: there is no question to answer"


class TestConstruction:
    def test_a_duplicate_id_is_named_even_after_unique_ones(self) -> None:
        questions = [Question("first", "q"), Question("second", "q"), Question("second", "q again")]
        with pytest.raises(InputError, match="question id 'second' appears more than once"):
            Engine(questions, "sc", Budget(samples=3))

    def test_the_oracle_refusal_says_what_it_needs(self) -> None:
        with pytest.raises(ConfigError) as raised:
            Engine([Question("a", "q", "number")], "oracle", Budget(samples=1))
        assert str(raised.value) == "the oracle strategy needs a gold answer for every question (evaluation only)"

    def test_custom_prompts_reach_the_strategys_sampler(self) -> None:
        prompts = Prompts(system="You are terse.", question="Q: {question}")
        engine = Engine([Question("a", "What is 3+4?", "number")], "sc", Budget(samples=1), prompts=prompts)
        [request] = ask(engine)
        assert request.messages == [{"role": "system", "content": "You are terse."},
                                    {"role": "user", "content": "Q: What is 3+4?"}]

    def test_a_sampler_of_ones_own_runs_with_the_strategys_allocator(self) -> None:
        sampler = ParallelSampler(Prompts(question="Q: {question}"))
        engine = Engine([Question("a", "q1", "number"), Question("b", "q2", "number")], "sc:cap=1",
                        Budget(samples=5), sampler=sampler)
        assert engine.sampler is sampler
        requests = ask(engine)
        assert sorted(r.messages[-1]["content"] for r in requests) == ["Q: q1", "Q: q2"]  # cap=1: one each
