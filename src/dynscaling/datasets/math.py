"""Maths benchmarks: GSM8K (gold after ``####``), MATH-500 (LaTeX answers), AIME and AMC (integer answers)."""

from __future__ import annotations

from collections.abc import Iterable

from ..types import Question
from ._common import LoadOptions, Record, number_gold, with_original

__all__ = ["parse_competition", "parse_gsm8k", "parse_math500"]


def parse_gsm8k(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    questions = []
    for index, where, record in records:
        solution = where.string(record, "answer")
        if "####" not in solution:
            raise where.error("has no '####' before the final answer", "answer")
        raw = solution.rsplit("####", 1)[1].strip()
        gold = number_gold(raw, where, "answer")
        questions.append(Question(f"{options.name}-{index}", where.string(record, "question"), "number", gold, {}))
    return questions


def parse_math500(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in records:
        unique_id = where.string(record, "unique_id")
        short = unique_id.removeprefix("test/").removesuffix(".json")
        meta = {"subject": record.get("subject"), "level": record.get("level"), "unique_id": unique_id}
        questions.append(Question(f"{options.name}-{short}", where.string(record, "problem"), "latex",
                                  where.string(record, "answer"), meta))
    return questions


def parse_competition(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    """AIME and AMC: ``problem`` (or ``question``), an integer ``answer``, an optional ``id`` and ``url``."""
    questions = []
    for index, where, record in records:
        raw = record.get("answer")
        if raw is None:
            raise where.error("missing", "answer")
        gold = number_gold(raw, where, "answer")
        original_id = record.get("id", index)
        meta = {"url": record["url"]} if record.get("url") else {}
        questions.append(Question(f"{options.name}-{original_id}", where.first_string(record, ("problem", "question")),
                                  "number", gold, with_original(meta, gold, raw)))
    return questions
