"""A small OpenAI-compatible upstream whose answers follow from each request's seed, with faults at random.

The replay server serves a question's recorded samples in one fixed order whoever asks, so after a SIGKILL the
samples that were in flight are gone and the resumed run sees later ones. Here choice ``i`` of a request sent with
``seed`` is decided by ``(question, seed + i)`` alone, which is the contract ``dynscaling.drivers.sample_seed``
keeps: a run that is killed and resumed, however its requests get grouped, asks for the same samples and so must
end with the same answers as one that ran straight through. Faults (429, 500, fewer choices than asked) are drawn
at random: they change when samples arrive, never what they are.

Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models`` (one model, ``seeded``), ``GET /stats`` (samples and
requests served, faults injected). Used by tests/test_kill_resume.py and benchmarks/kill_resume.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "seeded"


def seeded_answer(question: str, seed: int) -> int:
    """The answer of the sample with this seed: right (42) three times in five, else a near miss."""
    digest = hashlib.blake2b(f"{question}\0{seed}".encode(), digest_size=8).digest()
    draw = int.from_bytes(digest, "big")
    return 42 if draw % 5 < 3 else 40 + draw % 7


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client SIGKILLed mid-request resets its connection: expected here, not worth a traceback


class SeededUpstream:
    """Serve on 127.0.0.1 (``port=0``: any free port) until ``stop()``; a context manager too.

    Args:
        rate_limit, server_error, fewer_choices: the share of requests given each fault (drawn in that order).
        latency: seconds each answer takes (a sleep in the handler thread).
        port: the port to listen on (0: a free one).
    """

    def __init__(self, *, rate_limit: float = 0.0, server_error: float = 0.0, fewer_choices: float = 0.0,
                 latency: float = 0.0, port: int = 0) -> None:
        self.rates = (rate_limit, server_error, fewer_choices)
        self.latency = latency
        self.samples = 0
        self.requests = 0
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random()  # faults are timing only: they never decide a sample's content
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                                 "owned_by": "tests"}]})
                elif self.path == "/stats":
                    with outer._lock:
                        stats = {"samples": outer.samples, "requests": outer.requests, "faults": dict(outer.faults)}
                    self._json(200, stats)
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload, headers = outer._answer(body)
                self._json(status, payload, headers)

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = _QuietServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _answer(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if self.latency:
            time.sleep(self.latency)
        n = int(body.get("n") or 1)
        seed = int(body.get("seed") or 0)
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        with self._lock:
            self.requests += 1
            rate_limit, server_error, fewer = self.rates
            if self._rng.random() < rate_limit:
                self.faults["rate_limit"] += 1
                return 429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0.01"}
            if self._rng.random() < server_error:
                self.faults["server_error"] += 1
                return 500, {"error": {"message": "upstream broke", "type": "server_error"}}, {"Retry-After": "0.01"}
            count = n
            if n > 1 and self._rng.random() < fewer:
                self.faults["fewer_choices"] += 1
                count = self._rng.randint(1, n - 1)
            self.samples += count
        choices = [{"index": i, "finish_reason": "stop",
                    "message": {"role": "assistant",
                                "content": f"Working it out... The answer is {seeded_answer(question, seed + i)}."}}
                   for i in range(count)]
        usage = {"prompt_tokens": 10 * count, "completion_tokens": 8 * count, "total_tokens": 18 * count}
        return 200, {"id": "chatcmpl-seeded", "object": "chat.completion", "created": 0, "model": MODEL,
                     "choices": choices, "usage": usage}, {}

    def start(self) -> SeededUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> SeededUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
