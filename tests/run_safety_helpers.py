"""Helpers shared by the run-safety tests: a batch file from the bundled date pool, ``dynscaling solve`` through
click's runner, the output and journal read back, and a small upstream whose models list and chat answers are
scripted (tests/test_run_safety.py, tests/test_journal_safety.py, tests/test_batch_retry.py)."""

from __future__ import annotations

import json
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from dynscaling.cli import cli
from dynscaling.pools import Pool, bundled_pools
from fakes import LoopbackServer, send_json

SECRET = "sk-test-SECRET-7f3a9b"
DATE_POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))  # 10 samples per question


def write_batch(pool: Pool, path: Path, count: int | None = None) -> Path:
    entries = pool.entries[:count] if count is not None else pool.entries
    path.write_text("".join(json.dumps({"id": e.question.id, "question": e.question.text, "answer_type": "date"})
                            + "\n" for e in entries))
    return path


def solve(base_url: str, model: str, batch: Path, out: Path, journal: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["solve", str(batch), "--out", str(out), "--base-url", base_url, "--model", model,
                                    "--journal", str(journal), "--concurrency", "4", "--strategy", "sc", *extra])


def read_out(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def journal_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        counts = {"samples": db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]}
        for kind, count in db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind"):
            counts[kind] = count
        return counts
    finally:
        db.close()


class ModelsServer(LoopbackServer):
    """GET /v1/models answers ``status``: the list of ``models``, or an error with message ``body`` (echoing the
    Authorization header, as a careless gateway would). POST either drops the connection without a response
    (``drop_posts``) or answers ``post_status`` with ``post_message``. Counts the POSTs it received."""

    def __init__(self, status: int = 200, body: Any = None, *, drop_posts: bool = False,
                 models: tuple[str, ...] = ("m",), post_status: int = 500, post_message: str = "broken",
                 port: int = 0) -> None:
        self.posts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                payload: Any = {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}
                if status >= 400:
                    payload = {"error": {"message": f"{body} (you sent {self.headers.get('Authorization')})",
                                         "type": "invalid_request_error", "code": None}}
                self._send(status, payload)

            def do_POST(self) -> None:  # noqa: N802
                outer.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if drop_posts:
                    self.close_connection = True  # no response at all: the client sees the connection drop
                    return
                self._send(post_status, {"error": {"message": post_message, "type": "server_error"}})

            def _send(self, code: int, payload: Any) -> None:
                send_json(self, code, payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._serve(Handler, port)



def free_port() -> int:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        return int(probe.server_address[1])
