"""The upstream: one HTTP connection pool and one concurrency limit shared by every client, and the sampler a
scaled request draws its samples through.

Scaled samples are raw ``POST /chat/completions`` calls carrying the client's own parameters, so nothing the
client asked for is lost between it and the upstream, and each choice's whole message (tool calls included) is
kept for the reply. Retries are per request and bounded (``ServeConfig.upstream_retries``, waits capped at
``max_retry_wait``): one slow or rate-limited request never holds up another client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

from ..backends.llama_cpp import REQUEST_PARAMETERS
from ..backends.openai import split_usage
from ..errors import BackendError, ConfigError
from ..types import Sample, Usage
from .config import ServeConfig
from .errors import ApiError, SecretMask
from .voting import VOTE_PREFIX, VoteMode, json_vote, tool_calls_vote

__all__ = ["LocalSampler", "RequestSampler", "Upstream", "UpstreamError", "local_sampling"]

logger = logging.getLogger("dynscaling.server")

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class ModelStats:
    """What one upstream model was asked for, over every client (``GET /stats``)."""

    calls: int = 0
    inflight: int = 0
    max_inflight: int = 0
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "inflight": self.inflight, "max_inflight": self.max_inflight,
                **self.usage.to_dict()}


class Upstream:
    """The upstream server as every request sees it: base URL, key, one connection pool, one limit."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.base_url = config.upstream_url.rstrip("/")
        self.key = os.environ.get(config.upstream_api_key_env) or "EMPTY"  # local servers accept any key
        self.mask = SecretMask([self.key, config.api_key])
        self.limit = asyncio.Semaphore(config.concurrency)
        self.stats: dict[str, ModelStats] = {}
        self.inflight = 0
        self.max_inflight = 0
        self._client: httpx2.AsyncClient | None = None
        #: a model in this process (``serve --backend llama-cpp``) that answers scaled requests instead of HTTP
        self.local: Any = None

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:  # made on first use, inside the server's event loop
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.config.timeout, connect=min(10.0, self.config.timeout)),
                limits=httpx2.Limits(max_connections=self.config.concurrency * 2 + 8,
                                     max_keepalive_connections=self.config.concurrency * 2),
            )
        return self._client

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}", **(extra or {})}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def model_stats(self, model: str) -> ModelStats:
        return self.stats.setdefault(model, ModelStats())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class UpstreamError(BackendError):
    """An upstream request that failed for good, with the upstream's HTTP status (None: no response)."""

    def __init__(self, message: str, *, status: int | None, kind: str, retryable: bool) -> None:
        super().__init__(message, retryable=retryable, kind=kind)
        self.status = status


def _kind(status: int) -> str:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 409:
        return "exhausted"
    if status >= 500 or status == 408:
        return "server_error"
    return "bad_request"


def _upstream_message(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    return " ".join(response.text.split())[:300]


def _retry_after(response: httpx2.Response) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


class RequestSampler:
    """Draws the samples of one scaled request: the client's parameters on every call, a distinct seed per call.

    Implements the live driver's backend protocol (``agenerate``). Keeps each sample's whole reply message, so
    the chosen one is returned as the upstream wrote it, and the last failure, so the client learns the
    upstream's own status and message when no sample came back.
    """

    def __init__(self, upstream: Upstream, model: str, params: Mapping[str, Any], vote: VoteMode) -> None:
        self.upstream = upstream
        self.model = model
        self.params = dict(params)
        self.vote = vote
        self.messages: dict[str, dict[str, Any]] = {}  # sample text -> the reply message it came from
        self.finish: dict[str, str | None] = {}
        self.order: list[str] = []  # every sample text, in arrival order (truncated ones included)
        self.last_failure: UpstreamError | None = None
        self.failures: Counter[str] = Counter()
        self.usage = Usage()
        self._stats = upstream.model_stats(model)

    async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *,
                        seed: int | None = None) -> list[Sample]:
        body: dict[str, Any] = {**self.params, "model": self.model, "messages": list(messages), "n": n}
        if seed is not None:
            body["seed"] = seed
        try:
            reply = await self._post(body)
        except UpstreamError as failure:
            self.last_failure = failure
            self.failures[failure.kind] += 1
            raise
        return self._samples(reply)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        upstream = self.upstream
        attempt = 0
        while True:
            response: httpx2.Response | None = None
            try:
                async with upstream.limit:
                    self._enter()
                    try:
                        response = await upstream.client.post(upstream.url("chat/completions"), json=body,
                                                              headers=upstream.headers())
                    finally:
                        self._leave()
            except httpx2.TimeoutException:
                failure = UpstreamError(f"the upstream did not answer within {upstream.config.timeout:g} s",
                                          status=None, kind="timeout", retryable=True)
            except httpx2.TransportError as error:
                failure = UpstreamError(f"cannot reach the upstream at {upstream.base_url}: "
                                          f"{upstream.mask.text(str(error)) or type(error).__name__}",
                                          status=None, kind="connection", retryable=True)
            else:
                if response.is_success:
                    try:
                        reply = response.json()
                    except ValueError:
                        reply = None
                    if isinstance(reply, dict) and isinstance(reply.get("choices"), list):
                        return reply
                    failure = UpstreamError("the upstream's reply is not a chat completion", status=502,
                                              kind="server_error", retryable=True)
                else:
                    message = upstream.mask.text(_upstream_message(response))
                    code = None
                    try:
                        error = response.json().get("error")
                        code = error.get("code") if isinstance(error, dict) else None
                    except (ValueError, AttributeError):
                        pass
                    kind = "exhausted" if code == "pool_exhausted" else _kind(response.status_code)
                    failure = UpstreamError(f"upstream HTTP {response.status_code}: {message}",
                                              status=response.status_code, kind=kind,
                                              retryable=response.status_code in _RETRYABLE and kind != "exhausted")
            if not failure.retryable or attempt >= upstream.config.upstream_retries:
                raise failure
            wait = min(upstream.config.max_retry_wait, 0.25 * 2 ** attempt)
            if response is not None and (asked := _retry_after(response)) is not None:
                if asked > upstream.config.max_retry_wait:
                    raise failure  # this request fails; nothing else waits for it
                wait = asked
            attempt += 1
            logger.info("upstream retry %d in %.2f s: %s", attempt, wait, failure)
            await asyncio.sleep(wait)

    def _enter(self) -> None:
        stats, upstream = self._stats, self.upstream
        stats.calls += 1
        stats.inflight += 1
        stats.max_inflight = max(stats.max_inflight, stats.inflight)
        upstream.inflight += 1
        upstream.max_inflight = max(upstream.max_inflight, upstream.inflight)

    def _leave(self) -> None:
        self._stats.inflight -= 1
        self.upstream.inflight -= 1

    def _samples(self, reply: Mapping[str, Any]) -> list[Sample]:
        choices = sorted((c for c in reply["choices"] if isinstance(c, dict)), key=lambda c: c.get("index", 0))
        reported = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        prompt_details = reported.get("prompt_tokens_details") or {}
        completion_details = reported.get("completion_tokens_details") or {}
        total = Usage(prompt_tokens=int(reported.get("prompt_tokens") or 0),
                      completion_tokens=int(reported.get("completion_tokens") or 0),
                      cached_tokens=int(prompt_details.get("cached_tokens") or 0),
                      reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0))
        self.usage.add(total)
        self._stats.usage.add(total)
        messages = [c.get("message") if isinstance(c.get("message"), dict) else {} for c in choices]
        texts = [self._text(m) for m in messages]
        samples = []
        for choice, message, text, share in zip(choices, messages, texts,
                                                split_usage(total, [len(t or "") for t in texts]), strict=True):
            finish = choice.get("finish_reason")
            if text is not None:
                if text not in self.messages:
                    self.order.append(text)
                self.messages.setdefault(text, message)
                self.finish.setdefault(text, finish)
            samples.append(Sample(text, self._vote(message, text, finish), share, finish))
        return samples

    def _text(self, message: Mapping[str, Any]) -> str | None:
        """The sample's text as the engine sees it: the content, or for a tool call its canonical form."""
        if self.vote == "tools" and message.get("tool_calls"):
            return json.dumps({"tool_calls": message["tool_calls"]}, sort_keys=True, ensure_ascii=False)
        content = message.get("content")
        return content if isinstance(content, str) and content else None

    def _vote(self, message: Mapping[str, Any], text: str | None, finish: str | None) -> str | None:
        """The vote when it is not an extracted answer (None lets the engine extract one from the text)."""
        if self.vote == "answer":
            return None
        if finish == "length":
            return None  # cut off: its JSON or arguments are incomplete
        if self.vote == "tools":
            calls = tool_calls_vote(message.get("tool_calls"))
            if calls is not None:
                return calls
            content = message.get("content")
            return None if not content else VOTE_PREFIX + "content:" + " ".join(str(content).split())
        return json_vote(text)


#: Fields of a sample request that are ours to set or that do not change a sample (OpenAI's bookkeeping).
_LOCAL_IGNORED = frozenset({"model", "messages", "n", "seed", "user", "metadata", "store", "service_tier"})


def local_sampling(local: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """A request's own sampling parameters for ``local``, a model in this process (``max_completion_tokens`` is
    its ``max_tokens``).

    Raises ``ApiError`` 400 for a parameter the local model cannot honour (``unsupported_parameter``: ``tools``,
    ``response_format``, ``logit_bias``, ...) or a value out of its range (``invalid_value``, e.g. ``max_tokens``
    past its context): refused before anything is generated, never silently dropped.
    """
    sampling: dict[str, Any] = {}
    for name, value in params.items():
        if name in _LOCAL_IGNORED or value is None:
            continue
        if name not in REQUEST_PARAMETERS and name != "max_completion_tokens":
            raise ApiError(400, f"{name}: not supported by the local model (it takes "
                                f"{', '.join(sorted(REQUEST_PARAMETERS))} per request); drop it",
                           "unsupported_parameter", param=name)
        sampling["max_tokens" if name == "max_completion_tokens" else name] = value
    try:
        local.request_options(sampling)
    except ConfigError as error:
        raise ApiError(400, str(error), "invalid_value", param=str(error).split(":", 1)[0]) from None
    return sampling


class LocalSampler(RequestSampler):
    """A ``RequestSampler`` whose samples come from a model in this process (``upstream.local``, e.g. a
    ``LlamaCppBackend``) instead of an HTTP upstream: the same voting, usage and failure bookkeeping.

    The request's sampling parameters (``local_sampling``) reach the model; one it cannot honour is refused here,
    when the sampler is made, with a 400 naming it."""

    def __init__(self, upstream: Upstream, model: str, params: Mapping[str, Any], vote: VoteMode) -> None:
        super().__init__(upstream, model, params, vote)
        self.sampling = local_sampling(upstream.local, params)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        local = self.upstream.local
        try:
            async with self.upstream.limit:
                self._enter()
                try:
                    samples = await local.agenerate(body["messages"], int(body.get("n", 1)), seed=body.get("seed"),
                                                    sampling=self.sampling)
                finally:
                    self._leave()
        except BackendError as error:
            raise UpstreamError(f"the local model failed: {error}", status=None, kind=error.kind,
                                retryable=False) from None
        usage = Usage()
        for sample in samples:
            usage.add(sample.usage)
        return {"choices": [{"index": i, "message": {"role": "assistant", "content": sample.text},
                             "finish_reason": sample.finish_reason} for i, sample in enumerate(samples)],
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}}
