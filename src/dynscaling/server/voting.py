"""What a scaled request votes on: the extracted answer (plain text), the canonical JSON of the reply
(``response_format``), or the tool calls (``tools``).

Canonical JSON is the parsed value dumped with sorted keys and no spaces, so ``{"b": 1, "a": 2}`` and
``{"a":2,"b":1}`` vote together; a reply that is not valid JSON abstains. A tool call votes as its function name
plus its canonical arguments; a reply with several calls votes as the whole list, in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..answers import AnswerClusterer

__all__ = ["VOTE_PREFIX", "ExactClusterer", "VoteMode", "canonical_json", "json_vote", "tool_calls_vote"]

#: Marks a vote made here. The engine extracts an answer from any sample that brings none; in JSON and tool modes
#: such an answer is not a vote, and ``ExactClusterer`` counts it as an abstention.
VOTE_PREFIX = "\0vote:"

#: ``answer``: extracted answers, compared by the answer type; ``json``: canonical JSON; ``tools``: tool calls.
VoteMode = Literal["answer", "json", "tools"]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_vote(content: str | None) -> str | None:
    """The canonical JSON of a reply, or None (an abstention) when it is not valid JSON."""
    if not content:
        return None
    text = content.strip()
    if text.startswith("```"):  # some models fence JSON even in JSON mode
        text = text.strip("`").removeprefix("json").strip()
    try:
        return VOTE_PREFIX + canonical_json(json.loads(text))
    except (ValueError, RecursionError):
        return None


def tool_calls_vote(tool_calls: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The vote of a reply's tool calls: ``[[name, arguments], ...]`` in canonical JSON; None when it has none.

    Arguments that are not valid JSON vote as their literal text, so two identical malformed calls still agree.
    """
    if not tool_calls:
        return None
    calls = []
    for call in tool_calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            return None
        arguments = function.get("arguments")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            parsed = arguments
        calls.append([function["name"], parsed])
    return VOTE_PREFIX + canonical_json(calls)


class ExactClusterer(AnswerClusterer):
    """Vote classes keyed by the vote string itself: canonical JSON must not go through text normalisation, which
    lowercases and drops punctuation. Answers without ``VOTE_PREFIX`` abstain."""

    def __init__(self) -> None:
        super().__init__("text")

    def assign(self, answer: str | None) -> int | None:
        if answer is None or not answer.startswith(VOTE_PREFIX):
            return None
        answer = answer[len(VOTE_PREFIX):]
        found = self._by_key.get(answer)
        if found is not None:
            return found
        index = len(self._representatives)
        self._by_key[answer] = index
        self._representatives.append(answer)
        self._keys.append(answer)
        return index
