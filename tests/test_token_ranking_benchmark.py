"""benchmarks/token_ranking.py on small pools written here: where every sample costs the same the two rankings
decide alike, where costs differ ``per_token`` changes the decisions, and the table has a cell per spend."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

from benchmark_scripts import BENCHMARKS

SCRIPT = BENCHMARKS / "token_ranking.py"


def write_pool(path: Path, *, varied_costs: bool, questions: int = 30, samples: int = 6) -> None:
    rng = random.Random(3)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(questions):
            top = rng.uniform(0.4, 0.95)
            answers = ["7" if rng.random() < top else str(rng.randint(1, 4)) for _ in range(samples)]
            padding = "x" * (400 * (i % 3) if varied_costs else 40)  # 4 characters a token: 10 or 0/100/200 tokens
            record = {"id": str(i), "question": "q", "gold": "7", "answer_type": "number",
                      "samples": [{"text": f"{padding} so {a}", "answer": a} for a in answers]}
            handle.write(json.dumps(record) + "\n")


def run(tmp_path: Path, pool: Path) -> dict:
    out = tmp_path / pool.stem
    done = subprocess.run([sys.executable, str(SCRIPT), "--batch", str(pool), "--seeds", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "| @ 1.5 | @ 2 | @ 3 | @ 4 |" in (out / "token_ranking.md").read_text()
    [record] = json.loads((out / "token_ranking.json").read_text())["batches"]
    return record


def test_equal_costs_leave_the_rankings_alike_and_varied_costs_do_not(tmp_path: Path) -> None:
    equal = tmp_path / "equal_x6.jsonl.gz"
    write_pool(equal, varied_costs=False)
    record = run(tmp_path, equal)
    assert record["curves"]["default"] == record["curves"]["per_token"]
    assert sorted(record["at"]) == ["1.5", "2", "3", "4"]
    assert all(entry["difference"] == 0 for entry in record["at"].values())
    varied = tmp_path / "varied_x6.jsonl.gz"
    write_pool(varied, varied_costs=True)
    record = run(tmp_path, varied)
    assert record["curves"]["default"] != record["curves"]["per_token"]
    for points in record["curves"].values():  # spend, read back in the budget's unit, never passes the budget
        for point in points:
            budget = float(point["label"].removeprefix("budget="))
            assert all(0 < spend <= budget + 1e-9 for spend in point["spends"])


def test_a_malformed_mix_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--batch", "x:a"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "--batch 'x:a': expected a pool, or N:pool+pool (N questions of each, 0 for all)"
