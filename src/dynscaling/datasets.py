"""Benchmark question sets with gold answers, read from local files into ``Question`` lists.

``load_dataset("gsm8k")`` reads one of the benchmarks in ``DATASETS`` from a folder laid out like the project's
shared ``benchmarks/`` folder (``gsm8k/test.jsonl``, ``math500/math500_test.json``, ...). Each question's text is
the full question as the model should see it, choices included as ``(A) ...`` lines, with no answer-format
instruction (``samplers.Prompts`` adds that per answer type). Ids are the dataset name plus the benchmark's own id,
or the item's index in the file when it has none, so they stay stable between runs.

Choices are shown in the benchmark's own order, except where that order leaks the answer: GPQA lists the correct
answer first, so its choices are always shuffled, with ``random.Random`` seeded by ``seed`` and the question id.
The GPQA zip is password-protected so that its questions never sit on disk in clear; it is read in memory only.

``load_hf_dataset`` (or ``load_dataset("hf:<path>", ...)``) reads a Hugging Face dataset, from the Hub or saved
with ``save_to_disk``, through the optional ``datasets`` package.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import random
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from .answers import canonical_key
from .errors import ConfigError, InputError
from .types import ANSWER_TYPES, AnswerType, Question

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "DatasetSpec",
    "find_benchmarks_dir",
    "load_dataset",
    "load_hf_dataset",
]

logger = logging.getLogger("dynscaling.datasets")

ENV_VAR = "DYNSCALING_BENCHMARKS"
HF_PREFIX = "hf:"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# The official GPQA password, published with the data; the zip exists to keep the questions out of web crawls.
_GPQA_PASSWORD = b"deserted-untie-orchid"
_HF_INSTALL_HINT = "reading Hugging Face datasets needs the 'datasets' package: pip install 'dynscaling[hf]'"


@dataclass(frozen=True)
class _LoadOptions:
    """What a loader needs besides its file."""

    name: str
    seed: int
    shuffle_choices: bool


Loader = Callable[[Path, "_LoadOptions"], list[Question]]
ChoiceOrder = Literal["none", "original", "shuffled"]


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark of the registry.

    Attributes:
        name: the registry key, also the prefix of every question id.
        path: the file (or folder, for BBH) relative to the benchmarks folder.
        answer_type: the answer type of every question, or None when it differs per task (BBH).
        loader: reads ``path`` into questions.
        description: one line for listings.
        licence: the licence of the questions, as published.
        size: how many questions the published file holds.
        subset_key: the ``meta`` key that ``subset`` selects on (BBH task, MMLU-Pro category, ...), if any.
        choice_order: ``none`` (no separate choices), ``original`` (the benchmark's order unless
            ``shuffle_choices=True``) or ``shuffled`` (always shuffled: the original order leaks the answer).
    """

    name: str
    path: str
    answer_type: AnswerType | None
    loader: Loader
    description: str
    licence: str
    size: int
    subset_key: str | None = None
    choice_order: ChoiceOrder = "none"


# --- locating the data --------------------------------------------------------------------------------------------

