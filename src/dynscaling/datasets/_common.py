"""What every benchmark loader shares: where a record sits (for error messages), reading JSON files, clean gold
answers and lettered choices."""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..answers import canonical_key
from ..errors import InputError
from ..jsonlines import json_line
from ..types import Question

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class LoadOptions:
    """What a loader needs besides its records."""

    name: str
    seed: int
    shuffle_choices: bool



@dataclass(frozen=True)
class Where:
    """Where a record sits, for error messages: a file, a 1-based line and a JSON path prefix."""

    path: str
    line: int | None = None
    prefix: str = ""

    def error(self, message: str, field: str | None = None) -> InputError:
        name = f"{self.prefix}.{field}" if self.prefix and field else (field or self.prefix or None)
        return InputError(message, path=self.path, line=self.line, field=name)

    def record(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(f"expected a JSON object, got {type(value).__name__}")
        return value

    def string(self, record: Mapping[str, Any], key: str) -> str:
        value = record.get(key)
        if value is None:
            raise self.error("missing", key)
        if not isinstance(value, str) or not value.strip():
            raise self.error("must be a non-empty string", key)
        return value.strip()

    def first_string(self, record: Mapping[str, Any], keys: Sequence[str]) -> str:
        for key in keys:
            if record.get(key) is not None:
                return self.string(record, key)
        raise self.error("missing", " or ".join(keys))


def require_file(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file; is the benchmarks folder laid out like ../shared/data/benchmarks?",
                         path=str(path))


def _read_text(path: Path) -> str:
    require_file(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is no data
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the file: {error}", path=str(path)) from None


def _json_lines(path: Path) -> Iterator[tuple[Where, dict[str, Any]]]:
    # split on "\n" only: str.splitlines() would also cut at U+2028 and friends inside a question
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = Where(str(path), number)
        yield where, where.record(json_line(line, source=str(path), number=number))


def _json_document(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise InputError(f"malformed JSON ({error.msg})", path=str(path), line=error.lineno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", path=str(path)) from None


def json_items(path: Path, key: str | None = None) -> Iterator[tuple[int, Where, dict[str, Any]]]:
    """The objects of a JSON array (or of the array under ``key``), each with its index and location."""
    document = _json_document(path)
    if key is not None:
        document = Where(str(path)).record(document).get(key)
        if not isinstance(document, list):
            raise InputError("missing or not a list", path=str(path), field=key)
    elif not isinstance(document, list):
        raise InputError(f"expected a JSON array, got {type(document).__name__}", path=str(path))
    for index, value in enumerate(document):
        where = Where(str(path), prefix=f"{key or ''}[{index}]")
        yield index, where, where.record(value)


def read_records(path: Path) -> Iterator[tuple[int, Where, dict[str, Any]]]:
    """Objects from a JSON-lines file or a JSON array, with their index and location."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        for index, (where, record) in enumerate(_json_lines(path)):
            yield index, where, record
    else:
        yield from json_items(path)


# --- gold answers and choices -------------------------------------------------------------------------------------

_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?\s*$|°\s*$")
_INTEGER = re.compile(r"[-+]?\d+")


def number_gold(value: Any, where: Where, field: str) -> str:
    """A clean number string: integral floats as integers (``27.0`` -> ``27``), leading zeros dropped (``025`` ->
    ``25``), thousands commas and a trailing degree sign removed. Anything else that is no number is an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise where.error(f"must be a number, got {type(value).__name__}", field)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    text = _DEGREES.sub("", value.strip().replace(",", "")).strip()
    if _INTEGER.fullmatch(text):
        return str(int(text))
    if canonical_key(text, "number") is None:
        raise where.error(f"must be a number, got {value!r}", field)
    return text


def with_original(meta: dict[str, Any], gold: str, original: Any) -> dict[str, Any]:
    """Record the file's gold string in ``meta`` when cleaning changed it (``025``, ``336^\\circ``), so nothing is
    rewritten silently. Integral floats (``27.0``) are only a JSON encoding and are not recorded."""
    if isinstance(original, str) and original.strip() != gold:
        meta["original_gold"] = original
    return meta


def _one_line(text: str) -> str:
    return " ".join(text.split())


def choice_question(qid: str, stem: str, choices: Sequence[str], correct: int, meta: dict[str, Any], *,
                     shuffle: bool, seed: int) -> Question:
    """A choice question: ``stem`` then one ``(A) ...`` line per choice; gold is the correct choice's letter.

    Shuffling is seeded by ``seed`` and the question id only, so a question keeps its order whatever else is
    loaded with it."""
    order = list(range(len(choices)))
    if shuffle:
        random.Random(f"{seed}:{qid}").shuffle(order)
    shown = [_one_line(choices[i]) for i in order]
    lines = "\n".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(shown))
    meta = {**meta, "choices": shown}
    if shuffle:
        meta["choice_order"] = order  # the original index of each shown choice
    return Question(qid, f"{stem}\n\n{lines}", "choice", LETTERS[order.index(correct)], meta)


def labelled_choices(options: Any, answer: Any, where: Where, options_field: str,
                      answer_field: str) -> tuple[list[str], int, list[str]]:
    """(texts, index of the correct one, original labels) from ``[{"label": ..., "text": ...}]``.

    Letters are given by position, so any label style works (``A``-``E``, ``1``-``4``)."""
    if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
        raise where.error(f"must be a list of 2 to {len(LETTERS)} choices", options_field)
    labels: list[str] = []
    texts: list[str] = []
    for index, option in enumerate(options):
        at = Where(where.path, where.line, f"{where.prefix}{options_field}[{index}]")
        option = at.record(option)
        labels.append(str(option.get("label", "")).strip())
        texts.append(at.string(option, "text"))
    if len(set(labels)) != len(labels):
        raise where.error(f"duplicate choice labels {labels}", options_field)
    key = str(answer).strip() if answer is not None else ""
    if key not in labels:
        raise where.error(f"{answer!r} is none of the choice labels {labels}", answer_field)
    return texts, labels.index(key), labels


def label_meta(labels: list[str]) -> dict[str, Any]:
    return {} if labels == list(LETTERS[:len(labels)]) else {"original_labels": labels}


#: one record of a benchmark: its index, where it sits, and the object itself
Record = tuple[int, Where, dict[str, Any]]
#: parses a benchmark's records (read from its file, or Hugging Face rows) into questions
Parser = Callable[[Iterable[Record], LoadOptions], list[Question]]


def rows_as_records(rows: Iterable[Mapping[str, Any]], source: str) -> Iterator[Record]:
    """Rows of a Hugging Face dataset as records, located by their index for error messages."""
    for index, row in enumerate(rows):
        where = Where(source, prefix=f"[{index}]")
        yield index, where, dict(row)
