"""Benchmark question sets with gold answers, read into ``Question`` lists.

``load_dataset("gsm8k")`` reads one of the benchmarks in ``DATASETS`` from a folder laid out like the project's
shared ``benchmarks/`` folder (``gsm8k/test.jsonl``, ``math500/math500_test.json``, ...; where it looks:
``locate``), or, when the file is in none of them and the ``[hf]`` extra is installed, from the benchmark's
Hugging Face copy (``registry``: ``openai/gsm8k``, ``HuggingFaceH4/MATH-500``, ...). Each question's text is the
full question as the model should see it, choices included as ``(A) ...`` lines, with no answer-format instruction
(``samplers.Prompts`` adds that per answer type). Ids are the dataset name plus the benchmark's own id, or the
item's index when it has none, so they stay stable between runs.

Choices are shown in the benchmark's own order, except where that order leaks the answer: GPQA lists the correct
answer first, so its choices are always shuffled, with ``random.Random`` seeded by ``seed`` and the question id.
The GPQA zip is password-protected so that its questions never sit on disk in clear; it is read in memory only.

``load_hf_dataset`` (or ``load_dataset("hf:<path>", ...)``) reads any Hugging Face dataset, from the Hub or saved
with ``save_to_disk``, through the optional ``datasets`` package.

Modules: ``registry`` (the benchmarks and their Hub ids), ``locate`` (the folders searched), ``math``, ``choice``
and ``bigbench`` (the loaders of each family), ``hf`` (Hugging Face), ``_common`` (reading files, gold answers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..types import Question
from ._common import LoadOptions
from .hf import (
    HF_PREFIX,
    MIRROR_ENV_VAR,
    HubReadError,
    check_limit,
    check_unique,
    hf_available,
    load_hf_dataset,
    read_hub_records,
)
from .locate import DATA_ENV_VAR, ENV_VAR, Location, benchmark_folders, find_benchmarks_dir, locate
from .registry import DATASETS, DatasetSpec, HubSource

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "ENV_VAR",
    "HF_PREFIX",
    "MIRROR_ENV_VAR",
    "DatasetSpec",
    "HubSource",
    "Location",
    "benchmark_folders",
    "find_benchmarks_dir",
    "hf_available",
    "load_dataset",
    "load_hf_dataset",
    "locate",
]

logger = logging.getLogger("dynscaling.datasets")


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


def load_dataset(name: str, data_dir: str | Path | None = None, limit: int | None = None,
                 subset: str | Sequence[str] | None = None, seed: int = 0, *, shuffle_choices: bool | None = None,
                 **hf_options: Any) -> list[Question]:
    """The questions of a registered benchmark, in file order, tagged with ``meta["dataset"]``.

    Args:
        name: a key of ``DATASETS``, or ``hf:<path-or-name>`` for a Hugging Face dataset (see ``load_hf_dataset``;
            ``hf_options`` go there and ``subset`` is the dataset's config).
        data_dir: a benchmarks folder, or a data folder holding ``benchmarks/``; default: see ``locate``
            (``$DYNSCALING_BENCHMARKS``, ``$DYNSCALING_DATA/benchmarks``, ``../shared/data/benchmarks``,
            ``~/.dynscaling/data/benchmarks``). A benchmark found in none of them is read from its Hugging Face
            copy (``DATASETS[name].hub``) when the ``[hf]`` extra is installed.
        limit: keep the first ``limit`` questions, after the subset filter.
        subset: for datasets with a ``subset_key`` (BBH task, MMLU-Pro category, MATH-500 subject, GPQA domain): one
            name, a comma-separated list or a sequence of names. Default: everything.
        seed: seeds choice shuffling (per question, with its id).
        shuffle_choices: None keeps each dataset's rule (GPQA shuffled, the others in the benchmark's order);
            True shuffles the choices of MMLU-Pro, ARC and CommonsenseQA too. GPQA cannot be left unshuffled, and
            sets without separate choices (BBH writes its options into the question) cannot be shuffled.

    Raises:
        ConfigError: an unknown dataset, subset or option.
        InputError: the data folder or a file is missing (the message says which file to put where) or malformed
            (file, line and field named).
    """
    check_limit(limit)
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
    options = LoadOptions(name, seed, shuffle)
    location = locate(spec, data_dir)
    if location.found is not None:
        source = str(location.found)
        questions = spec.parse(spec.read(location.found), options)
    else:
        questions, source = _from_the_hub(spec, location, options)
    if len(questions) != spec.size:
        logger.warning("%s: read %d questions, the published set has %d", source, len(questions), spec.size)
    check_unique(questions, source)
    if subset is not None:
        questions = _select(questions, spec, subset)
    if limit is not None:
        questions = questions[:limit]
    return [Question(q.id, q.text, q.answer_type, q.gold, {**q.meta, "dataset": name}) for q in questions]


def _from_the_hub(spec: DatasetSpec, location: Location, options: LoadOptions) -> tuple[list[Question], str]:
    """A benchmark that is on no searched folder, read from its Hugging Face copy when ``datasets`` is installed;
    otherwise, or when that fails, one error saying which file to put where."""
    if spec.hub is None or not hf_available():
        also = f" (or pip install 'dynscaling[hf]' to read {spec.hub.label} from Hugging Face)" if spec.hub else ""
        raise InputError(f"{spec.name} not found: {location.missing_hint()}{also}")
    logger.info("%s is not on disk (%s); reading %s from Hugging Face", spec.name, location.expected,
                spec.hub.label)
    try:
        return spec.parse(read_hub_records(spec), options), f"{HF_PREFIX}{spec.hub.path}"
    except HubReadError as error:
        raise InputError(f"{spec.name} not found on disk ({location.missing_hint()}), and {error}") from error
