"""Hugging Face datasets, through the optional ``datasets`` package (``pip install 'dynscaling[hf]'``), imported only
when needed.

- ``load_hf_dataset``: any dataset, by Hub id or from a folder written by ``save_to_disk``, with its columns mapped.
- ``read_hub_records``: a registered benchmark that is not on disk, from its Hub id (``registry.DATASETS[...].hub``),
  as records its own parser reads. With ``$DYNSCALING_HF_MIRROR`` set, ``<mirror>/<hub id>/<config>`` (a
  ``save_to_disk`` folder; ``default`` when the dataset has no config) is read instead of the Hub: the way to
  carry the Hub's copy to a machine with no network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError, InputError
from ..types import ANSWER_TYPES, AnswerType, Question
from ._common import LETTERS, Record, Where, choice_question, number_gold, rows_as_records
from .registry import DatasetSpec, HubSource

__all__ = ["HF_PREFIX", "MIRROR_ENV_VAR", "HubReadError", "hf_available", "load_hf_dataset", "read_hub_records"]

HF_PREFIX = "hf:"
MIRROR_ENV_VAR = "DYNSCALING_HF_MIRROR"
HF_INSTALL_HINT = "reading Hugging Face datasets needs the 'datasets' package: pip install 'dynscaling[hf]'"


class HubReadError(InputError):
    """A Hugging Face copy could not be read at all (offline, gated, not in the mirror); a bad row is a plain
    ``InputError`` naming the row and field."""


def hf_available() -> bool:
    """Whether the optional ``datasets`` package can be imported."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(HF_INSTALL_HINT) from None
    return datasets


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a whole number >= 0 or None, got {limit!r}")


def check_unique(questions: Sequence[Question], source: str) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise InputError(f"duplicate question id {question.id!r}", path=source)
        seen.add(question.id)


def _mirror_folder(hub: HubSource, config: str | None) -> Path | None:
    mirror = os.environ.get(MIRROR_ENV_VAR)
    if not mirror:
        return None
    return Path(mirror).expanduser() / hub.path / (config or "default")


def _split(loaded: Any, split: str, source: str, datasets: Any) -> Any:
    """One split (or ``a+b``, concatenated) of a ``DatasetDict`` read from disk; a ``Dataset`` is itself."""
    if not isinstance(loaded, datasets.DatasetDict):
        return loaded
    parts = split.split("+")
    missing = [p for p in parts if p not in loaded]
    if missing:
        raise InputError(f"no split {'+'.join(missing)!r}; it has {', '.join(loaded)}", path=source)
    return datasets.concatenate_datasets([loaded[p] for p in parts]) if len(parts) > 1 else loaded[parts[0]]


def _hub_rows(hub: HubSource, config: str | None, datasets: Any) -> tuple[Any, str]:
    """The rows of one config of ``hub``, from the mirror folder when there is one, else from the Hub."""
    folder = _mirror_folder(hub, config)
    if folder is not None:
        if not folder.is_dir():
            raise HubReadError(f"${MIRROR_ENV_VAR} has no copy of {hub.path} (config {config or 'default'}): "
                               "save it there with datasets' save_to_disk", path=str(folder))
        return _split(datasets.load_from_disk(str(folder)), hub.split, str(folder), datasets), str(folder)
    source = f"hf:{hub.path}" + (f"/{config}" if config else "")
    return datasets.load_dataset(hub.path, config, split=hub.split), source


def read_hub_records(spec: DatasetSpec) -> Iterator[Record]:
    """The records of a registered benchmark, read from its Hugging Face copy (see the module docstring).

    Raises:
        ConfigError: the benchmark has no Hub copy, or ``datasets`` is not installed.
        InputError: the copy cannot be read (offline, gated, missing), with the cause.
    """
    hub = spec.hub
    if hub is None:
        raise ConfigError(f"{spec.name} has no Hugging Face copy registered")
    datasets = import_datasets()
    for config in hub.configs:
        try:
            rows, source = _hub_rows(hub, config, datasets)
        except (ConfigError, InputError):
            raise
        except Exception as error:  # datasets raises many kinds (offline, gated, not found): one line with the cause
            raise HubReadError(f"cannot read {hub.label} from Hugging Face: {type(error).__name__}: "
                               f"{_first_line(error)}") from error
        for index, where, row in rows_as_records(rows, source):
            if hub.adapt is not None:
                row = hub.adapt({**row, "__config__": config})
            yield index, where, row


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def _hf_choice_gold(value: Any, choices: Sequence[str], where: Where, field: str) -> str:
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
    check_limit(limit)
    if answer_type not in ANSWER_TYPES:
        raise ConfigError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
    datasets = import_datasets()
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
        where = Where(path, prefix=f"[{index}]")
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
            questions.append(choice_question(qid, text, choices, correct, meta, shuffle=shuffle_choices, seed=seed))
            continue
        gold: str | None = None
        if raw is not None:
            gold = number_gold(raw, where, answer_field or "answer") if answer_type == "number" else str(raw).strip()
        questions.append(Question(qid, text, cast(AnswerType, answer_type), gold, meta))
    check_unique(questions, path)
    return questions
