"""Running a replay server in the foreground: ``serve`` (used by ``dynscaling replay-server``) and the
``python -m dynscaling.replay_server`` entry point."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..pools import Pool
from .faults import FAULTS, NO_FAULTS, FaultPlan
from .server import ReplayServer

__all__ = ["main", "serve"]


def serve(pool: Pool, *, host: str = "127.0.0.1", port: int = 8001, latency: float = 0.0, slots: int | None = None,
          faults: FaultPlan = NO_FAULTS, seed: int = 0,
          announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a replay server in the foreground until Ctrl-C (or SIGTERM). Calls ``announce(base_url)`` once it
    listens.

    Returns the final stats snapshot. Raises ``ConfigError`` when it cannot listen (port taken, bad host).
    """
    server = ReplayServer(pool, host=host, port=port, latency=latency, slots=slots, faults=faults, seed=seed)
    try:
        server.start()
    except OSError as error:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}; choose another --port (0 picks a free one)"
                          ) from None
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly on SIGTERM as on Ctrl-C
    try:
        announce(server.base_url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return server.stats.snapshot()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynscaling replay-server",
        description="Serve a replay pool as an OpenAI-compatible chat completions endpoint. Prints the base URL, "
                    "then serves until Ctrl-C.")
    parser.add_argument("--pool", required=True, type=Path, help="replay pool file (JSONL, optionally gzipped)")
    parser.add_argument("--answers", choices=("extract", "upstream"), default="extract",
                        help="how the pool's recorded answers are read (see dynscaling.pools); default: extract")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port (default: 8001; 0 picks a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request (default: 0)")
    parser.add_argument("--slots", type=int, default=None, help="requests processed at once (default: no limit)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample order and the faults (default: 0)")
    for field in fields(FaultPlan):
        flag = "--" + field.name.replace("_", "-")
        if field.name in FAULTS:
            parser.add_argument(flag, type=float, default=field.default, metavar="RATE",
                                help=f"fraction of requests with the {field.name} fault (default: 0)")
        else:
            parser.add_argument(flag, type=float, default=field.default, metavar="SECONDS",
                                help=f"{field.name.replace('_', ' ')} in seconds (default: {field.default:g})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dynscaling.replay_server --pool FILE ...``. Exit status 0, or 2 on bad input or options."""
    args = _parser().parse_args(argv)
    try:
        from ..pools import load_pool

        pool = load_pool(args.pool, answers=args.answers)
        faults = FaultPlan(**{f.name: getattr(args, f.name) for f in fields(FaultPlan)})
        stats = serve(pool, host=args.host, port=args.port, latency=args.latency, slots=args.slots, faults=faults,
                      seed=args.seed, announce=lambda url: print(url, flush=True))
    except (InputError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"stopped after {stats['requests']} requests, {stats['samples']} samples served", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
