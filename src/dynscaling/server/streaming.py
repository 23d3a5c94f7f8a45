"""Server-sent events for scaled requests.

Sampling takes as long as several upstream calls, and the reply is known only after the vote, so a scaled stream
opens at once with an SSE comment (clients ignore comments; their read timeouts see bytes), sends another every
``keepalive_seconds`` while it samples, then streams the chosen reply. An error after the stream began arrives
as one ``data: {"error": {...}}`` frame, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from .errors import ApiError
from .scaled import ScaledOutcome, usage_body

__all__ = ["chat_chunks", "completion_chunks", "sse", "with_keepalive"]

logger = logging.getLogger("dynscaling.server")

_PIECE = 64  # characters per content delta
DONE = b"data: [DONE]\n\n"


def sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def with_keepalive(work: Awaitable[Any], render: Callable[[Any], Iterable[bytes]],
                         interval: float) -> AsyncIterator[bytes]:
    """Comments while ``work`` runs, then ``render(result)``; an error becomes an error frame."""
    task = asyncio.ensure_future(work)
    try:
        yield b": dynscaling is sampling\n\n"
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                break
            yield b": keep-alive\n\n"
        try:
            result = task.result()
        except ApiError as error:
            yield sse(error.body())
            yield DONE
            return
        except Exception:
            logger.exception("scaled stream failed")
            yield sse(ApiError(500, "internal error; see the server log", "internal_error", "server_error").body())
            yield DONE
            return
        for frame in render(result):
            yield frame
    finally:
        if not task.done():  # the client went away: stop sampling for it
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _pieces(text: str) -> list[str]:
    return [text[i:i + _PIECE] for i in range(0, len(text), _PIECE)] or [""]


def chat_chunks(base: dict[str, Any], outcome: ScaledOutcome, include_usage: bool) -> Iterable[bytes]:
    """The voted reply as chat.completion.chunk events: role, content pieces or tool calls, finish, usage."""
    head = {**base, "object": "chat.completion.chunk"}
    usage_field = {"usage": None} if include_usage else {}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse({**head, "choices": choices, **usage_field, **extra})

    for index, choice in enumerate(outcome.choices):
        message = choice.message
        yield event([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])
        content = message.get("content")
        if isinstance(content, str) and content:
            for piece in _pieces(content):
                yield event([{"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
        calls = message.get("tool_calls") or []
        for position, call in enumerate(calls):
            delta_call = {"index": position, **{k: v for k, v in call.items() if k != "index"}}
            yield event([{"index": index, "delta": {"tool_calls": [delta_call]}, "logprobs": None,
                          "finish_reason": None}])
        yield event([{"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.finish_reason or "stop"}],
                    dynscaling=outcome.extra)
    if include_usage:
        yield sse({**head, "choices": [], "usage": usage_body(outcome.usage)})
    yield DONE


def completion_chunks(base: dict[str, Any], outcomes: list[ScaledOutcome], include_usage: bool) -> Iterable[bytes]:
    """The voted texts as text_completion events."""
    head = {**base, "object": "text_completion"}
    index = 0
    for outcome in outcomes:
        for choice in outcome.choices:
            content = choice.message.get("content")
            for piece in _pieces(content if isinstance(content, str) else ""):
                yield sse({**head, "choices": [{"index": index, "text": piece, "finish_reason": None,
                                                "logprobs": None}]})
            yield sse({**head, "choices": [{"index": index, "text": "", "logprobs": None,
                                            "finish_reason": choice.finish_reason or "stop"}],
                       "dynscaling": outcome.extra})
            index += 1
    if include_usage:
        from ..types import Usage

        total = Usage()
        for outcome in outcomes:
            total.add(outcome.usage)
        yield sse({**head, "choices": [], "usage": usage_body(total)})
    yield DONE
