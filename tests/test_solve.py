"""`dynscaling solve` against the replay server over real HTTP (the official openai SDK inside OpenAIBackend),
compared with the in-process replay backend on the same pool: same accuracy, nothing paid twice after a SIGKILL,
faults survived and counted, the budget held server-side, and the API key never written anywhere."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynscaling import Budget, canonical_key, load_pool, replay
from dynscaling.backends.openai import OpenAIBackend
from dynscaling.cli import cli
from dynscaling.pools import Pool, bundled_pools
from dynscaling.replay_server import FaultPlan, ReplayServer
from dynscaling.solve import SolveConfig, asolve

SECRET = "sk-test-SECRET-7f3a9b"
DATE_POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))
QUESTIONS = 300


@pytest.fixture(scope="module")
def pool() -> Pool:
    full = load_pool(DATE_POOL)
    return Pool(full.name, full.path, full.entries[:QUESTIONS])


@pytest.fixture()
def batch_file(pool: Pool, tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    with path.open("w") as out:
        for e in pool.entries:
            out.write(json.dumps({"id": e.question.id, "question": e.question.text, "answer_type": "date",
                                  "gold": e.question.gold}) + "\n")
    return path


def solve_args(server: ReplayServer, batch: Path, out: Path, journal: Path, *extra: str) -> list[str]:
    return ["solve", str(batch), "--out", str(out), "--base-url", server.base_url, "--model", server.model,
            "--journal", str(journal), "--concurrency", "8", *extra]


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def accuracy(rows: list[dict]) -> float:
    return sum(bool(r["correct"]) for r in rows) / len(rows)


class TestSameAccuracyAsReplay:
    def test_self_consistency_over_http_equals_the_replay_backend_with_the_same_seed(
            self, pool: Pool, batch_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with ReplayServer(pool, seed=7) as server:
            result = CliRunner().invoke(cli, solve_args(server, batch_file, tmp_path / "out.jsonl",
                                                        tmp_path / "j.sqlite", "--strategy", "sc", "--budget", "4"))
            served = server.stats.snapshot()["samples"]
        assert result.exit_code == 0, result.output
        rows = read_out(tmp_path / "out.jsonl")
        expected = replay(pool, "sc", Budget(samples=4 * QUESTIONS), seed=7)
        # The server serves each question's samples in the replay backend's order for its seed, and uniform
        # allocation does not depend on timing, so the votes are the same, question by question.
        assert served == 4 * QUESTIONS
        assert accuracy(rows) == expected.accuracy
        assert [canonical_key(r["answer"], "date") for r in rows] == \
            [canonical_key(r.answer, "date") for r in expected.results]

    def test_the_bandit_over_http_lands_inside_the_replay_interval(
            self, pool: Pool, batch_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with ReplayServer(pool, seed=11) as server:
            result = CliRunner().invoke(cli, solve_args(
                server, batch_file, tmp_path / "out.jsonl", tmp_path / "j.sqlite",
                "--strategy", "dynscaling-parallel", "--budget", "4"))
            served = server.stats.snapshot()["samples"]
        assert result.exit_code == 0, result.output
        live = accuracy(read_out(tmp_path / "out.jsonl"))
        seeds = [replay(pool, "dynscaling-parallel", Budget(samples=4 * QUESTIONS), seed=s).accuracy
                 for s in range(10)]
        mean, sd = statistics.fmean(seeds), statistics.stdev(seeds)
        # One live run is one more draw: a 95% prediction interval for it (t with 9 degrees of freedom).
        half = 2.262 * sd * math.sqrt(1 + 1 / len(seeds))
        assert abs(live - mean) <= max(half, 0.5 / QUESTIONS), (live, mean, half)
        assert served <= 4 * QUESTIONS


class TestKilledHalfway:
    def test_a_sigkilled_run_resumes_paying_only_for_what_was_in_flight(
            self, pool: Pool, batch_file: Path, tmp_path: Path) -> None:
        out = tmp_path / "out.jsonl"
        env = {**os.environ, "OPENAI_API_KEY": SECRET, "DYNSCALING_HOME": str(tmp_path / "home")}
        budget = 4
        with ReplayServer(pool, seed=3, latency=0.02, slots=8) as server:
            args = [sys.executable, "-m", "dynscaling.cli", *solve_args(
                server, batch_file, out, tmp_path / "j.sqlite", "--strategy", "sc", "--budget", str(budget))]
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 900  # only a guard against a hung child: a loaded machine is slow
            while server.stats.snapshot()["samples"] < budget * QUESTIONS // 2:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait()
            served_at_kill = server.stats.snapshot()["samples"]
            assert not out.exists()  # the output is written whole at the end, never half
            finished = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
            total = server.stats.snapshot()["samples"]
        assert finished.returncode == 0, finished.stderr
        rows = read_out(out)
        assert [r["id"] for r in rows] == [e.question.id for e in pool.entries]
        assert all(r["samples"] == budget for r in rows)
        # The uninterrupted run would be served budget * QUESTIONS samples; the extra is what was in flight
        # (sent, not yet journaled) at the kill: at most the concurrency.
        assert budget * QUESTIONS <= total <= budget * QUESTIONS + 8
        assert served_at_kill < total
        assert "reused from the journal" in finished.stderr


class TestFaults:
    def test_under_injected_faults_the_run_completes_within_budget_and_counts_every_failure(
            self, pool: Pool, tmp_path: Path) -> None:
        # The client's timeout is far above any honest response time on a loaded machine, so only the
        # injected hangs (longer still) time out, and each failure below is exactly one the server injected.
        faults = FaultPlan(rate_limit=0.05, server_error=0.05, timeout=0.02, empty=0.05, length=0.05,
                           fewer_choices=0.2, retry_after=0.05, hang_seconds=60.0)
        questions = pool.questions[:120]
        budget = Budget(samples=3 * len(questions))

        async def run() -> tuple:
            backend = OpenAIBackend(server.model, base_url=server.base_url, api_key=SECRET, timeout=5.0,
                                    max_retries=2, backoff_base=0.01, backoff_max=0.05)
            try:
                result = await asolve(questions, backend, SolveConfig("esc:w=3", budget, concurrency=8),
                                      journal_path=tmp_path / "j.sqlite")
            finally:
                await backend.aclose()
            return result, backend

        with ReplayServer(pool, seed=5, faults=faults) as server:
            result, backend = asyncio.run(run())
            stats = server.stats.snapshot()
        assert len(result.results) == 120
        assert stats["samples"] <= budget.samples  # server-side count: the budget held
        assert result.samples <= budget.samples
        injected = stats["faults"]
        for kind in ("rate_limit", "server_error", "timeout"):
            assert injected.get(kind, 0) > 0
            assert backend.errors[kind] == injected[kind]  # every failed attempt was seen and counted
        assert backend.requests == stats["requests"]  # every attempt reached the server and was counted once
        # Every sample the server handed out was counted, and so was every empty reply (an abstention the
        # server draws from no pool sample): nothing paid for was lost. The refill of short replies is
        # tested in test_openai_backend (this run's requests are n=1, so fewer_choices never fires here).
        assert result.samples == stats["samples"] + injected.get("empty", 0)
        truncated_or_empty = injected.get("empty", 0) + injected.get("length", 0)
        assert sum(r.abstentions for r in result.results) >= truncated_or_empty


class TestSecrets:
    def test_the_api_key_never_appears_in_output_journal_or_logs(
            self, pool: Pool, batch_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            caplog: pytest.LogCaptureFixture) -> None:
        monkeypatch.setenv("MY_KEY", SECRET)
        caplog.set_level("DEBUG")
        small = tmp_path / "small.jsonl"
        small.write_text("\n".join(batch_file.read_text().splitlines()[:30]) + "\n")
        faults = FaultPlan(rate_limit=0.3, retry_after=0.01)  # Retry-After keeps the retries quick
        with ReplayServer(pool, seed=1, faults=faults) as server:
            result = CliRunner().invoke(cli, solve_args(server, small, tmp_path / "out.jsonl",
                                                        tmp_path / "j.sqlite", "--api-key-env", "MY_KEY",
                                                        "--budget", "2", "--strategy", "sc"))
        assert result.exit_code == 0, result.output
        written = [result.output, caplog.text, (tmp_path / "out.jsonl").read_text()]
        written += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("j.sqlite*")]
        assert caplog.text  # the run did log (retries, failures): the check below is not vacuous
        for text in written:
            assert SECRET not in text
