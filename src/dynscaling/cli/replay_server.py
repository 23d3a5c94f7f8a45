"""``dynscaling replay-server``: a replay pool served as an OpenAI-compatible endpoint."""

from __future__ import annotations

from pathlib import Path

import click

from .common import fail_cleanly


@click.command("replay-server")
@click.option("--pool", "pool_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Replay pool to serve (JSONL, optionally gzipped).")
@click.option("--answers", type=click.Choice(["extract", "upstream"]), default="extract", show_default=True,
              help="How the pool's recorded answers are read (see 'bench --answers').")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--latency", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds each request takes.")
@click.option("--slots", type=click.IntRange(min=1), default=None,
              help="Requests processed at once; the others wait. Default: no limit.")
@click.option("--seed", default=0, show_default=True, help="Seeds the sample order and the injected faults.")
@click.option("--rate-limit", default=0.0, type=click.FloatRange(0, 1), help="Fraction of requests answered 429.")
@click.option("--retry-after", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds sent in Retry-After with a 429.")
@click.option("--server-error", default=0.0, type=click.FloatRange(0, 1), help="Fraction answered 500.")
@click.option("--timeout", "timeout_rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction that hang --hang-seconds without answering, then close.")
@click.option("--hang-seconds", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="How long a --timeout fault hangs.")
@click.option("--empty", default=0.0, type=click.FloatRange(0, 1), help="Fraction with one empty choice.")
@click.option("--length", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction with one choice cut half-way (finish_reason 'length').")
@click.option("--fewer-choices", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of n>1 requests that get fewer choices than asked.")
@fail_cleanly
def replay_server(pool_path: Path, answers: str, host: str, port: int, latency: float, slots: int | None,
                  seed: int, rate_limit: float, retry_after: float, server_error: float, timeout_rate: float,
                  hang_seconds: float, empty: float, length: float, fewer_choices: float) -> None:
    """Serve a replay pool as an OpenAI-compatible endpoint (POST /v1/chat/completions), for tests and dry runs.

    Prints the base URL on stdout, then serves until Ctrl-C. GET /stats counts what it served.
    """
    from ..pools import load_pool
    from ..replay_server import FaultPlan, serve

    pool = load_pool(pool_path, answers=answers)  # type: ignore[arg-type]
    faults = FaultPlan(rate_limit=rate_limit, server_error=server_error, timeout=timeout_rate, empty=empty,
                       length=length, fewer_choices=fewer_choices, retry_after=retry_after,
                       hang_seconds=hang_seconds)
    stats = serve(pool, host=host, port=port, latency=latency, slots=slots, faults=faults, seed=seed,
                  announce=lambda url: click.echo(url))
    click.echo(f"stopped after {stats['requests']} requests, {stats['samples']} samples served", err=True)

