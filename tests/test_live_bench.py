"""A live bench (`dynscaling bench --dataset gsm8k --base-url ...`) against the replay server backed by the GPT-4
GSM8K pool: the whole curve costs what its largest point costs (server-side count), and its accuracies agree with
the replay-backend bench on the same pool. Needs ../shared (the pool is evaluation-only: never copied here)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynscaling.bench import run_bench
from dynscaling.cli import cli
from dynscaling.pools import Pool
from dynscaling.replay_server import ReplayServer

QUESTIONS = 200
BUDGETS = [1, 2, 4, 8]
STRATEGIES = ["sc", "esc", "dynscaling-parallel"]


@pytest.fixture(scope="module")
def gsm8k_pool(shared_pool) -> Pool:  # noqa: ANN001
    full = shared_pool("gpt4_gsm8k_x12")
    return Pool(full.name, full.path, full.entries[:QUESTIONS])


def test_a_live_curve_costs_its_largest_point_and_matches_replay(gsm8k_pool: Pool, shared_data: Path,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with ReplayServer(gsm8k_pool, seed=0) as server:
        result = CliRunner().invoke(cli, [
            "bench", "--dataset", "gsm8k", "--data-dir", str(shared_data / "benchmarks"), "--limit", str(QUESTIONS),
            "--base-url", server.base_url, "--model", server.model, "--strategies", ",".join(STRATEGIES),
            "--budgets", ",".join(map(str, BUDGETS)), "--journal", str(tmp_path / "j.sqlite"),
            "--out", str(tmp_path / "run"), "--price", "2.5,10", "--yes"])
        served = server.stats.snapshot()["samples"]
    assert result.exit_code == 0, result.output
    assert "cost at most $" in result.output
    # Every point draws from the samples of the largest one (self-consistency at 8: 8 per question).
    assert served <= max(BUDGETS) * QUESTIONS
    live = {(p["strategy"], p["budget"]): p for p in json.loads((tmp_path / "run" / "points.json").read_text())}
    assert len(live) == len(STRATEGIES) * len(BUDGETS)
    replayed = {(p.strategy, p.budget): p for p in run_bench([gsm8k_pool], STRATEGIES, BUDGETS, seeds=10)}
    for key, point in replayed.items():
        sd = statistics.stdev(point.accuracies)
        half = max(2.262 * sd * math.sqrt(1 + 1 / 10), 1 / QUESTIONS)  # a 95% prediction interval for one run
        assert abs(live[key]["accuracy_mean"] - point.accuracy_mean) <= half, (key, live[key], point)
    # Uniform allocation does not depend on timing: with the server's seed equal to replay seed 0, the same
    # samples vote, so the accuracies are equal exactly.
    for budget in BUDGETS:
        assert live[("sc", budget)]["accuracies"][0] == replayed[("sc", budget)].accuracies[0]
    rows = (tmp_path / "run" / "questions.jsonl").read_text().splitlines()
    assert len(rows) == QUESTIONS * len(STRATEGIES) * len(BUDGETS)
