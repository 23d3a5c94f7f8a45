"""How often our extractor, reading a sample's full text, finds the answer the upstream evaluation recorded.

For every replay pool whose samples record both the model's text and the upstream's extracted answer, and for
every sample where the upstream found a value: is ``extract_answer(text)`` equivalent to it (``answers_match``,
the upstream value as gold)? Samples whose upstream answer holds no clean value of the type (a bare sentence, a
refusal) are counted apart, as are program-of-thought samples, whose text is a program: their upstream answer is
the program's output, which we never compute (code in model output is never executed).

    python benchmarks/extraction_agreement.py [--data DIR] [--show N]

``--show N`` prints N disagreements per pool (from evaluation-only pools too: read them, never copy them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynscaling.answers import answers_match, canonical_key, extract_answer, is_program


@dataclass
class Agreement:
    """The tally of one pool."""

    pool: str
    answer_type: str
    samples: int = 0
    compared: int = 0
    agreed: int = 0
    no_upstream: int = 0
    upstream_unclean: int = 0
    programs: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    shown: list[tuple[str, int, str | None, str | None, str]] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _upstream_value(upstream: str, answer_type: str) -> str | None:
    """The upstream answer as a value of the type: itself when clean, else the value in its sentence."""
    if canonical_key(upstream, answer_type) is not None:
        return upstream.strip()
    found = extract_answer(upstream, answer_type)
    return found if found is not None and canonical_key(found, answer_type) is not None else None


KINDS = {
    "none": "ours none: the text offers alternatives, a list or no answer",
    "before": "upstream's value stands before ours in the text (a premise: 'X days from Y is Z' -> Y)",
    "after": "upstream's value stands after ours (an aside or a later alternative: 'Z (but ... Y)' -> Y)",
    "elsewhere": "upstream's value is not written in the text as such",
}


def _kind(ours: str | None, upstream: str, text: str) -> str:
    """Which kind of disagreement this is, from where the two values stand in the text."""
    if ours is None:
        return "none"
    ours_at, theirs_at = text.rfind(ours), text.rfind(upstream)
    if theirs_at < 0:
        return "elsewhere"
    return "before" if theirs_at < ours_at else "after"


def measure(path: Path, show: int) -> Agreement | None:
    name = path.name.removesuffix(".jsonl.gz")
    tally: Agreement | None = None
    for record in _records(path):
        answer_type = record.get("answer_type", "text")
        if tally is None:
            tally = Agreement(name, answer_type)
        for index, sample in enumerate(record["samples"]):
            text, upstream = sample.get("text"), sample.get("answer")
            tally.samples += 1
            if text is None or upstream is None:
                tally.no_upstream += 1
                continue
            ours = extract_answer(text, answer_type)
            if ours is None and is_program(text):
                tally.programs += 1  # its answer is what it would print: never computed here
                continue
            value = _upstream_value(str(upstream), answer_type)
            if value is None:
                tally.upstream_unclean += 1
                continue
            tally.compared += 1
            if answers_match(ours, value, answer_type):
                tally.agreed += 1
                continue
            tally.kinds[_kind(ours, value, text)] += 1
            if len(tally.shown) < show:
                tally.shown.append((str(record["id"]), index, ours, value, text))
    if tally is None or tally.compared == 0 and tally.programs == 0:
        return None
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("DYNSCALING_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", default=default, help="the data folder holding pools/ (default %(default)s)")
    parser.add_argument("--show", type=int, default=0, help="disagreements to print per pool")
    args = parser.parse_args()
    paths = sorted((Path(args.data) / "pools").glob("*.jsonl.gz"))
    if not paths:
        sys.exit(f"no pools in {Path(args.data) / 'pools'}")
    print("| pool | type | samples | compared | agree | share | ours none | upstream's before ours "
          "| upstream's after ours | upstream's not in text | upstream no value | programs (not compared) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        tally = measure(path, args.show)
        if tally is None:
            print(f"| {path.name.removesuffix('.jsonl.gz')} | | | no upstream answers recorded | | | | | | | | |")
            continue
        share = "n/a" if tally.share is None else f"{tally.share:.2%}"
        print(f"| {tally.pool} | {tally.answer_type} | {tally.samples} | {tally.compared} | {tally.agreed} | {share} "
              f"| {tally.kinds['none']} | {tally.kinds['before']} | {tally.kinds['after']} "
              f"| {tally.kinds['elsewhere']} | {tally.upstream_unclean + tally.no_upstream} | {tally.programs} |",
              flush=True)
        for qid, index, ours, value, text in tally.shown:
            kind = KINDS[_kind(ours, value, text)]
            print(f"    {qid}#{index}: ours={ours!r} upstream={value!r} ({kind})\n      ...{text[-300:]!r}")


def _legend() -> None:
    print("\nKinds of disagreement: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items()))


if __name__ == "__main__":
    main()
    _legend()
