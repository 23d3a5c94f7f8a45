"""Decision traces: a hash of every allocation decision and every result, to prove a speed-up changed nothing.

For each case (pool x strategy x budget x seed) it replays the run through the engine with a recording source and
prints one line: the samples spent, a hash of the decision sequence (which question got each sample, in order)
and a hash of the results (each question's answer, confidence, vote table, samples, abstentions and usage).
Run it before and after a change to the engine or an allocator and ``diff`` the outputs: any line that differs
names the case whose behaviour changed.

Cases: every pool in ``../shared/data/pools`` (skipped when absent) and ``replay_speed``'s synthetic pool; the
parallel strategies through the fast replay loop (``Engine.run_sync``), with budgets in samples (below one sample
per question too) and in tokens; and ``dynscaling`` (integrated chains) through the live calls
(``next_request``/``deliver``), serving the pool's recorded texts as the answers to its chain prompts, with the
messages of every request in its hash.

    python benchmarks/decision_trace.py [--pools DIR] [--seeds 3] [--synthetic 2000] > trace.txt
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from dynscaling import Budget
from dynscaling.backends.replay import ReplayBackend
from dynscaling.engine import Engine
from dynscaling.errors import BackendError
from dynscaling.journal import stable_hash
from dynscaling.pools import Pool, load_pool
from dynscaling.types import RunResult, Usage
from replay_speed import synthetic_pool

PARALLEL = ("dynscaling-parallel", "sc", "adaptive", "consol", "ucb")
#: budgets in samples per question; below one, some questions get none
SAMPLE_BUDGETS = (0.5, 1.5, 4.0, 12.0)
#: budgets in tokens, as multiples of the pool's mean tokens per question-sample
TOKEN_BUDGETS = (0.7, 3.0)


def _digest(parts: list[str]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.encode())
        h.update(b"\n")
    return h.hexdigest()


def results_hash(result: RunResult) -> str:
    return _digest([repr((r.question_id, r.answer, r.confidence, r.votes, r.samples, r.abstentions, r.usage,
                          r.correct)) for r in result.results] + [repr((result.samples, result.usage))])


def _tokens(usage: Usage) -> int:
    return usage.prompt_tokens + usage.completion_tokens


def budgets_for(pool: Pool) -> list[tuple[str, Budget]]:
    n = len(pool.entries)
    mean_tokens = (sum(_tokens(u) for e in pool.entries for u in e.usages)
                   / max(1, sum(len(e.usages) for e in pool.entries)))
    per_question = SAMPLE_BUDGETS + ((16.0,) if pool.name == "synthetic" else ())  # replay_speed's budget
    budgets = [(f"samples={b}/q", Budget(samples=int(b * n))) for b in per_question]
    budgets += [(f"tokens={b}/q", Budget(tokens=int(b * n * mean_tokens))) for b in TOKEN_BUDGETS]
    return budgets


def trace_parallel(pool: Pool, strategy: str, budget: Budget, seed: int) -> tuple[int, str, str]:
    """The fast replay loop, as ``dynscaling.replay`` runs it, with every decision recorded."""
    engine = Engine(pool.questions, strategy, budget, seed=seed, needs_messages=False,
                    clusterers=[e.clusterer for e in pool.entries])
    backend = ReplayBackend(pool, seed)
    decisions: list[str] = []

    def draw(qi: int) -> tuple[int | None, Usage]:
        decisions.append(str(qi))
        return backend.draw_class(qi)

    engine.run_sync(draw)
    result = engine.result()
    return result.samples, _digest(decisions), results_hash(result)


def trace_live(pool: Pool, strategy: str, budget: Budget, seed: int) -> tuple[int, str, str]:
    """The live calls one request at a time, the pool's recorded samples served as the model's answers."""
    engine = Engine(pool.questions, strategy, budget, seed=seed,
                    clusterers=[e.clusterer for e in pool.entries])
    backend = ReplayBackend(pool, seed)
    decisions: list[str] = []
    while (request := engine.next_request()) is not None:
        decisions.append(f"{request.question_index} {request.sample_index} {stable_hash(request.messages)}")
        try:
            sample = backend.sample(request.question_index)
        except BackendError as error:
            engine.fail(request, error)
            continue
        engine.deliver(request, sample)
    result = engine.result()
    return result.samples, _digest(decisions), results_hash(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parent
    parser.add_argument("--pools", type=Path, default=here.parent.parent / "shared" / "data" / "pools")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=2000, help="questions in the synthetic pool (0: none)")
    args = parser.parse_args()
    pools: list[Pool] = []
    if args.pools.is_dir():
        pools = [load_pool(p) for p in sorted(args.pools.glob("*.jsonl.gz"))]
    else:
        print(f"# no pools at {args.pools}: synthetic pool only", file=sys.stderr)
    if args.synthetic:
        pools.append(synthetic_pool(args.synthetic, 48))
    start = time.process_time()
    for pool in pools:
        for label, budget in budgets_for(pool):
            for seed in range(args.seeds):
                for strategy in PARALLEL:
                    samples, decisions, results = trace_parallel(pool, strategy, budget, seed)
                    print(f"{pool.name} {strategy} {label} seed={seed} samples={samples} decisions={decisions} "
                          f"results={results}", flush=True)
                if budget.samples is not None and pool.name != "synthetic":
                    samples, decisions, results = trace_live(pool, "dynscaling", budget, seed)
                    print(f"{pool.name} dynscaling(live) {label} seed={seed} samples={samples} "
                          f"decisions={decisions} results={results}", flush=True)
    print(f"# {time.process_time() - start:.1f} CPU seconds", file=sys.stderr)


if __name__ == "__main__":
    main()
