"""The Starlette application: routes, authentication, body limits and error shapes. The work is elsewhere:
``validation`` (reading a scaled request), ``scaled`` (sampling and voting), ``streaming`` (SSE),
``passthrough`` (verbatim relay), ``batch``."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..errors import BackendError, ConfigError, DynscalingError, InputError
from ..journal import Journal
from .batch import BatchService, SharedLimit
from .config import ServeConfig
from .errors import ApiError
from .passthrough import relay, upstream_json
from .scaled import chat_body, completion_body, run_scaled
from .streaming import chat_chunks, completion_chunks, with_keepalive
from .upstream import Upstream, local_sampling
from .validation import BUDGET_HEADER, parse_scaled_chat, parse_scaled_completion, scaled_target

__all__ = ["create_app"]

logger = logging.getLogger("dynscaling.server")


class _State:
    """Mutable server state, passed around instead of module globals."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.upstream = Upstream(config)
        self.batches = BatchService(config, self.upstream.limit)  # one limit for scaled, batch and pass-through


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


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON ({error})", "invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_json")
    return body


def _check_unicode(body: dict[str, Any]) -> None:
    try:  # a lone surrogate parses but cannot be sent on
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "the request contains invalid Unicode (a lone surrogate)", "invalid_json") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply", "invalid_json") from None


def _card(model_id: str, owner: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owner}


