"""Reading a scaled request: its model name, its messages and every parameter, checked before any sample is
paid for. A bad field is a 400 naming it; a parameter we cannot honour is a 400 ``unsupported_parameter``.

Pass-through requests are never validated here: they go to the upstream verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..strategies import STRATEGIES, Strategy, parse_strategy
from ..types import ANSWER_TYPES
from .config import ServeConfig
from .errors import ApiError, invalid
from .voting import VoteMode

__all__ = ["BUDGET_HEADER", "ScaledRequest", "parse_scaled_chat", "parse_scaled_completion", "scaled_target"]

#: The header that scales a request without renaming its model (for gateways and fixed clients).
BUDGET_HEADER = "x-dynscaling-budget"

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Ours to set on every upstream sample; the rest of the body is forwarded to each sample as the client sent it.
_OWN = ("model", "messages", "prompt", "n", "stream", "stream_options", "temperature", "seed", "dynscaling")
# Would need something from every sample we cannot vote on or return faithfully.
_UNSUPPORTED_CHAT = {"logprobs": "logprobs of a voted answer", "top_logprobs": "logprobs of a voted answer",
                     "audio": "audio output", "prediction": "predicted outputs",
                     "web_search_options": "web search", "functions": "legacy functions (use tools)",
                     "function_call": "legacy function_call (use tool_choice)"}
_UNSUPPORTED_COMPLETION = {"logprobs": "logprobs of a voted answer", "echo": "echo", "best_of": "best_of",
                           "suffix": "suffix"}


@dataclass(frozen=True)
class ScaledRequest:
    """A checked scaled request.

    Attributes:
        model: the model as the client named it (echoed in the response).
        upstream: the upstream model sampled.
        budget: samples at most.
        messages: the conversation, verbatim (tool calls, tool results and content parts included).
        n: choices to return.
        stream, include_usage: how to answer.
        params: sent with every upstream sample (temperature included); the seed is derived per sample.
        strategy, answer_type, seed: how to sample and vote.
        vote: what the samples vote on.
        question_text: the last user turn's text (for logs).
        sampled_temperature: the temperature every sample is drawn at.
    """

    model: str
    upstream: str
    budget: int
    messages: list[dict[str, Any]]
    n: int
    stream: bool
    include_usage: bool
    params: dict[str, Any]
    strategy: Strategy
    answer_type: str
    seed: int | None
    vote: VoteMode
    question_text: str = ""
    sampled_temperature: float = 0.0


def _budget_value(raw: Any, where: str, config: ServeConfig) -> int:
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= config.max_budget:
        raise invalid(where, f"the budget must be a whole number of samples from 1 to {config.max_budget}, "
                             f"got {raw!r}", "invalid_budget")
    return raw


def scaled_target(body: Mapping[str, Any], header: str | None, config: ServeConfig) -> tuple[int, str] | None:
    """``(budget, upstream model)`` when the request is scaled, None when it passes through.

    Scaled: a ``dynscaling/<n>/<model>`` or ``dynscaling/<model>`` name; or any name with ``dynscaling.budget`` in
    the body or the ``X-Dynscaling-Budget`` header (the name wins over the body, the body over the header).
    """
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("model", "must be a non-empty string", "invalid_model")
    options = body.get("dynscaling")
    body_budget = options.get("budget") if isinstance(options, Mapping) else None
    if name.startswith("dynscaling/") or name == "dynscaling":
        example = f"use dynscaling/<samples>/<model>, e.g. dynscaling/8/{config.upstream_model}"
        rest = name.removeprefix("dynscaling").removeprefix("/")
        first, slash, tail = rest.partition("/")
        if not rest:
            raise invalid("model", f"{name!r} names no budget and no model: {example}", "invalid_model")
        if not slash:  # dynscaling/8 (the server's model) or dynscaling/<model> (the default budget)
            if first.isdigit():
                return _budget_value(int(first), "model", config), config.upstream_model
            budget = _budget_value(body_budget, "dynscaling.budget", config) if body_budget is not None \
                else config.default_budget
            return budget, first
        if not first.isdigit():
            raise invalid("model", f"unknown model syntax {name!r}: the budget must be a whole number of samples "
                                   f"from 1 to {config.max_budget}; {example}", "invalid_model")
        if not tail.strip() or tail.endswith("/"):
            raise invalid("model", f"{name!r} names no upstream model after the budget: {example}", "invalid_model")
        return _budget_value(int(first), "model", config), tail
    if body_budget is not None:
        return _budget_value(body_budget, "dynscaling.budget", config), name
    if header is not None:
        return _budget_value(header, "X-Dynscaling-Budget", config), name
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(body: Mapping[str, Any], name: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise invalid(name, f"must be a finite number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise invalid(name, f"must be in {bound}, got {value!r}")
    return float(value)


def _non_finite(value: Any, where: str) -> None:
    """Reject NaN and infinities anywhere in a forwarded value (Python's JSON reader accepts them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(where, f"must be finite, got {value!r}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _non_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _non_finite(item, f"{where}[{i}]")


def _content_text(content: Any, where: str, role: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        if role in ("assistant", "function"):
            return ""
        raise invalid(where, "must be a string or a list of content parts (null only on assistant turns)",
                      "invalid_messages")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise invalid(f"{where}[{j}]", f"must be a content part object with a 'type', got {part!r}",
                              "invalid_messages")
            if part["type"] in ("text", "input_text"):
                if not isinstance(part.get("text"), str):
                    raise invalid(f"{where}[{j}].text", "must be a string", "invalid_messages")
                texts.append(part["text"])
        return "".join(texts)
    raise invalid(where, f"must be a string, a list of content parts or null, got {content!r}", "invalid_messages")


def check_messages(messages: Any) -> tuple[list[dict[str, Any]], str]:
    """The messages, verbatim, and the text of the last user turn (the question, for logs and the journal)."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "must be a non-empty list of {role, content} objects", "invalid_messages")
    question = None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise invalid(where, "must be an object with a 'role'", "invalid_messages")
        role = message.get("role")
        if role not in _ROLES:
            raise invalid(f"{where}.role", f"must be one of {', '.join(_ROLES)}, got {role!r}", "invalid_messages")
        text = _content_text(message.get("content"), f"{where}.content", role)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise invalid(f"{where}.tool_call_id", "a tool message needs a string tool_call_id", "invalid_messages")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, Mapping) for c in calls)):
            raise invalid(f"{where}.tool_calls", "must be a list of tool call objects", "invalid_messages")
        _non_finite(message, where)
        if role == "user":
            question = text
    if question is None:
        raise invalid("messages", "has no user message", "invalid_messages")
    return [dict(m) for m in messages], question


def overrides(body: Mapping[str, Any], config: ServeConfig) -> tuple[Strategy, str, int | None]:
    """The strategy, answer type and seed, from the config and the body's ``dynscaling`` object."""
    raw = body.get("dynscaling")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise invalid("dynscaling", "must be an object", "invalid_dynscaling")
    options = dict(raw)
    options.pop("budget", None)  # read by scaled_target
    answer_type = options.pop("answer_type", config.answer_type)
    if answer_type not in ANSWER_TYPES:
        raise invalid("dynscaling.answer_type", f"must be one of {', '.join(ANSWER_TYPES)}, got {answer_type!r}",
                      "invalid_dynscaling")
    seed = options.pop("seed", body.get("seed"))
    if seed is not None and not _is_int(seed):
        raise invalid("seed", f"must be an integer, got {seed!r}")
    spec = options.pop("strategy", config.strategy)
    if not isinstance(spec, str) or not spec:
        raise invalid("dynscaling.strategy", "must be a strategy spec string, e.g. 'sc' or 'dynscaling:k0=3'",
                      "invalid_dynscaling")
    try:
        base = parse_strategy(spec)
    except ConfigError as error:
        raise invalid("dynscaling.strategy", str(error), "invalid_dynscaling") from None
    params = dict(base.params)
    allowed = STRATEGIES[base.name].defaults
    for key, value in options.items():
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            raise invalid(f"dynscaling.{key}", f"strategy {base.name} has no such parameter (it takes {names}; "
                                               "also strategy, answer_type, seed, budget)", "invalid_dynscaling")
        if value is not None and not isinstance(value, (str, int, float)) or isinstance(value, float) and \
                not math.isfinite(value) or isinstance(value, str) and any(c in value for c in ",=:"):
            raise invalid(f"dynscaling.{key}", f"must be a number, a word or null, got {value!r}",
                          "invalid_dynscaling")
        params[key] = value
    # Through the spec parser, so request values get the same type checks and ranges as --strategy.
    items = ",".join(f"{k}={'none' if v is None else str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in params.items())
    try:
        strategy = parse_strategy(f"{base.name}:{items}" if items else base.name)
    except (ConfigError, TypeError, ValueError) as error:
        bad = next((k for k in options if k in str(error)), None)
        raise invalid(f"dynscaling.{bad}" if bad else "dynscaling", str(error), "invalid_dynscaling") from None
    if strategy.name == "oracle":
        raise invalid("dynscaling.strategy", "the oracle strategy needs gold answers; it is for evaluation only",
                      "invalid_dynscaling")
    return strategy, answer_type, seed


def _sampling_params(body: Mapping[str, Any], config: ServeConfig, unsupported: Mapping[str, str]
                     ) -> tuple[dict[str, Any], float]:
    """What every upstream sample is sent besides model, messages, n and seed; and the temperature used."""
    for name, what in unsupported.items():
        value = body.get(name)
        if value is not None and value is not False:
            raise ApiError(400, f"{name}: not supported on a scaled model ({what}); drop it or use the plain model "
                                "name to pass the request through", "unsupported_parameter", param=name)
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise ApiError(400, "modalities: a scaled model returns text only", "unsupported_parameter",
                       param="modalities")
    temperature = _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1, low_open=True)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not _is_int(value) or value < 1):
            raise invalid(name, f"must be a positive integer, got {value!r}")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise invalid("stop", f"must be a string or a list of strings, got {stop!r}")
    effort = body.get("reasoning_effort")
    if effort is not None and not isinstance(effort, str):
        raise invalid("reasoning_effort", f"must be a string such as 'low', got {effort!r}")
    for name in ("logit_bias", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], Mapping):
            raise invalid(name, "must be an object")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise invalid("user", "must be a string")
    used = temperature if temperature is not None and temperature > 0 else config.sampling_temperature
    params: dict[str, Any] = {k: v for k, v in config.sampling.items() if k != "temperature" and v is not None}
    if "max_completion_tokens" in body:
        params.pop("max_tokens", None)
    for key, value in body.items():
        if key not in _OWN and value is not None:
            _non_finite(value, key)
            params[key] = value
    params["temperature"] = used
    return params, used


