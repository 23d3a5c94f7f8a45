"""``dynscaling serve``: an OpenAI-compatible server that scales inference in front of any model.

Applications change only their base URL. The model name chooses what happens:

- ``dynscaling/8/gpt-4o-mini``: up to 8 samples of ``gpt-4o-mini`` for this request, with DynScaling's
  integrated chains and adaptive stopping (stop once the leader is settled, never beyond 8); ``dynscaling/gpt-4o-mini``
  uses the server's default budget.
- any other name: passed through to the upstream unchanged (one upstream call, streaming included).

``extra_body={"dynscaling": {...}}`` overrides per request: ``strategy`` (a spec), ``answer_type`` (how answers
are extracted and compared: number, date, latex, choice, text), ``seed``, and any of the strategy's parameters
(``k0``, ``m``, ``stop``, ...).

A scaled response is an ordinary chat completion whose content is the full text of a sample that voted for the
winning answer, with ``usage`` summed over every upstream call, plus one documented extra field::

    "dynscaling": {"answer": "18", "confidence": 0.97, "votes": [["18", 4], ["17", 1]], "samples": 5,
                   "abstentions": 0, "strategy": "dynscaling:...", "budget": 8}

Batches: ``POST /v1/dynscaling/batch`` takes OpenAI Batch-API request lines (JSONL: ``custom_id``, ``method``,
``url``, ``body``) and returns Batch-API output lines; one budget (the sum of every line's ``dynscaling/<n>``) is
allocated across all questions by the bandit, and the run is journaled, so resubmitting the same batch resumes it.

All clients share one limit on concurrent upstream requests. Errors are OpenAI-shaped
(``{"error": {"message", "type", "code"}}``) with the right status; internals go to the log, not to clients.
Starlette and uvicorn come with the ``server`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget
from .drivers import arun
from .engine import Engine
from .errors import BackendError, ConfigError, DynscalingError, InputError
from .journal import Journal, stable_hash
from .samplers import Message
from .strategies import STRATEGIES, Strategy, parse_strategy
from .types import ANSWER_TYPES, Question, QuestionResult, Sample, Usage

__all__ = ["ServeConfig", "create_app"]

logger = logging.getLogger("dynscaling.server")

_MODEL = re.compile(r"^dynscaling/(?:(?P<budget>[^/]+)/)?(?P<upstream>.+)$")
_STATUS_OF_KIND = {"rate_limit": 429, "timeout": 504, "server_error": 502, "connection": 502, "bad_request": 400,
                   "auth": 502, "exhausted": 409, "empty_response": 502, "fewer_choices": 502}


@dataclass(frozen=True)
class ServeConfig:
    """How the server reaches its upstream and what it allows.

    Attributes:
        upstream_url: the upstream's OpenAI-compatible base URL.
        upstream_model: the upstream model used when a request names none after ``dynscaling/<n>/``.
        upstream_api_key_env: environment variable holding the upstream key.
        api_key: when set, clients must send ``Authorization: Bearer <api_key>``.
        concurrency: concurrent upstream requests at most, over all clients.
        default_budget: samples per question for ``dynscaling/<model>`` without a number.
        max_budget: the largest per-question budget a request may ask for.
        strategy: the default strategy spec for scaled requests.
        answer_type: the default answer type.
        max_body_bytes: larger request bodies get a 413.
        sampling: temperature and other upstream parameters (passed to ``OpenAIBackend``).
        journal_path: where batches are journaled (None: not journaled).
        timeout: seconds per upstream request.
    """

    upstream_url: str
    upstream_model: str
    upstream_api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 16
    default_budget: int = 8
    max_budget: int = 64
    strategy: str = "dynscaling:max_inflight=2"
    answer_type: str = "text"
    max_body_bytes: int = 4_000_000
    sampling: Mapping[str, Any] = field(default_factory=lambda: {"temperature": 0.7})
    journal_path: str | Path | None = None
    timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if not 1 <= self.default_budget <= self.max_budget:
            raise ConfigError(f"need 1 <= default_budget <= max_budget, got {self.default_budget}, {self.max_budget}")
        if self.answer_type not in ANSWER_TYPES:
            raise ConfigError(f"unknown answer type {self.answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
        parse_strategy(self.strategy)


class ApiError(Exception):
    """An error for the client, OpenAI-shaped."""

    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": None}}


class SharedLimit:
    """Wraps a backend so that every client's requests share one upstream concurrency limit."""

    def __init__(self, backend: Any, limit: asyncio.Semaphore) -> None:
        self.backend = backend
        self._semaphore = limit
        self.inflight = 0
        self.max_inflight = 0
        self.usage = Usage()
        self.calls = 0

    async def agenerate(self, messages: list[Message], n: int = 1, *, seed: int | None = None) -> list[Sample]:
        async with self._semaphore:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.calls += 1
            try:
                samples: list[Sample] = await self.backend.agenerate(messages, n, seed=seed)
            finally:
                self.inflight -= 1
        for sample in samples:
            self.usage.add(sample.usage)
        return samples


