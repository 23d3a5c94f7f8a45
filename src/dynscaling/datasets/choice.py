"""Multiple-choice benchmarks: GPQA Diamond (an encrypted zip, read in memory), MMLU-Pro, ARC-Challenge and
CommonsenseQA. Each question shows its choices as ``(A) ...`` lines; the gold answer is the letter."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..types import Question
from ._common import LETTERS, LoadOptions, Record, Where, choice_question, label_meta, labelled_choices, require_file

__all__ = ["GPQA_PASSWORD", "parse_arc", "parse_commonsenseqa", "parse_gpqa", "parse_mmlu_pro", "read_gpqa"]

# The official GPQA password, published with the data; the zip exists to keep the questions out of web crawls.
GPQA_PASSWORD = b"deserted-untie-orchid"
_GPQA_CHOICES = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def _read_gpqa_csv(path: Path) -> tuple[str, str]:
    """The CSV inside the encrypted zip, decrypted in memory only (never extracted), and its name for messages."""
    require_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise InputError(f"expected one .csv file in the zip, found {members}", path=str(path))
            data = archive.read(members[0], pwd=GPQA_PASSWORD)
    except (zipfile.BadZipFile, RuntimeError, OSError) as error:  # RuntimeError: bad password
        raise InputError(f"cannot read the zip: {error}", path=str(path)) from None
    try:
        return data.decode("utf-8"), f"{path}:{members[0]}"
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8: {error}", path=f"{path}:{members[0]}") from None


def read_gpqa(path: Path) -> Iterator[Record]:
    """The rows of the CSV inside the encrypted zip, each located by its CSV line, decrypted in memory only."""
    text, source = _read_gpqa_csv(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    index = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputError(f"malformed CSV: {error}", path=source, line=line) from None
        yield index, Where(source, line), dict(row)
        index += 1


def parse_gpqa(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    """GPQA rows (the CSV's columns, as on the Hugging Face Hub too); the correct answer is listed first, so the
    choices are always shuffled."""
    questions = []
    for _, where, row in records:
        record_id = where.string(row, "Record ID")
        choices = [where.string(row, column) for column in _GPQA_CHOICES]
        meta = {"domain": row.get("High-level domain"), "subdomain": row.get("Subdomain"), "record_id": record_id}
        questions.append(choice_question(f"{options.name}-{record_id}", where.string(row, "Question"), choices, 0,
                                         meta, shuffle=True, seed=options.seed))
    return questions


def parse_mmlu_pro(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in records:
        choices = record.get("options")
        if not isinstance(choices, list) or not 2 <= len(choices) <= 10 or not all(
                isinstance(c, str) and c.strip() for c in choices):
            raise where.error("must be a list of 2 to 10 non-empty strings", "options")
        answer = where.string(record, "answer")
        if answer not in LETTERS[:len(choices)]:
            raise where.error(f"{answer!r} is not a letter A-{LETTERS[len(choices) - 1]}", "answer")
        index = record.get("answer_index")
        if index is not None and index != LETTERS.index(answer):
            raise where.error(f"{index!r} disagrees with answer {answer!r}", "answer_index")
        question_id = record.get("question_id")
        if question_id is None:
            raise where.error("missing", "question_id")
        meta = {"category": record.get("category"), "src": record.get("src")}
        questions.append(choice_question(f"{options.name}-{question_id}", where.string(record, "question"),
                                          [c.strip() for c in choices], LETTERS.index(answer), meta,
                                          shuffle=options.shuffle_choices, seed=options.seed))
    return questions


def parse_arc(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    """ARC in either layout: ``options: [{label, text}]`` + ``answer`` (as shared), or the Hugging Face one,
    ``choices: {label: [...], text: [...]}`` + ``answerKey``. Labels may be letters or digits."""
    questions = []
    for _, where, record in records:
        if "choices" in record and isinstance(record["choices"], dict):
            labels, texts = record["choices"].get("label"), record["choices"].get("text")
            if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts):
                raise where.error("must hold 'label' and 'text' lists of the same length", "choices")
            raw_options: Any = [{"label": label, "text": text} for label, text in zip(labels, texts, strict=True)]
            options_field, answer_field = "choices", "answerKey"
        else:
            raw_options, options_field, answer_field = record.get("options"), "options", "answer"
        texts, correct, labels = labelled_choices(raw_options, record.get(answer_field), where, options_field,
                                                   answer_field)
        original_id = where.string(record, "id")
        questions.append(choice_question(f"{options.name}-{original_id}", where.string(record, "question"), texts,
                                          correct, label_meta(labels), shuffle=options.shuffle_choices,
                                          seed=options.seed))
    return questions


def parse_commonsenseqa(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in records:
        inner = Where(where.path, where.line, "question")
        body = inner.record(record.get("question"))
        texts, correct, labels = labelled_choices(body.get("choices"), record.get("answerKey"), inner, "choices",
                                                   "answerKey")
        meta = {"concept": body.get("question_concept"), **label_meta(labels)}
        questions.append(choice_question(f"{options.name}-{where.string(record, 'id')}", inner.string(body, "stem"),
                                          texts, correct, meta, shuffle=options.shuffle_choices, seed=options.seed))
    return questions