def _vote_mode(body: Mapping[str, Any]) -> VoteMode:
    response_format = body.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, Mapping) or response_format.get("type") not in (
                "text", "json_object", "json_schema"):
            raise invalid("response_format", "must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}")
        if response_format["type"] == "json_schema" and not isinstance(response_format.get("json_schema"), Mapping):
            raise invalid("response_format.json_schema", "must be an object with the schema")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, Mapping) and isinstance(t.get("type"), str)
                                                  for t in tools):
            raise invalid("tools", "must be a list of tool objects with a 'type'")
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, (str, Mapping)):
        raise invalid("tool_choice", "must be 'none', 'auto', 'required' or an object")
    if tools and tool_choice != "none":
        return "tools"
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        return "json"
    return "answer"


def _stream_flags(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", f"must be a boolean, got {stream!r}")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise invalid("stream_options", f"must be an object such as {{\"include_usage\": true}}, got {options!r}")
    include = (options or {}).get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise invalid("stream_options.include_usage", f"must be a boolean, got {include!r}")
    return bool(stream), bool(include)


def _choices(body: Mapping[str, Any], budget: int) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if not _is_int(n) or n < 1:
        raise invalid("n", f"must be a positive integer, got {n!r}")
    if n > budget:
        raise invalid("n", f"asks for {n} choices from a budget of {budget} samples: each choice is a different "
                           f"sample, so use dynscaling/<at least {n}>/<model>")
    return n


def parse_scaled_chat(body: Mapping[str, Any], target: tuple[int, str], config: ServeConfig) -> ScaledRequest:
    """Check a scaled chat completion request, every field, before anything is sent upstream."""
    budget, upstream = target
    messages, question = check_messages(body.get("messages"))
    n = _choices(body, budget)
    stream, include_usage = _stream_flags(body)
    vote = _vote_mode(body)
    params, temperature = _sampling_params(body, config, _UNSUPPORTED_CHAT)
    strategy, answer_type, seed = overrides(body, config)
    return ScaledRequest(str(body["model"]), upstream, budget, messages, n, stream, include_usage, params, strategy,
                         answer_type, seed, vote, question, temperature)


def parse_scaled_completion(body: Mapping[str, Any], target: tuple[int, str], config: ServeConfig
                            ) -> list[ScaledRequest]:
    """A scaled ``/v1/completions`` request: one scaled chat question per prompt (a string or a list of them)."""
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise invalid("prompt", "must be a non-empty string or a list of them (token arrays are not supported on "
                                "a scaled model)")
    budget, upstream = target
    n = _choices(body, budget)
    stream, include_usage = _stream_flags(body)
    params, temperature = _sampling_params(body, config, _UNSUPPORTED_COMPLETION)
    strategy, answer_type, seed = overrides(body, config)
    return [ScaledRequest(str(body["model"]), upstream, budget, [{"role": "user", "content": p}], n, stream,
                          include_usage, params, strategy, answer_type, seed, "answer", p, temperature)
            for p in prompts]
