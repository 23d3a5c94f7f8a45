"""An OpenAI-compatible HTTP server that answers chat completions from a replay pool.

It lets the live path (the ``openai`` SDK, ``OpenAIBackend``, the asyncio driver) run against recorded model
outputs, offline and reproducibly, with faults injected on purpose::

    with ReplayServer(load_pool("pool.jsonl.gz"), latency=0.2, slots=32) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        ...

Endpoints: ``POST /v1/chat/completions`` (JSON or ``stream: true``), ``GET /v1/models`` (one model, named after
the pool) and ``GET /stats`` (the counters of ``ServerStats`` as JSON).

**Which question.** The first user message is ``"{question}\\n\\n{format_hint}"`` (``dynscaling.samplers``), so
the question is recognised by the text before a blank line; failing that, by the longest pool question whose
text the first user message (then any user message) contains. An unknown question gets a 404.

**Which samples.** Each question's recorded samples are served without replacement in the seeded random order of
``ReplayBackend(pool, seed)`` (so HTTP and in-process replay with one seed see the same sequence). A request for
``n`` choices gets the next ``n`` unseen samples, or what is left; with nothing left, HTTP 409 with error code
``pool_exhausted``. A sample's content is its recorded text followed by ``"\\n\\nThe answer is X."`` (X in
``\\boxed{}`` for LaTeX answers), where X is the answer the pool loader extracted, so that extracting over HTTP
gives exactly the replay backend's answer. A whole number is written as one (``18``, not the ``18.0`` some pools
record), as a model would write it, so that evaluators comparing strings score it right. (Exception: a sample
that the pool records as abstaining but whose text holds a value gets no suffix, and an extractor run on its text
may find that value.)

**Usage.** ``prompt_tokens`` = characters of all messages // 4 + 1; ``completion_tokens`` = the sum over choices
of characters // 4 + 1; ``cached_tokens`` = the tokens of the longest run of leading messages an earlier request
already sent (a prefix cache); ``reasoning_tokens`` = the tokens before ``</think>``. ``max_tokens`` (or
``max_completion_tokens``) is honoured: longer content is cut, with finish_reason ``length``. ``stop`` is
honoured: content ends before the first stop string.

**What was asked.** ``received`` holds the parameters of the latest chat requests (the body without
``messages``), so tests can see what a client, or ``dynscaling serve`` in front, really sent.

**Faults.** ``FaultPlan`` gives each fault a rate; a seeded RNG decides them per request, so a run that sends
the same requests in the same order sees the same faults. Faults that return no content consume no sample.

**Why asyncio streams rather than ``http.server``.** One event loop serves every connection: a hundred or a
thousand concurrent keep-alive connections cost a coroutine each, not a thread each; ``latency``, ``slots`` and
the hanging ``timeout`` fault are ``asyncio.sleep`` and an ``asyncio.Semaphore``, not parked threads; all pool
state is touched by one thread, so it needs no lock; and ``stop()`` cancels every connection, even idle
keep-alive ones and hanging ones, which ``ThreadingHTTPServer.server_close()`` would wait on (it joins handler
threads blocked reading the next request). The price is a small HTTP/1.1 reader and writer (Content-Length
bodies, keep-alive, chunked responses for streaming), written below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any

from .backends.replay import ReplayBackend
from .errors import ConfigError, InputError
from .pools import Pool, PoolQuestion

__all__ = ["FAULTS", "FaultPlan", "ReplayServer", "ServerStats", "main", "serve"]

logger = logging.getLogger("dynscaling.replay_server")

#: The fault kinds, in the order a request's draws are made (and, for the first three, their precedence).
FAULTS: tuple[str, ...] = ("rate_limit", "server_error", "timeout", "empty", "length", "fewer_choices")

_MAX_N = 128  # OpenAI's own limit on n
_MAX_BODY = 64 * 1024 * 1024
_MAX_HEADERS = 100
_STREAM_PIECE = 64  # characters per streamed content delta
_PREFIX_CACHE_LIMIT = 1_000_000
_RECEIVED_LIMIT = 10_000
_WHOLE = re.compile(r"^(-?\d+)\.0+$")  # 18.0 -> 18


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How often the server misbehaves, and how.

    Attributes:
        rate_limit: fraction of requests answered 429 with a ``Retry-After`` header (before taking a slot).
        server_error: fraction answered 500 (after the latency).
        timeout: fraction that hang ``hang_seconds`` (holding no slot) with no response, then close the connection.
        empty: fraction where one choice has empty content (it consumes no sample).
        length: fraction where one choice is cut half-way, with finish_reason ``length``.
        fewer_choices: fraction of requests for n >= 2 choices that get 1 to n-1 of them.
        retry_after: seconds sent in ``Retry-After`` (and ``retry-after-ms``) with a 429.
        hang_seconds: how long a ``timeout`` fault hangs; make it longer than the client's timeout.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    empty: float = 0.0
    length: float = 0.0
    fewer_choices: float = 0.0
    retry_after: float = 1.0
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in FAULTS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault rate {name} must be in [0, 1], got {value!r}")
        if not self.retry_after >= 0:
            raise ConfigError(f"retry_after must be >= 0 seconds, got {self.retry_after!r}")
        if not self.hang_seconds > 0:
            raise ConfigError(f"hang_seconds must be > 0, got {self.hang_seconds!r}")

    @property
    def rates(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FAULTS}


class ServerStats:
    """Counters of a running server. Written by the server's event loop, readable from any thread.

    ``requests`` counts chat completion requests (valid or not); ``status`` counts their responses by HTTP
    status; ``faults`` counts injected faults by kind. ``samples`` counts pool samples served (each is served
    once), ``choices`` every choice returned. ``inflight`` is the number of chat requests received and
    not yet answered (waiting for a slot included), ``active`` those holding a slot (processing);
    ``max_inflight``/``max_active`` are the highest values seen. ``busy_seconds`` sums the time requests held a
    slot (with ``slots=None``, the time they were processed). ``abandoned`` counts requests whose client hung up
    (its timeout) before they were answered: they serve no sample. ``prompt_tokens``/``completion_tokens``/
    ``cached_tokens`` sum the usage reported.
    """

    _COUNTERS = ("requests", "samples", "choices", "inflight", "max_inflight", "active", "max_active",
                 "abandoned", "prompt_tokens", "completion_tokens", "cached_tokens")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(self._COUNTERS, 0)
        self._status: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()
        self._busy = 0.0

    def _read(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    requests = property(lambda self: self._read("requests"), doc="chat completion requests received")
    samples = property(lambda self: self._read("samples"), doc="pool samples served")
    choices = property(lambda self: self._read("choices"), doc="choices returned, empty ones included")
    inflight = property(lambda self: self._read("inflight"), doc="chat requests received, not yet answered")
    max_inflight = property(lambda self: self._read("max_inflight"), doc="the most in flight at once")
    active = property(lambda self: self._read("active"), doc="chat requests holding a slot now")
    max_active = property(lambda self: self._read("max_active"), doc="the most holding a slot at once")
    abandoned = property(lambda self: self._read("abandoned"), doc="requests whose client left before the answer")
    prompt_tokens = property(lambda self: self._read("prompt_tokens"), doc="prompt tokens reported")
    completion_tokens = property(lambda self: self._read("completion_tokens"), doc="completion tokens reported")
    cached_tokens = property(lambda self: self._read("cached_tokens"), doc="cached prompt tokens reported")

    @property
    def status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._status)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    @property
    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy

    def snapshot(self) -> dict[str, Any]:
        """Every counter, consistent with each other, as plain JSON-ready values."""
        with self._lock:
            out: dict[str, Any] = dict(self._values)
            out["status"] = {str(k): v for k, v in sorted(self._status.items())}
            out["faults"] = dict(sorted(self._faults.items()))
            out["busy_seconds"] = round(self._busy, 6)
            return out

    # ---- updates (the server's loop only) ------------------------------------------------------------------

    def _bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._values[name] += by

    def _enter(self, current: str, peak: str) -> None:
        with self._lock:
            self._values[current] += 1
            if self._values[current] > self._values[peak]:
                self._values[peak] = self._values[current]

    def _leave(self, current: str, busy: float = 0.0) -> None:
        with self._lock:
            self._values[current] -= 1
            self._busy += busy

    def _status_sent(self, status: int) -> None:
        with self._lock:
            self._status[status] += 1

    def _fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1


class _ApiError(Exception):
    """An OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, *, code: str, type_: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}


