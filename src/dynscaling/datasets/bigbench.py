"""BIG-bench tasks: StrategyQA (yes/no) and BIG-Bench Hard (27 tasks; choice, number or text per task)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..answers import canonical_key
from ..errors import InputError
from ..types import AnswerType, Question
from ._common import LoadOptions, Record, json_items, number_gold

__all__ = ["BBH_TYPES", "parse_bbh", "parse_strategyqa", "read_bbh", "read_strategyqa"]

logger = logging.getLogger("dynscaling.datasets")


def read_strategyqa(path: Path) -> Iterator[Record]:
    """The examples of BIG-bench's ``task.json``."""
    return json_items(path, "examples")


def parse_strategyqa(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    """BIG-bench StrategyQA: ``target_scores`` is ``{"Yes": 1, "No": 0}`` or the reverse; gold is yes or no.
    The ``target`` explanation is left out of ``meta``: it starts with the answer."""
    questions = []
    for index, where, record in records:
        scores = record.get("target_scores")
        if not isinstance(scores, dict) or sorted(scores) != ["No", "Yes"] or sorted(scores.values()) != [0, 1]:
            raise where.error('must be {"Yes": 1, "No": 0} or {"Yes": 0, "No": 1}', "target_scores")
        gold = "yes" if scores["Yes"] == 1 else "no"
        questions.append(Question(f"{options.name}-{index}", where.string(record, "input"), "text", gold, {}))
    return questions


# BIG-Bench Hard: how each task's targets look. Tasks not listed are typed from their targets.
BBH_TYPES: dict[str, AnswerType] = {
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


def read_bbh(path: Path) -> Iterator[Record]:
    """Every example of every ``<task>.json`` file of the folder, tagged with its task (the file's stem)."""
    if not path.is_dir():
        raise InputError("no such folder; expected one <task>.json file per BIG-Bench Hard task", path=str(path))
    files = sorted(path.glob("*.json"))
    if not files:
        raise InputError("no <task>.json files in the folder", path=str(path))
    for file in files:
        for index, where, record in json_items(file, "examples"):
            yield index, where, {**record, "task": file.stem}


def parse_bbh(records: Iterable[Record], options: LoadOptions) -> list[Question]:
    """BIG-Bench Hard examples with their ``task``; each task's answer type is known, or typed from its targets."""
    by_task: dict[str, list[Record]] = {}
    for item in records:
        by_task.setdefault(str(item[2].get("task")), []).append(item)
    questions = []
    for task, items in sorted(by_task.items()):
        answer_type = BBH_TYPES.get(task) or _bbh_type([record.get("target") for _, _, record in items])
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
                                where.path, where.prefix)
                    gold, meta["original_gold"] = None, target
                elif letter[1] not in choices:
                    raise where.error(f"{target!r} is none of the options {list(choices)}", "target")
                else:
                    gold = letter[1]
            elif answer_type == "number":
                gold = number_gold(target, where, "target")
            questions.append(Question(f"{options.name}-{task}-{index}", text, answer_type, gold, meta))
    return questions
