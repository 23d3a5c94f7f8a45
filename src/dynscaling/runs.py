"""A bench run on disk: what ``dynscaling bench --out DIR`` writes and ``dynscaling report DIR`` reads.

Layout::

    DIR/run.json          what was run: source (pools or dataset), model, strategies, budgets, seeds, time
    DIR/points.json       one record per (pool, strategy, budget): accuracy mean and 95% interval over seeds,
                          samples / tokens / dollars per question actually spent (``BenchPoint.to_dict``)
    DIR/questions.jsonl   one line per (pool, strategy, budget, question) for seed 0: the answer, whether it is
                          correct, its confidence, the vote table, the samples and tokens it took, and (live
                          runs) the samples themselves, chain samples marked

Plain JSON so that other tools can read a run too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .types import QuestionResult

__all__ = ["RunFiles", "question_rows", "read_run", "write_run"]


@dataclass(frozen=True)
class RunFiles:
    meta: dict[str, Any]
    points: list[dict[str, Any]]
    questions: list[dict[str, Any]]


def question_rows(pool: str, strategy: str, budget: float, seed: int, results: Iterable[QuestionResult],
                  texts: Mapping[str, str] | None = None, golds: Mapping[str, str | None] | None = None,
                  samples: Mapping[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Rows for ``questions.jsonl``: one per question result."""
    rows = []
    for r in results:
        row = {"pool": pool, "strategy": strategy, "budget": budget, "seed": seed, **r.to_dict()}
        if texts is not None:
            row["question"] = texts.get(r.question_id)
        if golds is not None:
            row["gold"] = golds.get(r.question_id)
        if samples is not None and r.question_id in samples:
            row["samples_detail"] = samples[r.question_id]
        rows.append(row)
    return rows


def write_run(directory: str | Path, meta: Mapping[str, Any], points: Iterable[Mapping[str, Any]],
              questions: Iterable[Mapping[str, Any]]) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                              **meta}, indent=1, default=str) + "\n")
    (out / "points.json").write_text(json.dumps(list(points), indent=1) + "\n")
    with (out / "questions.jsonl").open("w", encoding="utf-8") as handle:
        for row in questions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def read_run(directory: str | Path) -> RunFiles:
    """Read a run folder; a missing or malformed file raises ``InputError`` naming it."""
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError("not a run folder (expected run.json, points.json, questions.jsonl)", path=str(folder))
    files: dict[str, Any] = {}
    for name in ("run.json", "points.json"):
        path = folder / name
        if not path.is_file():
            raise InputError("missing: write it with 'dynscaling bench --out DIR'", path=str(path))
        try:
            files[name] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise InputError(f"malformed JSON ({error.msg})", path=str(path), line=error.lineno) from None
    questions: list[dict[str, Any]] = []
    path = folder / "questions.jsonl"
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                questions.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise InputError(f"malformed JSON ({error.msg})", path=str(path), line=number) from None
    return RunFiles(files["run.json"], files["points.json"], questions)
