"""The asyncio driver and the journal, against an in-process fake model (no network: the HTTP path is tested
against the replay server in test_replay_server.py / test_solve.py).

The fake answers deterministically from the request's seed, so an interrupted-and-resumed run can be compared
with an uninterrupted one sample for sample.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3

import pytest

from dynscaling import BackendError, Budget, Engine, Question, Sample, Usage
from dynscaling.drivers import arun
from dynscaling.journal import Journal, stable_hash


def make_questions(n: int) -> list[Question]:
    return [Question(id=f"q{i}", text=f"Question {i}: what is {i} + {i}?", answer_type="number", gold=str(2 * i))
            for i in range(n)]


RELEASE_AFTER = 21  # completions of other questions while the slow question's requests are held


class SeededModel:
    """Answers right with probability 0.6 (else a near miss), decided by the request seed alone."""

    def __init__(self, *, delay: float = 0.0, fail_rate: float = 0.0, slow_question: str | None = None) -> None:
        self.delay = delay
        self.fail_rate = fail_rate
        self.slow_question = slow_question
        self.served = 0
        self.calls = 0
        self.inflight = 0
        self.max_inflight = 0
        self.completed_while_slow = 0
        self._slow_pending = 0
        self._release_slow: asyncio.Event | None = None
        self.requests_with_n: dict[int, int] = {}

    async def agenerate(self, messages: list[dict[str, str]], n: int = 1, *, seed: int | None = None) -> list[Sample]:
        self.calls += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            question = messages[0]["content"]
            number = int(question.split(":")[0].split()[-1])
            rng = random.Random(seed)
            if question.startswith(f"Question {self.slow_question}:") if self.slow_question else False:
                # Held until RELEASE_AFTER other requests have completed: a driver that waited for every request
                # in flight would never get there (the timeout only keeps that failure from hanging the suite).
                self._release_slow = self._release_slow or asyncio.Event()
                self._slow_pending += 1
                try:
                    await asyncio.wait_for(self._release_slow.wait(), timeout=60)
                except asyncio.TimeoutError:
                    pass
                finally:
                    self._slow_pending -= 1
            else:
                await asyncio.sleep(self.delay * rng.random())
                if self._slow_pending:
                    self.completed_while_slow += 1
                    if self.completed_while_slow >= RELEASE_AFTER and self._release_slow is not None:
                        self._release_slow.set()
            if rng.random() < self.fail_rate:
                raise BackendError("injected 503", retryable=True, kind="server_error")
            samples = []
            for _ in range(n):
                answer = 2 * number if rng.random() < 0.6 else 2 * number + rng.choice([-1, 1, 2])
                samples.append(Sample(f"Let me add. The answer is {answer}.", None, Usage(12, 8), "stop"))
            self.served += n
            self.requests_with_n[n] = self.requests_with_n.get(n, 0) + 1
            return samples
        finally:
            self.inflight -= 1


def run(engine: Engine, model: SeededModel, **kwargs: object):  # noqa: ANN201
    return asyncio.run(arun(engine, model, **kwargs))  # type: ignore[arg-type]


class TestConcurrency:
    def test_never_more_requests_in_flight_than_the_limit(self) -> None:
        model = SeededModel(delay=0.002)
        engine = Engine(make_questions(40), "sc", Budget(samples=160))
        result = run(engine, model, concurrency=5)
        assert model.max_inflight == 5
        assert result.samples == 160

    def test_a_slow_request_does_not_hold_back_the_others(self) -> None:
        model = SeededModel(delay=0.001, slow_question="3")
        engine = Engine(make_questions(30), "sc", Budget(samples=90))
        result = run(engine, model, concurrency=4)
        # Barrier-free: while question 3's requests hang, the other slots keep turning over.
        assert model.completed_while_slow >= RELEASE_AFTER
        assert result.samples == 90


class TestBudget:
    @pytest.mark.parametrize("strategy", ["sc", "dynscaling", "dynscaling-parallel", "esc", "adaptive"])
    def test_spend_never_exceeds_the_budget_even_with_failures(self, strategy: str) -> None:
        model = SeededModel(delay=0.001, fail_rate=0.2)
        engine = Engine(make_questions(25), strategy, Budget(samples=70))
        result = run(engine, model, concurrency=8)
        assert result.samples <= 70
        assert model.served == result.samples  # every sample served was counted, nothing else was
        failed_calls = model.calls - sum(model.requests_with_n.values())
        assert failed_calls > 0
        assert sum(result.failures.values()) >= failed_calls

    def test_token_budget_reserves_before_sending(self) -> None:
        from dynscaling.solve import worst_case_cost

        budget = Budget(tokens=500)
        estimate = worst_case_cost(16, 0.0, 0.0, budget)
        assert estimate is not None
        engine = Engine(make_questions(20), "sc", budget, estimate_cost=estimate)
        result = run(engine, SeededModel(), concurrency=8)
        assert engine.ledger.spent_tokens == result.usage.total_tokens <= 500
        worst, _ = estimate(engine.questions[0], engine.sampler.messages(engine.questions[0], [], engine.rng))
        assert worst > 20  # the reservation is the worst case (prompt estimate + max_tokens), above the real 20
        # It stops only once no further worst case fits next to what was actually spent.
        assert 500 - result.usage.total_tokens < worst


class TestChoices:
    def test_samples_of_the_same_prompt_sent_together_share_one_request(self) -> None:
        model = SeededModel()
        engine = Engine(make_questions(4), "esc:w=4", Budget(samples=16))  # windows of 4 samples of one question
        result = run(engine, model, concurrency=16)  # all 16 leave at once: four groups of four
        assert result.samples == model.served
        assert max(model.requests_with_n) == 4


class TestJournal:
    def test_a_blank_database_gets_every_migration(self, tmp_path) -> None:  # noqa: ANN001
        with Journal(tmp_path / "j.sqlite") as journal:
            assert journal.migrations() == ["m001_initial", "m002_sample_logprob"]
        with Journal(tmp_path / "j.sqlite") as journal:  # migrating twice is a no-op
            assert journal.migrations() == ["m001_initial", "m002_sample_logprob"]

    def test_samples_with_the_same_prompt_are_kept_apart_by_index(self, tmp_path) -> None:  # noqa: ANN001
        engine = Engine(make_questions(3), "sc", Budget(samples=12))
        with Journal(tmp_path / "j.sqlite") as journal:
            log = journal.open_run(sample_key={"model": "m"}, run_key={"strategy": "sc"})
            run(engine, SeededModel(), concurrency=4, log=log)
        rows = sqlite3.connect(tmp_path / "j.sqlite").execute(
            "SELECT question_id, sample_index, messages_hash FROM samples").fetchall()
        assert len(rows) == 12
        assert len({(q, i) for q, i, _ in rows}) == 12
        assert len({h for _, _, h in rows}) == 3  # 4 samples per question share one prompt, yet all are kept

    def test_hashes_are_of_canonical_json(self) -> None:
        # the API key's absence from every hash input is proved end to end in test_claims.py (TestApiKey)
        assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
        assert stable_hash({"a": 1}).startswith("sha256:") and stable_hash({"a": 1}) != stable_hash({"a": 2})


class TestResume:
    @pytest.mark.parametrize("strategy", ["sc", "dynscaling-parallel", "dynscaling", "adaptive"])
    def test_an_interrupted_run_resumes_paying_only_for_what_was_in_flight(
            self, tmp_path, strategy: str) -> None:  # noqa: ANN001
        questions = make_questions(30)
        budget = Budget(samples=120)
        reference_model = SeededModel(delay=0.001)
        reference = run(Engine(questions, strategy, budget, seed=5), reference_model, concurrency=6, seed=5)

        journal = Journal(tmp_path / "j.sqlite")
        model = SeededModel(delay=0.001)

        async def interrupted() -> int:
            engine = Engine(questions, strategy, budget, seed=5)
            log = journal.open_run(sample_key={"m": 1}, run_key={"s": strategy})
            task = asyncio.ensure_future(arun(engine, model, concurrency=6, log=log, seed=5))
            while model.served < reference_model.served // 2:
                await asyncio.sleep(0.0005)
            in_flight = engine.inflight  # sent, and not yet journaled (some may have been served already)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return in_flight

        in_flight = asyncio.run(interrupted())
        served_before = model.served
        engine = Engine(questions, strategy, budget, seed=5)
        log = journal.open_run(sample_key={"m": 1}, run_key={"s": strategy})
        resumed = run(engine, model, concurrency=6, log=log, seed=5)
        assert model.served - reference_model.served <= in_flight
        assert served_before < model.served
        assert resumed.samples == reference.samples
        # Once complete, the same command again replays the journal's events: the same decisions, the same
        # answers, not one request.
        served = model.served
        engine = Engine(questions, strategy, budget, seed=5)
        log = journal.open_run(sample_key={"m": 1}, run_key={"s": strategy})
        again = run(engine, model, concurrency=6, log=log, seed=5)
        journal.close()
        assert model.served == served
        assert [r.to_dict() for r in again.results] == [r.to_dict() for r in resumed.results]

    def test_a_larger_budget_reuses_the_samples_already_paid_for(self, tmp_path) -> None:  # noqa: ANN001
        questions = make_questions(20)
        model = SeededModel()
        with Journal(tmp_path / "j.sqlite") as journal:
            for per_question in (2, 4):
                engine = Engine(questions, "sc", Budget(samples=per_question * 20), seed=1)
                log = journal.open_run(sample_key={"m": 1}, run_key={"s": "sc"})
                result = run(engine, model, concurrency=4, log=log, seed=1)
                assert result.samples == per_question * 20
        assert model.served == 80  # 40 for the first run, then only the 40 new ones

    def test_fresh_starts_over(self, tmp_path) -> None:  # noqa: ANN001
        questions = make_questions(5)
        model = SeededModel()
        with Journal(tmp_path / "j.sqlite") as journal:
            for fresh in (False, True):
                engine = Engine(questions, "sc", Budget(samples=10))
                log = journal.open_run(sample_key={"m": 1}, run_key={"s": "sc"}, fresh=fresh)
                run(engine, model, concurrency=2, log=log)
        assert model.served == 20
