"""Live-path throughput: how well the engine keeps an OpenAI-compatible server busy.

Starts a ``ReplayServer`` on a bundled pool (``slots`` requests processed at once, ``latency`` seconds each), then
runs the real live path: ``Engine`` (self-consistency over ``requests / 4`` questions, 4 samples each) driven by
``dynscaling.drivers.arun`` with ``--concurrency`` requests in flight, through ``OpenAIBackend`` and the official
SDK. ``--driver semaphore`` instead sends the same number of requests from a bare semaphore loop, to separate
the engine's cost from the SDK's. Prints wall time, requests/s and slot utilisation = busy slot-seconds /
(slots x wall): 1.0 means the server never had an idle slot.

    python benchmarks/throughput.py [--requests 1000] [--concurrency 32] [--slots 32] [--latency 0.2]

The ideal wall time is requests x latency / slots (6.25 s with the defaults). With a constant latency the
requests settle into waves (they started together and take equally long), and each wave costs the caller its CPU
time per request x concurrency before the next one is in flight, so utilisation tends to
latency / (latency + concurrency x CPU per request). The CPU line shows what the process spent per request
(client and the server's thread together: they share one process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from dynscaling import Budget, Engine
from dynscaling.backends.openai import OpenAIBackend
from dynscaling.drivers import arun
from dynscaling.pools import Pool, bundled_pools, load_pool
from dynscaling.replay_server import ReplayServer
from dynscaling.samplers import Prompts


def pool_with(samples_needed: int, name: str) -> Pool:
    """The bundled pool ``name`` if it holds enough samples, else a synthetic one written to a temporary file."""
    matches = [p for p in bundled_pools() if name in p.name]
    if matches:
        pool = load_pool(matches[0])
        if sum(len(e.texts) for e in pool.entries) >= samples_needed:
            return pool
    questions = max(1, samples_needed // 40 + 1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic.jsonl"
        with path.open("w") as out:
            for i in range(questions):
                samples = [{"text": f"Step by step: {i} + {j} = {i + j}.", "answer": str(i + j)} for j in range(40)]
                out.write(json.dumps({"id": str(i), "question": f"Synthetic question {i}: add a number to {i}.",
                                      "gold": str(i), "answer_type": "number", "samples": samples}) + "\n")
        return load_pool(path)


async def drive(backend: OpenAIBackend, pool: Pool, requests: int, concurrency: int) -> None:
    """Keep ``concurrency`` requests in flight until ``requests`` have been sent and returned."""
    prompts = Prompts()
    messages = [prompts.opening(e.question) for e in pool.entries]
    slots = asyncio.Semaphore(concurrency)
    tasks = set()
    errors: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            await backend.agenerate(messages[i % len(messages)], 1, seed=i)
        except Exception as error:  # counted and reported after the run
            errors.append(error)
        finally:
            slots.release()

    for i in range(requests):
        await slots.acquire()
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed; first: {errors[0]}")


class SeparateServer:
    """``dynscaling replay-server`` in a child process, with the same ``base_url``/``model``/``stats`` surface."""

    def __init__(self, pool: Pool, slots: int, latency: float) -> None:
        self.model = pool.name
        self._args = [sys.executable, "-m", "dynscaling.cli", "replay-server", "--pool", pool.path, "--port", "0",
                      "--slots", str(slots), "--latency", str(latency)]

    def __enter__(self) -> SeparateServer:
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        self.stats = self
        return self

    def snapshot(self) -> dict:
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def __exit__(self, *exc_info: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="requests the caller keeps in flight")
    parser.add_argument("--slots", type=int, default=32, help="requests the server processes at once")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request at the server")
    parser.add_argument("--pool", default="code-davinci-002", help="bundled pool (name fragment)")
    parser.add_argument("--driver", choices=["engine", "semaphore"], default="engine")
    parser.add_argument("--server-process", action="store_true",
                        help="run the replay server in its own process, as a model server would be (it then "
                             "shares no CPU time with the caller)")
    args = parser.parse_args()

    pool = pool_with(args.requests, args.pool)
    server_cm = (SeparateServer(pool, args.slots, args.latency) if args.server_process
                 else ReplayServer(pool, slots=args.slots, latency=args.latency))
    with server_cm as server:

        async def run() -> tuple[float, float, OpenAIBackend]:
            backend = OpenAIBackend(server.model, base_url=server.base_url, api_key="unused", timeout=30)
            try:
                started, cpu = time.perf_counter(), time.process_time()
                if args.driver == "engine":
                    questions = pool.questions[:max(1, args.requests // 4)]
                    engine = Engine(questions, "sc", Budget(samples=args.requests))
                    result = await arun(engine, backend, concurrency=args.concurrency)
                    assert result.samples == args.requests, result.failures
                else:
                    await drive(backend, pool, args.requests, args.concurrency)
                return time.perf_counter() - started, time.process_time() - cpu, backend
            finally:
                await backend.aclose()

        wall, cpu, backend = asyncio.run(run())
        stats = server.stats.snapshot()
    ideal = args.requests * args.latency / args.slots
    print(f"pool {pool.name}: {args.requests} requests via the {args.driver} driver, caller concurrency "
          f"{args.concurrency}, "
          f"server slots {args.slots}, latency {args.latency:g} s")
    print(f"wall time          {wall:8.3f} s   (ideal {ideal:.3f} s)")
    print(f"requests/s         {args.requests / wall:8.1f}     (ideal {args.requests / ideal:.1f})"
          if ideal else f"requests/s         {args.requests / wall:8.1f}")
    print(f"slot utilisation   {stats['busy_seconds'] / (args.slots * wall):8.3f}     "
          f"(busy slot-seconds {stats['busy_seconds']:.2f} / ({args.slots} x wall))")
    print(f"server: max in flight {stats['max_inflight']}, max active {stats['max_active']}, "
          f"samples served {stats['samples']}, status {stats['status']}")
    print(f"client: {backend.requests} HTTP requests, {backend.retries} retries; process CPU "
          f"{cpu * 1000 / args.requests:.2f} ms per request")


if __name__ == "__main__":
    main()