def find_benchmarks_dir(data_dir: str | Path | None = None) -> Path:
    """The benchmarks folder: ``data_dir``, else ``$DYNSCALING_BENCHMARKS``, else ``../shared/data/benchmarks``
    relative to the current directory. Raises ``InputError`` saying how to point at the data when none is found."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise InputError("benchmarks folder not found (data_dir must be a folder holding gsm8k/, math500/, ...)",
                             path=str(data_dir))
        return path
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise InputError(f"${ENV_VAR} points at no folder; set it to the folder holding gsm8k/, math500/, ...",
                             path=configured)
        return path
    fallback = Path.cwd() / ".." / "shared" / "data" / "benchmarks"
    if fallback.is_dir():
        return fallback.resolve()
    raise InputError(
        f"no benchmarks folder found: pass data_dir=... or set {ENV_VAR}=/path/to/benchmarks (the folder holding "
        f"gsm8k/, math500/, gpqa_diamond/, ...); ../shared/data/benchmarks is used when it exists")


# --- reading files ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Where:
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


def _require_file(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file; is the benchmarks folder laid out like ../shared/data/benchmarks?",
                         path=str(path))


def _read_text(path: Path) -> str:
    _require_file(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the file: {error}", path=str(path)) from None


def _json_lines(path: Path) -> Iterator[tuple[_Where, dict[str, Any]]]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = _Where(str(path), number)
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"malformed JSON ({error.msg} at column {error.colno})", path=str(path),
                             line=number) from None
        yield where, where.record(value)


def _json_document(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise InputError(f"malformed JSON ({error.msg})", path=str(path), line=error.lineno) from None


def _json_items(path: Path, key: str | None = None) -> Iterator[tuple[int, _Where, dict[str, Any]]]:
    """The objects of a JSON array (or of the array under ``key``), each with its index and location."""
    document = _json_document(path)
    if key is not None:
        document = _Where(str(path)).record(document).get(key)
        if not isinstance(document, list):
            raise InputError("missing or not a list", path=str(path), field=key)
    elif not isinstance(document, list):
        raise InputError(f"expected a JSON array, got {type(document).__name__}", path=str(path))
    for index, value in enumerate(document):
        where = _Where(str(path), prefix=f"{key or ''}[{index}]")
        yield index, where, where.record(value)


def _records(path: Path) -> Iterator[tuple[int, _Where, dict[str, Any]]]:
    """Objects from a JSON-lines file or a JSON array, with their index and location."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        for index, (where, record) in enumerate(_json_lines(path)):
            yield index, where, record
    else:
        yield from _json_items(path)


# --- gold answers and choices -------------------------------------------------------------------------------------

_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?\s*$|°\s*$")
_INTEGER = re.compile(r"[-+]?\d+")


def _number_gold(value: Any, where: _Where, field: str) -> str:
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


