"""Pass-through: a request for a plain model name goes to the upstream byte for byte, and the upstream's reply
(status, body, streaming included) comes back the same way. Nothing is validated or rewritten, with one
exception: an error body has the server's secrets masked, since some upstreams echo the key they were sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2

from .errors import ApiError, error_body
from .upstream import Upstream

__all__ = ["relay", "upstream_json"]

logger = logging.getLogger("dynscaling.server")

_RELAYED_HEADERS = ("retry-after", "retry-after-ms", "x-request-id", "openai-processing-ms")


def _connection_error(upstream: Upstream, error: Exception) -> ApiError:
    if isinstance(error, httpx2.TimeoutException):
        return ApiError(504, f"the upstream did not answer within {upstream.config.timeout:g} s", "timeout",
                        "upstream_error")
    return ApiError(502, f"cannot reach the upstream at {upstream.base_url} ({type(error).__name__})", "connection",
                    "upstream_error")


def masked_error(upstream: Upstream, status: int, raw: bytes) -> bytes:
    """The upstream's error body with secrets masked; wrapped OpenAI-style when it is not JSON."""
    text = upstream.mask.text(raw.decode("utf-8", errors="replace"))
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        return text.encode()
    message = " ".join(text.split())[:500] or f"HTTP {status}"
    return json.dumps(error_body(f"upstream: {message}", None, "upstream_error")).encode()


async def relay(upstream: Upstream, method: str, path: str, raw: bytes | None = None,
                client_headers: Mapping[str, str] | None = None) -> Any:
    """Send one request to the upstream unchanged and answer with its reply (a Starlette response).
    ``client_headers`` go along (never an Authorization header: the upstream gets the server's key)."""
    from starlette.responses import Response, StreamingResponse

    kept = {k: v for k, v in (client_headers or {}).items() if k.lower() != "authorization"}
    headers = upstream.headers({"content-type": "application/json", "accept": "application/json, text/event-stream",
                                **kept})
    request = upstream.client.build_request(method, upstream.url(path), content=raw, headers=headers)
    await upstream.limit.acquire()
    held = True
    try:
        upstream.inflight += 1
        upstream.max_inflight = max(upstream.max_inflight, upstream.inflight)
        try:
            response = await upstream.client.send(request, stream=True)
        except httpx2.HTTPError as error:
            raise _connection_error(upstream, error) from None
        kept = {k: v for k, v in response.headers.items() if k.lower() in _RELAYED_HEADERS}
        kind = response.headers.get("content-type", "application/json")
        if response.status_code >= 400 or "text/event-stream" not in kind:
            try:
                body = await response.aread()
            except httpx2.HTTPError as error:
                raise _connection_error(upstream, error) from None
            finally:
                await response.aclose()
            if response.status_code >= 400:
                body, kind = masked_error(upstream, response.status_code, body), "application/json"
            return Response(body, status_code=response.status_code, headers=kept, media_type=kind)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            except httpx2.HTTPError as error:  # the upstream broke off mid-stream: say so in the stream
                failure = _connection_error(upstream, error)
                yield f"data: {json.dumps(failure.body())}\n\ndata: [DONE]\n\n".encode()
            finally:
                await response.aclose()
                upstream.inflight -= 1
                upstream.limit.release()

        held = False  # the stream releases the slot when it ends
        return StreamingResponse(chunks(), status_code=response.status_code, headers=kept, media_type=kind)
    finally:
        if held:
            upstream.inflight -= 1
            upstream.limit.release()


async def upstream_json(upstream: Upstream, path: str) -> tuple[int, Any]:
    """GET a JSON document from the upstream: ``(status, parsed body or None)``; ``(0, None)`` if unreachable."""
    try:
        response = await upstream.client.get(upstream.url(path), headers=upstream.headers())
    except httpx2.HTTPError:
        return 0, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None
