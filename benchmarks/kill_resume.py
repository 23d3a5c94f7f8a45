"""Run safety, measured: SIGKILLs during ``dynscaling solve``, fail-fast times, and a 300 s Retry-After.

1. **Kills against ``dynscaling replay-server``** (a subprocess, the real CLI) with 10% 429, 10% 500 and 20% fewer
   choices: ``--kills`` SIGKILLs at random points of a run, then the same command to the end. Reports the samples
   the server served against budget + concurrency x kills, and how many answers agree with an uninterrupted run.
   The replay server serves a question's recorded samples in one order whoever asks, so samples in flight at a
   kill are gone and the resumed run sees later ones: answers may differ, and the bound is what is checked.
2. **The same against a seeded upstream** (tests/seeded_upstream.py: a sample is decided by its request's seed
   alone), where the resumed run must end with exactly the uninterrupted run's answers.
3. **Fail fast**: seconds until ``solve`` exits with nothing listening at ``--base-url``, and with a host name that
   does not resolve.
4. **Retry-After 300** on the first request of a one-question run: seconds until ``solve`` is done.

    python benchmarks/kill_resume.py [--kills 5] [--questions 40] [--budget 8] [--seed 0]

Run it under ``nice -n 10`` on a shared machine; it prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dynscaling.pools import bundled_pools, load_pool  # noqa: E402
from fakes import Reply, ScriptedServer, completion, error_body  # noqa: E402
from seeded_upstream import MODEL, SeededUpstream  # noqa: E402

CONCURRENCY = 8
STRATEGY = "esc:w=4,cap=8"  # several choices per request; the budget never binds, so timing decides nothing


def solve_command(base_url: str, model: str, batch: Path, out: Path, journal: Path, budget: int) -> list[str]:
    return [sys.executable, "-m", "dynscaling.cli", "solve", str(batch), "--out", str(out), "--base-url", base_url,
            "--model", model, "--journal", str(journal), "--strategy", STRATEGY, "--budget", str(budget),
            "--concurrency", str(CONCURRENCY), "--seed", "3", "--max-retries", "8"]


def answers(path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["id"]: (r["answer"], sorted(map(tuple, r["votes"])), r["samples"]) for r in rows}


def killed_run(args: list[str], env: dict[str, str], served: Callable[[], int], expected: int, kills: int,
               rng: random.Random) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Kill the command ``kills`` times when the upstream has served random counts, then run it to the end."""
    done = 0
    base = served()
    for target in sorted(rng.sample(range(5, max(6, expected - 5)), kills)):
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while served() - base < target and process.poll() is None:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            done += 1
        process.wait()
    return done, subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def replay_server_leg(work: Path, env: dict[str, str], questions: int, budget: int, kills: int, seed: int) -> None:
    pool_path = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))
    pool = load_pool(pool_path)
    batch = work / "date.jsonl"
    batch.write_text("".join(json.dumps({"id": e.question.id, "question": e.question.text, "answer_type": "date"})
                             + "\n" for e in pool.entries[:questions]))

    def start() -> tuple[subprocess.Popen[str], str]:
        server = subprocess.Popen(
            [sys.executable, "-m", "dynscaling.cli", "replay-server", "--pool", str(pool_path), "--port", "0",
             "--seed", str(seed), "--rate-limit", "0.1", "--server-error", "0.1", "--fewer-choices", "0.2",
             "--retry-after", "0.01"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert server.stdout is not None
        return server, server.stdout.readline().strip()

    def served(url: str) -> int:
        with urlopen(url.removesuffix("/v1") + "/stats") as response:
            return int(json.load(response)["samples"])

    results: dict[str, Any] = {}
    for name in ("uninterrupted", "killed"):
        server, url = start()
        try:
            model = pool.name
            args = solve_command(url, model, batch, work / f"{name}.jsonl", work / f"{name}.sqlite", budget)
            started = time.monotonic()
            if name == "uninterrupted":
                finished = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
                count = 0
            else:
                expected = results["uninterrupted"]["served"]
                count, finished = killed_run(args, env, lambda url=url: served(url), expected, kills,  # type: ignore[misc]
                                             random.Random(seed))
            results[name] = {"served": served(url), "kills": count, "exit": finished.returncode,
                             "seconds": time.monotonic() - started}
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    ref, killed = answers(work / "uninterrupted.jsonl"), answers(work / "killed.jsonl")
    same = sum(ref[k][0] == killed[k][0] for k in ref)
    bound = results["uninterrupted"]["served"] + CONCURRENCY * results["killed"]["kills"]
    print(f"replay-server, {questions} questions, {STRATEGY}, budget {budget}/question, 10% 429 + 10% 500 + 20% "
          f"fewer choices: uninterrupted served {results['uninterrupted']['served']} (exit "
          f"{results['uninterrupted']['exit']}); {results['killed']['kills']} SIGKILLs then resumed: served "
          f"{results['killed']['served']} <= bound {bound}: {results['killed']['served'] <= bound}; exit "
          f"{results['killed']['exit']}; same answer on {same}/{len(ref)} questions")


def seeded_leg(work: Path, env: dict[str, str], questions: int, budget: int, kills: int, seed: int) -> None:
    batch = work / "seeded.jsonl"
    batch.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question {i}: what is 6 times 7?",
                                         "answer_type": "number"}) + "\n" for i in range(questions)))
    faults = {"rate_limit": 0.1, "server_error": 0.1, "fewer_choices": 0.2}
    with SeededUpstream(**faults, latency=0.01) as upstream:
        reference = subprocess.run(solve_command(upstream.base_url, MODEL, batch, work / "s-ref.jsonl",
                                                 work / "s-ref.sqlite", budget), env=env, capture_output=True,
                                   text=True, timeout=600)
        expected = upstream.samples
    with SeededUpstream(**faults, latency=0.01) as upstream:
        args = solve_command(upstream.base_url, MODEL, batch, work / "s-out.jsonl", work / "s-out.sqlite", budget)
        count, finished = killed_run(args, env, lambda: upstream.samples, expected, kills, random.Random(seed))
        served = upstream.samples
        seen = dict(upstream.faults)
    equal = answers(work / "s-ref.jsonl") == answers(work / "s-out.jsonl")
    bound = expected + CONCURRENCY * count
    print(f"seeded upstream, {questions} questions, {STRATEGY}: uninterrupted served {expected} (exit "
          f"{reference.returncode}); {count} SIGKILLs then resumed: served {served} <= bound {bound}: "
          f"{served <= bound}; exit {finished.returncode}; answers equal to the uninterrupted run: {equal}; faults "
          f"in the killed runs {seen}")