def create_app(config: ServeConfig, *, upstream_backend: Any = None) -> Any:
    """The Starlette application (needs the ``server`` extra). ``upstream_backend`` (e.g. a ``LlamaCppBackend``)
    answers scaled requests for ``config.upstream_model`` in this process instead of an HTTP upstream."""
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:  # pragma: no cover - exercised by users without the extra
        raise ConfigError("the server needs its extra: pip install 'dynscaling[server]'") from None

    state = _State(config)
    upstream = state.upstream
    if upstream_backend is not None:  # dynscaling serve --backend llama-cpp
        upstream.local = upstream_backend
        state.batches.backends[config.upstream_model] = SharedLimit(upstream_backend, upstream.limit)

    def error_response(error: ApiError) -> Response:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        if request.headers.get("authorization", "") != f"Bearer {config.api_key}":
            raise ApiError(401, "missing or wrong API key (send Authorization: Bearer <key>)", "invalid_api_key",
                           "authentication_error")

    def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                authorize(request)
                return await handler(request)
            except ApiError as error:
                return error_response(error)
            except (InputError, ConfigError) as error:
                return error_response(ApiError(400, str(error), "invalid_request"))
            except BackendError as error:
                return error_response(ApiError(502, upstream.mask.text(str(error)), error.kind, "upstream_error"))
            except DynscalingError as error:
                logger.exception("request failed")
                return error_response(ApiError(500, f"internal error: {type(error).__name__}", "internal_error",
                                               "server_error"))
            except Exception:
                logger.exception("request failed")
                return error_response(ApiError(500, "internal error; see the server log", "internal_error",
                                               "server_error"))

        return guarded

    async def read_body(request: Request) -> tuple[bytes, dict[str, Any]]:
        raw = await _read_limited(request, config.max_body_bytes)
        return raw, _parse_body(raw)

    def forwarded(request: Request) -> dict[str, str]:
        """The client's headers a pass-through keeps: its content type and the OpenAI-* ones (OpenAI-Beta, ...)."""
        kept = {k: v for k, v in request.headers.items() if k.lower().startswith("openai-")}
        kept["content-type"] = request.headers.get("content-type", "application/json")
        return kept

    @endpoint
    async def chat(request: Request) -> Response:
        raw, body = await read_body(request)
        target = scaled_target(body, request.headers.get(BUDGET_HEADER), config)
        if target is None:
            return await relay(upstream, "POST", "chat/completions", raw, forwarded(request))
        _check_unicode(body)
        scaled = parse_scaled_chat(body, target, config)
        if upstream.local is not None:
            local_sampling(upstream.local, scaled.params)  # refused with a 400, not in a stream that began as 200
        if scaled.strategy.name == "single" and scaled.n > 1:
            raise ApiError(400, "n: the single strategy draws one sample; use another strategy for n > 1",
                           "invalid_value", param="n")
        if scaled.stream:
            base = {"id": f"chatcmpl-ds-{int(time.time() * 1000):x}", "created": int(time.time()),
                    "model": scaled.model}
            frames = with_keepalive(run_scaled(scaled, upstream),
                                    lambda outcome: chat_chunks(base, outcome, scaled.include_usage),
                                    config.keepalive_seconds)
            return StreamingResponse(frames, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        return JSONResponse(chat_body(scaled.model, await run_scaled(scaled, upstream)))

    @endpoint
    async def completions(request: Request) -> Response:
        raw, body = await read_body(request)
        target = scaled_target(body, request.headers.get(BUDGET_HEADER), config)
        if target is None:
            return await relay(upstream, "POST", "completions", raw, forwarded(request))
        _check_unicode(body)
        prompts = parse_scaled_completion(body, target, config)
        if upstream.local is not None:
            local_sampling(upstream.local, prompts[0].params)
        model = prompts[0].model

        async def all_prompts() -> list[Any]:
            import asyncio

            return list(await asyncio.gather(*(run_scaled(p, upstream) for p in prompts)))

        if prompts[0].stream:
            base = {"id": f"cmpl-ds-{int(time.time() * 1000):x}", "created": int(time.time()), "model": model}
            frames = with_keepalive(all_prompts(),
                                    lambda outcomes: completion_chunks(base, outcomes, prompts[0].include_usage),
                                    config.keepalive_seconds)
            return StreamingResponse(frames, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        return JSONResponse(completion_body(model, await all_prompts()))

    def passthrough_only(path: str) -> Callable[[Request], Awaitable[Response]]:
        @endpoint
        async def handler(request: Request) -> Response:
            raw, body = await read_body(request)
            if scaled_target(body, request.headers.get(BUDGET_HEADER), config) is not None:
                raise ApiError(400, f"/v1/{path} passes requests through only; scaled models answer on "
                                    "/v1/chat/completions and /v1/completions", "unsupported_endpoint",
                               param="model")
            return await relay(upstream, "POST", path, raw, forwarded(request))

        return handler

    @endpoint
    async def batch(request: Request) -> Response:
        raw = await _read_limited(request, config.max_body_bytes * 16)
        try:
            lines = raw.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise ApiError(400, "the batch must be UTF-8 JSON lines", "invalid_batch") from None
        out = await state.batches.run(lines)
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in out)
        return Response(text, media_type="application/jsonl")

    @endpoint
    async def models(request: Request) -> Response:
        now = int(time.time())
        status, listing = await upstream_json(upstream, "models")
        data = listing.get("data") if status == 200 and isinstance(listing, dict) else None
        if isinstance(data, list) and all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
            cards = list(data)
        else:  # the upstream lists no models: show the configured one
            logger.warning("the upstream's model list is unavailable (HTTP %s)", status or "unreachable")
            cards = [_card(config.upstream_model, "upstream", now)]
        scaled = [_card(f"dynscaling/{config.default_budget}/{m['id']}", "dynscaling", m.get("created", now))
                  for m in cards]
        return JSONResponse({"object": "list", "data": cards + scaled})

    @endpoint
    async def model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        target = scaled_target({"model": model_id}, None, config)
        if target is None:
            return await relay(upstream, "GET", f"models/{model_id}")
        status, card = await upstream_json(upstream, f"models/{target[1]}")
        if status == 404:
            raise ApiError(404, f"the upstream has no model {target[1]!r} (asked for {model_id!r})",
                           "model_not_found", param="model")
        created = card.get("created") if isinstance(card, dict) and isinstance(card.get("created"), int) else 0
        return JSONResponse(_card(model_id, "dynscaling", created or int(time.time())))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstream": config.upstream_url})

    @endpoint
    async def stats(request: Request) -> Response:
        per_model = {name: s.to_dict() for name, s in upstream.stats.items()}
        for name, b in state.batches.backends.items():
            per_model.setdefault(name, {}).update(batch_calls=b.calls, batch_max_inflight=b.max_inflight)
        return JSONResponse({"upstream": per_model, "concurrency_limit": config.concurrency,
                             "max_inflight": upstream.max_inflight, "inflight": upstream.inflight})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            error = ApiError(405, f"{request.method} is not allowed on {request.url.path}"
                                  + (f"; use {allowed}" if allowed else ""), "method_not_allowed",
                             headers=dict(exc.headers or {}))
        elif exc.status_code == 404:
            error = ApiError(404, f"no such endpoint: {request.method} {request.url.path}", "unknown_url")
        else:
            error = ApiError(exc.status_code, str(exc.detail), None, headers=dict(exc.headers or {}))
        return error_response(error)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # The journal is opened on the event loop's thread, which is the only one that uses it.
        state.batches.journal = Journal(config.journal_path) if config.journal_path is not None else None
        yield
        for backend in state.batches.backends.values():
            await backend.backend.aclose()
        await upstream.aclose()
        if state.batches.journal is not None:
            state.batches.journal.close()

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/responses", passthrough_only("responses"), methods=["POST"]),
        Route("/v1/embeddings", passthrough_only("embeddings"), methods=["POST"]),
        Route("/v1/dynscaling/batch", batch, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.service = state
    return app
