"""Exceptions raised by dynscaling.

The tree::

    DynscalingError
    ├── InputError            bad user input (a file, a line, a field); never retryable
    ├── ConfigError           bad parameters for a strategy, budget or command; never retryable
    │   └── JournalError      the journal cannot be opened, locked or written (in use, not SQLite, read-only, full)
    ├── ReplayRefusedError    a sampler that needs a live model was given a replay backend
    └── BackendError          a model backend failed a request
        ├── PartialSamplesError the backend returned some of the choices asked for, then failed the rest
        └── PoolExhaustedError  a replay pool has no unseen sample left for a question

``redact`` is the one masking helper: every message that may carry upstream text goes through it.

Every message is one line meant for a person: it says where the problem is and, where it can, how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "BackendError",
    "ConfigError",
    "DynscalingError",
    "InputError",
    "JournalError",
    "PartialSamplesError",
    "PoolExhaustedError",
    "ReplayRefusedError",
    "redact",
]

MASK = "***"
# What a credential looks like when a server echoes it back without being told which one we sent: a bearer
# token, an ``sk-...`` style key, or a ``key=...`` query parameter.
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[^\s\"',;)]{4,}"
    r"|()\b(?:sk|pk|rk|gsk|hf|sess)[-_][A-Za-z0-9_\-]{12,}"
    r"|([?&](?:key|api_key|apikey|token|access_token)=)[^&\s\"']+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret, and anything shaped like a key or bearer token, replaced by ``***``.

    Secrets shorter than 4 characters are not searched for (they would mask ordinary words)."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + MASK, text)


class DynscalingError(Exception):
    """Base class of every error dynscaling raises on purpose."""


class InputError(DynscalingError):
    """Bad input data. Not retryable: the file must be fixed.

    The message names the file, the line (1-based) and the field when they are known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = ""
        if path is not None:
            where = path if line is None else f"{path}:{line}"
        if field is not None:
            where = f"{where}: field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(DynscalingError, ValueError):
    """A parameter outside its allowed range or an unknown name. Not retryable."""


class JournalError(ConfigError):
    """The journal file cannot serve this run: another run holds it, it is not a journal, or it cannot be written
    (read-only, disk full). Nothing already journaled is lost; the message says what to do."""


class ReplayRefusedError(DynscalingError):
    """A sampler that must show the model its earlier answers cannot run on recorded samples. Not retryable."""


class BackendError(DynscalingError):
    """A backend failed to produce a sample.

    ``retryable`` says whether asking again may succeed (rate limits, server errors, timeouts).
    """

    def __init__(self, message: str, *, retryable: bool = False, kind: str = "error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind


class PartialSamplesError(BackendError):
    """Some of the ``n`` choices came back and the requests for the rest failed.

    ``samples`` holds the choices received: they were paid for, so the caller keeps and counts them."""

    def __init__(self, message: str, samples: Sequence[Any], *, retryable: bool = True,
                 kind: str = "fewer_choices") -> None:
        super().__init__(message, retryable=retryable, kind=kind)
        self.samples = list(samples)


class PoolExhaustedError(BackendError):
    """A replay pool served every recorded sample of a question; it never repeats one. Not retryable."""

    def __init__(self, question_id: str) -> None:
        super().__init__(f"replay pool has no unseen sample left for question {question_id!r}",
                         retryable=False, kind="exhausted")
        self.question_id = question_id