def fail_fast(work: Path, env: dict[str, str]) -> None:
    batch = work / "one.jsonl"
    batch.write_text(json.dumps({"id": "a", "question": "What is 1 + 1?", "answer_type": "number"}) + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound and not listening: connection refused
        for label, url in (("nothing listening", f"http://127.0.0.1:{port}/v1"),
                           ("unresolvable host", "http://no-such-host.invalid/v1")):
            started = time.monotonic()
            done = subprocess.run([*solve_command(url, "m", batch, work / "ff.jsonl", work / "ff.sqlite", 1),
                                   "--no-api-key"], env=env, capture_output=True, text=True, timeout=120)
            print(f"fail fast, {label}: exit {done.returncode} after {time.monotonic() - started:.2f} s "
                  f"(process start included): {done.stderr.strip()}")


def long_retry_after(work: Path, env: dict[str, str]) -> None:
    batch = work / "one.jsonl"
    replies = [Reply(429, error_body("slow down", code="rate_limit_exceeded"), {"Retry-After": "300"}),
               Reply(200, completion(["So 2. The answer is 2."]))]
    with ScriptedServer(replies) as server:
        started = time.monotonic()
        done = subprocess.run(solve_command(server.base_url, "m", batch, work / "ra.jsonl", work / "ra.sqlite", 1),
                              env=env, capture_output=True, text=True, timeout=600)
        print(f"Retry-After 300 on the first request (max-retry-after 120): exit {done.returncode} after "
              f"{time.monotonic() - started:.2f} s, {len(server.requests)} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--budget", type=int, default=8, help="samples per question (the ESC cap)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-resume-") as folder:
        work = Path(folder)
        env = {**os.environ, "DYNSCALING_HOME": str(work / "home")}
        env.pop("OPENAI_API_KEY", None)  # every upstream here is local: no key needed
        fail_fast(work, env)
        long_retry_after(work, env)
        seeded_leg(work, env, args.questions, args.budget, args.kills, args.seed)
        replay_server_leg(work, env, args.questions, args.budget, args.kills, args.seed)


if __name__ == "__main__":
    main()
