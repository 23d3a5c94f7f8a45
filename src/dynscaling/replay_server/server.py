"""``ReplayServer``: the asyncio server, its lifecycle, routing, faults and chat completions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any

from ..backends.replay import ReplayBackend
from ..errors import ConfigError
from ..pools import Pool
from .chat import ChatRequest, QuestionIndex, parse_chat, reasoning_tokens, sample_content, tokens
from .faults import FAULTS, NO_FAULTS, Decision, FaultPlan
from .http import ApiError, BadHttpError, HttpRequest, json_bytes, read_request, response_head, write_json
from .stats import ServerStats

__all__ = ["ReplayServer"]

logger = logging.getLogger("dynscaling.replay_server")

_STREAM_PIECE = 64  # characters per streamed content delta
_PREFIX_CACHE_LIMIT = 1_000_000
_RECEIVED_LIMIT = 10_000


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
                 slots: int | None = None, faults: FaultPlan = NO_FAULTS, seed: int = 0) -> None:
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
        self._index = QuestionIndex(pool.entries)
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
                    request = await read_request(reader, writer)
                except BadHttpError as error:
                    body = ApiError(400, str(error), code="bad_http").body
                    await write_json(writer, 400, body, keep_alive=False)
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

    async def _dispatch(self, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
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
            await write_json(writer, 200, body, keep_alive=request.keep_alive)
            return request.keep_alive
        if path in (f"/v1/models/{self.model}", f"/models/{self.model}") and method == "GET":
            await write_json(writer, 200, self._model_card(), keep_alive=request.keep_alive)
            return request.keep_alive
        if path == "/stats":
            if method != "GET":
                return await self._method_not_allowed(request, writer, "GET")
            await write_json(writer, 200, self.stats.snapshot(), keep_alive=request.keep_alive)
            return request.keep_alive
        error = ApiError(404, f"no route for {method} {path}", code="unknown_url")
        await write_json(writer, 404, error.body, keep_alive=request.keep_alive)
        return request.keep_alive

    async def _method_not_allowed(self, request: HttpRequest, writer: asyncio.StreamWriter, allowed: str) -> bool:
        error = ApiError(405, f"{request.method} is not allowed on {request.path}; use {allowed}",
                          code="method_not_allowed")
        await write_json(writer, 405, error.body, keep_alive=request.keep_alive, headers={"Allow": allowed})
        return request.keep_alive

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": self._created, "owned_by": "dynscaling-replay"}

    # ---- chat completions ----------------------------------------------------------------------------------

    async def _chat(self, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
        stats = self.stats
        stats._bump("requests")
        stats._enter("inflight", "max_inflight")
        try:
            try:
                chat = parse_chat(request.body)
                self.received.append({k: v for k, v in json.loads(request.body).items() if k != "messages"})
                qi = self._index.find(chat)
                if qi is None:
                    raise ApiError(404, "no question of this replay pool matches the first user message; the "
                                    "question text must come first (dynscaling's prompt template does that)",
                                    code="unknown_question", param="messages")
                return await self._answer(chat, qi, request, writer)
            except ApiError as error:
                stats._status_sent(error.status)
                await write_json(writer, error.status, error.body, keep_alive=request.keep_alive,
                                       headers=error.headers)
                return request.keep_alive
        finally:
            stats._leave("inflight")

    def _decide(self) -> Decision:
        # A fixed number of draws per request, whatever the rates: the k-th request's faults depend on the seed
        # and k only, and raising one rate never reshuffles the others.
        rng = random.Random(self._fault_rng.getrandbits(64))
        draws = [rng.random() for _ in FAULTS]
        rates = self.faults.rates
        return Decision(frozenset(name for name, u in zip(FAULTS, draws, strict=True) if u < rates[name]), rng)

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

    async def _answer(self, chat: ChatRequest, qi: int, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
        keep_alive = request.keep_alive
        decision = self._decide()
        stats = self.stats
        if "rate_limit" in decision.faults:
            stats._fault("rate_limit")
            wait = self.faults.retry_after
            raise ApiError(429, f"rate limit reached (injected); retry after {wait:g} s",
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
                raise ApiError(500, "the server had an error while processing your request (injected)",
                                code="server_error", type_="server_error")
            if request.reader.at_eof():  # the client hung up while waiting (its timeout): spend no sample on it
                stats._bump("abandoned")
                return False
            entry = self.pool.entries[qi]
            left = self._order.remaining(qi)
            if left == 0:
                raise ApiError(409, f"replay pool has no unseen sample left for question "
                                f"{entry.question.id!r}; it never repeats one", code="pool_exhausted")
            body = self._completion(chat, qi, min(chat.n, left), decision)
            stats._status_sent(200)
            if chat.stream:
                await self._write_stream(writer, body, chat.include_usage, keep_alive)
            else:
                await write_json(writer, 200, body, keep_alive=keep_alive,
                                       headers={"x-request-id": body["id"]})
            logger.info("replay %s: question %s, %d choices, %d samples left", body["id"], entry.question.id,
                        len(body["choices"]), self._order.remaining(qi))
            return keep_alive

    def _completion(self, chat: ChatRequest, qi: int, count: int, decision: Decision) -> dict[str, Any]:
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
            content = sample_content(entry, self._order.draw(qi))
            stats._bump("samples")
            reason = "stop"
            cuts = [content.find(s) for s in chat.stop if s in content]
            if cuts:
                content = content[:min(cuts)]
            if chat.max_tokens is not None and tokens(content) > chat.max_tokens:
                content, reason = content[:chat.max_tokens * 4], "length"
            contents.append(content)
            reasons.append(reason)
        cut = [i for i, c in enumerate(contents) if c and reasons[i] == "stop"]
        if "length" in decision.faults and cut:
            stats._fault("length")
            i = cut[rng.randrange(len(cut))]
            contents[i], reasons[i] = contents[i][:len(contents[i]) // 2], "length"
        prompt = sum(len(t) for t in chat.texts) // 4 + 1
        completion = sum(tokens(c) for c in contents)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self._cached_tokens(chat)},
            "completion_tokens_details": {"reasoning_tokens": sum(reasoning_tokens(c) for c in contents)},
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

    def _cached_tokens(self, chat: ChatRequest) -> int:
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
        writer.write(response_head(200, head))
        base = {k: body[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = b"data: " + json_bytes({**base, "choices": choices, **extra}) + b"\n\n"
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