def _with_original(meta: dict[str, Any], gold: str, original: Any) -> dict[str, Any]:
    """Record the file's gold string in ``meta`` when cleaning changed it (``025``, ``336^\\circ``), so nothing is
    rewritten silently. Integral floats (``27.0``) are only a JSON encoding and are not recorded."""
    if isinstance(original, str) and original.strip() != gold:
        meta["original_gold"] = original
    return meta


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _choice_question(qid: str, stem: str, choices: Sequence[str], correct: int, meta: dict[str, Any], *,
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


def _labelled_choices(options: Any, answer: Any, where: _Where, options_field: str,
                      answer_field: str) -> tuple[list[str], int, list[str]]:
    """(texts, index of the correct one, original labels) from ``[{"label": ..., "text": ...}]``.

    Letters are given by position, so any label style works (``A``-``E``, ``1``-``4``)."""
    if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
        raise where.error(f"must be a list of 2 to {len(LETTERS)} choices", options_field)
    labels: list[str] = []
    texts: list[str] = []
    for index, option in enumerate(options):
        at = _Where(where.path, where.line, f"{where.prefix}{options_field}[{index}]")
        option = at.record(option)
        labels.append(str(option.get("label", "")).strip())
        texts.append(at.string(option, "text"))
    if len(set(labels)) != len(labels):
        raise where.error(f"duplicate choice labels {labels}", options_field)
    key = str(answer).strip() if answer is not None else ""
    if key not in labels:
        raise where.error(f"{answer!r} is none of the choice labels {labels}", answer_field)
    return texts, labels.index(key), labels


def _label_meta(labels: list[str]) -> dict[str, Any]:
    return {} if labels == list(LETTERS[:len(labels)]) else {"original_labels": labels}


# --- loaders ------------------------------------------------------------------------------------------------------

def _load_gsm8k(path: Path, options: _LoadOptions) -> list[Question]:
    questions = []
    for index, where, record in _records(path):
        solution = where.string(record, "answer")
        if "####" not in solution:
            raise where.error("has no '####' before the final answer", "answer")
        raw = solution.rsplit("####", 1)[1].strip()
        gold = _number_gold(raw, where, "answer")
        questions.append(Question(f"{options.name}-{index}", where.string(record, "question"), "number", gold, {}))
    return questions


def _load_math500(path: Path, options: _LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in _records(path):
        unique_id = where.string(record, "unique_id")
        short = unique_id.removeprefix("test/").removesuffix(".json")
        meta = {"subject": record.get("subject"), "level": record.get("level"), "unique_id": unique_id}
        questions.append(Question(f"{options.name}-{short}", where.string(record, "problem"), "latex",
                                  where.string(record, "answer"), meta))
    return questions


def _load_competition(path: Path, options: _LoadOptions) -> list[Question]:
    """AIME and AMC: ``problem`` (or ``question``), an integer ``answer``, an optional ``id`` and ``url``."""
    questions = []
    for index, where, record in _records(path):
        raw = record.get("answer")
        if raw is None:
            raise where.error("missing", "answer")
        gold = _number_gold(raw, where, "answer")
        original_id = record.get("id", index)
        meta = {"url": record["url"]} if record.get("url") else {}
        questions.append(Question(f"{options.name}-{original_id}", where.first_string(record, ("problem", "question")),
                                  "number", gold, _with_original(meta, gold, raw)))
    return questions


_GPQA_CHOICES = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def _read_gpqa_csv(path: Path) -> tuple[str, str]:
    """The CSV inside the encrypted zip, decrypted in memory only (never extracted), and its name for messages."""
    _require_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise InputError(f"expected one .csv file in the zip, found {members}", path=str(path))
            data = archive.read(members[0], pwd=_GPQA_PASSWORD)
    except (zipfile.BadZipFile, RuntimeError, OSError) as error:  # RuntimeError: bad password
        raise InputError(f"cannot read the zip: {error}", path=str(path)) from None
    try:
        return data.decode("utf-8"), f"{path}:{members[0]}"
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8: {error}", path=f"{path}:{members[0]}") from None


def _load_gpqa(path: Path, options: _LoadOptions) -> list[Question]:
    text, source = _read_gpqa_csv(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    questions = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise InputError(f"malformed CSV: {error}", path=source, line=line) from None
        where = _Where(source, line)
        record_id = where.string(row, "Record ID")
        choices = [where.string(row, column) for column in _GPQA_CHOICES]
        meta = {"domain": row.get("High-level domain"), "subdomain": row.get("Subdomain"), "record_id": record_id}
        questions.append(_choice_question(f"{options.name}-{record_id}", where.string(row, "Question"), choices, 0,
                                          meta, shuffle=True, seed=options.seed))
    return questions


def _load_mmlu_pro(path: Path, options: _LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in _records(path):
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
        questions.append(_choice_question(f"{options.name}-{question_id}", where.string(record, "question"),
                                          [c.strip() for c in choices], LETTERS.index(answer), meta,
                                          shuffle=options.shuffle_choices, seed=options.seed))
    return questions


def _load_arc(path: Path, options: _LoadOptions) -> list[Question]:
    """ARC in either layout: ``options: [{label, text}]`` + ``answer`` (as shared), or the Hugging Face one,
    ``choices: {label: [...], text: [...]}`` + ``answerKey``. Labels may be letters or digits."""
    questions = []
    for _, where, record in _records(path):
        if "choices" in record and isinstance(record["choices"], dict):
            labels, texts = record["choices"].get("label"), record["choices"].get("text")
            if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts):
                raise where.error("must hold 'label' and 'text' lists of the same length", "choices")
            raw_options: Any = [{"label": label, "text": text} for label, text in zip(labels, texts, strict=True)]
            options_field, answer_field = "choices", "answerKey"
        else:
            raw_options, options_field, answer_field = record.get("options"), "options", "answer"
        texts, correct, labels = _labelled_choices(raw_options, record.get(answer_field), where, options_field,
                                                   answer_field)
        original_id = where.string(record, "id")
        questions.append(_choice_question(f"{options.name}-{original_id}", where.string(record, "question"), texts,
                                          correct, _label_meta(labels), shuffle=options.shuffle_choices,
                                          seed=options.seed))
    return questions


def _load_commonsenseqa(path: Path, options: _LoadOptions) -> list[Question]:
    questions = []
    for _, where, record in _records(path):
        inner = _Where(where.path, where.line, "question")
        body = inner.record(record.get("question"))
        texts, correct, labels = _labelled_choices(body.get("choices"), record.get("answerKey"), inner, "choices",
                                                   "answerKey")
        meta = {"concept": body.get("question_concept"), **_label_meta(labels)}
        questions.append(_choice_question(f"{options.name}-{where.string(record, 'id')}", inner.string(body, "stem"),
                                          texts, correct, meta, shuffle=options.shuffle_choices, seed=options.seed))
    return questions


def _load_strategyqa(path: Path, options: _LoadOptions) -> list[Question]:
    """BIG-bench StrategyQA: ``target_scores`` is ``{"Yes": 1, "No": 0}`` or the reverse; gold is yes or no.
    The ``target`` explanation is left out of ``meta``: it starts with the answer."""
    questions = []
    for index, where, record in _json_items(path, "examples"):
        scores = record.get("target_scores")
        if not isinstance(scores, dict) or sorted(scores) != ["No", "Yes"] or sorted(scores.values()) != [0, 1]:
            raise where.error('must be {"Yes": 1, "No": 0} or {"Yes": 0, "No": 1}', "target_scores")
        gold = "yes" if scores["Yes"] == 1 else "no"
        questions.append(Question(f"{options.name}-{index}", where.string(record, "input"), "text", gold, {}))
    return questions


# BIG-Bench Hard: how each task's targets look. Tasks not listed are typed from their targets.
_BBH_TYPES: dict[str, AnswerType] = {
    **dict.fromkeys((
        "date_understanding", "disambiguation_qa", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
        "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
        "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection",
        "snarks", "temporal_sequences", "tracking_shuffled_objects_five_objects",
        "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects"), "choice"),
    **dict.fromkeys(("multistep_arithmetic_two", "object_counting"), "number"),
    # True/False, Yes/No, valid/invalid, yes/no, closing brackets, sorted words
    **dict.fromkeys((
        "boolean_expressions", "causal_judgement", "dyck_languages", "formal_fallacies", "navigate",
        "sports_understanding", "web_of_lies", "word_sorting"), "text"),
}
_BBH_LETTER = re.compile(r"\(([A-Z])\)")
_BBH_OPTION = re.compile(r"^\(([A-Z])\)\s?(.*)$", re.MULTILINE)


def _bbh_type(targets: Sequence[Any]) -> AnswerType:
    if targets and all(isinstance(t, str) and _BBH_LETTER.fullmatch(t.strip()) for t in targets):
        return "choice"
    if targets and all(isinstance(t, str) and canonical_key(t, "number") is not None for t in targets):
        return "number"
    return "text"


def _load_bbh(path: Path, options: _LoadOptions) -> list[Question]:
    if not path.is_dir():
        raise InputError("no such folder; expected one <task>.json file per BIG-Bench Hard task", path=str(path))
    files = sorted(path.glob("*.json"))
    if not files:
        raise InputError("no <task>.json files in the folder", path=str(path))
    questions = []
    for file in files:
        task = file.stem
        items = list(_json_items(file, "examples"))
        answer_type = _BBH_TYPES.get(task) or _bbh_type([record.get("target") for _, _, record in items])
        for index, where, record in items:
            text = where.string(record, "input")
            target = where.string(record, "target")
            meta: dict[str, Any] = {"task": task}
            gold: str | None = target
            if answer_type == "choice":
                choices = dict(_BBH_OPTION.findall(text))
                meta["choices"] = list(choices.values())
                letter = _BBH_LETTER.fullmatch(target)
                if letter is None:
                    # Upstream BBH has a few items whose options were split at commas, so the answer ("Monsters,
                    # Inc") is no single option: kept, but ungraded, with the file's target in meta.
                    logger.info("%s: %s has no single-letter target; the question is kept ungraded",
                                file, where.prefix)
                    gold, meta["original_gold"] = None, target
                elif letter[1] not in choices:
                    raise where.error(f"{target!r} is none of the options {list(choices)}", "target")
                else:
                    gold = letter[1]
            elif answer_type == "number":
                gold = _number_gold(target, where, "target")
            questions.append(Question(f"{options.name}-{task}-{index}", text, answer_type, gold, meta))
    return questions


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("gsm8k", "gsm8k/test.jsonl", "number", _load_gsm8k,
                "GSM8K test: grade-school maths word problems", "MIT", 1319),
    DatasetSpec("math500", "math500/math500_test.json", "latex", _load_math500,
                "MATH-500: competition maths, LaTeX answers", "MIT", 500, subset_key="subject"),
    DatasetSpec("aime24", "aime24/test.jsonl", "number", _load_competition,
                "AIME 2024 (I and II): integer answers 0-999", "problems (c) MAA", 30),
    DatasetSpec("aime25", "aime25/aime25.json", "number", _load_competition,
                "AIME 2025 (I and II): integer answers 0-999", "problems (c) MAA", 30),
    DatasetSpec("amc23", "amc23/test.jsonl", "number", _load_competition,
                "AMC 12 2023: numeric answers", "problems (c) MAA", 40),
    DatasetSpec("gpqa_diamond", "gpqa_diamond/gpqa_diamond.zip", "choice", _load_gpqa,
                "GPQA Diamond: graduate-level science, 4 choices (always shuffled)", "CC-BY-4.0", 198,
                subset_key="domain", choice_order="shuffled"),
    DatasetSpec("mmlu_pro", "mmlu_pro/mmlu_pro_test.jsonl.gz", "choice", _load_mmlu_pro,
                "MMLU-Pro test: 14 subjects, up to 10 choices", "MIT", 12032, subset_key="category",
                choice_order="original"),
    DatasetSpec("arc_challenge", "arc_challenge/arc_challenge_test.jsonl", "choice", _load_arc,
                "ARC-Challenge test: grade-school science, 3-5 choices", "CC-BY-SA-4.0", 1172,
                choice_order="original"),
    DatasetSpec("commonsenseqa", "commonsenseqa/dev_rand_split.jsonl", "choice", _load_commonsenseqa,
                "CommonsenseQA dev: 5 choices", "see upstream", 1221,
                choice_order="original"),
    DatasetSpec("strategyqa", "strategyqa/task.json", "text", _load_strategyqa,
                "StrategyQA (BIG-bench): yes/no questions needing implicit reasoning", "Apache-2.0", 2290),
    DatasetSpec("bbh", "bbh", None, _load_bbh,
                "BIG-Bench Hard: 27 tasks; choice, number or text per task", "MIT", 6511, subset_key="task"),
)}


# --- the public entry points --------------------------------------------------------------------------------------

def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a whole number >= 0 or None, got {limit!r}")


def _normalise(name: Any) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _select(questions: list[Question], spec: DatasetSpec, subset: str | Sequence[str]) -> list[Question]:
    """The questions whose ``meta[spec.subset_key]`` is one of the requested names (case, ``_`` and ``-`` ignored)."""
    key = spec.subset_key
    if key is None:
        raise ConfigError(f"dataset {spec.name!r} has no subsets; drop subset={subset!r}")
    wanted = [s.strip() for s in (subset.split(",") if isinstance(subset, str) else subset) if s.strip()]
    if not wanted:
        raise ConfigError(f"subset is empty; name one or more {key} values of {spec.name!r}")
    available = sorted({str(q.meta.get(key)) for q in questions})
    by_normal = {_normalise(value): value for value in available}
    unknown = [s for s in wanted if _normalise(s) not in by_normal]
    if unknown:
        raise ConfigError(f"unknown {key} {', '.join(map(repr, unknown))} for {spec.name!r}; expected a "
                          f"comma-separated list of: {', '.join(available)}")
    chosen = {by_normal[_normalise(s)] for s in wanted}
    return [q for q in questions if str(q.meta.get(key)) in chosen]


def _check_unique(questions: Sequence[Question], source: str) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise InputError(f"duplicate question id {question.id!r}", path=source)
        seen.add(question.id)


def load_dataset(name: str, data_dir: str | Path | None = None, limit: int | None = None,
                 subset: str | Sequence[str] | None = None, seed: int = 0, *, shuffle_choices: bool | None = None,
                 **hf_options: Any) -> list[Question]:
    """The questions of a registered benchmark, in file order, tagged with ``meta["dataset"]``.

    Args:
        name: a key of ``DATASETS``, or ``hf:<path-or-name>`` for a Hugging Face dataset (see ``load_hf_dataset``;
            ``hf_options`` go there and ``subset`` is the dataset's config).
        data_dir: the benchmarks folder; default ``$DYNSCALING_BENCHMARKS``, else ``../shared/data/benchmarks``.
        limit: keep the first ``limit`` questions, after the subset filter.
        subset: for datasets with a ``subset_key`` (BBH task, MMLU-Pro category, MATH-500 subject, GPQA domain): one
            name, a comma-separated list or a sequence of names. Default: everything.
        seed: seeds choice shuffling (per question, with its id).
        shuffle_choices: None keeps each dataset's rule (GPQA shuffled, the others in the benchmark's order);
            True shuffles the choices of MMLU-Pro, ARC and CommonsenseQA too. GPQA cannot be left unshuffled, and
            sets without separate choices (BBH writes its options into the question) cannot be shuffled.

    Raises:
        ConfigError: an unknown dataset, subset or option.
        InputError: the data folder or a file is missing or malformed (file, line and field named).
    """
    _check_limit(limit)
    if name.startswith(HF_PREFIX):
        if subset is not None and not isinstance(subset, str):
            raise ConfigError(f"subset of {name!r} is its Hugging Face config: one name, got {subset!r}")
        return load_hf_dataset(name[len(HF_PREFIX):], config=subset,
                               limit=limit, seed=seed, shuffle_choices=bool(shuffle_choices), **hf_options)
    spec = DATASETS.get(name)
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or hf:<path-or-name>")
    if hf_options:
        raise ConfigError(f"{', '.join(sorted(hf_options))}: only for hf:<path> datasets, not {name!r}")
    if spec.choice_order == "shuffled" and shuffle_choices is False:
        raise ConfigError(f"{name} choices are always shuffled: the file lists the correct answer first")
    if spec.choice_order == "none" and shuffle_choices:
        raise ConfigError(f"{name} has no separate choices to shuffle; shuffle_choices applies to "
                          f"{', '.join(n for n, s in DATASETS.items() if s.choice_order == 'original')}")
    shuffle = spec.choice_order == "shuffled" or (spec.choice_order == "original" and bool(shuffle_choices))
    path = find_benchmarks_dir(data_dir) / spec.path
    questions = spec.loader(path, _LoadOptions(name, seed, shuffle))
    if len(questions) != spec.size:
        logger.warning("%s: read %d questions, the published set has %d", path, len(questions), spec.size)
    _check_unique(questions, str(path))
    if subset is not None:
        questions = _select(questions, spec, subset)
    if limit is not None:
        questions = questions[:limit]
    return [Question(q.id, q.text, q.answer_type, q.gold, {**q.meta, "dataset": name}) for q in questions]


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(_HF_INSTALL_HINT) from None
    return datasets


def _hf_choice_gold(value: Any, choices: Sequence[str], where: _Where, field: str) -> str:
    """A letter from an index, a letter, or the text of the correct choice."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(choices):
            raise where.error(f"index {value} is outside the {len(choices)} choices", field)
        return LETTERS[value]
    text = str(value).strip()
    if len(text) == 1 and text.upper() in LETTERS[:len(choices)]:
        return text.upper()
    if text in choices:
        return LETTERS[list(choices).index(text)]
    raise where.error(f"{value!r} is no choice index, letter or choice text", field)


def load_hf_dataset(path: str, *, question_field: str = "question", answer_field: str | None = "answer",
                    answer_type: str = "text", split: str = "test", config: str | None = None,
                    id_field: str | None = None, choices_field: str | None = None, answer_after: str | None = None,
                    limit: int | None = None, seed: int = 0, shuffle_choices: bool = False) -> list[Question]:
    """Questions from a Hugging Face dataset: a Hub name (``openai/gsm8k``) or a folder written by ``save_to_disk``.

    Needs the optional ``datasets`` package (``pip install 'dynscaling[hf]'``), imported only when called.

    Args:
        path: the Hub name, or a local folder (tried first).
        question_field, answer_field: the columns holding the question and the gold answer (None: no gold).
        answer_type: one of ``ANSWER_TYPES``.
        split: the split to read (a saved ``DatasetDict`` or a Hub dataset).
        config: the Hub configuration (its "subset"), e.g. ``main`` for ``openai/gsm8k``.
        id_field: the column of ids; default, the row index. Ids are ``hf-<name>-<id>``.
        choices_field: a column holding a list of choice texts, shown as ``(A) ...`` lines; the gold may then be an
            index, a letter or the text of the correct choice (``answer_type`` becomes ``choice``).
        answer_after: keep the gold after the last occurrence of this marker (``####`` for GSM8K).
        limit, seed, shuffle_choices: as for ``load_dataset``.
    """
    _check_limit(limit)
    if answer_type not in ANSWER_TYPES:
        raise ConfigError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
    datasets = _import_datasets()
    local = Path(path).expanduser()
    try:
        if local.is_dir():
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise ConfigError(f"split {split!r} not in {path}; expected one of {', '.join(loaded)}")
                loaded = loaded[split]
        else:
            loaded = datasets.load_dataset(path, config, split=split)
    except (ConfigError, InputError):
        raise
    except Exception as error:  # datasets raises many kinds (not found, offline, bad config): report them as one
        raise InputError(f"cannot load the Hugging Face dataset: {type(error).__name__}: {error}",
                         path=path) from error
    columns = list(loaded.column_names)
    for field in (question_field, answer_field, id_field, choices_field):
        if field is not None and field not in columns:
            raise InputError(f"no such column; the dataset has {', '.join(columns)}", path=path, field=field)
    if limit is not None:
        loaded = loaded.select(range(min(limit, len(loaded))))
    prefix = f"hf-{local.name if local.is_dir() else path}"
    questions = []
    for index, row in enumerate(loaded):
        where = _Where(path, prefix=f"[{index}]")
        text = where.string(row, question_field)
        qid = f"{prefix}-{row[id_field] if id_field else index}"
        raw = row.get(answer_field) if answer_field else None
        if isinstance(raw, str) and answer_after is not None:
            if answer_after not in raw:
                raise where.error(f"has no {answer_after!r} before the final answer", answer_field)
            raw = raw.rsplit(answer_after, 1)[1]
        meta: dict[str, Any] = {"dataset": f"{HF_PREFIX}{path}"}
        if choices_field is not None:
            choices = row[choices_field]
            if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
                raise where.error(f"must be a list of 2 to {len(LETTERS)} choices", choices_field)
            choices = [str(c).strip() for c in choices]
            if raw is None:
                raise where.error("missing", answer_field)
            correct = LETTERS.index(_hf_choice_gold(raw, choices, where, answer_field or "answer"))
            questions.append(_choice_question(qid, text, choices, correct, meta, shuffle=shuffle_choices, seed=seed))
            continue
        gold: str | None = None
        if raw is not None:
            gold = _number_gold(raw, where, answer_field or "answer") if answer_type == "number" else str(raw).strip()
        questions.append(Question(qid, text, cast(AnswerType, answer_type), gold, meta))
    _check_unique(questions, path)
    return questions
