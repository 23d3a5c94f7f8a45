"""``dynscaling bench`` end to end: in process through click's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dynscaling import Budget, bundled_pools, load_pool, replay
from dynscaling.cli import DEFAULT_STRATEGIES, cli

POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))  # 369 questions x 10: quick
POOL_NAME = "chatgpt_date_natural-program_x10"
RECORD_KEYS = {"pool", "strategy", "budget", "seeds", "accuracy_mean", "accuracy_ci95", "samples_per_question"}


def bench(*args: str) -> Result:
    return CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, list[dict], Path]:
    """The default strategies and budgets on one bundled pool, with 2 seeds, writing JSON and plots."""
    out = tmp_path_factory.mktemp("bench")
    result = bench("--pool", str(POOL), "--seeds", "2", "--json", str(out / "points.json"),
                   "--plot", str(out / "plots"))
    records = json.loads((out / "points.json").read_text()) if result.exit_code == 0 else []
    return result, records, out / "plots"


def one_error_line(result: Result) -> str:
    """The single 'error:' line on stderr; fails on a traceback or on more than one error line."""
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"id": "1", "question": "q", "gold": "1", "answer_type": "number",
                   "samples": [{"text": "The answer is 1", "answer": "1"}]})


class TestDefaultRun:
    def test_it_succeeds_and_prints_a_table_for_the_pool(self, default_run) -> None:  # noqa: ANN001
        result, _, _ = default_run
        assert result.exit_code == 0, result.stderr
        assert f"{POOL_NAME}: 369 questions x 10 samples" in result.stdout
        for strategy in DEFAULT_STRATEGIES.split(","):
            assert strategy in result.stdout
        for column in ("strategy", "accuracy"):
            assert column in result.stdout
        assert "samples per question to reach self-consistency" in result.stdout  # the headline table

    def test_results_go_to_stdout_and_progress_to_stderr(self, default_run) -> None:  # noqa: ANN001
        result, _, _ = default_run
        assert "wrote" in result.stderr and "wrote" not in result.stdout
        assert "points.json" in result.stderr
        assert "accuracy" not in result.stderr

    def test_the_json_has_one_record_per_strategy_and_budget_with_the_documented_keys(self,
                                                                                      default_run) -> None:  # noqa: ANN001
        _, records, _ = default_run
        assert records
        for record in records:
            assert RECORD_KEYS <= set(record)
            assert record["pool"] == POOL_NAME
            assert record["seeds"] == 2
            assert 0.0 <= record["accuracy_mean"] <= 1.0
            assert record["accuracy_ci95"] >= 0.0
            assert 0 < record["samples_per_question"] <= record["budget"] + 1e-9
        points = {(r["strategy"], r["budget"]) for r in records}
        strategies = DEFAULT_STRATEGIES.split(",")
        expected = {("single", 1.0)} | {(s, b) for s in strategies if s != "single" for b in (1.0, 2.0, 4.0, 8.0)}
        assert points == expected
        assert len(records) == len(expected)

    def test_the_json_figures_are_what_the_library_measures(self, default_run) -> None:  # noqa: ANN001
        _, records, _ = default_run
        pool = load_pool(POOL)
        questions = len(pool.entries)
        for strategy, budget in (("sc", 4.0), ("dynscaling-parallel", 2.0)):
            record = next(r for r in records if r["strategy"] == strategy and r["budget"] == budget)
            runs = [replay(pool, strategy, Budget(samples=round(budget * questions)), seed=s) for s in range(2)]
            assert record["accuracy_mean"] == pytest.approx(statistics.fmean(r.accuracy for r in runs), abs=1e-6)
            assert record["samples_per_question"] == pytest.approx(
                statistics.fmean(r.samples / questions for r in runs), abs=1e-6)
            accuracies = [r.accuracy for r in runs]
            assert record["accuracies"] == pytest.approx(accuracies, abs=1e-6)
            # Student's t with 1 degree of freedom is the Cauchy distribution: its 97.5% quantile is tan(0.475 pi)
            t975 = math.tan(math.pi * (0.975 - 0.5))
            assert record["accuracy_ci95"] == pytest.approx(
                t975 * statistics.stdev(accuracies) / math.sqrt(2), abs=1e-4)

    def test_plot_writes_a_png_and_an_svg_per_pool(self, default_run) -> None:  # noqa: ANN001
        _, _, plots = default_run
        assert sorted(p.name for p in plots.iterdir()) == [f"{POOL_NAME}.png", f"{POOL_NAME}.svg"]
        assert (plots / f"{POOL_NAME}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (plots / f"{POOL_NAME}.svg").read_text()

    def test_upstream_answers_can_be_chosen(self, tmp_path: Path) -> None:
        result = bench("--pool", str(POOL), "--strategies", "sc", "--budgets", "1", "--seeds", "1",
                       "--answers", "upstream", "--json", str(tmp_path / "p.json"))
        assert result.exit_code == 0, result.stderr
        assert json.loads((tmp_path / "p.json").read_text())[0]["strategy"] == "sc"


class TestBadInput:
    @pytest.mark.parametrize(("lines", "where"), [
        ([GOOD, '{"id": "2", "question": "q",'], ":2: malformed JSON"),
        ([GOOD, json.dumps({"id": "2", "question": "q", "gold": "1"})], ":2: field 'samples': missing"),
        ([json.dumps({"id": "1", "question": "q", "samples": [{"text": "1"}]})], ":1: field 'gold': missing"),
        ([json.dumps({"id": "1", "question": "q", "gold": "1", "answer_type": "essay", "samples": [{}]})],
         ":1: field 'answer_type': unknown answer type 'essay'"),
        ([], ": empty file"),
    ], ids=["malformed-line", "missing-samples", "missing-gold", "unknown-answer-type", "empty-file"])
    def test_a_bad_pool_file_exits_2_with_one_error_line_naming_file_line_and_field(
            self, tmp_path: Path, lines: list[str], where: str) -> None:
        path = write(tmp_path / "bad.jsonl", lines)
        result = bench("--pool", str(path), "--seeds", "1")
        assert result.exit_code == 2
        assert one_error_line(result).startswith(f"error: {path}{where}")
        assert result.stdout == ""

    def test_a_missing_pool_file_exits_2_naming_it(self, tmp_path: Path) -> None:
        path = tmp_path / "nowhere.jsonl.gz"
        result = bench("--pool", str(path), "--seeds", "1")
        assert result.exit_code == 2
        assert one_error_line(result) == f"error: {path}: no such file"

    def test_a_bad_pool_file_leaves_only_the_error_line_on_stderr(self, tmp_path: Path) -> None:
        path = write(tmp_path / "bad.jsonl", [GOOD, '{"id": '])
        result = bench("--pool", str(path), "--seeds", "1")
        assert result.exit_code == 2
        assert result.stderr.splitlines() == [one_error_line(result)]

    @pytest.mark.parametrize(("args", "message"), [
        (["--budgets", "1,two"], "error: --budgets must be numbers separated by commas, got '1,two'"),
        (["--budgets", "0,2"], "error: --budgets must be positive samples per question, got '0,2'"),
        (["--strategies", "best"], "error: unknown strategy 'best'; expected one of"),
        (["--strategies", "esc:window=3"], "error: strategy esc has no parameter 'window'; it takes w, cap"),
    ])
    def test_bad_parameters_exit_2_with_one_line(self, args: list[str], message: str) -> None:
        result = bench("--pool", str(POOL), "--seeds", "1", *args)
        assert result.exit_code == 2
        assert one_error_line(result).startswith(message)


class TestLiveOnlyStrategies:
    def test_dynscaling_alone_exits_2_and_says_what_to_use_instead(self) -> None:
        result = bench("--pool", str(POOL), "--strategies", "dynscaling", "--seeds", "1")
        assert result.exit_code == 2
        line = one_error_line(result)
        assert line.startswith("error: dynscaling ")
        assert "live model" in line
        assert "dynscaling-parallel" in line  # what to use on replay pools
        assert result.stdout == ""

    def test_a_live_only_strategy_among_replayable_ones_is_skipped_with_a_warning(self, tmp_path: Path) -> None:
        result = bench("--pool", str(POOL), "--strategies", "sc,dynscaling:k0=2,m=2,single", "--budgets", "1,2",
                       "--seeds", "1", "--json", str(tmp_path / "p.json"))
        assert result.exit_code == 0, result.stderr
        warning = " ".join(result.stderr.split())  # rich may wrap the line
        assert "skipping dynscaling:k0=2,m=2" in warning and "live model" in warning
        records = json.loads((tmp_path / "p.json").read_text())
        assert {r["strategy"] for r in records} == {"sc", "single"}


@pytest.fixture(scope="module")
def subprocess_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """``python -m dynscaling.cli bench`` (default strategies) with its output piped, as when redirected to a file."""
    out = tmp_path_factory.mktemp("subprocess") / "points.json"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    completed = subprocess.run(
        [sys.executable, "-m", "dynscaling.cli", "bench", "--pool", str(POOL), "--budgets", "1,3", "--seeds", "3",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, env=env)
    records = json.loads(out.read_text()) if completed.returncode == 0 else []
    return completed, records


class TestAsASubprocess:
    def test_it_exits_0_prints_the_table_and_writes_the_json(self, subprocess_run) -> None:  # noqa: ANN001
        completed, records = subprocess_run
        assert completed.returncode == 0, completed.stderr
        assert POOL_NAME in completed.stdout
        strategies = DEFAULT_STRATEGIES.split(",")
        assert {(r["strategy"], r["budget"]) for r in records} == {("single", 1.0)} | {
            (s, b) for s in strategies if s != "single" for b in (1.0, 3.0)}
        assert all(RECORD_KEYS <= set(r) for r in records)

    def test_piped_output_shows_every_figure_in_full(self, subprocess_run) -> None:  # noqa: ANN001
        completed, records = subprocess_run
        assert "…" not in completed.stdout
        for r in records:
            assert f"{r['accuracy_mean']:.4f}" in completed.stdout
            assert f"{r['accuracy_ci95']:.4f}" in completed.stdout

    def test_a_bad_file_exits_2_with_the_error_and_no_traceback(self, tmp_path: Path) -> None:
        path = write(tmp_path / "bad.jsonl", [GOOD, json.dumps({"id": "2", "question": "q", "gold": "1"})])
        completed = subprocess.run([sys.executable, "-m", "dynscaling.cli", "bench", "--pool", str(path)],
                                   capture_output=True, text=True, timeout=60)
        assert completed.returncode == 2
        assert "Traceback" not in completed.stderr
        assert f"error: {path}:2: field 'samples': missing" in completed.stderr.splitlines()
