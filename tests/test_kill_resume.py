"""SIGKILLs at random points of a ``dynscaling solve`` run against an upstream with 20% 429/500 and 20% fewer
choices: the resumed run ends with the answers of an uninterrupted run with the same seed, and the upstream
serves at most budget + concurrency x kills samples. (benchmarks/kill_resume.py does five kills, and the same
against ``dynscaling replay-server``; this test does three, to stay quick.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from seeded_upstream import MODEL, SeededUpstream

QUESTIONS = 16
BUDGET = 8
CONCURRENCY = 8
# Windows of 4 samples per question (requests for several choices, so fewer-choices faults bite), at most 8: the
# budget never binds, so which samples a question gets does not depend on timing, and an uninterrupted run is a
# fair reference for a killed one.
STRATEGY = "esc:w=4,cap=8"


def write_batch(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question {i}: what is 6 times 7, give or take?",
                                        "answer_type": "number"}) + "\n" for i in range(QUESTIONS)))
    return path


def command(upstream: SeededUpstream, batch: Path, out: Path, journal: Path) -> list[str]:
    return [sys.executable, "-m", "dynscaling.cli", "solve", str(batch), "--out", str(out), "--base-url",
            upstream.base_url, "--model", MODEL, "--journal", str(journal), "--strategy", STRATEGY,
            "--budget", str(BUDGET), "--concurrency", str(CONCURRENCY), "--seed", "3", "--max-retries", "8"]


def answers(path: Path) -> dict[str, Any]:
    """Each question's answer, vote table and sample count (votes sorted: equal counts may be listed in either
    order, as they arrived)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["id"]: (r["answer"], sorted(map(tuple, r["votes"])), r["samples"]) for r in rows}


def test_five_kills_or_fewer_end_with_the_uninterrupted_answers_and_pay_at_most_the_in_flight(
        tmp_path: Path) -> None:
    batch = write_batch(tmp_path / "in.jsonl")
    env = {**os.environ, "DYNSCALING_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_API_KEY", None)  # a local upstream: no key needed
    faults = {"rate_limit": 0.1, "server_error": 0.1, "fewer_choices": 0.2}
    with SeededUpstream(**faults, latency=0.01) as upstream:
        reference = subprocess.run(command(upstream, batch, tmp_path / "ref.jsonl", tmp_path / "ref.sqlite"),
                                   env=env, capture_output=True, text=True, timeout=120)
        assert reference.returncode == 0, reference.stderr
        expected = upstream.samples
        faults_seen = dict(upstream.faults)
        assert 4 * QUESTIONS <= expected <= BUDGET * QUESTIONS

    rng = random.Random(2026)
    kills = 0
    with SeededUpstream(**faults, latency=0.01) as upstream:
        args = command(upstream, batch, tmp_path / "out.jsonl", tmp_path / "j.sqlite")
        for target in sorted(rng.sample(range(10, expected - 10), 3)):
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120  # a guard against a hung run, not a measurement
            while upstream.samples < target and process.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.002)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        finished = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        served = upstream.samples
        for kind, count in upstream.faults.items():
            faults_seen[kind] = faults_seen.get(kind, 0) + count
    assert finished.returncode == 0, finished.stderr
    assert kills >= 2
    assert faults_seen.get("rate_limit") and faults_seen.get("server_error") and faults_seen.get("fewer_choices")
    assert answers(tmp_path / "out.jsonl") == answers(tmp_path / "ref.jsonl")
    assert expected <= served <= expected + CONCURRENCY * kills
