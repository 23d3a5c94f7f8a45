"""Reading a chat completion request, finding its pool question, and writing a pool sample as a model would."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..pools import PoolQuestion
from .http import ApiError

__all__ = ["MAX_N", "ChatRequest", "QuestionIndex", "message_text", "parse_chat", "reasoning_tokens",
           "sample_content", "tokens"]

MAX_N = 128  # OpenAI's own limit on n
WHOLE_NUMBER = re.compile(r"^(-?\d+)\.0+$")  # 18.0 -> 18


@dataclass(slots=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    texts: list[str]  # each message's text
    n: int
    stream: bool
    include_usage: bool
    max_tokens: int | None
    stop: tuple[str, ...] = ()


def message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise ApiError(400, "message content must be a string, a list of content parts or null", code="invalid_type",
                    param="messages")


def parse_chat(body: bytes) -> ChatRequest:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(request, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    messages = request.get("messages")
    if messages is None:
        raise ApiError(400, "missing required parameter: 'messages'", code="missing_required_parameter",
                        param="messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", code="invalid_type", param="messages")
    texts = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a string 'role'", code="invalid_type",
                            param=f"messages[{i}]")
        texts.append(message_text(message.get("content")))
    n = request.get("n")
    n = 1 if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise ApiError(400, f"'n' must be an integer from 1 to {MAX_N}, got {n!r}", code="invalid_value",
                        param="n")
    stream = request.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be a boolean, got {stream!r}", code="invalid_type", param="stream")
    options = request.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", code="invalid_type", param="stream_options")
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}", code="invalid_value",
                        param="max_tokens")
    stop = request.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else ()
    if stop is not None and (not all(isinstance(s, str) for s in stops) or not isinstance(stop, (str, list))):
        raise ApiError(400, f"'stop' must be a string or a list of strings, got {stop!r}", code="invalid_type",
                        param="stop")
    return ChatRequest(messages, texts, n, stream, bool(options.get("include_usage")), max_tokens,
                 tuple(s for s in stops if s))


def tokens(text: str) -> int:
    return len(text) // 4 + 1


class QuestionIndex:
    """Finds the pool question a request is about (see the module docstring)."""

    def __init__(self, entries: Sequence[PoolQuestion]) -> None:
        self._by_text: dict[str, int] = {}
        for i, entry in enumerate(entries):
            self._by_text.setdefault(entry.question.text, i)
        self._longest_first = sorted(self._by_text.items(), key=lambda item: -len(item[0]))

    def find(self, chat: ChatRequest) -> int | None:
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


def sample_content(entry: PoolQuestion, position: int) -> str:
    text = entry.texts[position]
    answer = entry.answers[position]
    if answer is None:
        return text or ""
    if entry.question.answer_type == "latex":
        shown = f"\\boxed{{{answer}}}"
    else:
        shown = WHOLE_NUMBER.sub(r"\1", answer)
    suffix = f"The answer is {shown}."
    return f"{text}\n\n{suffix}" if text else suffix


def reasoning_tokens(content: str) -> int:
    head, found, _ = content.rpartition("</think>")
    return len(head) // 4 if found else 0
