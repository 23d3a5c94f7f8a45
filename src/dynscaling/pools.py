"""Replay pools: recorded model outputs, many samples per question, read from gzip (or plain) JSON lines.

One question per line::

    {"id": "17", "question": "...", "gold": "05/01/2021", "answer_type": "date",
     "samples": [{"text": "full output or null", "answer": "extracted upstream or null"}], "meta": {}}

A question recorded with an empty ``samples`` list is kept with a warning naming its file and line (``Pool.warnings``,
also logged): it counts as a question of the batch that no strategy can answer.

Loading extracts every sample's answer once and assigns it to a vote class, so replaying costs no parsing.
Two ways to read the recorded answers (``answers=``):

- ``"extract"`` (default): our extractor runs on the upstream answer (which is sometimes a whole sentence), or on
  the text when the upstream answer is null. A sample with no clean value abstains.
- ``"upstream"``: the upstream answers as the upstream evaluations compared them: normalised when the whole
  answer is a value, otherwise compared verbatim (a sentence votes as itself and never matches the gold answer).
  Only for reproducing published figures. Samples recorded with text only are read from their text.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .answers import AnswerClusterer, extract_answer
from .errors import InputError
from .jsonlines import json_line
from .types import ANSWER_TYPES, Question, Usage

__all__ = ["Pool", "PoolQuestion", "bundled_pools", "load_pool"]

logger = logging.getLogger("dynscaling.pools")

AnswerSource = Literal["extract", "upstream"]


@dataclass(frozen=True, slots=True)
class PoolQuestion:
    """A question with its recorded samples.

    Attributes:
        question: the question (with its gold answer).
        texts: the recorded outputs (None where upstream kept none).
        answers: the extracted answer of each sample (None: abstains).
        classes: the vote class of each sample under ``clusterer`` (None: abstains).
        usages: each sample's cost: the recorded token counts when the pool has them (``dynscaling record``),
            else an estimate (4 characters per token).
        clusterer: the question's answer classes; shared with the engine so classes mean the same thing.
    """

    question: Question
    texts: tuple[str | None, ...]
    answers: tuple[str | None, ...]
    classes: tuple[int | None, ...]
    usages: tuple[Usage, ...]
    clusterer: AnswerClusterer


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    path: str
    entries: tuple[PoolQuestion, ...]
    answer_source: AnswerSource = "extract"
    #: one line per question that was loaded with a caveat (no samples recorded), naming its file and line
    warnings: tuple[str, ...] = ()

    @property
    def questions(self) -> list[Question]:
        return [e.question for e in self.entries]

    @property
    def samples_per_question(self) -> float:
        return sum(len(e.classes) for e in self.entries) / len(self.entries)

    @property
    def max_samples(self) -> int:
        return max(len(e.classes) for e in self.entries)


def _open_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener: Any = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is no data
            yield from enumerate(handle, start=1)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the file: {error}", path=str(path)) from None


def _estimate_usage(question: str, text: str | None) -> Usage:
    return Usage(prompt_tokens=len(question) // 4 + 1, completion_tokens=len(text) // 4 + 1 if text else 0)


def _recorded_usage(usage: Any) -> Usage | None:
    """The token counts a recording kept (``dynscaling record``), when they are whole numbers."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _string_or_none(value: Any, *, where: str, path: str, line: int, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{where} must be a string or null, got {type(value).__name__}", path=path, line=line,
                     field=field)


