"""Answering a scaled request: sample through the engine, vote, and shape the winner as an OpenAI reply.

**Which choices.** ``n = 1``: a sample that voted for the winning answer, as the upstream wrote it (tool calls
included). ``n > 1``: ``n`` different samples, the most-voted distinct answers first (one sample each, in vote
order), then further samples of those answers in the same order; each choice carries its answer's vote share in
``dynscaling.choices``. ``n`` may not exceed the budget (400), and strategies with a ``k0`` draw at least ``n``
independent samples first so that there are ``n`` to return.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..budget import Budget
from ..drivers import arun
from ..engine import Engine
from ..strategies import STRATEGIES, Strategy
from ..types import Question, Usage
from .errors import ApiError
from .upstream import LocalSampler, RequestSampler, Upstream
from .validation import ScaledRequest
from .voting import ExactClusterer

__all__ = ["Choice", "ScaledOutcome", "chat_body", "completion_body", "run_scaled", "usage_body"]


@dataclass(frozen=True)
class Choice:
    message: dict[str, Any]
    finish_reason: str | None
    answer: str | None
    share: float


@dataclass(frozen=True)
class ScaledOutcome:
    """The voted reply of one scaled request, before it is shaped for an endpoint."""

    choices: list[Choice]
    usage: Usage
    extra: dict[str, Any]


def _with_min_k0(strategy: Strategy, n: int) -> Strategy:
    if n <= 1 or "k0" not in STRATEGIES[strategy.name].defaults:
        return strategy
    params = dict(strategy.params)
    k0 = params.get("k0", STRATEGIES[strategy.name].defaults["k0"])
    params["k0"] = max(int(k0), n)  # type: ignore[arg-type]
    return Strategy(strategy.name, tuple(params.items()))


def failure_error(sampler: RequestSampler, failures: Mapping[str, int]) -> ApiError:
    """The client's error when no sample came back: the upstream's own status and message, secrets masked."""
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(failures.items()))
    last = sampler.last_failure
    if last is None:
        return ApiError(502, f"the upstream returned no usable sample ({counts or 'no reply'})", "upstream_error",
                        "upstream_error")
    status = last.status
    if status is None:
        status = 504 if last.kind == "timeout" else 502
    elif status in (401, 403):
        status = 502  # the server's key was refused: not the client's fault, and not the client's key
    elif status >= 500:
        status = 502
    return ApiError(status, f"{last} (failed requests: {counts})", last.kind, "upstream_error")


async def run_scaled(request: ScaledRequest, upstream: Upstream) -> ScaledOutcome:
    """Sample, vote and pick the choices of one scaled request."""
    sampling = LocalSampler if upstream.local is not None else RequestSampler
    sampler = sampling(upstream, request.upstream, request.params, request.vote)
    answer_type = request.answer_type if request.vote == "answer" else "text"
    question = Question(id="request", text=request.question_text, answer_type=answer_type,  # type: ignore[arg-type]
                        meta={"messages": request.messages})
    strategy = _with_min_k0(request.strategy, request.n)
    clusterers = [ExactClusterer()] if request.vote != "answer" else None
    seed = request.seed if request.seed is not None else uuid.uuid4().int & 0x7FFFFFFF
    engine = Engine([question], strategy, Budget(samples=request.budget), seed=seed, clusterers=clusterers)
    run = await arun(engine, sampler, concurrency=request.budget, seed=seed)
    result = run.results[0]
    if not sampler.order:
        raise failure_error(sampler, run.failures)
    votes = result.samples - result.abstentions
    ranked = engine.tallies[0].ranked()
    by_class: dict[int | None, list[str]] = {}
    for attempt in engine.attempts[0]:
        by_class.setdefault(attempt.answer_class, []).append(attempt.text)
    picked: list[tuple[str, int | None]] = []
    depth = 0
    while len(picked) < request.n and any(len(by_class.get(c, [])) > depth for c, _ in ranked):
        picked += [(by_class[c][depth], c) for c, _ in ranked if len(by_class.get(c, [])) > depth]
        depth += 1
    chosen = {text for text, _ in picked}
    # Then abstaining or cut-off samples, so a reply exists even when nothing voted (e.g. a tiny max_tokens).
    picked += [(text, None) for text in sampler.order if text not in chosen]
    shares = dict(ranked)
    clusterer = engine.clusterers[0]
    choices = [Choice(sampler.messages[text], sampler.finish.get(text),
                      clusterer.representative(cls) if cls is not None else None,
                      round(shares.get(cls, 0) / votes, 6) if cls is not None and votes else 0.0)
               for text, cls in picked[:request.n]]
    extra = {"answer": result.answer, "confidence": round(result.confidence, 6),
             "votes": [[a, c] for a, c in result.votes], "samples": result.samples,
             "abstentions": result.abstentions, "strategy": strategy.label, "budget": request.budget,
             "temperature": request.sampled_temperature, "vote": request.vote}
    if request.n > 1:
        extra["choices"] = [{"index": i, "answer": c.answer, "share": c.share} for i, c in enumerate(choices)]
    if len(choices) < request.n:
        extra["short"] = f"{len(choices)} distinct samples for n={request.n}"
    return ScaledOutcome(choices, sampler.usage, extra)


def usage_body(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens}}


def _reply_message(message: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if v is not None or k == "content"}
    out["role"] = "assistant"
    out.setdefault("content", None)
    return out


def chat_body(model: str, outcome: ScaledOutcome, request_id: str | None = None) -> dict[str, Any]:
    return {
        "id": request_id or f"chatcmpl-ds-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": i, "message": _reply_message(c.message), "finish_reason": c.finish_reason or "stop",
                     "logprobs": None} for i, c in enumerate(outcome.choices)],
        "usage": usage_body(outcome.usage),
        "dynscaling": outcome.extra,
    }


def completion_body(model: str, outcomes: list[ScaledOutcome]) -> dict[str, Any]:
    """A text completion: prompt ``i``'s choices get indexes ``i * n ...`` as OpenAI numbers them."""
    usage = Usage()
    choices = []
    for outcome in outcomes:
        usage.add(outcome.usage)
        for c in outcome.choices:
            content = c.message.get("content")
            choices.append({"index": len(choices), "text": content if isinstance(content, str) else "",
                            "finish_reason": c.finish_reason or "stop", "logprobs": None})
    return {"id": f"cmpl-ds-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": choices, "usage": usage_body(usage),
            "dynscaling": outcomes[0].extra if len(outcomes) == 1 else [o.extra for o in outcomes]}
