"""The README's claims, each proved through the path a user takes (engine, ``replay``, ``asolve``, the CLI against
the replay server over real HTTP), with small pools written by the test so that nothing here needs ../shared.

Each test pins a figure derived by hand from the rule it checks, so that a small change to that rule (the ones
issue 13 lists: confidence without the runner-up, the journal ignoring prompts, caps ignored, the dollar slack,
the bandit's retirement test, its exploration bonus, ``stop_max``, reuse across budgets) makes it fail.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dynscaling import Budget, ConfigError, Engine, Question, Sample, Usage, load_pool, replay
from dynscaling.answers import AnswerClusterer
from dynscaling.backends.openai import OpenAIBackend
from dynscaling.budget import Ledger
from dynscaling.cli import cli
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.replay_server import ReplayServer
from dynscaling.solve import SolveConfig, asolve
from fakes import write_pool

KEY = "sk-test-claims"


def binomial_confidence(v1: int, v2: int) -> float:
    """The README's formula, written out independently: P(Binomial(v1 + v2 + 1, 1/2) <= v1)."""
    n = v1 + v2 + 1
    return float(Fraction(sum(comb(n, k) for k in range(v1 + 1)), 2**n))


def number_pool(tmp_path: Path, answers: list[list[str | None]], name: str = "pool.jsonl") -> Pool:
    """Question i is "What is i?"; its samples answer ``answers[i]`` in that order (the server shuffles them)."""
    records = [{"id": f"q{i}", "question": f"What is question number {i}?", "gold": "1", "answer_type": "number",
                "samples": [{"text": f"Working on {i}, try {j}. The answer is {a}." if a is not None else
                             "I cannot tell.", "answer": a} for j, a in enumerate(row)]}
               for i, row in enumerate(answers)]
    return load_pool(write_pool(tmp_path / name, records))


def batch_file(pool: Pool, path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": q.id, "question": q.text, "answer_type": q.answer_type,
                                        "gold": q.gold}) + "\n" for q in pool.questions))
    return path