class _BadHttpError(Exception):
    """The bytes on the connection are not HTTP/1.1 we can read; answer 400 and close."""


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    reader: asyncio.StreamReader


@dataclass(slots=True)
class _Chat:
    messages: list[dict[str, Any]]
    texts: list[str]  # each message's text
    n: int
    stream: bool
    include_usage: bool
    max_tokens: int | None
    stop: tuple[str, ...] = ()


@dataclass(slots=True)
class _Decision:
    """The faults drawn for one request, plus the RNG for their details (which choice, how many)."""

    faults: frozenset[str]
    rng: random.Random


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise _ApiError(400, "message content must be a string, a list of content parts or null", code="invalid_type",
                    param="messages")


def _parse_chat(body: bytes) -> _Chat:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _ApiError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(request, dict):
        raise _ApiError(400, "the request body must be a JSON object", code="invalid_json")
    messages = request.get("messages")
    if messages is None:
        raise _ApiError(400, "missing required parameter: 'messages'", code="missing_required_parameter",
                        param="messages")
    if not isinstance(messages, list) or not messages:
        raise _ApiError(400, "'messages' must be a non-empty list", code="invalid_type", param="messages")
    texts = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _ApiError(400, f"messages[{i}] must be an object with a string 'role'", code="invalid_type",
                            param=f"messages[{i}]")
        texts.append(_message_text(message.get("content")))
    n = request.get("n")
    n = 1 if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_N:
        raise _ApiError(400, f"'n' must be an integer from 1 to {_MAX_N}, got {n!r}", code="invalid_value",
                        param="n")
    stream = request.get("stream") or False
    if not isinstance(stream, bool):
        raise _ApiError(400, f"'stream' must be a boolean, got {stream!r}", code="invalid_type", param="stream")
    options = request.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _ApiError(400, "'stream_options' must be an object", code="invalid_type", param="stream_options")
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise _ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}", code="invalid_value",
                        param="max_tokens")
    stop = request.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else ()
    if stop is not None and (not all(isinstance(s, str) for s in stops) or not isinstance(stop, (str, list))):
        raise _ApiError(400, f"'stop' must be a string or a list of strings, got {stop!r}", code="invalid_type",
                        param="stop")
    return _Chat(messages, texts, n, stream, bool(options.get("include_usage")), max_tokens,
                 tuple(s for s in stops if s))


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


