"""``dynscaling record`` against a real HTTP endpoint (the replay server, driven by the official ``openai``
client): the pool it writes loads and benches, a re-run pays only for what the journal lacks, and bad input is
one clean line. The same command with a local model is tested in tests/test_local_model.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynscaling import load_pool
from dynscaling.cli import cli
from dynscaling.replay_server import ReplayServer
from fakes import tiny_pool


@pytest.fixture()
def questions_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} plus the sample number?",
                                        "answer_type": "number", "gold": "0"}) + "\n" for i in range(2)))
    return path


def record(server: ReplayServer, source: Path, out: Path, journal: Path, samples: int) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["record", str(source), "--base-url", server.base_url, "--model", server.model,
                                      "--samples", str(samples), "--out", str(out), "--journal", str(journal),
                                      "--per-request", "2"])
    return result.exit_code, result.output


class TestRecordFromAnEndpoint:
    def test_the_pool_loads_keeps_usage_and_a_rerun_pays_only_for_new_samples(
            self, tmp_path: Path, questions_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        upstream = tiny_pool(tmp_path, samples=6)
        out = tmp_path / "recorded.jsonl.gz"
        journal = tmp_path / "j.sqlite"
        with ReplayServer(upstream, seed=1) as server:
            code, output = record(server, questions_file, out, journal, samples=3)
            assert code == 0, output
            assert server.stats.snapshot()["samples"] == 6
            pool = load_pool(out)
            assert [len(e.texts) for e in pool.entries] == [3, 3]
            lines = [json.loads(line) for line in gzip.open(out, "rt")]
            served_texts = {t for e in upstream.entries for t in e.texts}
            for sample in (s for line in lines for s in line["samples"]):
                # recorded as the server sent it (it appends the recorded answer to the recorded text)
                assert any(sample["text"].startswith(t) for t in served_texts)
                assert sample["finish_reason"] == "stop"
                assert sample["usage"]["completion_tokens"] > 0
                assert "mean_logprob" not in sample  # the endpoint reported none
            # recorded usage is what a bench of the pool charges, not the 4-characters-per-token estimate
            first = lines[0]["samples"][0]["usage"]
            assert pool.entries[0].usages[0].completion_tokens == first["completion_tokens"]
            code, output = record(server, questions_file, out, journal, samples=5)
            assert code == 0, output
            assert server.stats.snapshot()["samples"] == 10  # 6 reused from the journal, 4 new
            assert "4 generated, 6 from the journal" in " ".join(output.split())
        assert [len(e.texts) for e in load_pool(out).entries] == [5, 5]
        bench = CliRunner().invoke(cli, ["bench", "--pool", str(out), "--budgets", "1,2,4", "--seeds", "2",
                                         "--strategies", "sc,dynscaling-parallel"])
        assert bench.exit_code == 0, bench.output
        assert "dynscaling-parallel" in bench.output

    def test_a_question_without_gold_is_refused_with_its_file_and_field(self, tmp_path: Path) -> None:
        source = tmp_path / "ungraded.jsonl"
        source.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?"}) + "\n")
        result = CliRunner().invoke(cli, ["record", str(source), "--base-url", "http://127.0.0.1:9/v1", "--model",
                                          "m", "--out", str(tmp_path / "p.jsonl")])
        assert result.exit_code == 2
        assert f"{source}: field 'gold'" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "p.jsonl").exists()

    def test_a_file_and_a_dataset_together_are_refused(self, tmp_path: Path, questions_file: Path) -> None:
        result = CliRunner().invoke(cli, ["record", str(questions_file), "--dataset", "gsm8k", "--out",
                                          str(tmp_path / "p.jsonl"), "--base-url", "http://127.0.0.1:9/v1",
                                          "--model", "m"])
        assert result.exit_code == 2 and "not both" in result.output

    def test_a_local_model_without_llama_cpp_or_a_model_gets_the_install_line(self, tmp_path: Path,
                                                                            questions_file: Path) -> None:
        missing = tmp_path / "nothing.gguf"
        result = CliRunner().invoke(cli, ["record", str(questions_file), "--backend", "llama-cpp", "--model-path",
                                          str(missing), "--out", str(tmp_path / "p.jsonl")])
        assert result.exit_code == 2
        assert "nothing.gguf: no such model file" in result.output or "pip install" in result.output
