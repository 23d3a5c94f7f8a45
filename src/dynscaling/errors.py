"""Exceptions raised by dynscaling.

The tree::

    DynscalingError
    ├── InputError            bad user input (a file, a line, a field); never retryable
    ├── ConfigError           bad parameters for a strategy, budget or command; never retryable
    ├── ReplayRefusedError    a sampler that needs a live model was given a replay backend
    └── BackendError          a model backend failed a request
        └── PoolExhaustedError  a replay pool has no unseen sample left for a question

Every message is one line meant for a person: it says where the problem is and, where it can, how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "DynscalingError",
    "InputError",
    "PoolExhaustedError",
    "ReplayRefusedError",
]


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


class PoolExhaustedError(BackendError):
    """A replay pool served every recorded sample of a question; it never repeats one. Not retryable."""

    def __init__(self, question_id: str) -> None:
        super().__init__(f"replay pool has no unseen sample left for question {question_id!r}",
                         retryable=False, kind="exhausted")
        self.question_id = question_id
