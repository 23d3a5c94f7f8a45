"""A small generated arithmetic set with gold answers, for measuring a tiny local model (SmolLM2-135M).

``python benchmarks/arithmetic_set.py [--count 100] [--seed 0] [--out benchmarks/data/arithmetic-100.jsonl]``

Questions are "What is A + B?" with A in 1..20 and B in 1..9, distinct pairs drawn with a fixed seed: hard
enough that a 135M model gets about half of single samples right, easy enough that voting can help.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def arithmetic_questions(count: int = 100, seed: int = 0) -> list[dict[str, str]]:
    """``count`` distinct addition questions as questions-file rows (id, question, answer_type, gold)."""
    pairs = [(a, b) for a in range(1, 21) for b in range(1, 10)]
    if not 1 <= count <= len(pairs):
        raise ValueError(f"count must be between 1 and {len(pairs)}, got {count}")
    chosen = random.Random(seed).sample(pairs, count)
    return [{"id": f"add-{i:03d}", "question": f"What is {a} + {b}?", "answer_type": "number", "gold": str(a + b)}
            for i, (a, b) in enumerate(chosen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "arithmetic-100.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for row in arithmetic_questions(args.count, args.seed):
            handle.write(json.dumps(row) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
