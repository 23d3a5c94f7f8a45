"""Input habits of `dynscaling solve`, through the real command: standard input and output, --limit, files that
used to lose questions silently (U+2028, a byte-order mark), and bad lines or prompt files as one line, exit 2
(a bad line after the rest is answered).
Runs against the project's replay server on 127.0.0.1 (the official openai SDK inside OpenAIBackend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynscaling.cli import cli
from dynscaling.pools import Pool, bundled_pools, load_pool
from dynscaling.replay_server import ReplayServer

DATE_POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))


@pytest.fixture(scope="module")
def pool() -> Pool:
    full = load_pool(DATE_POOL)
    return Pool(full.name, full.path, full.entries[:12])


@pytest.fixture()
def server(pool: Pool) -> Iterator[ReplayServer]:
    with ReplayServer(pool, seed=1) as running:
        yield running


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local")
    monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "home"))


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def question_lines(pool: Pool) -> list[str]:
    return [json.dumps({"id": e.question.id, "question": e.question.text, "answer_type": "date",
                        "gold": e.question.gold}, ensure_ascii=False) for e in pool.entries]


def run_cli(args: list[str], tmp_path: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-local", "DYNSCALING_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "dynscaling.cli", *args], input=stdin, capture_output=True,
                          env=env, timeout=300, check=False)


def solve_args(server: ReplayServer, source: str, out: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["solve", source, "--out", out, "--base-url", server.base_url, "--model", server.model,
            "--journal", str(tmp_path / "j.sqlite"), "--strategy", "sc", "--budget", "2", *extra]


class TestStandardStreams:
    def test_questions_from_stdin_and_answers_to_stdout_with_a_limit(self, server: ReplayServer, pool: Pool,
                                                                    tmp_path: Path) -> None:
        stdin = ("\n".join(question_lines(pool)) + "\n").encode()
        done = run_cli(solve_args(server, "-", "-", tmp_path, "--limit", "5"), tmp_path, stdin)
        assert done.returncode == 0, done.stderr.decode()
        rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
        assert [r["id"] for r in rows] == [e.question.id for e in pool.entries[:5]]
        assert all(r["samples"] == 2 for r in rows)
        assert server.stats.snapshot()["samples"] == 10
        assert b"wrote" not in done.stderr

    def test_limit_keeps_the_first_usable_questions(self, server: ReplayServer, pool: Pool, tmp_path: Path) -> None:
        path = tmp_path / "in.jsonl"
        path.write_text("not json\n" + "\n".join(question_lines(pool)) + "\n", encoding="utf-8")
        result = CliRunner().invoke(cli, solve_args(server, str(path), str(tmp_path / "out.jsonl"), tmp_path,
                                                    "--limit", "3"))
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == [e.question.id for e in pool.entries[:3]]
        assert f"{path}:1: malformed JSON" in flat(result.output)
        assert result.exit_code == 2, result.output  # the file lost a line: the status says so


class TestNoQuestionIsLost:
    def test_a_bom_a_line_separator_and_crlf_endings_lose_nothing(self, server: ReplayServer, pool: Pool,
                                                                 tmp_path: Path) -> None:
        lines = question_lines(pool)
        first = json.loads(lines[0])
        first["question"] = first["question"].replace(" ", "\u2028", 1)
        lines[0] = json.dumps(first, ensure_ascii=False)
        path = tmp_path / "in.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
        result = CliRunner().invoke(cli, solve_args(server, str(path), str(tmp_path / "out.jsonl"), tmp_path))
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == [e.question.id for e in pool.entries]
        assert "skipped" not in result.output
        # the altered first question is read whole, and is not one the replay pool knows: it alone has no answer
        # and says why, so the run exits 3 (the others are answered)
        assert result.exit_code == 3, result.output
        assert "no question of this replay pool matches" in rows[0]["error"]
        assert all("error" not in r and r["samples"] >= 2 for r in rows[1:])  # its share went to others

    def test_deep_nesting_and_a_lone_surrogate_are_one_line_each_and_the_rest_is_answered(
            self, server: ReplayServer, pool: Pool, tmp_path: Path) -> None:
        lines = question_lines(pool)[:3]
        lines.insert(1, '{"question": ' + "[" * 200_000 + "]" * 200_000 + "}")
        lines.insert(2, '{"id": "s", "question": "When is \\udc00?"}')
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done = run_cli(solve_args(server, str(path), str(tmp_path / "out.jsonl"), tmp_path), tmp_path)
        stderr = flat(done.stderr.decode())
        assert "Traceback" not in stderr
        assert f"{path}:2: JSON nested too deeply to read" in stderr
        assert f"{path}:3: field 'question': holds a lone surrogate" in stderr
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        assert done.returncode == 2, stderr
        assert "2 input lines were skipped" in stderr


class TestSkippedLinesInTheExitStatus:
    def test_a_skipped_line_exits_2_after_the_rest_is_answered_and_the_fixed_file_pays_only_for_it(
            self, server: ReplayServer, pool: Pool, tmp_path: Path) -> None:
        lines = question_lines(pool)[:4]
        good = lines[2]
        lines[2] = good.replace('"question"', '"questoin"')  # the habit this catches: a typo in one line's field
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = tmp_path / "out.jsonl"
        first = run_cli(solve_args(server, str(path), str(out), tmp_path), tmp_path)
        stderr = flat(first.stderr.decode())
        assert first.returncode == 2, stderr
        assert f"{path}:3: field 'question': missing" in stderr
        assert "1 input lines were skipped" in stderr
        assert len(out.read_text().splitlines()) == 3  # the others were answered and written
        paid = server.stats.snapshot()["samples"]
        assert paid == 6
        lines[2] = good
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        second = run_cli(solve_args(server, str(path), str(out), tmp_path), tmp_path)
        assert second.returncode == 0, second.stderr.decode()
        assert "6 reused from the journal, 2 new" in flat(second.stderr.decode())
        assert server.stats.snapshot()["samples"] == paid + 2
        assert len(out.read_text().splitlines()) == 4

    def test_a_file_with_no_bad_line_exits_0(self, server: ReplayServer, pool: Pool, tmp_path: Path) -> None:
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(question_lines(pool)[:2]) + "\n", encoding="utf-8")
        done = run_cli(solve_args(server, str(path), str(tmp_path / "out.jsonl"), tmp_path), tmp_path)
        assert done.returncode == 0, done.stderr.decode()
        assert "skipped" not in done.stderr.decode()


class TestBadPrompts:
    @pytest.mark.parametrize(("template", "named"), [("{nope} {question}", "unknown placeholder {nope}"),
                                                      ("{question} {", "a lone brace")])
    def test_a_bad_template_is_one_line_and_exit_2_before_any_sample(self, server: ReplayServer, pool: Pool,
                                                                     tmp_path: Path, template: str,
                                                                     named: str) -> None:
        prompts = tmp_path / "prompts.json"
        prompts.write_text(json.dumps({"question": template}))
        path = tmp_path / "in.jsonl"
        path.write_text("\n".join(question_lines(pool)) + "\n")
        done = run_cli(solve_args(server, str(path), str(tmp_path / "out.jsonl"), tmp_path, "--prompts",
                                  str(prompts)), tmp_path)
        stderr = done.stderr.decode().strip()
        assert done.returncode == 2
        assert stderr.startswith(f"error: {prompts}: field 'question': {named}") and "\n" not in stderr
        assert server.stats.snapshot()["samples"] == 0
        assert not (tmp_path / "out.jsonl").exists()


class TestPoolsWithGaps:
    def test_bench_keeps_a_question_without_samples_and_says_so(self, tmp_path: Path) -> None:
        sample = {"text": "So the answer is 05/01/2021.", "answer": None}
        rows = [{"id": str(i), "question": f"Q{i}?", "gold": "05/01/2021", "answer_type": "date",
                 "samples": [sample] * (0 if i == 1 else 2)} for i in range(3)]
        path = tmp_path / "gap.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        result = CliRunner().invoke(cli, ["bench", "--pool", str(path), "--strategies", "sc", "--budgets", "2",
                                          "--seeds", "1", "--json", str(tmp_path / "points.json")])
        assert result.exit_code == 0, result.output
        assert f"warning {path}:2: field 'samples': empty list; question '1' is kept" in flat(result.output)
        (point,) = json.loads((tmp_path / "points.json").read_text())
        assert point["accuracy_mean"] == pytest.approx(2 / 3)
