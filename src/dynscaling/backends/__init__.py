"""Model backends: where samples come from. Each one does I/O (or stands in for it); the engine does none."""

from .replay import ReplayBackend

__all__ = ["ReplayBackend"]
