"""Benchmarks found wherever the user keeps them: --data-dir, $DYNSCALING_BENCHMARKS, $DYNSCALING_DATA, the
project's ../shared, ~/.dynscaling; read from Hugging Face (a copy saved with ``save_to_disk``, since the Hub is
unreachable here) when not on disk; otherwise an error saying which file to put where. And the listing commands,
``dynscaling datasets`` and ``dynscaling strategies``, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dynscaling import InputError
from dynscaling.cli import cli
from dynscaling.datasets import DATA_ENV_VAR, DATASETS, ENV_VAR, MIRROR_ENV_VAR, benchmark_folders, load_dataset

GSM8K = [{"question": "Ann has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
         {"question": "A box holds 1,200 pins; 200 are used. How many are left?", "answer": "#### 1,000"}]


@pytest.fixture(autouse=True)
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data anywhere to begin with: no variables, a working directory with no ../shared, an empty home."""
    for name in (ENV_VAR, DATA_ENV_VAR, MIRROR_ENV_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "home"))
    (tmp_path / "work" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "here")
    return tmp_path


def write_gsm8k(benchmarks: Path, rows: list[dict[str, Any]] = GSM8K) -> Path:
    path = benchmarks / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def golds(name: str, **kwargs: Any) -> list[str | None]:
    return [q.gold for q in load_dataset(name, **kwargs)]


class TestFolders:
    def test_data_dir_may_be_the_benchmarks_folder_or_the_data_folder_above_it(self, tmp_path: Path) -> None:
        write_gsm8k(tmp_path / "data" / "benchmarks")
        assert golds("gsm8k", data_dir=tmp_path / "data") == ["7", "1000"]
        assert golds("gsm8k", data_dir=tmp_path / "data" / "benchmarks") == ["7", "1000"]

    def test_dynscaling_data_is_read_from_any_working_directory(self, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        write_gsm8k(tmp_path / "elsewhere" / "benchmarks")
        monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "elsewhere"))
        assert golds("gsm8k") == ["7", "1000"]

    def test_the_benchmarks_variable_comes_before_the_data_variable_and_data_dir_before_both(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write_gsm8k(tmp_path / "a" / "benchmarks", GSM8K[:1])
        write_gsm8k(tmp_path / "b", GSM8K[1:])
        write_gsm8k(tmp_path / "c", GSM8K)
        monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "a"))
        assert golds("gsm8k") == ["7"]
        monkeypatch.setenv(ENV_VAR, str(tmp_path / "b"))
        assert golds("gsm8k") == ["1000"]
        assert golds("gsm8k", data_dir=tmp_path / "c") == ["7", "1000"]

    def test_the_home_folder_is_searched_and_is_where_missing_files_go(self, tmp_path: Path) -> None:
        assert benchmark_folders() == (tmp_path / "home" / "data" / "benchmarks",)
        write_gsm8k(tmp_path / "home" / "data" / "benchmarks")
        assert golds("gsm8k") == ["7", "1000"]

    def test_the_projects_shared_folder_comes_first_when_it_exists(self, tmp_path: Path) -> None:
        write_gsm8k(tmp_path / "work" / "shared" / "data" / "benchmarks", GSM8K[:1])
        write_gsm8k(tmp_path / "home" / "data" / "benchmarks")
        assert golds("gsm8k") == ["7"]

    def test_a_data_variable_pointing_nowhere_is_named(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "missing"))
        with pytest.raises(InputError, match=rf"missing: \${DATA_ENV_VAR} points at no folder"):
            load_dataset("gsm8k")


