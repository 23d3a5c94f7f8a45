"""``ServeConfig``: how the server reaches its upstream and what it allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..strategies import parse_strategy
from ..types import ANSWER_TYPES

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How the server reaches its upstream and what it allows.

    Attributes:
        upstream_url: the upstream's OpenAI-compatible base URL.
        upstream_model: the upstream model used when a request names none after ``dynscaling/<n>/``.
        upstream_api_key_env: environment variable holding the upstream key.
        api_key: when set, clients must send ``Authorization: Bearer <api_key>``.
        concurrency: concurrent upstream requests at most, over all clients.
        default_budget: samples per question for ``dynscaling/<model>`` without a number.
        max_budget: the largest per-question budget a request may ask for.
        strategy: the default strategy spec for scaled requests.
        answer_type: the default answer type.
        max_body_bytes: larger request bodies get a 413.
        sampling: the server's sampling parameters (``temperature``, ``max_tokens``, ...) for scaled requests; the
            client's own values win, except a temperature of 0 (voting over identical samples is pointless).
        journal_path: where batches are journaled (None: not journaled).
        timeout: seconds per upstream request.
        keepalive_seconds: a scaled stream sends an SSE comment this often while it samples.
        upstream_retries: retries of a failed upstream request (429, 5xx, timeouts) within one scaled request.
        max_retry_wait: the longest wait between those retries, whatever the upstream's Retry-After asks.
    """

    upstream_url: str
    upstream_model: str
    upstream_api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 16
    default_budget: int = 8
    max_budget: int = 64
    strategy: str = "dynscaling:max_inflight=2,min_gain=0.001"
    answer_type: str = "text"
    max_body_bytes: int = 4_000_000
    sampling: Mapping[str, Any] = field(default_factory=lambda: {"temperature": 0.7})
    journal_path: str | Path | None = None
    timeout: float = 600.0
    keepalive_seconds: float = 5.0
    upstream_retries: int = 2
    max_retry_wait: float = 5.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if not 1 <= self.default_budget <= self.max_budget:
            raise ConfigError(f"need 1 <= default_budget <= max_budget, got {self.default_budget}, {self.max_budget}")
        if self.answer_type not in ANSWER_TYPES:
            raise ConfigError(f"unknown answer type {self.answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
        if not self.keepalive_seconds > 0:
            raise ConfigError(f"keepalive_seconds must be > 0, got {self.keepalive_seconds}")
        if self.upstream_retries < 0 or not self.max_retry_wait >= 0:
            raise ConfigError("upstream_retries and max_retry_wait must be >= 0")
        parse_strategy(self.strategy)

    @property
    def sampling_temperature(self) -> float:
        """The temperature scaled requests sample at when the client asks for 0 or none."""
        value = self.sampling.get("temperature")
        return float(value) if isinstance(value, (int, float)) and value > 0 else 0.7
