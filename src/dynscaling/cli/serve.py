"""``dynscaling serve``: the OpenAI-compatible server in front of an upstream model."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .backend_options import local_backend, local_model_options
from .common import fail_cleanly


@click.command()
@click.option("--upstream-url", envvar="DYNSCALING_UPSTREAM_URL",
              help="The model's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--upstream-model", help="The upstream model for names like dynscaling/8 (with --backend llama-cpp: "
                                       "the name clients use for the local model, default its file name).")
@local_model_options
@click.option("--upstream-api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable with the upstream key.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (default: loopback only).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key-env", "client_key_env", default=None,
              help="Environment variable with a key clients must present (Authorization: Bearer ...).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Concurrent upstream requests at most, over all clients.")
@click.option("--default-budget", default=8, show_default=True, type=click.IntRange(min=1),
              help="Samples per question for model names without a number (dynscaling/<model>).")
@click.option("--strategy", default="dynscaling:max_inflight=2,min_gain=0.001", show_default=True,
              help="Default strategy for scaled requests.")
@click.option("--answer-type", default="text", show_default=True,
              type=click.Choice(["number", "date", "latex", "choice", "text"]))
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--max-tokens", type=click.IntRange(min=1))
@click.option("--keepalive", "keepalive_seconds", default=5.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds between SSE keep-alive comments while a scaled stream samples.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Journal for batches (default $DYNSCALING_HOME/journal.sqlite).")
@fail_cleanly
def serve(upstream_url: str | None, upstream_model: str | None, backend_kind: str, model_path: Path | None,
          n_ctx: int, threads: int, upstream_api_key_env: str, host: str, port: int,
          client_key_env: str | None, concurrency: int, default_budget: int, strategy: str, answer_type: str,
          temperature: float, max_tokens: int | None, keepalive_seconds: float, journal_path: Path | None) -> None:
    """Serve the OpenAI API with DynScaling in front of an upstream model.

    Model 'dynscaling/8/<model>' = up to 8 samples, voted (or any name with the header X-Dynscaling-Budget: 8);
    any other name passes through verbatim. Chat and text completions scale; responses, embeddings and models
    pass through. Checks the upstream first: unreachable or refusing the key, or a busy port, exits 2.
    """
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the server needs its extra: pip install 'dynscaling[server]'") from None
    from ..journal import default_journal_path
    from ..server import ServeConfig, create_app, probe_upstream

    local = None
    if backend_kind == "llama-cpp":
        if upstream_url:
            raise ConfigError("--upstream-url is for an endpoint; a local model (--backend llama-cpp) takes "
                              "--model-path")
        local = local_backend(model_path, n_ctx=n_ctx, threads=threads, temperature=temperature,
                              max_tokens=max_tokens)
        upstream_model = upstream_model or local.model
        upstream_url = "local:"  # no endpoint: scaled names are answered by the model in this process
    elif not upstream_url or not upstream_model:
        raise ConfigError("serving an endpoint needs --upstream-url and --upstream-model (or --backend llama-cpp "
                          "for a local GGUF model)")

    client_key = None
    if client_key_env is not None:
        client_key = os.environ.get(client_key_env)
        if not client_key:
            raise ConfigError(f"--api-key-env names {client_key_env}, which is not set")
    sampling: dict[str, Any] = {"temperature": temperature}
    if max_tokens is not None:
        sampling["max_tokens"] = max_tokens
    config = ServeConfig(upstream_url=upstream_url, upstream_model=upstream_model,
                         upstream_api_key_env=upstream_api_key_env, api_key=client_key, concurrency=concurrency,
                         default_budget=default_budget, max_budget=max(64, default_budget), strategy=strategy,
                         answer_type=answer_type, sampling=sampling, keepalive_seconds=keepalive_seconds,
                         journal_path=journal_path or default_journal_path())
    if host not in ("127.0.0.1", "localhost", "::1") and client_key is None:
        click.echo(f"warning: serving on {host} with no client key (--api-key-env)", err=True)
    if local is None:
        models = probe_upstream(config)  # unreachable or refusing the key: one line, exit 2, before listening
        if models and upstream_model not in models:
            click.echo(f"warning: the upstream does not list {upstream_model!r} (it lists {', '.join(models[:5])})",
                       err=True)
    sock = _listen(host, port)
    click.echo(f"http://{host}:{sock.getsockname()[1]}/v1", err=True)
    if local is not None:
        click.echo(f"local model {local.model}: ask for dynscaling/<samples>/{upstream_model}; it generates one "
                   "sequence at a time, and plain model names are not served", err=True)
    server = uvicorn.Server(uvicorn.Config(create_app(config, upstream_backend=local), log_level="warning"))
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """Bind the port ourselves, so a busy port is one line and exit 2 rather than uvicorn's log and exit 1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}; choose another --port (0 picks a free one)"
                          ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock

