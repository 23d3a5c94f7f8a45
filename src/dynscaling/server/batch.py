"""``POST /v1/dynscaling/batch``: OpenAI Batch-API request lines in, Batch-API output lines out, with one budget
(the sum of every line's ``dynscaling/<n>``) allocated across all questions by the bandit. The run is journaled,
so resubmitting the same batch resumes it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..budget import Budget
from ..drivers import RunStats, arun
from ..engine import Engine
from ..journal import Journal, stable_hash
from ..samplers import Message
from ..strategies import Strategy
from ..types import Question, Sample, Usage
from .config import ServeConfig
from .errors import ApiError
from .scaled import usage_body
from .validation import check_messages, overrides, scaled_target

__all__ = ["BatchService", "SharedLimit"]

# (custom_id, messages, model as named, question text)
_Line = tuple[str, "list[dict[str, Any]]", str, str]
_BATCH_FIELDS = {"model", "messages", "dynscaling"}
_STATUS_OF_KIND = {"rate_limit": 429, "timeout": 504, "server_error": 502, "connection": 502, "bad_request": 400,
                   "auth": 502, "exhausted": 409, "empty_response": 502, "fewer_choices": 502}


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


def _completion(model: str, text: str, usage: Usage, extra: dict[str, Any]) -> dict[str, Any]:
    import time

    return {"id": f"chatcmpl-ds-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": usage_body(usage), "dynscaling": extra}


def _failure(failures: Mapping[str, int]) -> ApiError:
    kind = max(failures, key=lambda k: failures[k]) if failures else "server_error"
    counts = ", ".join(f"{k}: {v}" for k, v in failures.items())
    return ApiError(_STATUS_OF_KIND.get(kind, 502), f"the upstream model failed every request ({counts})", kind,
                    "upstream_error")


class BatchService:
    """Runs batches; one journaled batch at a time (the journal is one connection)."""

    def __init__(self, config: ServeConfig, limit: asyncio.Semaphore) -> None:
        self.config = config
        self.limit = limit
        self.backends: dict[str, SharedLimit] = {}
        self.journal: Journal | None = None
        self.lock = asyncio.Lock()

    def backend_for(self, upstream_model: str) -> SharedLimit:
        found = self.backends.get(upstream_model)
        if found is None:
            import os

            from ..backends.openai import OpenAIBackend

            config = self.config
            key_env = config.upstream_api_key_env
            backend = OpenAIBackend(upstream_model, base_url=config.upstream_url,
                                    api_key=os.environ.get(key_env) or "EMPTY", timeout=config.timeout,
                                    **dict(config.sampling))
            found = SharedLimit(backend, self.limit)  # one limit for every upstream model and client
            self.backends[upstream_model] = found
        return found

    async def run(self, lines: Sequence[str]) -> list[dict[str, Any]]:
        requests, budget_total, upstream, strategy, answer_type = self._parse(lines)
        questions = [Question(id=custom_id, text=text, answer_type=answer_type,  # type: ignore[arg-type]
                              meta={"messages": messages})
                     for custom_id, messages, _, text in requests]
        engine = Engine(questions, strategy, Budget(samples=budget_total), seed=0)
        backend = self.backend_for(upstream)
        log = None
        if self.journal is not None:
            log = self.journal.open_run(
                sample_key={"server": self.config.upstream_url, "model": upstream,
                            "sampling": dict(self.config.sampling)},
                run_key={"batch": stable_hash([list(lines), strategy.label, answer_type])})
        stats = RunStats()  # failures are journaled as events, never as results: resubmitting retries them
        async with self.lock:
            run = await arun(engine, backend, concurrency=self.config.concurrency, log=log, seed=0, stats=stats)
        out = []
        for qi, (custom_id, _, model, _) in enumerate(requests):
            result = run.results[qi]
            if result.samples == 0:
                error = _failure(run.failures) if run.failures else ApiError(
                    402, "the batch budget ran out before this question got a sample", "budget_exhausted")
                if custom_id in stats.question_errors:  # the upstream's own words for this item
                    error = ApiError(error.status, stats.question_errors[custom_id], error.code, error.type)
                out.append({"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": custom_id,
                            "response": {"status_code": error.status, "body": error.body()}, "error": None})
                continue
            text = _chosen_text(engine, qi)
            extra = {"answer": result.answer, "confidence": round(result.confidence, 6),
                     "votes": [[a, c] for a, c in result.votes], "samples": result.samples,
                     "abstentions": result.abstentions, "strategy": strategy.label, "budget": budget_total}
            body = _completion(model, text, result.usage, extra)
            out.append({"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": custom_id,
                        "response": {"status_code": 200, "request_id": body["id"], "body": body}, "error": None})
        return out

    def _parse(self, lines: Sequence[str]) -> tuple[list[_Line], int, str, Strategy, str]:
        requests: list[_Line] = []
        budget_total = 0
        upstreams: set[str] = set()
        settings: set[tuple[Strategy, str]] = set()
        seen: set[str] = set()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as error:
                reason = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
                raise ApiError(400, f"line {number}: malformed JSON ({reason})", "invalid_batch") from None
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
                parsed = scaled_target(body, None, self.config)
                messages, text = check_messages(body.get("messages")) if parsed is not None else ([], "")
                settings.add(overrides(body, self.config)[:2])
            except ApiError as error:
                raise ApiError(400, f"line {number}: body.{error.message}", error.code) from None
            if parsed is None:
                raise ApiError(400, f"line {number}: field 'body.model': a batch needs dynscaling/<n>/<model> names",
                               "invalid_batch")
            budget, upstream = parsed
            budget_total += budget
            upstreams.add(upstream)
            ignored = sorted(set(body) - _BATCH_FIELDS)
            if ignored:  # one backend serves the whole batch: per-line sampling cannot be honoured
                raise ApiError(400, f"line {number}: body.{ignored[0]}: not supported in a batch (every line is "
                                    f"sampled with the server's parameters; send it to /v1/chat/completions)",
                               "unsupported_parameter", param=f"body.{ignored[0]}")
            requests.append((custom_id, messages, str(body["model"]), text))
        if not requests:
            raise ApiError(400, "the batch is empty", "invalid_batch")
        if len(upstreams) > 1 or len(settings) > 1:
            raise ApiError(400, "every line of a batch must name the same upstream model, strategy and answer type",
                           "invalid_batch")
        strategy, answer_type = settings.pop()
        return requests, budget_total, upstreams.pop(), strategy, answer_type


def _chosen_text(engine: Engine, qi: int) -> str:
    """The full text of the first complete sample that voted for the winner (or of any sample, if none voted)."""
    tally = engine.tallies[qi]
    attempts = engine.attempts[qi]
    for attempt in attempts:
        if tally.leader is not None and attempt.answer_class == tally.leader:
            return attempt.text
    return attempts[0].text if attempts else ""
