"""Reading a batch of questions from JSON lines, for ``dynscaling solve`` and the server's batch endpoint.

One question per line: ``{"id": ..., "question": ..., "answer_type": ..., "gold": ...}``; only ``question`` is
required (``id`` defaults to the line number; ``answer_type`` to the command's default; ``gold``, when given,
lets the output say whether each answer is correct). Other names can be mapped, e.g. ``question=problem``.
A bad line is reported with its file, line and field and skipped; the others are still answered.

Lines are split on ``\n`` only (a question may hold U+2028 or a form feed; ``\r\n`` endings are fine), a UTF-8
byte-order mark is ignored, and each line is decoded on its own, so one line of bad bytes loses only itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .jsonlines import json_line, split_lines
from .types import ANSWER_TYPES, Question

__all__ = ["QuestionFile", "parse_question_lines", "read_questions"]

FIELDS = ("id", "question", "answer_type", "gold")


@dataclass(frozen=True)
class QuestionFile:
    """The questions read from a file, and one error per line that could not be used."""

    questions: list[Question]
    errors: list[InputError] = field(default_factory=list)


def parse_question_lines(lines: Iterable[str | InputError], *, source: str, fields: Mapping[str, str] | None = None,
                         answer_type: str = "text") -> QuestionFile:
    """Parse JSON lines into questions. ``fields`` maps our names (id, question, answer_type, gold) to the
    file's names. An ``InputError`` in place of a line (see ``split_lines``) is reported as that line's error."""
    names = {name: name for name in FIELDS}
    for ours, theirs in (fields or {}).items():
        if ours not in FIELDS:
            raise InputError(f"--field maps unknown name {ours!r}; expected one of {', '.join(FIELDS)}")
        names[ours] = theirs
    if answer_type not in ANSWER_TYPES:
        raise InputError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
    questions: list[Question] = []
    errors: list[InputError] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if isinstance(line, InputError):
            errors.append(line)
            continue
        if not line.strip():
            continue
        try:
            question = _parse_line(line, number, source, names, answer_type)
            if question.id in seen:
                raise InputError(f"duplicate id {question.id!r} (first on line {seen[question.id]})", path=source,
                                 line=number, field=names["id"])
        except InputError as error:
            errors.append(error)
            continue
        seen[question.id] = number
        questions.append(question)
    return QuestionFile(questions, errors)


def _parse_line(line: str, number: int, source: str, names: Mapping[str, str], default_type: str) -> Question:
    record = json_line(line, source=source, number=number)
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", path=source, line=number)
    text = record.get(names["question"])
    if text is None:
        raise InputError("missing", path=source, line=number, field=names["question"])
    if not isinstance(text, str) or not text.strip():
        raise InputError("must be a non-empty string", path=source, line=number, field=names["question"])
    answer_type = record.get(names["answer_type"], default_type)
    if answer_type not in ANSWER_TYPES:
        raise InputError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}",
                         path=source, line=number, field=names["answer_type"])
    raw_id = record.get(names["id"], f"line-{number}")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or str(raw_id) == "":
        raise InputError("must be a non-empty string or an integer", path=source, line=number, field=names["id"])
    gold = record.get(names["gold"])
    if gold is not None and not isinstance(gold, (str, int, float)):
        raise InputError("must be a string or a number", path=source, line=number, field=names["gold"])
    return Question(id=str(raw_id), text=text, answer_type=answer_type,
                    gold=str(gold) if gold is not None else None)


def read_questions(path: str | Path, *, fields: Mapping[str, str] | None = None,
                   answer_type: str = "text") -> QuestionFile:
    """Read a JSONL file of questions (``-``: standard input); a missing or unreadable file raises ``InputError``."""
    if str(path) == "-":
        return parse_question_lines(split_lines(sys.stdin.buffer.read(), source="<stdin>"), source="<stdin>",
                                    fields=fields, answer_type=answer_type)
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path=str(path))
    try:
        data = p.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror}", path=str(path)) from None
    return parse_question_lines(split_lines(data, source=str(path)), source=str(path), fields=fields,
                                answer_type=answer_type)
