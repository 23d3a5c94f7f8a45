"""Which faults a replay server injects, how often, and the draws for one request."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["FAULTS", "NO_FAULTS", "Decision", "FaultPlan"]

#: The fault kinds, in the order a request's draws are made (and, for the first three, their precedence).
FAULTS: tuple[str, ...] = ("rate_limit", "server_error", "timeout", "empty", "length", "fewer_choices")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How often the server misbehaves, and how.

    Attributes:
        rate_limit: fraction of requests answered 429 with a ``Retry-After`` header (before taking a slot).
        server_error: fraction answered 500 (after the latency).
        timeout: fraction that hang ``hang_seconds`` (holding no slot) with no response, then close the connection.
        empty: fraction where one choice has empty content (it consumes no sample).
        length: fraction where one choice is cut half-way, with finish_reason ``length``.
        fewer_choices: fraction of requests for n >= 2 choices that get 1 to n-1 of them.
        retry_after: seconds sent in ``Retry-After`` (and ``retry-after-ms``) with a 429.
        hang_seconds: how long a ``timeout`` fault hangs; make it longer than the client's timeout.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    empty: float = 0.0
    length: float = 0.0
    fewer_choices: float = 0.0
    retry_after: float = 1.0
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in FAULTS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault rate {name} must be in [0, 1], got {value!r}")
        if not self.retry_after >= 0:
            raise ConfigError(f"retry_after must be >= 0 seconds, got {self.retry_after!r}")
        if not self.hang_seconds > 0:
            raise ConfigError(f"hang_seconds must be > 0, got {self.hang_seconds!r}")

    @property
    def rates(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FAULTS}


@dataclass(slots=True)
class Decision:
    """The faults drawn for one request, plus the RNG for their details (which choice, how many)."""

    faults: frozenset[str]
    rng: random.Random


#: No faults at all: the default plan.
NO_FAULTS = FaultPlan()