class _QuestionIndex:
    """Finds the pool question a request is about (see the module docstring)."""

    def __init__(self, entries: Sequence[PoolQuestion]) -> None:
        self._by_text: dict[str, int] = {}
        for i, entry in enumerate(entries):
            self._by_text.setdefault(entry.question.text, i)
        self._longest_first = sorted(self._by_text.items(), key=lambda item: -len(item[0]))

    def find(self, chat: _Chat) -> int | None:
        users = [text for message, text in zip(chat.messages, chat.texts, strict=True) if message.get("role") == "user"]
        if not users:
            return None
        first = users[0]
        hit = self._by_text.get(first)
        if hit is not None:
            return hit
        end = first.rfind("\n\n")
        while end > 0:  # our template: the question, a blank line, the format hint; longest prefix first
            hit = self._by_text.get(first[:end])
            if hit is not None:
                return hit
            end = first.rfind("\n\n", 0, end)
        for text in users:
            for question, index in self._longest_first:
                if question in text:
                    return index
        return None


def _content(entry: PoolQuestion, position: int) -> str:
    text = entry.texts[position]
    answer = entry.answers[position]
    if answer is None:
        return text or ""
    if entry.question.answer_type == "latex":
        shown = f"\\boxed{{{answer}}}"
    else:
        shown = _WHOLE.sub(r"\1", answer)
    suffix = f"The answer is {shown}."
    return f"{text}\n\n{suffix}" if text else suffix