def _parse_entry(record: Any, path: str, line: int, answer_source: AnswerSource) -> PoolQuestion:
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", path=path, line=line)
    for field in ("id", "question", "gold", "samples"):
        if field not in record:
            raise InputError("missing", path=path, line=line, field=field)
    answer_type = record.get("answer_type", "text")
    if answer_type not in ANSWER_TYPES:
        raise InputError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}",
                         path=path, line=line, field="answer_type")
    if not isinstance(record["question"], str) or not record["question"].strip():
        raise InputError("must be a non-empty string", path=path, line=line, field="question")
    gold = _string_or_none(record["gold"], where="gold", path=path, line=line, field="gold")
    if gold is None:
        raise InputError("must not be null in a replay pool", path=path, line=line, field="gold")
    samples = record["samples"]
    if not isinstance(samples, list):
        raise InputError("must be a list of samples", path=path, line=line, field="samples")
    question = Question(id=str(record["id"]), text=record["question"], answer_type=answer_type, gold=gold,
                        meta=record.get("meta") or {})
    clusterer = AnswerClusterer(answer_type, verbatim_unparsed=answer_source == "upstream")
    texts: list[str | None] = []
    answers: list[str | None] = []
    classes: list[int | None] = []
    usages: list[Usage] = []
    for i, sample in enumerate(samples):
        field = f"samples[{i}]"
        if not isinstance(sample, dict):
            raise InputError("must be an object with 'text' and 'answer'", path=path, line=line, field=field)
        text = _string_or_none(sample.get("text"), where="text", path=path, line=line, field=f"{field}.text")
        upstream = _string_or_none(sample.get("answer"), where="answer", path=path, line=line,
                                   field=f"{field}.answer")
        # a sample cut off by max_tokens abstains, as it does live (``dynscaling record`` writes finish_reason)
        cut_off = sample.get("finish_reason") == "length"
        answer = None if cut_off else _answer_of(upstream, text, answer_type, answer_source)
        texts.append(text)
        answers.append(answer)
        classes.append(clusterer.assign(answer))
        usages.append(_recorded_usage(sample.get("usage")) or _estimate_usage(question.text, text))
    return PoolQuestion(question, tuple(texts), tuple(answers), tuple(classes), tuple(usages), clusterer)


def _answer_of(upstream: str | None, text: str | None, answer_type: str, source: AnswerSource) -> str | None:
    if source == "upstream":
        # As recorded; a pool that recorded text only (no answers) is read from its text.
        return upstream if upstream is not None else extract_answer(text, answer_type)
    if upstream is not None:
        if answer_type in ("latex", "text"):
            found = upstream.strip() or None  # already the final expression: re-extraction would only lose it
        else:
            found = extract_answer(upstream, answer_type)
        if found is not None:
            return found
    # Nothing usable recorded: read the text, as a live run would (the replay server sends that text).
    return extract_answer(text, answer_type)


def load_pool(path: str | Path, *, answers: AnswerSource = "extract", name: str | None = None) -> Pool:
    """Read a replay pool. Raises ``InputError`` naming the file, line and field of the first problem."""
    if answers not in ("extract", "upstream"):
        raise InputError(f"answers must be 'extract' or 'upstream', got {answers!r}")
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise InputError("no such file", path=shown)
    if p.is_dir():
        raise InputError("is a directory, not a pool file", path=shown)
    entries: list[PoolQuestion] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for line_number, line in _open_lines(p):
        if not line.strip():
            continue
        entry = _parse_entry(json_line(line, source=shown, number=line_number), shown, line_number, answers)
        if not entry.classes:
            warning = (f"{shown}:{line_number}: field 'samples': empty list; question {entry.question.id!r} is kept "
                       "and counts as unanswered")
            logger.warning("%s", warning)
            warnings.append(warning)
        if entry.question.id in seen:
            raise InputError(f"duplicate id {entry.question.id!r} (first on line {seen[entry.question.id]})",
                             path=shown, line=line_number, field="id")
        seen[entry.question.id] = line_number
        entries.append(entry)
    if not entries:
        raise InputError("empty file: no questions", path=shown)
    stem = p.name
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem.removesuffix(suffix)
    if all(not e.classes for e in entries):
        raise InputError("no question has any recorded sample", path=shown, field="samples")
    return Pool(name or stem, shown, tuple(entries), answers, tuple(warnings))


def bundled_pools() -> list[Path]:
    """The replay pools shipped with the package (MIT / CC-BY; see ``data/pools/ATTRIBUTION.md``)."""
    folder = resources.files("dynscaling") / "data" / "pools"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".jsonl.gz"))
