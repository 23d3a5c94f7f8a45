"""Real servers on 127.0.0.1 for the ``dynscaling serve`` tests: our app under uvicorn, and a small chat upstream
whose replies are scripted message by message.

Kept out of ``conftest.py`` so that the classes exist once (pytest imports conftest as its own module).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import uvicorn

from fakes import LoopbackServer, send_json


class Uvicorn:
    """Runs an ASGI app on a free loopback port in a thread; waits for startup instead of sleeping."""

    def __init__(self, app: object) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ChatUpstream(LoopbackServer):
    """An OpenAI-style upstream that answers each requested choice with the next scripted message (cycling), and
    records every request (path, headers, JSON body).

    ``status``/``error`` make every request fail with that OpenAI-shaped error instead; ``echo_auth`` appends the
    Authorization header it received to error messages, as a careless upstream does. ``gate``, when given, holds
    every POST until it is set. ``raw_replies`` maps a path (e.g. ``/v1/responses``) to a fixed JSON body.
    ``GET /v1/models`` lists ``models``.
    """

    def __init__(self, messages: Sequence[dict[str, Any]] = ({"role": "assistant", "content": "ok"},), *,
                 status: int = 200, error: str = "", echo_auth: bool = False, gate: threading.Event | None = None,
                 raw_replies: dict[str, Any] | None = None, models: Sequence[str] = ("fake-model",),
                 finish_reason: str = "stop") -> None:
        self.requests: list[dict[str, Any]] = []
        self._cycle = itertools.cycle(list(messages))
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, payload: Any) -> None:
                send_json(self, code, payload)

            def _refuse(self) -> None:
                message = error + (f" (you sent {self.headers.get('Authorization')})" if echo_auth else "")
                self._send(status, {"error": {"message": message, "type": "invalid_request_error",
                                              "param": None, "code": "upstream_says_no"}})

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if status >= 400:
                    self._refuse()
                elif self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 1, "owned_by": "test"} for m in models]})
                elif self.path.startswith("/v1/models/") and self.path.removeprefix("/v1/models/") in models:
                    self._send(200, {"id": self.path.removeprefix("/v1/models/"), "object": "model", "created": 1,
                                     "owned_by": "test"})
                else:
                    self._send(404, {"error": {"message": f"no model at {self.path}", "type": "invalid_request_error",
                                               "param": None, "code": "model_not_found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw or b"null")
                with outer._lock:
                    outer.requests.append({"path": self.path, "raw": raw, "body": body,
                                           "headers": {k.lower(): v for k, v in self.headers.items()}})
                if gate is not None:
                    gate.wait(60)
                if status >= 400:
                    self._refuse()
                    return
                if raw_replies and self.path in raw_replies:
                    self._send(200, raw_replies[self.path])
                    return
                n = body.get("n") or 1 if isinstance(body, dict) else 1
                with outer._lock:
                    chosen = [next(outer._cycle) for _ in range(n)]
                self._send(200, {
                    "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": body.get("model"),
                    "choices": [{"index": i, "message": m, "finish_reason": "tool_calls" if m.get("tool_calls")
                                 else finish_reason, "logprobs": None} for i, m in enumerate(chosen)],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n, "total_tokens": 10 + 5 * n}})

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._serve(Handler, daemon_threads=True)

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