def run_solve(server: ReplayServer, batch: Path, out: Path, journal: Path, *extra: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["solve", str(batch), "--out", str(out), "--base-url", server.base_url,
                                      "--model", server.model, "--journal", str(journal), *extra],
                                env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def scripted_engine(script: list[list[str]], strategy: str, budget: Budget) -> Engine:
    """Run ``strategy`` where question i's n-th sample answers ``script[i][n % len]``, one request at a time."""
    questions = [Question(f"q{i}", f"question {i}", "number", gold="1") for i in range(len(script))]
    engine = Engine(questions, strategy, budget, needs_messages=False)
    while (request := engine.next_request()) is not None:
        answers = script[request.question_index]
        answer = answers[request.sample_index % len(answers)]
        engine.deliver(request, Sample(f"The answer is {answer}.", answer, Usage(completion_tokens=1)))
    return engine


async def solve_with_server(server: ReplayServer, questions: list[Question], config: SolveConfig,
                            journal: Path) -> Any:
    backend = OpenAIBackend(server.model, base_url=server.base_url, api_key=KEY)
    try:
        return await asolve(questions, backend, config, journal_path=journal)
    finally:
        await backend.aclose()


# ---- the confidence uses the runner-up ----------------------------------------------------------------------

TALLY = ["1", "1", "1", "2", "2", "3"]  # leader 3 votes, runner-up 2, a third class 1: confidence of (3, 2)


class TestConfidenceIsTheFormulaOnTheTopTwo:
    def test_the_formula_matches_the_readme_values(self) -> None:
        assert binomial_confidence(3, 2) == 42 / 64
        assert binomial_confidence(1, 0) == 0.75

    def test_through_the_engine(self) -> None:
        engine = scripted_engine([TALLY, ["4", "4", "5", "5", "4", "4"]], "sc", Budget(samples=12))
        first, second = engine.result().results
        assert (first.answer, first.votes) == ("1", (("1", 3), ("2", 2), ("3", 1)))
        assert first.confidence == pytest.approx(binomial_confidence(3, 2), abs=1e-15)
        assert second.confidence == pytest.approx(binomial_confidence(4, 2), abs=1e-15)

    def test_in_the_output_lines_of_solve(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [TALLY, ["7", None, "7", "8", "9", "9"]])
        with ReplayServer(pool, seed=4) as server:
            rows = run_solve(server, batch_file(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                             tmp_path / "j.sqlite", "--strategy", "sc", "--budget", "6")
        assert [r["samples"] for r in rows] == [6, 6]  # every sample of each question was served
        assert rows[0]["confidence"] == round(binomial_confidence(3, 2), 6)
        # a tie (2, 2) between 7 and 9; the abstention counts nowhere
        assert rows[1]["confidence"] == round(binomial_confidence(2, 2), 6) and rows[1]["abstentions"] == 1

    def test_through_asolve(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [TALLY])
        with ReplayServer(pool, seed=2) as server:
            result = asyncio.run(solve_with_server(server, list(pool.questions),
                                                   SolveConfig("sc", Budget(samples=6)), tmp_path / "j.sqlite"))
        assert result.results[0].confidence == pytest.approx(binomial_confidence(3, 2), abs=1e-15)


# ---- the journal: prompts key the samples, budgets do not -----------------------------------------------------

class TestJournal:
    def test_a_chain_sample_never_answers_for_an_independent_one(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [["1", "2"] * 5, ["3", "3", "4"] * 3])
        questions = list(pool.questions)
        journal = tmp_path / "j.sqlite"
        with ReplayServer(pool, seed=1) as server:
            # samples 0 independent, 1 and 2 chains (one request at a time, so each chain sees the answer before)
            chains = asyncio.run(solve_with_server(
                server, questions, SolveConfig("integrated-uniform:k0=1", Budget(samples=6), concurrency=1),
                journal))
            after_chains = server.stats.snapshot()["samples"]
            independent = asyncio.run(solve_with_server(
                server, questions, SolveConfig("sc", Budget(samples=6), concurrency=1), journal))
            total = server.stats.snapshot()["samples"]
        assert chains.samples == independent.samples == after_chains == 6
        # Same sample key (same backend, same seed): sample 0 of each question is reused, samples 1 and 2 were
        # chains and must be asked for again as independent samples.
        assert total - after_chains == 4

    def test_a_larger_budget_through_solve_pays_only_for_the_new_samples(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [[str(j % 3) for j in range(12)] for _ in range(5)])
        batch, journal = batch_file(pool, tmp_path / "in.jsonl"), tmp_path / "j.sqlite"
        served = []
        with ReplayServer(pool, seed=9) as server:
            for budget in ("2", "4", "4"):
                rows = run_solve(server, batch, tmp_path / f"out{budget}.jsonl", journal, "--strategy", "sc",
                                 "--budget", budget, "--concurrency", "4")
                assert [r["samples"] for r in rows] == [int(budget)] * 5
                served.append(server.stats.snapshot()["samples"])
        # budget 2 pays 10; budget 4 (another run key) reuses those 10 and pays 10; the same run again pays 0
        assert served == [10, 20, 20]


# ---- token and dollar caps ------------------------------------------------------------------------------------

def costed_pool(tokens: int, usd: float, questions: int = 3, samples: int = 10) -> Pool:
    """A pool in memory whose every sample costs ``tokens`` tokens and ``usd`` dollars."""
    entries = []
    for i in range(questions):
        clusterer = AnswerClusterer("number")
        answers = tuple(str(j % 2) for j in range(samples))
        classes = tuple(clusterer.assign(a) for a in answers)
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "number", gold="1"), answers, answers,
                                    classes, tuple(Usage(completion_tokens=tokens, cost_usd=usd) for _ in answers),
                                    clusterer))
    return Pool("costed", "<memory>", tuple(entries))