class TestHuggingFaceFallback:
    @pytest.fixture
    def hf(self) -> Any:
        datasets = pytest.importorskip("datasets")
        datasets.disable_progress_bars()
        return datasets

    @pytest.fixture
    def mirror(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.setenv(MIRROR_ENV_VAR, str(tmp_path / "mirror"))
        return tmp_path / "mirror"

    def test_a_benchmark_not_on_disk_is_read_by_its_hub_id(self, hf: Any, mirror: Path) -> None:
        hf.DatasetDict({"train": hf.Dataset.from_list(GSM8K[:1]), "test": hf.Dataset.from_list(GSM8K)}).save_to_disk(
            str(mirror / "openai" / "gsm8k" / "main"))
        questions = load_dataset("gsm8k", limit=5)
        assert [(q.id, q.gold, q.answer_type, q.meta["dataset"]) for q in questions] == [
            ("gsm8k-0", "7", "number", "gsm8k"), ("gsm8k-1", "1000", "number", "gsm8k")]

    def test_a_file_on_disk_wins_over_the_hub(self, hf: Any, mirror: Path, tmp_path: Path) -> None:
        hf.Dataset.from_list(GSM8K).save_to_disk(str(mirror / "openai" / "gsm8k" / "main"))
        write_gsm8k(tmp_path / "home" / "data" / "benchmarks", GSM8K[1:])
        assert golds("gsm8k") == ["1000"]

    def test_flat_hub_rows_are_adapted_to_the_files_layout(self, hf: Any, mirror: Path) -> None:
        hf.DatasetDict({"validation": hf.Dataset.from_list([
            {"id": "q1", "question": "Where do fish live?", "question_concept": "fish", "answerKey": "B",
             "choices": {"label": ["A", "B", "C"], "text": ["tree", "water", "sky"]}}])}).save_to_disk(
            str(mirror / "tau" / "commonsense_qa" / "default"))
        (question,) = load_dataset("commonsenseqa")
        assert (question.id, question.gold) == ("commonsenseqa-q1", "B")
        assert question.text == "Where do fish live?\n\n(A) tree\n(B) water\n(C) sky"

    def test_a_benchmark_of_many_configs_reads_each(self, hf: Any, mirror: Path) -> None:
        tasks = DATASETS["bbh"].hub.configs  # type: ignore[union-attr]
        assert len(tasks) == 27
        for task in tasks:
            rows = [{"input": "not ( True ) is", "target": "False"}] if task == "boolean_expressions" else \
                [{"input": "How many legs has a cat?", "target": "4"}]
            hf.DatasetDict({"test": hf.Dataset.from_list(rows)}).save_to_disk(str(mirror / "lukaemon" / "bbh" / task))
        questions = load_dataset("bbh", subset="boolean_expressions,object_counting")
        assert [(q.id, q.answer_type, q.gold) for q in questions] == [
            ("bbh-boolean_expressions-0", "text", "False"), ("bbh-object_counting-0", "number", "4")]

    def test_a_mirror_without_the_copy_names_the_folder_and_the_file_to_put(self, hf: Any, mirror: Path,
                                                                           tmp_path: Path) -> None:
        mirror.mkdir()
        with pytest.raises(InputError) as raised:
            load_dataset("math500")
        message = str(raised.value)
        assert message.startswith(f"math500 not found on disk (put math500/math500_test.json at "
                                  f"{tmp_path / 'home' / 'data' / 'benchmarks' / 'math500' / 'math500_test.json'})")
        assert f"{mirror / 'HuggingFaceH4' / 'MATH-500' / 'default'}" in message and "\n" not in message

    def test_a_bad_hub_row_is_named_like_a_bad_file_line(self, hf: Any, mirror: Path) -> None:
        hf.Dataset.from_list([{"question": "ok?", "answer": "#### 1"}, {"question": "no marker", "answer": "2"}]) \
            .save_to_disk(str(mirror / "openai" / "gsm8k" / "main"))
        with pytest.raises(InputError) as raised:
            load_dataset("gsm8k")
        assert str(raised.value) == (f"{mirror / 'openai' / 'gsm8k' / 'main'}: field '[1].answer': has no '####' "
                                     "before the final answer")


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynscaling.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=False)


class TestOfflineHub:
    def test_with_the_hub_unreachable_the_error_says_which_file_to_put_where(self, tmp_path: Path) -> None:
        pytest.importorskip("datasets")
        env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DYNSCALING_HOME": str(tmp_path / "home")}
        done = run_cli(["bench", "--dataset", "gsm8k", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                        "--data-dir", str(tmp_path / "work")], env)
        assert done.returncode == 2
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: gsm8k not found on disk (put gsm8k/test.jsonl at "
                               f"{tmp_path / 'work' / 'gsm8k' / 'test.jsonl'}), and cannot read openai/gsm8k")
        assert "Traceback" not in done.stderr


