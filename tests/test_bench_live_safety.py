"""A live bench on a user's bad day, as ``dynscaling solve`` handles it: the endpoint is probed before any sample
(a wrong key is one line and exit 2, nothing sent), and a bench whose questions came back unanswered says so and
exits 3 instead of reporting the failures as wrong answers. Real HTTP on 127.0.0.1 (``ModelsServer``) through the
official ``openai`` SDK; a two-question GSM8K file written here, so no ../shared is needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dynscaling.cli import cli
from run_safety_helpers import SECRET, ModelsServer

GSM8K = [{"question": "Ann has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
         {"question": "A box holds 1,200 pins; 200 are used. How many are left?", "answer": "#### 1,000"}]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "benchmarks" / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in GSM8K), encoding="utf-8")
    return tmp_path / "benchmarks"


def bench(base_url: str, data_dir: Path, tmp_path: Path) -> Result:
    return CliRunner().invoke(cli, ["bench", "--dataset", "gsm8k", "--data-dir", str(data_dir), "--base-url", base_url,
                                    "--model", "m", "--strategies", "sc", "--budgets", "1,2", "--seeds", "1",
                                    "--journal", str(tmp_path / "j.sqlite"), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_stops_the_bench_before_any_sample_and_is_masked(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ModelsServer(status, "Incorrect API key provided") as server:
        result = bench(server.base_url, data_dir, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"HTTP {status}: Incorrect API key provided" in result.output
    assert SECRET not in result.output
    assert server.posts == 0
    assert not (tmp_path / "run" / "points.json").exists()


def test_an_unknown_model_stops_the_bench_before_any_sample(data_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ModelsServer(models=("other-model",)) as server:
        result = bench(server.base_url, data_dir, tmp_path)
    assert result.exit_code == 2, result.output
    assert "model 'm' not found (the server lists: other-model)" in result.output
    assert server.posts == 0


def test_a_bench_whose_samples_all_failed_says_so_and_exits_3(data_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ModelsServer(post_status=400, post_message="this request is not allowed") as server:
        result = bench(server.base_url, data_dir, tmp_path)
    assert result.exit_code == 3, result.output
    assert "2 of 2 points have questions with no answer because the backend failed" in result.output
    assert "Run the same command again" in result.output
    assert server.posts >= 2
    points = json.loads((tmp_path / "run" / "points.json").read_text())
    assert [(p["budget"], p["unanswered"]) for p in points] == [(1.0, 2), (2.0, 2)]