class TestCaps:
    def test_replay_stops_at_the_token_cap(self) -> None:
        result = replay(costed_pool(tokens=10, usd=0.0), "sc", Budget(tokens=75))
        assert result.samples == 7 and result.usage.total_tokens == 70

    def test_replay_stops_at_the_dollar_cap_without_a_thousandth_of_slack(self) -> None:
        # six samples cost 0.009; a seventh would cost 0.0105 > 0.01
        result = replay(costed_pool(tokens=1, usd=0.0015), "sc", Budget(usd=0.01))
        assert result.samples == 6 and result.usage.cost_usd == pytest.approx(0.009)

    def test_a_dollar_cap_met_exactly_is_not_lost_to_rounding(self) -> None:
        assert 0.1 + 0.1 + 0.1 > 0.3  # binary floating point: the cap is met exactly, yet the sum is above it
        assert replay(costed_pool(tokens=1, usd=0.1), "sc", Budget(usd=0.3)).samples == 3
        ledger = Ledger(Budget(usd=0.3))
        for _ in range(3):
            reservation = ledger.reserve(usd=0.1)
            assert reservation is not None
            ledger.settle(reservation, Usage(cost_usd=0.1))
        assert ledger.reserve(usd=0.0005) is None and ledger.exhausted is False

    def test_the_reserve_path_refuses_a_thousandth_over_the_cap(self) -> None:
        ledger = Ledger(Budget(usd=0.01))
        assert ledger.reserve(usd=0.0105) is None
        assert ledger.reserve(usd=0.01) is not None

    def test_engine_with_worst_case_reservations_stays_under_both_caps(self) -> None:
        questions = [Question(f"q{i}", f"question {i}", "number") for i in range(3)]
        engine = Engine(questions, "sc", Budget(tokens=100, usd=0.05), needs_messages=False,
                        estimate_cost=lambda q, m: (30, 0.011))
        sent = 0
        while (request := engine.next_request()) is not None:
            sent += 1
            engine.deliver(request, Sample("The answer is 1.", "1", Usage(completion_tokens=20, cost_usd=0.009)))
        # tokens: each request reserves 30 and spends 20; after 4 (80 spent) a fifth reservation (110) does not fit
        assert sent == 4 and engine.ledger.spent_tokens == 80

    def test_solve_budget_tokens_against_the_replay_server(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [[str(j % 2) for j in range(20)] for _ in range(4)])
        with ReplayServer(pool, seed=3) as server:
            rows = run_solve(server, batch_file(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                             tmp_path / "j.sqlite", "--strategy", "sc", "--budget-tokens", "900",
                             "--max-tokens", "60", "--concurrency", "3")
            served = server.stats.snapshot()
        spent = sum(r["usage"]["total_tokens"] for r in rows)
        samples = sum(r["samples"] for r in rows)
        assert spent <= 900 and samples == served["samples"]
        assert samples >= 4  # it did spend the budget, not stop at once
        # it stops only when one more worst case (prompt estimate + 60) no longer fits
        assert 900 - spent < 60 + 100

    def test_solve_budget_usd_against_the_replay_server(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [[str(j % 2) for j in range(20)] for _ in range(4)])
        with ReplayServer(pool, seed=3) as server:
            rows = run_solve(server, batch_file(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                             tmp_path / "j.sqlite", "--strategy", "sc", "--budget-usd", "0.002",
                             "--max-tokens", "60", "--price", "1,10", "--concurrency", "3")
            served = server.stats.snapshot()["samples"]
        cost = sum(r["usage"]["cost_usd"] for r in rows)
        assert cost <= 0.002 + 1e-9 and sum(r["samples"] for r in rows) == served >= 2
        # a worst case costs at most (~100 prompt + 60 completion tokens) at $1/$10 per million: ~0.0007
        assert 0.002 - cost < 0.0007

    def test_a_bad_budget_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [["1"]])
        result = CliRunner().invoke(cli, ["solve", str(batch_file(pool, tmp_path / "in.jsonl")), "--out",
                                          str(tmp_path / "o.jsonl"), "--base-url", "http://127.0.0.1:9/v1",
                                          "--model", "m", "--budget-usd", "1"], env={"OPENAI_API_KEY": KEY})
        assert result.exit_code == 2 and "--price" in result.output and "Traceback" not in result.output


class TestLedgerCharge:
    """``Ledger.charge`` is replay's reserve-and-settle in one step: it refuses, charging nothing, what does not fit
    next to what is spent *and* what is reserved (a live request in flight holds its room)."""

    def test_the_sample_cap_counts_what_is_in_flight(self) -> None:
        ledger = Ledger(Budget(samples=3))
        held = ledger.reserve()
        assert held is not None
        assert ledger.charge(Usage(completion_tokens=1)) and ledger.charge(Usage(completion_tokens=1))
        assert not ledger.charge(Usage(completion_tokens=1))  # 2 spent + 1 reserved: full
        assert (ledger.spent_samples, ledger.spent_tokens) == (2, 2)
        ledger.release(held)
        assert ledger.charge(Usage()) and not ledger.charge(Usage())
        assert ledger.spent_samples == 3

    def test_the_token_cap_counts_what_is_in_flight_and_may_be_met_exactly(self) -> None:
        ledger = Ledger(Budget(tokens=30))
        held = ledger.reserve(tokens=10)
        assert held is not None
        assert ledger.charge(Usage(prompt_tokens=5, completion_tokens=5))  # 10 spent + 10 reserved
        assert not ledger.charge(Usage(completion_tokens=11))  # 31 > 30, nothing charged
        assert ledger.charge(Usage(completion_tokens=10))  # exactly 30
        assert (ledger.spent_samples, ledger.spent_tokens) == (2, 20)
        assert not ledger.charge(Usage(completion_tokens=1))

    def test_the_dollar_cap_counts_what_is_in_flight_and_accepts_the_rounding_slack(self) -> None:
        ledger = Ledger(Budget(usd=1.0))
        held = ledger.reserve(usd=0.5)
        assert held is not None
        assert not ledger.charge(Usage(cost_usd=0.6))  # 0.5 reserved + 0.6 > 1
        assert ledger.charge(Usage(cost_usd=0.5)) and ledger.spent_usd == 0.5
        ledger.release(held)
        assert ledger.charge(Usage(cost_usd=0.5 + 1e-12))  # within the slack of 1e-12: accepted
        assert not ledger.charge(Usage(cost_usd=1e-12))


class TestLedgerReserve:
    def test_a_bare_reservation_holds_one_sample_and_nothing_else(self) -> None:
        ledger = Ledger(Budget(samples=5, tokens=5, usd=1.0))
        assert ledger.reserve() is not None
        assert (ledger.reserved_samples, ledger.reserved_tokens, ledger.reserved_usd) == (1, 0, 0.0)

    @pytest.mark.parametrize("usd", [0.5, 1.0])
    def test_a_dollar_reservation_holds_its_dollars(self, usd: float) -> None:
        ledger = Ledger(Budget(usd=1.5))
        held = ledger.reserve(usd=usd)
        assert held is not None and ledger.reserved_usd == usd
        assert ledger.reserve(usd=1.5 - usd + 0.01) is None
        ledger.release(held)
        assert ledger.reserved_usd == 0.0 and ledger.reserve(usd=1.5) is not None

    def test_the_rounding_slack_is_inclusive_when_reserving(self) -> None:
        assert Ledger(Budget(usd=1.0)).reserve(usd=1.0 + 1e-12) is not None

    def test_a_token_cap_met_exactly_still_leaves_room_for_a_free_sample(self) -> None:
        ledger = Ledger(Budget(tokens=10))
        assert ledger.charge(Usage(completion_tokens=10))
        assert ledger.can_reserve() and not ledger.exhausted
        assert not ledger.can_reserve(tokens=1)


class TestBudgetErrors:
    def test_no_cap_at_all_is_one_clear_sentence(self) -> None:
        with pytest.raises(ConfigError, match=r"^a budget needs at least one cap: samples, tokens or usd$"):
            Budget()

    @pytest.mark.parametrize("caps", [{"samples": 2.5}, {"tokens": 10.0}, {"samples": True}, {"tokens": False}])
    def test_sample_and_token_caps_must_be_whole_numbers(self, caps: dict[str, Any]) -> None:
        name = next(iter(caps))
        with pytest.raises(ConfigError, match=f"budget {name} must be a whole number"):
            Budget(**caps)


# ---- the bandit, through its public parameters -----------------------------------------------------------------

def samples_per_question(engine: Engine) -> list[int]:
    return [r.samples for r in engine.result().results]


class TestBandit:
    def test_a_question_retires_when_its_confidence_equals_stop(self) -> None:
        # unanimous answers: confidence after n samples is 1 - 2^-(n+1); 0.875 is reached exactly at n = 2
        assert binomial_confidence(2, 0) == 0.875
        engine = scripted_engine([["1"], ["2"]], "ucb:k0=1,c=0,stop=0.875", Budget(samples=20))
        assert samples_per_question(engine) == [2, 2]

    def test_with_c_large_the_bonus_spreads_samples_over_questions_that_never_settle(self) -> None:
        # Three questions split 50/50 for ever, one that is split 1-2-1-2 too: with a large bonus c, the
        # least-sampled question always has the highest priority, so counts stay within one of each other.
        split = ["1", "2"]
        engine = scripted_engine([split, split, split], "ucb:k0=1,c=100,stop=1.0",
                                 Budget(samples=31))
        counts = samples_per_question(engine)
        assert sum(counts) == 31 and max(counts) - min(counts) <= 1

    def test_without_the_bonus_scores_decide_and_c_changes_the_allocation(self) -> None:
        # q0 is settled-looking (4 of 5 agree), q1 split: c=0 pours everything into q1; a large c does not
        script = [["1", "1", "1", "1", "2"], ["1", "2"]]
        greedy = samples_per_question(scripted_engine(script, "ucb:k0=2,c=0,stop=1.0",
                                                      Budget(samples=30)))
        explore = samples_per_question(scripted_engine(script, "ucb:k0=2,c=50,stop=1.0",
                                                       Budget(samples=30)))
        assert greedy[1] > greedy[0] and explore[0] > greedy[0]
        assert abs(explore[0] - explore[1]) <= 1

    def test_stop_max_raises_the_bar_once_every_question_has_settled(self) -> None:
        # unanimous answers: 1 sample reaches 0.75; the smallest n with 1 - 2^-(n+1) >= 0.99 is 6
        assert binomial_confidence(5, 0) < 0.99 <= binomial_confidence(6, 0)
        without = scripted_engine([["1"], ["2"]], "ucb:k0=1,stop=0.75", Budget(samples=40))
        with_max = scripted_engine([["1"], ["2"]], "ucb:k0=1,stop=0.75,stop_max=0.99",
                                   Budget(samples=40))
        assert samples_per_question(without) == [1, 1]
        assert samples_per_question(with_max) == [6, 6]
        assert all(r.confidence >= 0.99 for r in with_max.result().results)

    def test_stop_max_never_spends_past_the_budget(self) -> None:
        engine = scripted_engine([["1"], ["2"]], "ucb:k0=1,stop=0.75,stop_max=0.99",
                                 Budget(samples=7))
        assert sum(samples_per_question(engine)) == 7


# ---- the API key is not part of any hash input ----------------------------------------------------------------

class TestApiKey:
    def test_another_key_reuses_the_journal_and_no_key_is_written(self, tmp_path: Path) -> None:
        pool = number_pool(tmp_path, [[str(j % 3) for j in range(6)] for _ in range(3)])
        batch, journal = batch_file(pool, tmp_path / "in.jsonl"), tmp_path / "j.sqlite"
        keys = ["sk-first-key-0a1b2c", "sk-second-key-3d4e5f"]
        served = []
        with ReplayServer(pool, seed=2) as server:
            for key in keys:
                result = CliRunner().invoke(cli, ["solve", str(batch), "--out", str(tmp_path / "out.jsonl"),
                                                  "--base-url", server.base_url, "--model", server.model,
                                                  "--journal", str(journal), "--strategy", "sc", "--budget", "2"],
                                            env={"OPENAI_API_KEY": key})
                assert result.exit_code == 0, result.output
                served.append(server.stats.snapshot()["samples"])
        assert served == [6, 6]  # the second key is the same run and the same samples: nothing paid twice
        rows = sqlite3.connect(journal).execute("SELECT run_key, sample_key, description FROM runs").fetchall()
        assert len(rows) == 1
        written = b"".join(p.read_bytes() for p in tmp_path.glob("j.sqlite*"))
        assert written and not any(key.encode() in written for key in keys)
