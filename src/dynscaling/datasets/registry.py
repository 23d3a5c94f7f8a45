"""The registered benchmarks: where each one's file sits in a benchmarks folder, how it is read and parsed, and
where the Hugging Face Hub keeps it when the file is not on disk.

| name | file in the benchmarks folder | Hugging Face id (config, split) |
|---|---|---|
| gsm8k | gsm8k/test.jsonl | openai/gsm8k (main, test) |
| math500 | math500/math500_test.json | HuggingFaceH4/MATH-500 (test) |
| aime24 | aime24/test.jsonl | HuggingFaceH4/aime_2024 (train) |
| aime25 | aime25/aime25.json | math-ai/aime25 (test) |
| amc23 | amc23/test.jsonl | math-ai/amc23 (test) |
| gpqa_diamond | gpqa_diamond/gpqa_diamond.zip | Idavidrein/gpqa (gpqa_diamond, train; gated: accept its terms) |
| mmlu_pro | mmlu_pro/mmlu_pro_test.jsonl.gz | TIGER-Lab/MMLU-Pro (test) |
| arc_challenge | arc_challenge/arc_challenge_test.jsonl | allenai/ai2_arc (ARC-Challenge, test) |
| commonsenseqa | commonsenseqa/dev_rand_split.jsonl | tau/commonsense_qa (validation) |
| strategyqa | strategyqa/task.json | tasksource/bigbench (strategyqa, train+validation) |
| bbh | bbh/<task>.json | lukaemon/bbh (one config per task, test) |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..types import AnswerType
from ._common import Parser, Record, read_records
from .bigbench import BBH_TYPES, parse_bbh, parse_strategyqa, read_bbh, read_strategyqa
from .choice import parse_arc, parse_commonsenseqa, parse_gpqa, parse_mmlu_pro, read_gpqa
from .math import parse_competition, parse_gsm8k, parse_math500

__all__ = ["DATASETS", "DatasetSpec", "HubSource"]

ChoiceOrder = Literal["none", "original", "shuffled"]
#: turns one Hugging Face row into the record the benchmark's parser reads from its file
RowAdapter = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class HubSource:
    """Where the Hugging Face Hub keeps a benchmark.

    Attributes:
        path: the dataset id on the Hub.
        split: the split to read (``a+b`` reads both).
        configs: the configurations to read, one after the other (None: the default one).
        adapt: makes a row look like a record of the benchmark's own file (None: the columns already match).
            The config a row came from is passed as the row's ``__config__`` key.
    """

    path: str
    split: str
    configs: tuple[str | None, ...] = (None,)
    adapt: RowAdapter | None = None

    @property
    def label(self) -> str:
        configs = [c for c in self.configs if c]
        config = f", config {configs[0]}" if len(configs) == 1 else (f", {len(configs)} configs" if configs else "")
        return f"{self.path} ({self.split}{config})"


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark of the registry.

    Attributes:
        name: the registry key, also the prefix of every question id.
        path: the file (or folder, for BBH) relative to the benchmarks folder.
        answer_type: the answer type of every question, or None when it differs per task (BBH).
        parse: turns the benchmark's records into questions.
        description: one line for listings.
        licence: the licence of the questions, as published.
        size: how many questions the published file holds.
        subset_key: the ``meta`` key that ``subset`` selects on (BBH task, MMLU-Pro category, ...), if any.
        choice_order: ``none`` (no separate choices), ``original`` (the benchmark's order unless
            ``shuffle_choices=True``) or ``shuffled`` (always shuffled: the original order leaks the answer).
        read: reads the records of ``path`` (default: JSON lines or a JSON array).
        hub: where the Hugging Face Hub keeps it, for when the file is not on disk.
    """

    name: str
    path: str
    answer_type: AnswerType | None
    parse: Parser
    description: str
    licence: str
    size: int
    subset_key: str | None = None
    choice_order: ChoiceOrder = "none"
    read: Callable[[Path], Iterable[Record]] = field(default=read_records)
    hub: HubSource | None = None


