"""Shared by the serve benchmarks: start ``dynscaling replay-server`` and ``dynscaling serve`` as the real
commands, on free loopback ports, and stop them cleanly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dynscaling.cli", *args]


@contextmanager
def replay_server(pool: Path, *extra: str) -> Iterator[str]:
    """``dynscaling replay-server --pool POOL --port 0``; yields its base URL (read from its first line)."""
    process = subprocess.Popen(_command("replay-server", "--pool", str(pool), "--port", "0", *extra),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"replay-server did not start: {process.stderr.read() if process.stderr else ''}")
        yield url
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def dynscaling_serve(upstream_url: str, model: str, *extra: str) -> Iterator[str]:
    """``dynscaling serve`` in front of ``upstream_url``; yields its base URL once ``/health`` answers."""
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "EMPTY")}
    process = subprocess.Popen(_command("serve", "--upstream-url", upstream_url, "--upstream-model", model,
                                        "--port", str(port), *extra),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as reply:
                    if json.loads(reply.read())["status"] == "ok":
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start: {process.stderr.read() if process.stderr else ''}"
                                       ) from None
                time.sleep(0.1)
        yield url + "/v1"
    finally:
        process.terminate()
        process.wait(30)


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
