"""lm-evaluation-harness ``local-chat-completions`` against ``dynscaling serve`` in front of
``dynscaling replay-server`` (GPT-4 GSM8K pool), next to ``dynscaling solve`` on the same questions.

lm-eval runs its own ``gsm8k`` task (``include``d from the installed harness) with the dataset pointed at the
local file ``../shared/data/benchmarks/gsm8k/test.jsonl`` (first ``--limit`` questions, zero-shot, chat template
applied), so nothing is downloaded. It sends what it always sends (``max_tokens``, ``stop``, ``temperature=0``,
``seed``) to ``dynscaling/<budget>/<pool>``; the server samples at its own temperature, votes, and returns one
sample that voted for the winner, which lm-eval scores with its own ``exact_match`` filters.

Three figures on the same questions and budget (samples per question):

- lm-eval's exact match (strict-match and flexible-extract) through ``serve``;
- ``dynscaling solve`` (one batch, budget shared by the bandit) against a fresh replay-server: accuracy;
- the replay interval: the same per-request engine as ``serve`` (strategy, budget), replayed in process over
  ``--seeds`` seeds; mean and 95% interval (t, over seeds) of accuracy, and the same for ``solve``'s batch.

lm-eval pulls torch, so it lives in its own venv: ``--lm-eval /work/venvs/compat/bin/lm_eval`` (default: the
``lm_eval`` on PATH). Run: ``nice -n 10 python benchmarks/lm_eval_gsm8k.py``; results go to
``benchmarks/results/lm_eval_gsm8k.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dynscaling import Budget, load_pool, replay
from dynscaling.pools import Pool
from servekit import ROOT, SHARED, dynscaling_serve, replay_server, write_jsonl

POOL = SHARED / "data" / "pools" / "gpt4_gsm8k_x12.jsonl.gz"
GSM8K = SHARED / "data" / "benchmarks" / "gsm8k" / "test.jsonl"
STRATEGY = "dynscaling:max_inflight=2"
T95 = {5: 2.776, 10: 2.262, 20: 2.093, 30: 2.045}


def harness_task_dir(lm_eval: str, data: Path, into: Path) -> Path:
    """A task yaml that includes lm-eval's own gsm8k task and points its dataset at a local JSON lines file."""
    python = Path(lm_eval).with_name("python")
    found = subprocess.run([str(python), "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    base = Path(found) / "tasks" / "gsm8k" / "gsm8k.yaml"
    (into / "gsm8k_local.yaml").write_text(
        f"include: {base}\ntask: gsm8k_local\ntag: []\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n    train: {data}\n", encoding="utf-8")
    return into


def interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    half = T95.get(len(values), 1.96) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0
    return mean, half


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm-eval", default=shutil.which("lm_eval") or "/work/venvs/compat/bin/lm_eval")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--budget", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if not POOL.exists() or not GSM8K.exists():
        print(f"needs {POOL} and {GSM8K}", file=sys.stderr)
        return 2
    pool = load_pool(POOL)
    by_text = {e.question.text: e for e in pool.entries}
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines()[:args.limit]]
    entries = [by_text[r["question"]] for r in rows]
    subset = Pool(pool.name, pool.path, entries)
    out: dict[str, object] = {"pool": pool.name, "questions": len(rows), "budget": args.budget,
                              "strategy": STRATEGY}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = write_jsonl(tmp / "gsm8k_test.jsonl", rows)
        tasks = harness_task_dir(args.lm_eval, data, tmp)
        # lm-eval through serve in front of replay-server.
        with replay_server(POOL) as upstream, dynscaling_serve(upstream, pool.name, "--answer-type", "number",
                                                               "--strategy", STRATEGY,
                                                               "--journal", str(tmp / "serve.sqlite")) as url:
            started = time.perf_counter()
            env = {**os.environ, "OPENAI_API_KEY": "EMPTY", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                   "TOKENIZERS_PARALLELISM": "false"}
            model_args = (f"model=dynscaling/{args.budget}/{pool.name},base_url={url}/chat/completions,"
                          f"num_concurrent={args.concurrency},max_retries=1,tokenized_requests=False")
            harness = subprocess.run(
                [args.lm_eval, "--model", "local-chat-completions", "--model_args", model_args,
                 "--tasks", "gsm8k_local", "--include_path", str(tasks), "--apply_chat_template",
                 "--num_fewshot", "0", "--output_path", str(tmp / "lm_eval"), "--log_samples"],
                env=env, capture_output=True, text=True)
            out["lm_eval_seconds"] = round(time.perf_counter() - started, 1)
            with __import__("urllib.request").request.urlopen(url.removesuffix("/v1") + "/stats") as reply:
                out["serve_stats"] = json.loads(reply.read())
        if harness.returncode != 0:
            print(harness.stdout[-3000:], harness.stderr[-3000:], file=sys.stderr)
            return 1
        results_file = next((tmp / "lm_eval").rglob("results_*.json"))
        scores = json.loads(results_file.read_text())["results"]["gsm8k_local"]
        out["lm_eval"] = {k: v for k, v in scores.items() if k.startswith("exact_match")}
        # dynscaling solve on the same questions, same budget, against a fresh replay-server.
        questions = write_jsonl(tmp / "questions.jsonl", [
            {"id": e.question.id, "question": e.question.text, "answer_type": "number", "gold": e.question.gold}
            for e in entries])
        with replay_server(POOL) as upstream:
            solved = subprocess.run(
                [sys.executable, "-m", "dynscaling.cli", "solve", str(questions), "--out", str(tmp / "out.jsonl"),
                 "--base-url", upstream, "--model", pool.name, "--budget", str(args.budget),
                 "--strategy", STRATEGY, "--journal", str(tmp / "solve.sqlite")],
                env={**os.environ, "OPENAI_API_KEY": "EMPTY"}, capture_output=True, text=True)
        if solved.returncode != 0:
            print(solved.stderr[-3000:], file=sys.stderr)
            return 1
        graded = [json.loads(line)["correct"] for line in (tmp / "out.jsonl").read_text().splitlines()]
        out["solve_accuracy"] = statistics.fmean(bool(c) for c in graded)
    # The replay interval: serve's per-request engine (one question, its own budget), and solve's batch engine.
    parallel = STRATEGY.replace("dynscaling:", "dynscaling-parallel:")
    per_request = [statistics.fmean(
        bool(replay(Pool(pool.name, pool.path, [e]), parallel, Budget(samples=args.budget), seed=s).accuracy)
        for e in entries) for s in range(args.seeds)]
    batch = [replay(subset, parallel, Budget(samples=args.budget * len(entries)), seed=s).accuracy or 0.0
             for s in range(args.seeds)]
    for name, values in (("replay_per_request", per_request), ("replay_batch", batch)):
        mean, half = interval(values)
        out[name] = {"mean": round(mean, 4), "ci95_half": round(half, 4), "low": round(min(values), 4),
                     "high": round(max(values), 4), "seeds": len(values)}
    strict = out["lm_eval"].get("exact_match,strict-match", 0.0)  # type: ignore[union-attr]
    flexible = out["lm_eval"].get("exact_match,flexible-extract", 0.0)  # type: ignore[union-attr]
    low, high = out["replay_per_request"]["low"], out["replay_per_request"]["high"]  # type: ignore[index]
    out["flexible_within_replay_range"] = low <= flexible <= high
    results = ROOT / "benchmarks" / "results" / "lm_eval_gsm8k.json"
    results.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))
    print(f"\nlm-eval exact match: strict {strict:.3f}, flexible {flexible:.3f}; solve {out['solve_accuracy']:.3f}; "
          f"replay per request {out['replay_per_request']}; replay batch {out['replay_batch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
