"""Run safety of ``dynscaling solve`` (issue 10): failures are never final, exit statuses scripts can trust, a free
probe before paying, bounded backoff, budgets that hold whatever the user passes, one writer per journal,
no key needed for local servers, upstream errors shown and keys never; and ``--fresh`` (issue 13).

Every HTTP path is real: the replay server, ``fakes.ScriptedServer`` or ``run_safety_helpers.ModelsServer`` on
127.0.0.1, driven through the official ``openai`` SDK inside ``OpenAIBackend``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import Budget
from dynscaling.backends.openai import OpenAIBackend
from dynscaling.cli import cli
from dynscaling.drivers import RunStats
from dynscaling.errors import BackendError, ConfigError
from dynscaling.pools import Pool, load_pool
from dynscaling.replay_server import FaultPlan, ReplayServer
from dynscaling.solve import SolveConfig, asolve
from fakes import Reply, ScriptedServer, completion, error_body
from run_safety_helpers import (
    DATE_POOL,
    SECRET,
    ModelsServer,
    free_port,
    journal_counts,
    read_out,
    solve,
    write_batch,
)


@cache
def _date_pool() -> Pool:
    full = load_pool(DATE_POOL)
    return Pool(full.name, full.path, full.entries[:20])


@pytest.fixture(scope="module")
def pool() -> Pool:
    return _date_pool()


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "home"))


class TestFailFast:
    def test_nothing_listening_exits_3_with_the_url_leaves_no_answers_and_nothing_in_the_journal(
            self, pool: Pool, tmp_path: Path) -> None:
        url = f"http://127.0.0.1:{free_port()}/v1"
        out, journal = tmp_path / "out.jsonl", tmp_path / "j.sqlite"
        result = solve(url, pool.name, write_batch(pool, tmp_path / "in.jsonl"), out, journal)
        assert result.exit_code == 3, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and url in lines[0] and "cannot connect" in lines[0]
        assert "Traceback" not in result.output
        assert not out.exists()
        assert not journal.exists()  # the probe runs before the journal is opened
        # up again on the same address: the same command answers every question, no --fresh needed
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with ReplayServer(pool, port=port) as server:
            again = solve(url, server.model, write_batch(pool, tmp_path / "in.jsonl"), out, journal)
        assert again.exit_code == 0, again.output
        assert all(r["samples"] == 4 and "error" not in r for r in read_out(out))

    def test_an_unknown_host_is_configuration_exit_2(self, pool: Pool, tmp_path: Path) -> None:
        result = solve("http://no-such-host.invalid/v1", "m", write_batch(pool, tmp_path / "in.jsonl"),
                       tmp_path / "out.jsonl", tmp_path / "j.sqlite", "--no-api-key")
        assert result.exit_code == 2, result.output
        assert "no-such-host.invalid" in result.output and "cannot connect" in result.output

    def test_an_unknown_model_names_what_the_server_has(self, pool: Pool, tmp_path: Path) -> None:
        with ReplayServer(pool) as server:
            result = solve(server.base_url, "no-such-model", write_batch(pool, tmp_path / "in.jsonl"),
                           tmp_path / "out.jsonl", tmp_path / "j.sqlite")
            served = server.stats.snapshot()["requests"]
        assert result.exit_code == 2, result.output
        assert "'no-such-model' not found" in result.output and pool.name in result.output
        assert server.base_url in result.output
        assert served == 0

    @pytest.mark.parametrize("status", [401, 403])
    def test_a_rejected_key_stops_before_any_sample_and_is_masked(
            self, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with ModelsServer(status, "Incorrect API key provided") as server:
            result = solve(server.base_url, "m", write_batch(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                           tmp_path / "j.sqlite")
        assert result.exit_code == 2, result.output
        assert f"HTTP {status}: Incorrect API key provided" in result.output
        assert SECRET not in result.output
        assert server.posts == 0

    def test_the_circuit_breaker_stops_dispatching_keeps_everything_and_says_how_to_resume(
            self, pool: Pool, tmp_path: Path) -> None:
        out, journal = tmp_path / "out.jsonl", tmp_path / "j.sqlite"
        with ModelsServer(drop_posts=True) as server:
            result = solve(server.base_url, "m", write_batch(pool, tmp_path / "in.jsonl"), out, journal,
                           "--max-retries", "0", "--budget", "3")
        assert result.exit_code == 3, result.output
        assert "stopped after 3 requests in a row failed (connection)" in result.output
        assert "run: dynscaling solve" in result.output or "the same command" in result.output
        # 60 samples were budgeted; the breaker let through only what was in flight when it tripped
        assert server.posts <= 3 + 4
        rows = read_out(out)
        assert len(rows) == 20 and all("error" in r for r in rows)
        assert journal_counts(journal)["samples"] == 0


class TestFailuresAreNeverFinal:
    def test_endpoint_failing_then_up_the_same_command_answers_everything(self, pool: Pool, tmp_path: Path) -> None:
        batch, out, journal = write_batch(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl", tmp_path / "j.sqlite"
        port = free_port()
        url, model = f"http://127.0.0.1:{port}/v1", pool.name  # the replay server's one model is the pool's name
        with ModelsServer(models=(model,), post_status=503, post_message="overloaded, try later", port=port):
            first = solve(url, model, batch, out, journal, "--max-retries", "0", "--budget", "2")
        assert first.exit_code == 3, first.output
        rows = read_out(out)
        assert all(r["answer"] is None and "HTTP 503: overloaded, try later" in r["error"] for r in rows)
        assert "HTTP 503: overloaded, try later" in first.output  # the upstream's words reach the summary
        counts = journal_counts(journal)
        assert counts["samples"] == 0 and counts.get("failure", 0) > 0 and "result" not in counts

        with ReplayServer(pool, port=port) as server:
            second = solve(url, model, batch, out, journal, "--max-retries", "0", "--budget", "2")
            served = server.stats.snapshot()["samples"]
            third = solve(url, model, batch, out, journal, "--max-retries", "0", "--budget", "2")
            served_again = server.stats.snapshot()["samples"]
        assert second.exit_code == 0, second.output
        assert "20 questions failed before and were retried" in second.output
        rows = read_out(out)
        assert all(r["samples"] == 2 and "error" not in r for r in rows)
        assert served == 40
        assert third.exit_code == 0 and served_again == served  # finished: the re-run serves nothing
        assert "40 reused from the journal, 0 new" in third.output

    def test_a_failed_question_is_retried_while_answered_ones_are_reused(self, pool: Pool, tmp_path: Path) -> None:
        questions = pool.questions[:6]
        poisoned = questions[2]

        class PoisonedQuestion:
            """Fails every request of one question, passes the rest to a real backend."""

            def __init__(self, inner: OpenAIBackend, broken: bool) -> None:
                self.inner, self.broken = inner, broken

            async def agenerate(self, messages: list, n: int = 1, *, seed: int | None = None) -> list:
                if self.broken and poisoned.text in messages[0]["content"]:
                    raise BackendError("m: HTTP 500: cannot serve this one", retryable=True, kind="server_error")
                return await self.inner.agenerate(messages, n, seed=seed)

        async def run(broken: bool) -> tuple[RunStats, Any]:
            backend = OpenAIBackend(server.model, base_url=server.base_url)
            stats = RunStats()
            try:
                result = await asolve(questions, PoisonedQuestion(backend, broken),
                                      SolveConfig("sc", Budget(samples=12), concurrency=2),
                                      journal_path=tmp_path / "j.sqlite", stats=stats)
            finally:
                await backend.aclose()
            return stats, result

        with ReplayServer(pool) as server:
            stats, first = asyncio.run(run(broken=True))
            served_first = server.stats.snapshot()["samples"]
            again, second = asyncio.run(run(broken=False))
            served_second = server.stats.snapshot()["samples"]
        by_id = {r.question_id: r for r in first.results}
        assert by_id[poisoned.id].samples == 0 and "cannot serve this one" in stats.question_errors[poisoned.id]
        assert served_first == 12  # the failed question's share went to the others
        # The re-run decides again from the first failure on: the failed question gets its share, the others
        # are served theirs from the journal (the two extra samples stay journaled), and only two are paid for.
        assert again.retried == 1 and again.reused == 10 and again.new == 2
        assert served_second - served_first == 2
        assert all(r.samples == 2 for r in second.results)


class TestBackoff:
    def test_a_300_s_retry_after_fails_one_request_and_blocks_no_other(self) -> None:
        replies = [Reply(429, error_body("slow down", code="rate_limit_exceeded"), {"Retry-After": "300"}),
                   Reply(200, completion(["The answer is 1."]))]

        async def main(server: ScriptedServer) -> tuple[BackendError, list, float]:
            backend = OpenAIBackend("m", base_url=server.base_url, max_retries=3, max_retry_after=5.0)
            try:
                first = asyncio.ensure_future(backend.agenerate([{"role": "user", "content": "a"}]))
                error = await asyncio.gather(first, return_exceptions=True)
                # a 300 s wait would hang here: the guard turns that into a failure instead of a stuck suite
                other = await asyncio.wait_for(backend.agenerate([{"role": "user", "content": "b"}]), 60)
                return error[0], other, backend.backoff_remaining()
            finally:
                await backend.aclose()

        with ScriptedServer(replies) as server:
            error, other, backoff = asyncio.run(main(server))
        assert isinstance(error, BackendError) and error.kind == "rate_limit"
        assert "300 s, more than max_retry_after=5" in str(error)
        assert other[0].text == "The answer is 1."
        assert backoff == 0.0  # nothing shared was set: a wait beyond the limit is that request's alone
        assert len(server.requests) == 2  # the refused request was not retried

    def test_a_shared_backoff_never_exceeds_the_limit(self) -> None:
        async def main(server: ScriptedServer) -> float:
            backend = OpenAIBackend("m", base_url=server.base_url, max_retries=0, max_retry_after=4.0)
            try:
                with pytest.raises(BackendError, match="HTTP 429"):
                    await backend.agenerate([{"role": "user", "content": "a"}])
                return backend.backoff_remaining()
            finally:
                await backend.aclose()

        replies = [Reply(429, error_body("slow down", code="rate_limit_exceeded"), {"Retry-After": "3.5"})]
        with ScriptedServer(replies) as server:
            assert 0 < asyncio.run(main(server)) <= 4.0

    def test_solve_finishes_when_one_request_gets_retry_after_300(self, pool: Pool, tmp_path: Path) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?", "answer_type": "number"}) + "\n")
        replies = [Reply(429, error_body("slow down", code="rate_limit_exceeded"), {"Retry-After": "300"}),
                   Reply(200, completion(["So 2. The answer is 2."]))]
        with ScriptedServer(replies) as server:
            done = subprocess.run(  # a run that waited 300 s would be killed by the guard: a failure, not a hang
                [sys.executable, "-m", "dynscaling.cli", "solve", str(batch), "--out", str(tmp_path / "o.jsonl"),
                 "--base-url", server.base_url, "--model", "m", "--journal", str(tmp_path / "j.sqlite"),
                 "--strategy", "sc", "--budget", "1", "--max-retry-after", "10"],
                env={**os.environ}, capture_output=True, text=True, timeout=100)
        assert done.returncode == 0, done.stderr
        assert read_out(tmp_path / "o.jsonl")[0]["answer"] == "2"
        assert "rate_limit: 1" in done.stderr


class TestBudgetsHold:
    @pytest.mark.parametrize(("body", "option"), [
        ('{"n": 5}', "--budget"), ('{"max_tokens": 4000}', "--max-tokens"),
        ('{"max_completion_tokens": 4000}', "--max-tokens"), ('{"best_of": 4}', "--budget"),
        ('{"seed": 1}', "--seed")])
    def test_extra_body_may_not_set_what_the_budget_or_an_option_controls(
            self, pool: Pool, tmp_path: Path, body: str, option: str) -> None:
        with ScriptedServer([Reply(200, completion(["x"]))]) as server:
            result = solve(server.base_url, "m", write_batch(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl",
                           tmp_path / "j.sqlite", "--extra-body", body)
        assert result.exit_code == 2, result.output
        field = next(iter(json.loads(body)))
        assert f"--extra-body (extra_body) may not set {field!r}" in result.output and option in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert server.requests == []

    def test_extra_body_with_other_fields_is_sent(self, pool: Pool, tmp_path: Path) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?", "answer_type": "number"}) + "\n")
        with ScriptedServer([Reply(200, completion(["The answer is 2."]))]) as server:
            result = solve(server.base_url, "m", batch, tmp_path / "out.jsonl", tmp_path / "j.sqlite",
                           "--extra-body", '{"top_k": 20}', "--budget", "1")
        assert result.exit_code == 0, result.output
        assert server.requests[0]["body"]["top_k"] == 20 and server.requests[0]["body"]["n"] == 1

    def test_max_tokens_can_travel_as_max_completion_tokens(self, tmp_path: Path) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?", "answer_type": "number"}) + "\n")
        with ScriptedServer([Reply(200, completion(["The answer is 2."]))]) as server:
            result = solve(server.base_url, "m", batch, tmp_path / "out.jsonl", tmp_path / "j.sqlite",
                           "--max-tokens", "64", "--max-tokens-field", "max_completion_tokens", "--budget", "1")
        assert result.exit_code == 0, result.output
        sent = server.requests[0]["body"]
        assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent

    def test_choices_received_before_the_refills_failed_are_kept_and_paid_once(self) -> None:
        two = completion(["The answer is 1.", "The answer is 2."], prompt=10, completion_tokens=20)
        replies = [Reply(200, two), Reply(500, error_body("down", type_="server_error"))]

        async def main(server: ScriptedServer) -> BackendError:
            backend = OpenAIBackend("m", base_url=server.base_url, max_retries=1, backoff_base=0.0,
                                    backoff_max=0.0)
            try:
                with pytest.raises(BackendError) as caught:
                    await backend.agenerate([{"role": "user", "content": "q"}], 4, seed=10)
                return caught.value
            finally:
                await backend.aclose()

        with ScriptedServer(replies) as server:
            error = asyncio.run(main(server))
        assert error.kind == "fewer_choices"
        assert [s.text for s in error.samples] == ["The answer is 1.", "The answer is 2."]  # type: ignore[attr-defined]
        assert sum(s.usage.prompt_tokens + s.usage.completion_tokens for s in error.samples) == 30  # type: ignore[attr-defined]
        # the refills asked for samples 3 and 4 of the request (seeds 12, 13), each retried once
        assert sorted(r["body"]["seed"] for r in server.requests[1:]) == [12, 12, 13, 13]


class TestFewerChoicesWithFailingRefills:
    @settings(max_examples=10, deadline=None)
    @given(seed=st.integers(min_value=0, max_value=2**20))
    def test_the_server_never_serves_more_than_the_cap_and_every_choice_served_is_counted(self, seed: int) -> None:
        pool = _date_pool()  # not the fixture: hypothesis would print the whole pool with a failing example
        # Windows of 4 ask for 4 choices at once; half of those get fewer, and half of all requests (the refills
        # among them) fail with a 500, not retried: before, the choices that did arrive were dropped and asked
        # again.
        faults = FaultPlan(fewer_choices=0.5, server_error=0.5)
        questions = pool.questions[:10]
        cap = 28

        async def run() -> Any:
            backend = OpenAIBackend(server.model, base_url=server.base_url, max_retries=0)
            try:
                return await asolve(questions, backend, SolveConfig("esc:w=4", Budget(samples=cap), seed=seed,
                                                                   concurrency=8))
            finally:
                await backend.aclose()

        with ReplayServer(pool, seed=seed, faults=faults) as server:
            result = asyncio.run(run())
            stats = server.stats.snapshot()
        assert stats["faults"].get("fewer_choices", 0) > 0 or stats["faults"].get("server_error", 0) > 0
        assert stats["samples"] <= cap
        assert result.samples == stats["samples"]  # nothing served was dropped, nothing was counted twice
        assert result.usage.completion_tokens == stats["completion_tokens"]  # the bill is what the server reported


class TestKeysAndNumbers:
    def test_a_local_server_needs_no_key(self, tmp_path: Path) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?", "answer_type": "number"}) + "\n")
        with ScriptedServer([Reply(200, completion(["The answer is 2."]))]) as server:
            result = solve(server.base_url, "m", batch, tmp_path / "out.jsonl", tmp_path / "j.sqlite", "--budget", "1")
        assert result.exit_code == 0, result.output
        assert server.requests[0]["headers"]["authorization"] == "Bearer EMPTY"

    def test_a_remote_host_still_needs_a_key_unless_told_otherwise(self, tmp_path: Path) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "q"}) + "\n")
        result = solve("https://api.openai.com/v1", "gpt-4o-mini", batch, tmp_path / "o.jsonl", tmp_path / "j.sqlite")
        assert result.exit_code == 2
        assert "no API key for https://api.openai.com/v1" in result.output and "OPENAI_API_KEY" in result.output
        with pytest.raises(ConfigError):
            OpenAIBackend("m", base_url="https://gateway.example.com/v1")
        assert OpenAIBackend("m", base_url="https://gateway.example.com/v1", allow_no_key=True)
        assert OpenAIBackend("m", base_url="http://10.1.2.3:8000/v1")  # a private network counts as local

    @pytest.mark.parametrize(("option", "value"), [
        ("--budget", "nan"), ("--budget", "inf"), ("--budget", "-1"), ("--budget", "x"), ("--budget-usd", "nan"),
        ("--temperature", "nan"), ("--timeout", "inf"), ("--top-p", "0")])
    def test_bad_numbers_are_exit_2_without_a_traceback(self, tmp_path: Path, option: str, value: str) -> None:
        batch = tmp_path / "in.jsonl"
        batch.write_text(json.dumps({"id": "a", "question": "q"}) + "\n")
        result = solve("http://127.0.0.1:9/v1", "m", batch, tmp_path / "o.jsonl", tmp_path / "j.sqlite", option,
                       value)
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}'" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


class TestErrorsReachTheUser:
    def test_the_upstream_status_and_message_are_in_the_summary_and_the_lines_with_the_key_masked(
            self, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        replies = [Reply(404, error_body("The model 'x' does not exist", code="model_not_found"))]
        with ScriptedServer(replies, echo_auth=True) as server:
            result = solve(server.base_url, "x", write_batch(pool, tmp_path / "in.jsonl", 3), tmp_path / "o.jsonl",
                           tmp_path / "j.sqlite", "--budget", "1")
        assert result.exit_code == 3, result.output
        assert "HTTP 404: The model 'x' does not exist" in result.output
        assert "Bearer ***" in result.output  # the echoed key, masked
        text = (tmp_path / "o.jsonl").read_text()
        assert "HTTP 404: The model 'x' does not exist" in text
        for written in (result.output, text, *(p.read_bytes().decode("latin-1") for p in tmp_path.glob("j.sqlite*"))):
            assert SECRET not in written


class TestFresh:
    def test_fresh_after_budgets_2_and_4_pays_for_all_4_x_q_again(self, pool: Pool, tmp_path: Path) -> None:
        batch, out, journal = write_batch(pool, tmp_path / "in.jsonl"), tmp_path / "out.jsonl", tmp_path / "j.sqlite"
        served = []
        with ReplayServer(pool) as server:
            for budget, fresh in (("2", ()), ("4", ()), ("4", ("--fresh",))):
                result = solve(server.base_url, server.model, batch, out, journal, "--budget", budget, *fresh)
                assert result.exit_code == 0, result.output
                served.append(server.stats.snapshot()["samples"])
        # a larger budget reuses every sample through solve's own path (the budget is in the run key) ...
        assert served[:2] == [40, 80]
        # ... and --fresh starts over for the question set, whatever budgets ran before
        assert served[2] - served[1] == 80
        assert all(r["samples"] == 4 for r in read_out(out))


def test_bench_against_a_local_server_needs_no_key(shared_data: Path, shared_pool: Any, tmp_path: Path) -> None:
    full = shared_pool("gpt4_gsm8k_x12")
    gsm8k = Pool(full.name, full.path, full.entries[:10])
    with ReplayServer(gsm8k) as server:
        result = CliRunner().invoke(cli, [
            "bench", "--dataset", "gsm8k", "--data-dir", str(shared_data / "benchmarks"), "--limit", "10",
            "--base-url", server.base_url, "--model", server.model, "--strategies", "sc", "--budgets", "1",
            "--journal", str(tmp_path / "j.sqlite"), "--out", str(tmp_path / "run"), "--yes"])
        served = server.stats.snapshot()["samples"]
    assert result.exit_code == 0, result.output
    assert served == 10


class TestRedact:
    def test_the_key_we_sent_and_anything_shaped_like_a_key_are_masked(self) -> None:
        from dynscaling.errors import redact

        echoed = f"HTTP 401: bad key {SECRET} (you sent Bearer abc123xyz); see https://x/v1?key=AIzaSyQ&x=1"
        assert redact(echoed, [SECRET]) == "HTTP 401: bad key *** (you sent Bearer ***); see https://x/v1?key=***&x=1"
        assert redact("a key we never saw: sk-proj-0123456789abcdef") == "a key we never saw: ***"
        plain = "model 'x' not found; the key-value cache is full; sk-learn"
        assert redact(plain, ["x", ""]) == plain  # short secrets and ordinary words are left alone


class TestProbeNames:
    @pytest.mark.parametrize(("listed", "asked"), [
        ("llama3:latest", "llama3"), ("models/gemini-2.0-flash", "gemini-2.0-flash"), ("m", "m")])
    def test_names_a_server_lists_in_its_own_way_are_accepted(self, listed: str, asked: str) -> None:
        async def main(server: ModelsServer) -> list[str] | None:
            backend = OpenAIBackend(asked, base_url=server.base_url)
            try:
                return await backend.probe()
            finally:
                await backend.aclose()

        with ModelsServer(models=(listed,)) as server:
            assert asyncio.run(main(server)) == [listed]

    def test_help_documents_the_exit_statuses(self) -> None:
        text = CliRunner().invoke(cli, ["solve", "--help"]).output
        for status in ("0    every question answered", "2    bad input", "3    some questions", "130  interrupted"):
            assert status in text