class TestDatasetsCommand:
    def test_each_dataset_with_its_count_type_and_where_it_is(self, tmp_path: Path) -> None:
        gsm8k = write_gsm8k(tmp_path / "data" / "benchmarks")
        result = CliRunner().invoke(cli, ["datasets", "--data-dir", str(tmp_path / "data"), "--json"])
        assert result.exit_code == 0, result.output
        rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
        assert list(rows) == list(DATASETS)
        assert rows["gsm8k"] == {"name": "gsm8k", "questions": 1319, "answer_type": "number", "where": str(gsm8k),
                                 "found": "disk", "description": DATASETS["gsm8k"].description}
        assert rows["bbh"]["answer_type"] == "per task"
        expected = tmp_path / "data" / "benchmarks" / "math500" / "math500_test.json"
        assert f"put math500/math500_test.json at {expected}" in rows["math500"]["where"]

    def test_check_counts_what_each_file_holds_and_names_a_broken_one(self, tmp_path: Path) -> None:
        write_gsm8k(tmp_path / "b")
        broken = tmp_path / "b" / "aime24" / "test.jsonl"
        broken.parent.mkdir()
        broken.write_text('{"problem": "x", "answer": 3}\n{"problem": "y"\n')
        result = CliRunner().invoke(cli, ["datasets", "--data-dir", str(tmp_path / "b"), "--check", "--json"])
        rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
        assert rows["gsm8k"]["questions"] == 2 and "error" not in rows["gsm8k"]
        assert rows["aime24"]["questions"] is None
        assert rows["aime24"]["error"].startswith(f"{broken}:2: malformed JSON")
        assert rows["math500"]["questions"] == 500 and rows["math500"]["found"] != "disk"

    def test_without_the_hf_extra_a_missing_one_says_which_file_to_put_where(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "datasets", None)
        result = CliRunner().invoke(cli, ["datasets", "--json"])
        rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
        expected = tmp_path / "home" / "data" / "benchmarks" / "aime24" / "test.jsonl"
        assert rows["aime24"]["where"] == f"not found: put aime24/test.jsonl at {expected}"
        assert rows["aime24"]["found"] is None

    def test_the_table_lists_every_dataset(self, tmp_path: Path) -> None:
        done = run_cli(["datasets"], {"DYNSCALING_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, done.stderr
        assert all(name in done.stdout for name in DATASETS)
        assert "12032" in done.stdout and "per task" in done.stdout

    def test_a_data_dir_that_is_no_folder_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        done = run_cli(["datasets", "--data-dir", str(tmp_path / "nope")], {})
        assert done.returncode == 2
        assert done.stderr.strip().startswith(f"error: {tmp_path / 'nope'}: benchmarks folder not found")
        assert len(done.stderr.strip().splitlines()) == 1


class TestStrategiesCommand:
    def test_every_registered_strategy_with_typed_defaults_and_a_summary(self) -> None:
        from dynscaling.strategies import STRATEGIES

        result = CliRunner().invoke(cli, ["strategies", "--json"])
        assert result.exit_code == 0, result.output
        rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
        assert list(rows) == list(STRATEGIES)
        assert all(r["summary"] for r in rows.values())
        params = {p["name"]: p for p in rows["dynscaling-ucb"]["parameters"]}
        assert params["k0"] == {"name": "k0", "type": "int", "default": 2, "follows_budget": False}
        assert params["stop_max"]["type"] == "float | none" and params["stop_max"]["default"] is None
        assert rows["dynscaling"]["live_only"] and not rows["sc"]["live_only"]
        assert {p["name"]: p["follows_budget"] for p in rows["esc"]["parameters"]} == {"w": False, "cap": True}

    def test_a_strategy_registered_later_is_listed_with_no_change_to_the_command(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        from dynscaling import strategies

        spec = strategies.STRATEGIES["sc"]
        monkeypatch.setitem(strategies.STRATEGIES, "sc-copy", spec)
        result = CliRunner().invoke(cli, ["strategies", "--json"])
        names = [json.loads(line)["name"] for line in result.output.splitlines()]
        assert names[-1] == "sc-copy"

    def test_the_table_shows_parameters_as_type_and_default(self) -> None:
        done = run_cli(["strategies"], {})
        assert done.returncode == 0, done.stderr
        assert "k0: int = 2" in done.stdout and "threshold: float = 0.95" in done.stdout
        assert "dynscaling-parallel" in done.stdout
