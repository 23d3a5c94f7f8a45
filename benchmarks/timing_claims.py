"""The timing claims the unit tests used to assert with wall-clock thresholds, measured here instead.

    nice -n 10 python benchmarks/timing_claims.py [--repeat 5]

1. The replay server answers 120 concurrent connections (0.5 s latency each) concurrently: the wall time is
   close to 0.5 s, not 120 x 0.5 s.
2. A timeout fault hangs past the client's timeout (0.3 s), and ``stop()`` returns without waiting for it.
3. The live driver keeps its other slots turning over while one question's requests take 0.3 s: the number of
   other requests completed meanwhile (concurrency 4, others taking 0-1 ms).

Each figure is the median over ``--repeat`` runs, with the range; the results go in BENCHMARKS.md. The unit tests
check the same behaviours without timing (tests/test_replay_server.py, tests/test_live_driver.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import openai

from dynscaling import Budget, Engine, Question, Sample, Usage
from dynscaling.drivers import arun
from dynscaling.pools import bundled_pools, load_pool
from dynscaling.replay_server import FaultPlan, ReplayServer
from dynscaling.samplers import Prompts


def connections_wall(pool_path: Path, connections: int = 120, latency: float = 0.5) -> float:
    pool = load_pool(pool_path)
    questions = [e.question for e in pool.entries[:connections]]

    async def main(server: ReplayServer) -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            await asyncio.gather(*(client.chat.completions.create(model="m", messages=Prompts().opening(q))
                                   for q in questions))

    with ReplayServer(pool, latency=latency) as server:
        started = time.perf_counter()
        asyncio.run(main(server))
        return time.perf_counter() - started


def timeout_and_stop(pool_path: Path) -> tuple[float, float]:
    pool = load_pool(pool_path)
    server = ReplayServer(pool, faults=FaultPlan(timeout=1.0, hang_seconds=30.0)).start()
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=0.3)
    started = time.perf_counter()
    try:
        client.chat.completions.create(model="m", messages=Prompts().opening(pool.entries[0].question))
    except openai.APITimeoutError:
        pass
    timed_out = time.perf_counter() - started
    client.close()
    started = time.perf_counter()
    server.stop()
    return timed_out, time.perf_counter() - started


class SlowQuestionModel:
    """Question 3's requests take 0.3 s; the others 0-1 ms. Counts completions while question 3 is pending."""

    def __init__(self) -> None:
        self.slow_pending = 0
        self.completed_while_slow = 0

    async def agenerate(self, messages: list[dict[str, str]], n: int = 1, *, seed: int | None = None) -> list[Sample]:
        if messages[0]["content"].startswith("Question 3:"):
            self.slow_pending += 1
            await asyncio.sleep(0.3)
            self.slow_pending -= 1
        else:
            await asyncio.sleep(0.001 * random.Random(seed).random())
            if self.slow_pending:
                self.completed_while_slow += 1
        return [Sample("The answer is 1.", None, Usage(12, 8), "stop") for _ in range(n)]


def completions_during_slow_request() -> int:
    questions = [Question(f"q{i}", f"Question {i}: what is {i} + {i}?", "number") for i in range(30)]
    model = SlowQuestionModel()
    asyncio.run(arun(Engine(questions, "sc", Budget(samples=90)), model, concurrency=4))  # type: ignore[arg-type]
    return model.completed_while_slow


def summary(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):.3f} {unit} (range {min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pool = next(p for p in bundled_pools() if "code-davinci" in p.name)
    walls = [connections_wall(pool) for _ in range(args.repeat)]
    print(f"120 concurrent connections, 0.5 s latency each: wall {summary(walls, 's')}")
    timings = [timeout_and_stop(pool) for _ in range(args.repeat)]
    print(f"timeout fault vs a 0.3 s client timeout: raised after {summary([t for t, _ in timings], 's')}; "
          f"stop() took {summary([s for _, s in timings], 's')}")
    counts = [float(completions_during_slow_request()) for _ in range(args.repeat)]
    print(f"other requests completed while a 0.3 s request was pending: {summary(counts, '')}")


if __name__ == "__main__":
    main()
