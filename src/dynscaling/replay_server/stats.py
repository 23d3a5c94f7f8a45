"""The counters of a running replay server."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["ServerStats"]


class ServerStats:
    """Counters of a running server. Written by the server's event loop, readable from any thread.

    ``requests`` counts chat completion requests (valid or not); ``status`` counts their responses by HTTP
    status; ``faults`` counts injected faults by kind. ``samples`` counts pool samples served (each is served
    once), ``choices`` every choice returned. ``inflight`` is the number of chat requests received and
    not yet answered (waiting for a slot included), ``active`` those holding a slot (processing);
    ``max_inflight``/``max_active`` are the highest values seen. ``busy_seconds`` sums the time requests held a
    slot (with ``slots=None``, the time they were processed). ``abandoned`` counts requests whose client hung up
    (its timeout) before they were answered: they serve no sample. ``prompt_tokens``/``completion_tokens``/
    ``cached_tokens`` sum the usage reported.
    """

    _COUNTERS = ("requests", "samples", "choices", "inflight", "max_inflight", "active", "max_active",
                 "abandoned", "prompt_tokens", "completion_tokens", "cached_tokens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(self._COUNTERS, 0)
        self._status: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()
        self._busy = 0.0

    def _read(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    requests = property(lambda self: self._read("requests"), doc="chat completion requests received")
    samples = property(lambda self: self._read("samples"), doc="pool samples served")
    choices = property(lambda self: self._read("choices"), doc="choices returned, empty ones included")
    inflight = property(lambda self: self._read("inflight"), doc="chat requests received, not yet answered")
    max_inflight = property(lambda self: self._read("max_inflight"), doc="the most in flight at once")
    active = property(lambda self: self._read("active"), doc="chat requests holding a slot now")
    max_active = property(lambda self: self._read("max_active"), doc="the most holding a slot at once")
    abandoned = property(lambda self: self._read("abandoned"), doc="requests whose client left before the answer")
    prompt_tokens = property(lambda self: self._read("prompt_tokens"), doc="prompt tokens reported")
    completion_tokens = property(lambda self: self._read("completion_tokens"), doc="completion tokens reported")
    cached_tokens = property(lambda self: self._read("cached_tokens"), doc="cached prompt tokens reported")

    @property
    def status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._status)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy

    def snapshot(self) -> dict[str, Any]:
        """Every counter, consistent with each other, as plain JSON-ready values."""
        with self._lock:
            out: dict[str, Any] = dict(self._values)
            out["status"] = {str(k): v for k, v in sorted(self._status.items())}
            out["faults"] = dict(sorted(self._faults.items()))
            out["busy_seconds"] = round(self._busy, 6)
            return out

    # ---- updates (the server's loop only) ------------------------------------------------------------------

    def _bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._values[name] += by

    def _enter(self, current: str, peak: str) -> None:
        with self._lock:
            self._values[current] += 1
            if self._values[current] > self._values[peak]:
                self._values[peak] = self._values[current]

    def _leave(self, current: str, busy: float = 0.0) -> None:
        with self._lock:
            self._values[current] -= 1
            self._busy += busy

    def _status_sent(self, status: int) -> None:
        with self._lock:
            self._status[status] += 1

    def _fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1
