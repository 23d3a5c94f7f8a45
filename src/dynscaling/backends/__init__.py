"""Model backends: where samples come from. Each one does I/O (or stands in for it); the engine does none.

``OpenAIBackend`` is imported on first use: the ``openai`` SDK takes about a second to import, which replay
benches never need. ``LlamaCppBackend`` (a GGUF model in process) too: it needs the ``[local]`` extra.
"""

from typing import Any

from .replay import ReplayBackend

__all__ = ["LlamaCppBackend", "OpenAIBackend", "ReplayBackend"]


def __getattr__(name: str) -> Any:
    if name == "OpenAIBackend":
        from .openai import OpenAIBackend

        return OpenAIBackend
    if name == "LlamaCppBackend":
        from .llama_cpp import LlamaCppBackend

        return LlamaCppBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
