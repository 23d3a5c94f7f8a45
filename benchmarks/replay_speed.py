"""Replay throughput: samples simulated per second by the synchronous replay loop, one core.

A synthetic pool of 10,000 questions x 48 samples, answers drawn from per-question answer distributions shaped
like the real pools (a dominant answer with probability 0.4-0.95, the rest spread over a few others, 5%
abstentions). Times ``dynscaling.replay`` end to end (engine, allocator, ledger, tallies, the per-question results;
not pool building), over ``--repeats`` seeds: the best as wall time and as this process's CPU time (a shared
machine slows the first most), the median and the first (cold) run per CPU second, and the one-minute load
average before and after each strategy.

    python benchmarks/replay_speed.py [--questions 10000] [--samples 48] [--budget 16] [--strategy ...] [--diffuse]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

from dynscaling import Budget, Question, replay
from dynscaling.answers import AnswerClusterer
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.types import Usage


def synthetic_pool(questions: int, samples: int, seed: int = 0, *, diffuse: bool = False) -> Pool:
    """The benchmark's pool. ``diffuse``: a weak model's instead (LLaMA-2-like: the top answer 0.15-0.6 of the
    samples, the rest over 11 others, 10% abstentions, completion lengths 50-400 tokens, so length groups apply),
    whose tallies take far more distinct shapes."""
    rng = random.Random(seed)
    usage = Usage(prompt_tokens=50, completion_tokens=200)
    top_range, abstain, others = ((0.15, 0.6), 0.1, 12) if diffuse else ((0.4, 0.95), 0.05, 5)
    entries = []
    for i in range(questions):
        clusterer = AnswerClusterer("number")
        top = rng.uniform(*top_range)
        answers: list[str | None] = []
        for _ in range(samples):
            u = rng.random()
            if u < abstain:
                answers.append(None)
            elif u < abstain + top * (1 - abstain):
                answers.append("1")
            else:
                answers.append(str(rng.randint(2, others)))
        classes = tuple(clusterer.assign(a) for a in answers)
        question = Question(str(i), f"question {i}", "number", gold="1")
        usages = (tuple(Usage(prompt_tokens=50, completion_tokens=rng.randint(50, 400)) for _ in answers) if diffuse
                  else tuple(usage for _ in answers))
        entries.append(PoolQuestion(question, tuple(answers), tuple(answers), classes, usages, clusterer))
    return Pool("synthetic-diffuse" if diffuse else "synthetic", "<memory>", tuple(entries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--budget", type=float, default=16, help="samples per question")
    parser.add_argument("--strategy", action="append", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--diffuse", action="store_true",
                        help="a weak model's pool instead: many distinct tallies, answer lengths that vary")
    args = parser.parse_args()
    pool = synthetic_pool(args.questions, args.samples, diffuse=args.diffuse)
    strategies = args.strategy or ["dynscaling-parallel", "ucb", "sc", "adaptive", "esc"]
    print(f"pool: {pool.name}, {args.questions} questions x {args.samples} samples; budget {args.budget} "
          "samples/question; "
          f"Python {platform.python_version()}")
    for spec in strategies:
        walls: list[float] = []
        cpus: list[float] = []
        load_before = os.getloadavg()[0]
        for seed in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            result = replay(pool, spec, Budget(samples=int(args.budget * args.questions)), seed=seed)
            walls.append(result.samples / (time.perf_counter() - start))
            cpus.append(result.samples / (time.process_time() - cpu))
        # The first seed pays for the caches every later run reuses (the answer model's evidence per shape).
        print(f"{spec:22s} {result.samples:>8d} samples  best {max(walls):>9,.0f} samples/s wall, "
              f"{max(cpus):>9,.0f} per CPU second (median {statistics.median(cpus):>9,.0f}, first "
              f"{cpus[0]:>9,.0f})  accuracy {result.accuracy:.4f}  load {load_before:.2f}-{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