class _State:
    """Mutable server state, passed around instead of module globals."""

    def __init__(self, config: ServeConfig, backends: dict[str, SharedLimit], passthrough: Any,
                 journal: Journal | None) -> None:
        self.config = config
        self.backends = backends
        self.passthrough = passthrough
        self.journal = journal
        self.limit = asyncio.Semaphore(config.concurrency)  # shared by pass-through calls and scaled requests
        self.batch_lock = asyncio.Lock()


def _parse_model(name: Any, config: ServeConfig) -> tuple[int, str] | None:
    """``(budget, upstream model)`` for a scaled request, None for a pass-through name."""
    if not isinstance(name, str) or not name:
        raise ApiError(400, "'model' must be a non-empty string", "invalid_model")
    if not name.startswith("dynscaling/"):
        return None
    match = _MODEL.match(name)
    if match is None:
        raise ApiError(400, f"unknown model syntax {name!r}: use dynscaling/<samples>/<model>, e.g. "
                            f"dynscaling/8/{config.upstream_model}", "invalid_model")
    raw_budget = match.group("budget")
    if raw_budget is None:
        return config.default_budget, match.group("upstream")
    if not raw_budget.isdigit() or not 1 <= int(raw_budget) <= config.max_budget:
        raise ApiError(400, f"unknown model syntax {name!r}: the budget must be a whole number of samples from 1 to "
                            f"{config.max_budget}", "invalid_model")
    return int(raw_budget), match.group("upstream")


def _check_messages(messages: Any) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", "invalid_messages")
    checked: list[Message] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role'", "invalid_messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string", "invalid_messages")
        checked.append({"role": message["role"], "content": content})
    if not any(m["role"] == "user" for m in checked):
        raise ApiError(400, "'messages' has no user message", "invalid_messages")
    return checked


def _overrides(body: Mapping[str, Any], config: ServeConfig) -> tuple[Strategy, str, int | None]:
    """The strategy, answer type and seed for a request, from the config and ``extra_body["dynscaling"]``."""
    raw = body.get("dynscaling") or {}
    if not isinstance(raw, dict):
        raise ApiError(400, "'dynscaling' must be an object", "invalid_dynscaling")
    options = dict(raw)
    answer_type = options.pop("answer_type", config.answer_type)
    if answer_type not in ANSWER_TYPES:
        raise ApiError(400, f"dynscaling.answer_type must be one of {', '.join(ANSWER_TYPES)}", "invalid_dynscaling")
    seed = options.pop("seed", body.get("seed"))
    if seed is not None and not isinstance(seed, int):
        raise ApiError(400, "dynscaling.seed must be an integer", "invalid_dynscaling")
    spec = options.pop("strategy", config.strategy)
    try:
        base = parse_strategy(str(spec))
        params = dict(base.params)
        for key, value in options.items():
            if key not in STRATEGIES[base.name].defaults:
                allowed = ", ".join(STRATEGIES[base.name].defaults) or "none"
                raise ApiError(400, f"strategy {base.name} has no parameter {key!r} (it takes {allowed}; also "
                                    "strategy, answer_type, seed)", "invalid_dynscaling")
            params[key] = value
        strategy = Strategy(base.name, tuple(params.items()))
        strategy.build()
    except ConfigError as error:
        raise ApiError(400, str(error), "invalid_dynscaling") from None
    if strategy.name == "oracle":
        raise ApiError(400, "the oracle strategy needs gold answers; it is for evaluation only", "invalid_dynscaling")
    return strategy, answer_type, seed


