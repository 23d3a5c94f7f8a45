"""The budget ledger: reserve before dispatch, settle on return, never exceed the cap.

A budget caps any of samples, tokens and dollars (each optional). A request is dispatched only once the ledger
has *reserved* its worst case (one sample, its token estimate, its dollar estimate); when it returns, the
reservation is *settled* with what it actually cost, and when it fails or is cancelled it is *released*. So the
spend plus everything in flight never passes the cap, whatever the concurrency, retries or cancellations.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .errors import ConfigError
from .types import Usage

__all__ = ["Budget", "Ledger", "Reservation"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Caps for one run. None means "no cap on this unit"; at least one cap must be set.

    Attributes:
        samples: total samples over the batch.
        tokens: total tokens (prompt + completion) over the batch.
        usd: total dollars over the batch.
    """

    samples: int | None = None
    tokens: int | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        if self.samples is None and self.tokens is None and self.usd is None:
            raise ConfigError("a budget needs at least one cap: samples, tokens or usd")
        for name in ("samples", "tokens", "usd"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # written so that NaN is refused too
                raise ConfigError(f"budget {name} must be >= 0, got {value}")
        for name in ("samples", "tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"budget {name} must be a whole number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Reservation:
    samples: int
    tokens: int
    usd: float


_ONE_SAMPLE = Reservation(1, 0, 0.0)


class Ledger:
    """Tracks spent and reserved amounts against a ``Budget``."""

    __slots__ = ("budget", "spent_samples", "spent_tokens", "spent_usd", "reserved_samples", "reserved_tokens",
                 "reserved_usd", "_max_samples")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.spent_samples = 0
        self.spent_tokens = 0
        self.spent_usd = 0.0
        self.reserved_samples = 0
        self.reserved_tokens = 0
        self.reserved_usd = 0.0
        self._max_samples = budget.samples if budget.samples is not None else float("inf")

    def room(self) -> int:
        """How many more samples the sample cap admits, reserved ones counted (``sys.maxsize`` with no cap)."""
        if self.budget.samples is None:
            return sys.maxsize
        return max(0, self.budget.samples - self.spent_samples - self.reserved_samples)

    def can_reserve(self, tokens: int = 0, usd: float = 0.0) -> bool:
        b = self.budget
        if self.spent_samples + self.reserved_samples + 1 > self._max_samples:
            return False
        if b.tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > b.tokens:
            return False
        if b.usd is not None and self.spent_usd + self.reserved_usd + usd > b.usd + 1e-12:
            return False
        return True

    def reserve(self, tokens: int = 0, usd: float = 0.0) -> Reservation | None:
        """Hold room for one sample costing at most ``tokens`` and ``usd``; None when it does not fit."""
        if not self.can_reserve(tokens, usd):
            return None
        self.reserved_samples += 1
        if tokens == 0 and usd == 0.0:
            return _ONE_SAMPLE  # the common replay case: no allocation per sample
        self.reserved_tokens += tokens
        self.reserved_usd += usd
        return Reservation(1, tokens, usd)

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unspent (the request failed at no cost or was never sent)."""
        self.reserved_samples -= 1
        if reservation is not _ONE_SAMPLE:
            self.reserved_tokens -= reservation.tokens
            self.reserved_usd -= reservation.usd

    def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Replace a reservation by what the sample actually cost.

        A backend may report more tokens than were reserved (a server ignoring ``max_tokens``); the overrun is
        recorded, never hidden, and further reservations stop as soon as the cap is reached.
        """
        self.release(reservation)
        self.spent_samples += 1
        self.spent_tokens += usage.prompt_tokens + usage.completion_tokens
        self.spent_usd += usage.cost_usd

    def charge(self, usage: Usage) -> bool:
        """Reserve and settle in one step, for a synchronous source whose cost is known on the spot (replay).

        Returns False, charging nothing, when the sample does not fit."""
        if self.spent_samples + self.reserved_samples + 1 > self._max_samples:
            return False
        b = self.budget
        tokens = usage.prompt_tokens + usage.completion_tokens
        if b.tokens is not None and self.spent_tokens + self.reserved_tokens + tokens > b.tokens:
            return False
        if b.usd is not None and self.spent_usd + self.reserved_usd + usage.cost_usd > b.usd + 1e-12:
            return False
        self.spent_samples += 1
        self.spent_tokens += tokens
        self.spent_usd += usage.cost_usd
        return True

    @property
    def exhausted(self) -> bool:
        """True when not even a zero-cost sample fits any more."""
        return not self.can_reserve()