def _reasoning_tokens(content: str) -> int:
    head, found, _ = content.rpartition("</think>")
    return len(head) // 4 if found else 0


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: dynscaling-replay"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ReplayServer:
    """Serves a replay pool over the OpenAI chat completions API, in a background thread.

    Args:
        pool: the recorded samples.
        host: the interface to listen on.
        port: the port; 0 picks a free one (read it back from ``port`` or ``base_url``).
        latency: seconds each request takes (slept while holding its slot).
        slots: at most this many requests are processed at once; the others wait. None: no limit.
        faults: which faults to inject, how often.
        seed: seeds the sample order (as ``ReplayBackend(pool, seed)``) and the fault draws.

    Use it as a context manager, or call ``start()`` and ``stop()``. ``start()`` returns once the socket is
    listening. Counters are in ``stats``.
    """

    def __init__(self, pool: Pool, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
                 slots: int | None = None, faults: FaultPlan = FaultPlan(), seed: int = 0) -> None:
        if not latency >= 0:
            raise ConfigError(f"latency must be >= 0 seconds, got {latency!r}")
        if slots is not None and (not isinstance(slots, int) or slots < 1):
            raise ConfigError(f"slots must be a positive integer or None, got {slots!r}")
        if not isinstance(faults, FaultPlan):
            raise ConfigError(f"faults must be a FaultPlan, got {type(faults).__name__}")
        if not 0 <= port <= 65535:
            raise ConfigError(f"port must be in [0, 65535], got {port}")
        self.pool = pool
        self.host = host
        self.latency = float(latency)
        self.slots = slots
        self.faults = faults
        self.seed = seed
        self.stats = ServerStats()
        self._requested_port = port
        self._port: int | None = None
        self._order = ReplayBackend(pool, seed)
        self._index = _QuestionIndex(pool.entries)
        self._fault_rng = random.Random(f"faults:{seed}")
        self._prefixes: set[int] = set()
        #: the latest chat requests' parameters (body without messages), oldest first
        self.received: deque[dict[str, Any]] = deque(maxlen=_RECEIVED_LIMIT)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._created = int(time.time())
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"ReplayServer(pool={self.pool.name!r}, {where}, latency={self.latency}, slots={self.slots})"

    # ---- lifecycle -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started: call start() or use it in a with block")
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, e.g. ``http://127.0.0.1:8001/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def model(self) -> str:
        """The one model the server lists: the pool's name."""
        return self.pool.name

    def start(self) -> ReplayServer:
        """Start serving in a background thread; returns once the socket listens. Raises OSError if it cannot."""
        if self._thread is not None:
            raise RuntimeError("the server was already started; a ReplayServer runs once")
        self._thread = threading.Thread(target=self._run, name=f"replay-server-{self.pool.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        logger.info("replay server for %s listening on %s", self.pool.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving: close the socket, cancel every connection, join the thread. Safe to call twice."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop already closed
                pass
        thread.join()

    def serve_forever(self) -> None:
        """Block until the server stops (``stop()`` from another thread); Ctrl-C raises KeyboardInterrupt here."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to start() or logged, never lost
            if not self._ready.is_set():
                self._startup_error = error
                self._ready.set()
            else:
                logger.exception("replay server stopped on an error")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.slots) if self.slots else None
        try:
            server = await asyncio.start_server(self._connection, self.host, self._requested_port, backlog=1024)
        except OSError as error:
            self._startup_error = error
            self._ready.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    # ---- HTTP/1.1 ------------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await self._read_request(reader, writer)
                except _BadHttpError as error:
                    body = _ApiError(400, str(error), code="bad_http").body
                    await self._write_json(writer, 400, body, keep_alive=False)
                    return
                if request is None:
                    return
                if not await self._dispatch(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # stop(): the task ends here, its socket closes below
        except Exception:
            logger.exception("replay server: unexpected error on a connection")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Request | None:
        try:
            line = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise _BadHttpError("request line too long") from None
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadHttpError("malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            try:
                raw = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raise _BadHttpError("header line too long") from None
            if raw in (b"\r\n", b"\n"):
                break
            if not raw:
                raise asyncio.IncompleteReadError(b"", None)
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or len(headers) >= _MAX_HEADERS:
                raise _BadHttpError("malformed or too many headers")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadHttpError("chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadHttpError("Content-Length is not a number") from None
        if not 0 <= length <= _MAX_BODY:
            raise _BadHttpError(f"Content-Length must be between 0 and {_MAX_BODY}")
        if length and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        return _Request(method, target.split("?", 1)[0].rstrip("/") or "/", headers, body, keep_alive, reader)

    async def _write_json(self, writer: asyncio.StreamWriter, status: int, body: Any, *, keep_alive: bool,
                          headers: dict[str, str] | None = None) -> None:
        payload = _json_bytes(body)
        head = {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                "Connection": "keep-alive" if keep_alive else "close", **(headers or {})}
        writer.write(_head(status, head) + payload)
        await writer.drain()

    async def _dispatch(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns whether the connection stays open."""
        path, method = request.path, request.method
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                return await self._method_not_allowed(request, writer, "POST")
            return await self._chat(request, writer)
        if path in ("/v1/models", "/models"):
            if method != "GET":
                return await self._method_not_allowed(request, writer, "GET")
            body = {"object": "list", "data": [self._model_card()]}
            await self._write_json(writer, 200, body, keep_alive=request.keep_alive)
            return request.keep_alive
        if path in (f"/v1/models/{self.model}", f"/models/{self.model}") and method == "GET":
            await self._write_json(writer, 200, self._model_card(), keep_alive=request.keep_alive)
            return request.keep_alive
        if path == "/stats":
            if method != "GET":
                return await self._method_not_allowed(request, writer, "GET")
            await self._write_json(writer, 200, self.stats.snapshot(), keep_alive=request.keep_alive)
            return request.keep_alive
        error = _ApiError(404, f"no route for {method} {path}", code="unknown_url")
        await self._write_json(writer, 404, error.body, keep_alive=request.keep_alive)
        return request.keep_alive

    async def _method_not_allowed(self, request: _Request, writer: asyncio.StreamWriter, allowed: str) -> bool:
        error = _ApiError(405, f"{request.method} is not allowed on {request.path}; use {allowed}",
                          code="method_not_allowed")
        await self._write_json(writer, 405, error.body, keep_alive=request.keep_alive, headers={"Allow": allowed})
        return request.keep_alive

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": self._created, "owned_by": "dynscaling-replay"}

    # ---- chat completions ----------------------------------------------------------------------------------

    async def _chat(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        stats = self.stats
        stats._bump("requests")
        stats._enter("inflight", "max_inflight")
        try:
            try:
                chat = _parse_chat(request.body)
                self.received.append({k: v for k, v in json.loads(request.body).items() if k != "messages"})
                qi = self._index.find(chat)
                if qi is None:
                    raise _ApiError(404, "no question of this replay pool matches the first user message; the "
                                    "question text must come first (dynscaling's prompt template does that)",
                                    code="unknown_question", param="messages")
                return await self._answer(chat, qi, request, writer)
            except _ApiError as error:
                stats._status_sent(error.status)
                await self._write_json(writer, error.status, error.body, keep_alive=request.keep_alive,
                                       headers=error.headers)
                return request.keep_alive
        finally:
            stats._leave("inflight")

    def _decide(self) -> _Decision:
        # A fixed number of draws per request, whatever the rates: the k-th request's faults depend on the seed
        # and k only, and raising one rate never reshuffles the others.
        rng = random.Random(self._fault_rng.getrandbits(64))
        draws = [rng.random() for _ in FAULTS]
        rates = self.faults.rates
        return _Decision(frozenset(name for name, u in zip(FAULTS, draws, strict=True) if u < rates[name]), rng)

    @asynccontextmanager
    async def _slot(self):  # noqa: ANN202
        if self._semaphore is not None:
            await self._semaphore.acquire()
        self.stats._enter("active", "max_active")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stats._leave("active", time.perf_counter() - started)
            if self._semaphore is not None:
                self._semaphore.release()

    async def _answer(self, chat: _Chat, qi: int, request: _Request, writer: asyncio.StreamWriter) -> bool:
        keep_alive = request.keep_alive
        decision = self._decide()
        stats = self.stats
        if "rate_limit" in decision.faults:
            stats._fault("rate_limit")
            wait = self.faults.retry_after
            raise _ApiError(429, f"rate limit reached (injected); retry after {wait:g} s",
                            code="rate_limit_exceeded", type_="requests",
                            headers={"Retry-After": f"{wait:g}", "retry-after-ms": str(round(wait * 1000))})
        if "timeout" in decision.faults and "server_error" not in decision.faults:
            stats._fault("timeout")
            await asyncio.sleep(self.faults.hang_seconds)
            return False  # close without a response
        async with self._slot():
            if self.latency:
                await asyncio.sleep(self.latency)
            if "server_error" in decision.faults:
                stats._fault("server_error")
                raise _ApiError(500, "the server had an error while processing your request (injected)",
                                code="server_error", type_="server_error")
            if request.reader.at_eof():  # the client hung up while waiting (its timeout): spend no sample on it
                stats._bump("abandoned")
                return False
            entry = self.pool.entries[qi]
            left = self._order.remaining(qi)
            if left == 0:
                raise _ApiError(409, f"replay pool has no unseen sample left for question "
                                f"{entry.question.id!r}; it never repeats one", code="pool_exhausted")
            body = self._completion(chat, qi, min(chat.n, left), decision)
            stats._status_sent(200)
            if chat.stream:
                await self._write_stream(writer, body, chat.include_usage, keep_alive)
            else:
                await self._write_json(writer, 200, body, keep_alive=keep_alive,
                                       headers={"x-request-id": body["id"]})
            logger.info("replay %s: question %s, %d choices, %d samples left", body["id"], entry.question.id,
                        len(body["choices"]), self._order.remaining(qi))
            return keep_alive

    def _completion(self, chat: _Chat, qi: int, count: int, decision: _Decision) -> dict[str, Any]:
        """Build the response body, consuming the pool samples it serves."""
        stats = self.stats
        rng = decision.rng
        if "fewer_choices" in decision.faults and count >= 2:
            stats._fault("fewer_choices")
            count = 1 + rng.randrange(count - 1)
        empty_at = -1
        if "empty" in decision.faults and count > 0:
            stats._fault("empty")
            empty_at = rng.randrange(count)
        entry = self.pool.entries[qi]
        contents: list[str] = []
        reasons: list[str] = []
        for i in range(count):
            if i == empty_at:
                contents.append("")
                reasons.append("stop")
                continue
            content = _content(entry, self._order.draw(qi))
            stats._bump("samples")
            reason = "stop"
            cuts = [content.find(s) for s in chat.stop if s in content]
            if cuts:
                content = content[:min(cuts)]
            if chat.max_tokens is not None and _tokens(content) > chat.max_tokens:
                content, reason = content[:chat.max_tokens * 4], "length"
            contents.append(content)
            reasons.append(reason)
        cut = [i for i, c in enumerate(contents) if c and reasons[i] == "stop"]
        if "length" in decision.faults and cut:
            stats._fault("length")
            i = cut[rng.randrange(len(cut))]
            contents[i], reasons[i] = contents[i][:len(contents[i]) // 2], "length"
        prompt = sum(len(t) for t in chat.texts) // 4 + 1
        completion = sum(_tokens(c) for c in contents)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self._cached_tokens(chat)},
            "completion_tokens_details": {"reasoning_tokens": sum(_reasoning_tokens(c) for c in contents)},
        }
        stats._bump("choices", count)
        stats._bump("prompt_tokens", prompt)
        stats._bump("completion_tokens", completion)
        stats._bump("cached_tokens", usage["prompt_tokens_details"]["cached_tokens"])
        return {
            "id": f"chatcmpl-replay-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": f"replay-seed-{self.seed}",
            "choices": [{"index": i, "message": {"role": "assistant", "content": c}, "logprobs": None,
                         "finish_reason": r} for i, (c, r) in enumerate(zip(contents, reasons, strict=True))],
            "usage": usage,
        }

    def _cached_tokens(self, chat: _Chat) -> int:
        """Tokens of the longest run of leading messages that an earlier request already sent."""
        cached = chars = 0
        key = 0
        seen = self._prefixes
        new = []
        for message, text in zip(chat.messages, chat.texts, strict=True):
            key = hash((key, message.get("role"), text))
            chars += len(text)
            if key in seen:
                cached = chars // 4
            else:
                new.append(key)
        if len(seen) > _PREFIX_CACHE_LIMIT:
            seen.clear()
        seen.update(new)
        return cached

    async def _write_stream(self, writer: asyncio.StreamWriter, body: dict[str, Any], include_usage: bool,
                            keep_alive: bool) -> None:
        head = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Transfer-Encoding": "chunked",
                "Connection": "keep-alive" if keep_alive else "close", "x-request-id": body["id"]}
        writer.write(_head(200, head))
        base = {k: body[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = b"data: " + _json_bytes({**base, "choices": choices, **extra}) + b"\n\n"
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        usage_field = {"usage": None} if include_usage else {}
        for choice in body["choices"]:
            index = choice["index"]
            content = choice["message"]["content"]
            writer.write(event([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                 "finish_reason": None}], **usage_field))
            for start in range(0, len(content), _STREAM_PIECE):
                piece = content[start:start + _STREAM_PIECE]
                writer.write(event([{"index": index, "delta": {"content": piece}, "logprobs": None,
                                     "finish_reason": None}], **usage_field))
            writer.write(event([{"index": index, "delta": {}, "logprobs": None,
                                 "finish_reason": choice["finish_reason"]}], **usage_field))
            await writer.drain()
        if include_usage:
            writer.write(event([], usage=body["usage"]))
        done = b"data: [DONE]\n\n"
        writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        await writer.drain()


# ---- command line ------------------------------------------------------------------------------------------


def serve(pool: Pool, *, host: str = "127.0.0.1", port: int = 8001, latency: float = 0.0, slots: int | None = None,
          faults: FaultPlan = FaultPlan(), seed: int = 0,
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
        from .pools import load_pool

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