def _usage_body(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def _completion(model: str, text: str, usage: Usage, extra: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"chatcmpl-ds-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": _usage_body(usage),
    }
    if extra is not None:
        body["dynscaling"] = extra
    return body


def _chosen_text(engine: Engine, qi: int, result: QuestionResult) -> str:
    """The full text of the first complete sample that voted for the winner (or of any sample, if none voted)."""
    tally = engine.tallies[qi]
    attempts = engine.attempts[qi]
    for attempt in attempts:
        if tally.leader is not None and attempt.answer_class == tally.leader:
            return attempt.text
    return attempts[0].text if attempts else ""


def _extra(result: QuestionResult, strategy: Strategy, budget: int) -> dict[str, Any]:
    return {"answer": result.answer, "confidence": round(result.confidence, 6),
            "votes": [[a, c] for a, c in result.votes], "samples": result.samples,
            "abstentions": result.abstentions, "strategy": strategy.label, "budget": budget}


class _Service:
    def __init__(self, state: _State) -> None:
        self.state = state

    def backend_for(self, upstream_model: str) -> SharedLimit:
        found = self.state.backends.get(upstream_model)
        if found is None:
            from .backends.openai import OpenAIBackend

            config = self.state.config
            backend = OpenAIBackend(upstream_model, base_url=config.upstream_url,
                                    api_key_env=config.upstream_api_key_env, timeout=config.timeout,
                                    **dict(config.sampling))
            found = SharedLimit(backend, self.state.limit)  # one limit for every upstream model and client
            self.state.backends[upstream_model] = found
        return found

    async def scaled(self, body: Mapping[str, Any], budget: int, upstream: str) -> tuple[dict[str, Any], str]:
        messages = _check_messages(body.get("messages"))
        strategy, answer_type, seed = _overrides(body, self.state.config)
        question = Question(id="request", text=messages[-1]["content"], answer_type=answer_type,  # type: ignore[arg-type]
                            meta={"messages": messages})
        engine = Engine([question], strategy, Budget(samples=budget), seed=seed if seed is not None else 0)
        run = await arun(engine, self.backend_for(upstream), concurrency=budget,
                         seed=seed if seed is not None else int(uuid.uuid4().int & 0x7FFFFFFF))
        result = run.results[0]
        if result.samples == 0:
            raise self._failure(run.failures)
        text = _chosen_text(engine, 0, result)
        return _completion(str(body["model"]), text, run.usage, _extra(result, strategy, budget)), text

    def _failure(self, failures: Mapping[str, int]) -> ApiError:
        kind = max(failures, key=lambda k: failures[k]) if failures else "server_error"
        status = _STATUS_OF_KIND.get(kind, 502)
        counts = ", ".join(f"{k}: {v}" for k, v in failures.items())
        return ApiError(status, f"the upstream model failed every request ({counts})", kind, "upstream_error")

    async def batch(self, lines: Sequence[str]) -> list[dict[str, Any]]:
        requests, budget_total, upstream, strategy, answer_type = self._parse_batch(lines)
        questions = [Question(id=custom_id, text=messages[-1]["content"], answer_type=answer_type,  # type: ignore[arg-type]
                              meta={"messages": messages}) for custom_id, messages, _ in requests]
        engine = Engine(questions, strategy, Budget(samples=budget_total), seed=0)
        backend = self.backend_for(upstream)
        log = None
        if self.state.journal is not None:
            log = self.state.journal.open_run(
                sample_key={"server": self.state.config.upstream_url, "model": upstream,
                            "sampling": dict(self.state.config.sampling)},
                run_key={"batch": stable_hash([list(lines), strategy.label, answer_type])})
        async with self.state.batch_lock:  # one journaled batch at a time: the journal is one connection
            run = await arun(engine, backend, concurrency=self.state.config.concurrency, log=log, seed=0)
        out = []
        for qi, (custom_id, _, model) in enumerate(requests):
            result = run.results[qi]
            if result.samples == 0:
                error = self._failure(run.failures) if run.failures else ApiError(
                    402, "the batch budget ran out before this question got a sample", "budget_exhausted")
                out.append({"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": custom_id,
                            "response": {"status_code": error.status, "body": error.body()}, "error": None})
                continue
            text = _chosen_text(engine, qi, result)
            body = _completion(model, text, result.usage, _extra(result, strategy, budget_total))
            out.append({"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": custom_id,
                        "response": {"status_code": 200, "request_id": body["id"], "body": body}, "error": None})
        return out

    def _parse_batch(self, lines: Sequence[str]) -> tuple[list[tuple[str, list[Message], str]], int, str, Strategy,
                                                           str]:
        requests: list[tuple[str, list[Message], str]] = []
        budget_total = 0
        upstreams: set[str] = set()
        settings: set[tuple[Strategy, str]] = set()
        seen: set[str] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ApiError(400, f"line {number}: malformed JSON ({error.msg})", "invalid_batch") from None
            if not isinstance(record, dict) or not isinstance(record.get("body"), dict):
                raise ApiError(400, f"line {number}: field 'body': must be an object", "invalid_batch")
            custom_id = record.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id or custom_id in seen:
                raise ApiError(400, f"line {number}: field 'custom_id': must be a unique non-empty string",
                               "invalid_batch")
            seen.add(custom_id)
            if record.get("url", "/v1/chat/completions") != "/v1/chat/completions":
                raise ApiError(400, f"line {number}: field 'url': only /v1/chat/completions is supported",
                               "invalid_batch")
            body = record["body"]
            try:
                parsed = _parse_model(body.get("model"), self.state.config)
                messages = _check_messages(body.get("messages"))
                settings.add(_overrides(body, self.state.config)[:2])
            except ApiError as error:
                raise ApiError(400, f"line {number}: {error.message}", error.code) from None
            if parsed is None:
                raise ApiError(400, f"line {number}: field 'body.model': a batch needs dynscaling/<n>/<model> names",
                               "invalid_batch")
            budget, upstream = parsed
            budget_total += budget
            upstreams.add(upstream)
            requests.append((custom_id, messages, str(body["model"])))
        if not requests:
            raise ApiError(400, "the batch is empty", "invalid_batch")
        if len(upstreams) > 1 or len(settings) > 1:
            raise ApiError(400, "every line of a batch must name the same upstream model, strategy and answer type",
                           "invalid_batch")
        strategy, answer_type = settings.pop()
        return requests, budget_total, upstreams.pop(), strategy, answer_type


def create_app(config: ServeConfig, *, passthrough_client: Any = None, upstream_backend: Any = None) -> Any:
    """The Starlette application. ``passthrough_client`` (an ``openai.AsyncOpenAI``) serves plain model names;
    ``upstream_backend`` (e.g. a ``LlamaCppBackend``) serves ``config.upstream_model`` instead of an endpoint."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - exercised by users without the extra
        raise ConfigError("the server needs its extra: pip install 'dynscaling[server]'") from None

    state = _State(config, {}, passthrough_client, None)
    if upstream_backend is not None:  # a model in this process (dynscaling serve --backend llama-cpp)
        state.backends[config.upstream_model] = SharedLimit(upstream_backend, state.limit)
    service = _Service(state)

    def error_response(error: ApiError) -> Response:
        return JSONResponse(error.body(), status_code=error.status)

    async def read_json(request: Request) -> Any:
        raw = await _read_limited(request, config.max_body_bytes)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not valid JSON ({error})", "invalid_json") from None

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        if request.headers.get("authorization", "") != f"Bearer {config.api_key}":
            raise ApiError(401, "missing or wrong API key (send Authorization: Bearer <key>)", "invalid_api_key",
                           "authentication_error")

    async def guarded(request: Request, handler: Any) -> Response:
        try:
            authorize(request)
            return await handler(request)
        except ApiError as error:
            return error_response(error)
        except (InputError, ConfigError) as error:
            return error_response(ApiError(400, str(error), "invalid_request"))
        except BackendError as error:
            return error_response(ApiError(_STATUS_OF_KIND.get(error.kind, 502), str(error), error.kind,
                                           "upstream_error"))
        except DynscalingError as error:
            logger.exception("request failed")
            return error_response(ApiError(500, f"internal error: {type(error).__name__}", "internal_error",
                                           "server_error"))
        except Exception:
            logger.exception("request failed")
            return error_response(ApiError(500, "internal error; see the server log", "internal_error",
                                           "server_error"))

    async def chat(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            body = await read_json(request)
            if not isinstance(body, dict):
                raise ApiError(400, "the request body must be a JSON object", "invalid_json")
            _check_messages(body.get("messages"))
            parsed = _parse_model(body.get("model"), config)
            if parsed is None:
                return await _passthrough(state, body)
            budget, upstream = parsed
            completion, text = await service.scaled(body, budget, upstream)
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(_stream(completion, text, include_usage), media_type="text/event-stream")
            return JSONResponse(completion)

        return await guarded(request, handle)

    async def batch(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            raw = await _read_limited(request, config.max_body_bytes * 16)
            try:
                lines = raw.decode("utf-8").splitlines()
            except UnicodeDecodeError:
                raise ApiError(400, "the batch must be UTF-8 JSON lines", "invalid_batch") from None
            out = await service.batch(lines)
            text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in out)
            return Response(text, media_type="application/jsonl")

        return await guarded(request, handle)

    async def models(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            now = int(time.time())
            names = [config.upstream_model, f"dynscaling/{config.default_budget}/{config.upstream_model}"]
            return JSONResponse({"object": "list", "data": [
                {"id": name, "object": "model", "created": now, "owned_by": "dynscaling"} for name in names]})

        return await guarded(request, handle)

    async def stats(request: Request) -> Response:
        upstream = {name: {"calls": b.calls, "max_inflight": b.max_inflight, "inflight": b.inflight,
                           **b.usage.to_dict()} for name, b in state.backends.items()}
        return JSONResponse({"upstream": upstream, "concurrency_limit": config.concurrency})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # The journal is opened on the event loop's thread, which is the only one that uses it.
        state.journal = Journal(config.journal_path) if config.journal_path is not None else None
        yield
        for backend in state.backends.values():
            await backend.backend.aclose()
        if state.passthrough is not None:
            await state.passthrough.close()
        if state.journal is not None:
            state.journal.close()

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/dynscaling/batch", batch, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.service = state
    return app


async def _read_limited(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes", "request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes", "request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _passthrough(state: _State, body: dict[str, Any]) -> Any:
    """One upstream call with the request unchanged (plain model names)."""
    from starlette.responses import JSONResponse, StreamingResponse

    client = state.passthrough
    if client is None:
        import openai

        client = openai.AsyncOpenAI(base_url=state.config.upstream_url, timeout=state.config.timeout, max_retries=2,
                                    api_key=_upstream_key(state.config))
        state.passthrough = client
    import openai

    params = {k: v for k, v in body.items() if k not in ("dynscaling",)}
    known = {"model", "messages", "stream", "stream_options", "n", "temperature", "top_p", "max_tokens",
             "max_completion_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "logprobs",
             "top_logprobs", "user", "response_format", "tools", "tool_choice", "logit_bias"}
    extra = {k: v for k, v in params.items() if k not in known}
    kwargs = {k: v for k, v in params.items() if k in known}
    try:
        async with state.limit:
            if kwargs.get("stream"):
                stream = await client.chat.completions.create(**kwargs, extra_body=extra or None)

                async def relay() -> AsyncIterator[bytes]:
                    async for chunk in stream:
                        yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n".encode()
                    yield b"data: [DONE]\n\n"

                return StreamingResponse(relay(), media_type="text/event-stream")
            response = await client.chat.completions.create(**kwargs, extra_body=extra or None)
    except openai.APIStatusError as error:
        message = error.message if isinstance(error.message, str) else "upstream error"
        raise ApiError(error.status_code, f"upstream: {message}", "upstream_error", "upstream_error") from None
    except openai.APITimeoutError:
        raise ApiError(504, "upstream timed out", "timeout", "upstream_error") from None
    except openai.APIConnectionError:
        raise ApiError(502, "cannot reach the upstream", "connection", "upstream_error") from None
    return JSONResponse(response.model_dump(exclude_unset=True))


def _upstream_key(config: ServeConfig) -> str:
    import os

    return os.environ.get(config.upstream_api_key_env) or "EMPTY"


async def _stream(completion: dict[str, Any], text: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The chosen answer as server-sent events, after selection: role, content pieces, finish, usage, [DONE]."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra}, ensure_ascii=False)}\n\n".encode()

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    step = 64
    for start in range(0, len(text), step):
        yield event([{"index": 0, "delta": {"content": text[start:start + step]}, "finish_reason": None}])
        await asyncio.sleep(0)
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}], dynscaling=completion.get("dynscaling"))
    if include_usage:
        yield event([], usage=completion["usage"])
    yield b"data: [DONE]\n\n"