def _commonsenseqa_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Hub's flat row as the file's nested record: ``question: {stem, question_concept, choices}``."""
    choices = row.get("choices") or {}
    labels, texts = choices.get("label") or [], choices.get("text") or []
    # uneven lists stay None, so the parser names the field
    options = [{"label": a, "text": b} for a, b in zip(labels, texts, strict=True)] if len(labels) == len(texts) \
        else None
    return {"id": row.get("id"), "answerKey": row.get("answerKey"),
            "question": {"stem": row.get("question"), "question_concept": row.get("question_concept"),
                         "choices": options}}


def _strategyqa_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """tasksource/bigbench rows as BIG-bench examples: ``inputs`` and the scored targets."""
    targets = row.get("multiple_choice_targets") or []
    scores = row.get("multiple_choice_scores") or []
    return {"input": row.get("inputs"), "target_scores": dict(zip(targets, scores, strict=False))}


def _bbh_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"input": row.get("input"), "target": row.get("target"), "task": row.get("__config__")}


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("gsm8k", "gsm8k/test.jsonl", "number", parse_gsm8k,
                "GSM8K test: grade-school maths word problems", "MIT", 1319,
                hub=HubSource("openai/gsm8k", "test", ("main",))),
    DatasetSpec("math500", "math500/math500_test.json", "latex", parse_math500,
                "MATH-500: competition maths, LaTeX answers", "MIT", 500, subset_key="subject",
                hub=HubSource("HuggingFaceH4/MATH-500", "test")),
    DatasetSpec("aime24", "aime24/test.jsonl", "number", parse_competition,
                "AIME 2024 (I and II): integer answers 0-999", "problems (c) MAA", 30,
                hub=HubSource("HuggingFaceH4/aime_2024", "train")),
    DatasetSpec("aime25", "aime25/aime25.json", "number", parse_competition,
                "AIME 2025 (I and II): integer answers 0-999", "problems (c) MAA", 30,
                hub=HubSource("math-ai/aime25", "test")),
    DatasetSpec("amc23", "amc23/test.jsonl", "number", parse_competition,
                "AMC 12 2023: numeric answers", "problems (c) MAA", 40,
                hub=HubSource("math-ai/amc23", "test")),
    DatasetSpec("gpqa_diamond", "gpqa_diamond/gpqa_diamond.zip", "choice", parse_gpqa,
                "GPQA Diamond: graduate-level science, 4 choices (always shuffled)", "CC-BY-4.0", 198,
                subset_key="domain", choice_order="shuffled", read=read_gpqa,
                hub=HubSource("Idavidrein/gpqa", "train", ("gpqa_diamond",))),
    DatasetSpec("mmlu_pro", "mmlu_pro/mmlu_pro_test.jsonl.gz", "choice", parse_mmlu_pro,
                "MMLU-Pro test: 14 subjects, up to 10 choices", "MIT", 12032, subset_key="category",
                choice_order="original", hub=HubSource("TIGER-Lab/MMLU-Pro", "test")),
    DatasetSpec("arc_challenge", "arc_challenge/arc_challenge_test.jsonl", "choice", parse_arc,
                "ARC-Challenge test: grade-school science, 3-5 choices", "CC-BY-SA-4.0", 1172,
                choice_order="original", hub=HubSource("allenai/ai2_arc", "test", ("ARC-Challenge",))),
    DatasetSpec("commonsenseqa", "commonsenseqa/dev_rand_split.jsonl", "choice", parse_commonsenseqa,
                "CommonsenseQA dev: 5 choices", "see upstream", 1221, choice_order="original",
                hub=HubSource("tau/commonsense_qa", "validation", adapt=_commonsenseqa_row)),
    DatasetSpec("strategyqa", "strategyqa/task.json", "text", parse_strategyqa,
                "StrategyQA (BIG-bench): yes/no questions needing implicit reasoning", "Apache-2.0", 2290,
                read=read_strategyqa,
                hub=HubSource("tasksource/bigbench", "train+validation", ("strategyqa",), _strategyqa_row)),
    DatasetSpec("bbh", "bbh", None, parse_bbh,
                "BIG-Bench Hard: 27 tasks; choice, number or text per task", "MIT", 6511, subset_key="task",
                read=read_bbh, hub=HubSource("lukaemon/bbh", "test", tuple(sorted(BBH_TYPES)), _bbh_row)),
)}
