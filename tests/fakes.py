"""Shared test helpers: tiny replay pools, the bundled pools, and a scripted HTTP server.

Kept out of ``conftest.py`` on purpose: pytest imports conftest as its own module, so classes defined there would
exist twice. Test modules import this one as ``fakes`` (``tests/`` is on ``sys.path`` under pytest's default
import mode).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from dynscaling.pools import Pool, bundled_pools, load_pool
from dynscaling.samplers import Message, Prompts
from dynscaling.types import Question

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a sync test (no pytest-asyncio)."""
    return asyncio.run(coroutine)


def write_pool(path: Path, questions: Sequence[dict[str, Any]]) -> Path:
    """Write a plain JSONL replay pool; each question is ``{"id", "question", "gold", "answer_type", "samples"}``."""
    path.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return path


def tiny_pool(tmp_path: Path, samples: int = 5, questions: int = 2) -> Pool:
    """``questions`` number questions with ``samples`` distinct texts each; sample j answers ``j`` (j = 0, 1, ...)."""
    records = []
    for i in range(questions):
        records.append({
            "id": f"q{i}", "question": f"What is {i} plus the sample number?", "gold": "0", "answer_type": "number",
            "samples": [{"text": f"Question {i}, attempt {j}: adding up gives {j}.", "answer": str(j)}
                        for j in range(samples)],
        })
    return load_pool(write_pool(tmp_path / "tiny.jsonl", records))


@cache
def bundled(fragment: str) -> Pool:
    """A bundled pool whose file name contains ``fragment`` (loaded once per session)."""
    matches = [p for p in bundled_pools() if fragment in p.name]
    assert len(matches) == 1, f"expected one bundled pool matching {fragment!r}, found {matches}"
    return load_pool(matches[0])


def opening(question: Question) -> list[Message]:
    """The messages dynscaling sends for an independent sample of ``question``."""
    return Prompts().opening(question)


@dataclass
class Reply:
    """One scripted HTTP response."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def send_json(handler: BaseHTTPRequestHandler, code: int, payload: Any) -> None:
    """Answer a request with ``payload`` as JSON and status ``code``."""
    data = json.dumps(payload).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread, as a context manager: the lifecycle every
    test upstream here shares. Subclasses build their handler and call ``_serve``."""

    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, handler: type[BaseHTTPRequestHandler], port: int = 0, *,
               daemon_threads: bool = False) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = daemon_threads
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self: _Server) -> _Server:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ScriptedServer(LoopbackServer):
    """A fake HTTP server that answers POSTs with scripted replies, in order (the last one repeats), and records
    each request's path, headers (names in lower case) and JSON body. ``echo_auth=True`` appends the request's
    Authorization header to every error message, like a careless gateway, to prove that clients scrub it. Use as a
    context manager.
    """

    def __init__(self, replies: Sequence[Reply], *, echo_auth: bool = False) -> None:
        self.replies = list(replies)
        self.echo_auth = echo_auth
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with outer._lock:
                    index = len(outer.requests)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    outer.requests.append({"path": self.path, "headers": headers, "body": body})
                    reply = outer.replies[min(index, len(outer.replies) - 1)]
                payload = reply.body
                if outer.echo_auth and reply.status >= 400 and isinstance(payload, dict) and "error" in payload:
                    error = dict(payload["error"])
                    error["message"] = f"{error.get('message', '')} (you sent {self.headers.get('Authorization')})"
                    payload = {"error": error}
                data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._serve(Handler)



def completion(contents: Sequence[str | None], *, prompt: int = 10, completion_tokens: int = 20, cached: int = 0,
               reasoning: int = 0, finish: str = "stop") -> dict[str, Any]:
    """A chat completion body with the given choice contents and usage."""
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": finish}
                    for i, c in enumerate(contents)],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                  "total_tokens": prompt + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": cached},
                  "completion_tokens_details": {"reasoning_tokens": reasoning}},
    }


def error_body(message: str, code: str | None = None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}
