"""The OpenAI-compatible backend: chat completions over HTTP through the official ``openai`` SDK.

Works with any server that speaks the chat completions API: OpenAI, vLLM, SGLang, llama.cpp server, Ollama,
Gemini's OpenAI endpoint, gateways, and ``dynscaling.replay_server``.

**Retries are ours.** The SDK's own retries are off (``max_retries=0`` on the client), so every retry is counted
here. Rate limits (429), server errors (5xx, 408, a 409 other than ``pool_exhausted``), timeouts and connection
errors are retried up to ``max_retries`` times with exponential backoff and jitter; a ``Retry-After`` (or
``retry-after-ms``) header, when present, sets the wait instead. What survives the retries raises
``BackendError`` with ``kind`` one of ``KINDS``; bad requests (4xx), authentication errors (401/403) and an
exhausted replay pool (409 ``pool_exhausted``, kind ``exhausted``) are never retried.

**Adaptive concurrency hint.** After a 429 the backend sets ``backoff_until`` (a ``time.monotonic()`` instant:
no request of this backend starts before it, and a driver should start none either) and ``suggested_concurrency``:
None until the first 429, then half the requests that were in flight (halved at most once per backoff window),
growing by one after every ``suggested_concurrency`` successful requests (additive increase, multiplicative
decrease). A driver keeps at most ``min(C, suggested_concurrency)`` requests in flight.

**Usage.** Each ``Sample`` carries a share of its response's usage, and the shares of one response sum exactly to
what the server reported: prompt and cached tokens are split evenly (the choices shared one prompt), completion
and reasoning tokens in proportion to each choice's length (largest remainder), and the cost follows from the
prices. Totals are in ``usage``.

**The API key** is never shown: not in ``repr``, logs or error messages (it is scrubbed from any text a server
sends back).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import math
import os
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from ..errors import BackendError, ConfigError, PartialSamplesError, redact
from ..types import Sample, Usage
from .usage import split_usage

__all__ = ["KINDS", "NO_KEY", "OpenAIBackend", "is_local_url", "split_usage"]

logger = logging.getLogger("dynscaling.backends.openai")

#: The kinds of ``BackendError`` this backend raises.
KINDS: tuple[str, ...] = ("rate_limit", "server_error", "timeout", "connection", "bad_request", "auth", "exhausted")


#: The key sent to a local server when none is configured: vLLM, SGLang, llama.cpp and Ollama accept any value.
NO_KEY = "EMPTY"

#: Request fields that the budget, the journal or one of our own options decides, so ``extra_body`` may not:
#: field -> what controls it. A silent override here would overspend the budget or mislabel the journal.
_RESERVED_FIELDS: dict[str, str] = {
    "n": "the budget and the strategy (--budget, --strategy) decide how many samples each request asks for",
    "best_of": "the budget counts every sample a server generates (--budget, --strategy)",
    "use_beam_search": "the budget counts every sample a server generates (--budget, --strategy)",
    "max_tokens": "the completion cap is --max-tokens (max_tokens=...)",
    "max_completion_tokens": "the completion cap is --max-tokens, sent under the name --max-tokens-field gives",
    "max_new_tokens": "the completion cap is --max-tokens (max_tokens=...)",
    "max_output_tokens": "the completion cap is --max-tokens (max_tokens=...)",
    "num_predict": "the completion cap is --max-tokens (max_tokens=...)",
    "model": "the model is --model (model=...)",
    "messages": "the messages are built from the questions and the prompts (--prompts)",
    "seed": "each request's seed follows from --seed, so that a resumed run asks for the same samples",
    "stream": "dynscaling reads whole responses, with their usage",
    "stream_options": "dynscaling reads whole responses, with their usage",
    "temperature": "the temperature is --temperature (temperature=...)",
    "top_p": "top-p is --top-p (top_p=...)",
    "stop": "stop sequences are --stop (stop=...)",
}

#: GET /models answers that mean "this server keeps no models list" rather than "you may not".
_NO_MODELS_LIST = (404, 405, 501)


def is_local_url(base_url: str | None) -> bool:
    """Whether ``base_url`` points at this machine or a private network (where servers rarely check keys)."""
    if not base_url:
        return False
    host = (urllib.parse.urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds, fractional allowed, or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            if name == "retry-after":
                try:
                    when = email.utils.parsedate_to_datetime(value)
                except (TypeError, ValueError):
                    return None
                return max(0.0, when.timestamp() - time.time())
            continue
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _status_message(error: openai.APIStatusError) -> str:
    """The upstream's own message for an HTTP error (OpenAI's ``{"error": {"message": ...}}`` or a flat one)."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    message = inner.get("message") if isinstance(inner.get("message"), str) else None
    return message or error.message


class OpenAIBackend:
    """Samples from an OpenAI-compatible chat completions endpoint.

    Args:
        model: the model name sent with each request.
        base_url: the API root, e.g. ``http://127.0.0.1:8001/v1``; None means the SDK's default (OpenAI, or the
            ``OPENAI_BASE_URL`` environment variable).
        api_key: the key; when None it is read from the environment variable ``api_key_env``
            (default ``OPENAI_API_KEY``). With no key at all, a local server (loopback or private address) is
            sent the placeholder ``NO_KEY``; any other host is refused unless ``allow_no_key=True``.
        api_key_env: the environment variable holding the key.
        allow_no_key: send the placeholder to any host when no key is set (a gateway that checks none).
        temperature, top_p, max_tokens, stop: sampling parameters, sent when not None.
        max_tokens_field: the request field that carries ``max_tokens`` (``max_completion_tokens`` for models
            that want it instead).
        extra_body: extra JSON fields for every request (server-specific parameters such as ``top_k``). Fields
            that the budget or an option of ours controls (``n``, ``max_tokens``, ``seed``, ...) are refused
            with ``ConfigError`` naming what controls them.
        price_input, price_output: USD per million prompt / completion tokens.
        price_cached_input: USD per million cached prompt tokens (default: ``price_input``).
        timeout: seconds before a request is abandoned (and retried).
        max_retries: retries after the first attempt, for retryable failures.
        backoff_base, backoff_max: the exponential backoff's first and largest wait, in seconds, before jitter.
        max_retry_after: a ``Retry-After`` longer than this many seconds is not waited for: that request fails
            at once, and no other request waits either. No shared backoff ever lasts longer than this.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, allow_no_key: bool = False, temperature: float | None = None,
                 top_p: float | None = None, max_tokens: int | None = None,
                 max_tokens_field: str = "max_tokens", stop: str | Sequence[str] | None = None,
                 extra_body: Mapping[str, Any] | None = None, price_input: float = 0.0, price_output: float = 0.0,
                 price_cached_input: float | None = None, timeout: float = 60.0, max_retries: int = 4,
                 backoff_base: float = 0.5, backoff_max: float = 30.0, max_retry_after: float = 120.0) -> None:
        if not model:
            raise ConfigError("model must be a non-empty model name")
        if api_key is not None and api_key_env is not None:
            raise ConfigError("give api_key or api_key_env, not both")
        env = api_key_env or "OPENAI_API_KEY"
        key = api_key if api_key is not None else os.environ.get(env)
        if not key:
            if not (allow_no_key or is_local_url(base_url)):
                raise ConfigError(f"no API key for {base_url or 'the OpenAI API'}: set the environment variable "
                                  f"{env} (for a server that checks no key, pass --no-api-key / allow_no_key=True)")
            key = NO_KEY
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"max_tokens_field must be max_tokens or max_completion_tokens, got {max_tokens_field!r}")
        for name in extra_body or {}:
            if name in _RESERVED_FIELDS:
                raise ConfigError(f"--extra-body (extra_body) may not set {name!r}: {_RESERVED_FIELDS[name]}")
        if temperature is not None and temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        for name, value in (("price_input", price_input), ("price_output", price_output),
                            ("price_cached_input", price_cached_input)):
            if value is not None and not value >= 0:
                raise ConfigError(f"{name} must be >= 0 USD per million tokens, got {value}")
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if not 0 <= backoff_base <= backoff_max:
            raise ConfigError(f"need 0 <= backoff_base <= backoff_max, got {backoff_base} and {backoff_max}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = None if api_key is not None else env
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.max_tokens_field = max_tokens_field
        self.stop = stop
        self.extra_body = dict(extra_body) if extra_body else None
        self.price_input = price_input
        self.price_output = price_output
        self.price_cached_input = price_input if price_cached_input is None else price_cached_input
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._client = openai.AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0)
        self._jitter = random.Random()  # timing only: never affects which samples or answers a run sees
        # counters
        self.requests = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()  # every failed attempt, by kind
        self.failures: Counter[str] = Counter()  # failures that survived the retries (raised), by kind
        self.usage = Usage()
        # adaptive concurrency hint
        self.inflight = 0
        self.backoff_until = 0.0
        self.suggested_concurrency: int | None = None
        self._successes_since_change = 0

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, api_key='***', "
                f"max_retries={self.max_retries})")

    __str__ = __repr__

    # ---- the protocol --------------------------------------------------------------------------------------

    async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *,
                        seed: int | None = None) -> list[Sample]:
        """``n`` samples for one conversation, in one request when the server honours ``n``.

        When the server returns fewer choices than asked, the missing ones are requested with separate ``n=1``
        requests (concurrently; with ``seed`` given, the i-th sample's request uses ``seed + i``), so the result
        has exactly ``n`` samples. When the refills fail for good, ``PartialSamplesError`` carries the choices
        that did arrive: they were paid for, and the caller keeps them. Samples carry no answer: the engine
        extracts it.
        """
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        samples = await self._complete(messages, n, seed)
        rounds = 0
        last_error: BackendError | None = None
        while len(samples) < n:
            rounds += 1
            if rounds > self.max_retries + 1:
                cause = f": {last_error}" if last_error is not None else ""
                error = PartialSamplesError(f"{self.model}: the server returned {len(samples)} of {n} choices "
                                            f"after {rounds} rounds of requests{cause}", samples[:n])
                self.failures[error.kind] += 1
                raise error
            have = len(samples)
            # Each refill stands alone: one that fails does not cancel (and so throw away) the others.
            refills = await asyncio.gather(*[
                self._complete(messages, 1, None if seed is None else seed + have + i) for i in range(n - have)],
                return_exceptions=True)
            for outcome in refills:
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, BackendError):
                        raise outcome
                    last_error = outcome
                else:
                    samples.extend(outcome)
            if len(samples) == have and last_error is not None:
                rounds = self.max_retries + 1  # every refill failed after its own retries: stop here
        return samples[:n]

    async def probe(self, timeout: float = 8.0) -> list[str] | None:
        """One free request before any sample: ``GET /models``, not retried, within ``timeout`` seconds.

        Raises ``BackendError`` (kind ``connection``, ``dns``, ``auth`` or ``unknown_model``) with one line
        naming the URL and the cause when no run could succeed. Returns the model ids the server lists, or None
        when it keeps no list (404/405/501, as some gateways do), answers with a server error or not within
        ``timeout``: the run's own retries and circuit breaker deal with those."""
        url = str(self._client.base_url).rstrip("/")
        try:
            page = await self._client.with_options(timeout=timeout).models.list()
        except openai.APITimeoutError:
            # listening but slow (a loaded server): not proof that no run can succeed, so go on
            logger.warning("%s: no answer to GET /models within %g s; going on without checking the model", url,
                           timeout)
            return None
        except openai.APIConnectionError as error:
            cause = " ".join(str(error.__cause__ or error).split())
            dns = any(s in cause for s in ("Name or service not known", "nodename nor servname", "name resolution",
                                           "No address associated"))
            raise BackendError(self._redact(f"{url}: cannot connect ({cause})"),
                               kind="dns" if dns else "connection") from None
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                raise BackendError(self._redact(f"{url}: HTTP {error.status_code}: {_status_message(error)} "
                                                f"(check the key in {self.api_key_env or 'api_key'})"),
                                   kind="auth") from None
            logger.info("%s: GET /models answered HTTP %d; going on without checking the model", url,
                        error.status_code)
            return None
        except openai.APIError as error:  # a body the SDK could not read: not a models list
            logger.info("%s: GET /models gave no list (%s); going on", url, self._redact(str(error)))
            return None
        listed = [str(m.id) for m in page.data if getattr(m, "id", None)]
        # Ollama lists "name:latest" and serves "name" too; Gemini's endpoint lists "models/name"
        known = set(listed) | {m.removesuffix(":latest") for m in listed} | {m.removeprefix("models/")
                                                                           for m in listed}
        if listed and self.model not in known and self.model.removeprefix("models/") not in known:
            shown = ", ".join(listed[:8]) + (f", ... ({len(listed)} in all)" if len(listed) > 8 else "")
            raise BackendError(self._redact(f"{url}: model {self.model!r} not found (the server lists: {shown})"),
                               kind="unknown_model")
        return listed

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def backoff_remaining(self) -> float:
        """Seconds until ``backoff_until`` (0 when no backoff is in force)."""
        return max(0.0, self.backoff_until - time.monotonic())

    # ---- one request, with retries -------------------------------------------------------------------------

    def _params(self, messages: Sequence[Mapping[str, Any]], n: int, seed: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": list(messages), "n": n}
        for name in ("temperature", "top_p", "max_tokens", "stop"):
            value = getattr(self, name)
            if value is not None:
                field = self.max_tokens_field if name == "max_tokens" else name
                params[field] = value if name != "stop" or isinstance(value, str) else list(value)
        if seed is not None:
            params["seed"] = seed
        if self.extra_body:
            params.update(self.extra_body)  # merged into the JSON body, as the SDK's extra_body would be
        return params

    async def _complete(self, messages: Sequence[Mapping[str, Any]], n: int, seed: int | None) -> list[Sample]:
        params = self._params(messages, n, seed)
        attempt = 0
        while True:
            wait = self.backoff_remaining()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests += 1
            self.inflight += 1
            try:
                # The SDK's low-level post: the same request, errors and response model as
                # chat.completions.create, without re-validating our already-typed parameters on every call
                # (about a millisecond of CPU per request, which at 32 in flight idles the server's slots).
                response = await self._client.post("/chat/completions", body=params, cast_to=ChatCompletion)
            except openai.APIError as raw:
                error, retry_after = self._classify(raw)
            else:
                self._succeeded()
                return self._samples(response)
            finally:
                self.inflight -= 1
            self.errors[error.kind] += 1
            if retry_after is not None and retry_after > self.max_retry_after:
                # This request fails now, and alone: no shared backoff, so every other request goes on.
                error = BackendError(f"{error} (the server asks to wait {retry_after:g} s, more than "
                                     f"max_retry_after={self.max_retry_after:g})", retryable=True, kind=error.kind)
                self.failures[error.kind] += 1
                raise error
            if error.kind == "rate_limit":
                self._rate_limited(retry_after)
            if not error.retryable or attempt >= self.max_retries:
                self.failures[error.kind] += 1
                if error.retryable:
                    logger.warning("giving up after %d attempts: %s", attempt + 1, error)
                raise error
            delay = self._delay(attempt, retry_after)
            self.retries += 1
            attempt += 1
            logger.info("retry %d/%d in %.2f s: %s", attempt, self.max_retries, delay, error)
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * (1.0 + 0.1 * self._jitter.random())  # a little spread, never sooner
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** attempt)
        return ceiling * (0.5 + 0.5 * self._jitter.random())

    def _redact(self, text: str) -> str:
        return redact(text, [self._client.api_key])

    def _classify(self, error: openai.APIError) -> tuple[BackendError, float | None]:
        """Our error for an SDK error, and the server's Retry-After in seconds if it sent one."""
        retry_after: float | None = None
        if isinstance(error, openai.APITimeoutError):
            kind, retryable, detail = "timeout", True, f"no response within {self.timeout:g} s"
        elif isinstance(error, openai.APIConnectionError):
            cause = error.__cause__
            detail = f"cannot connect: {cause}" if cause is not None else "cannot connect"
            kind, retryable = "connection", True
        elif isinstance(error, openai.APIStatusError):
            status = error.status_code
            retry_after = _retry_after(error.response.headers)
            detail = f"HTTP {status}: {_status_message(error)}"
            code = error.code
            if status == 429:
                # OpenAI's out-of-credit error is a 429 too, but waiting does not fix it.
                kind, retryable = "rate_limit", code != "insufficient_quota"
            elif status == 409 and code == "pool_exhausted":
                kind, retryable = "exhausted", False
            elif status in (401, 403):
                kind, retryable = "auth", False
            elif status == 408:
                kind, retryable = "timeout", True
            elif status == 409 or status >= 500:
                kind, retryable = "server_error", True
            else:
                kind, retryable = "bad_request", False
        else:  # a response the SDK could not read
            kind, retryable, detail = "server_error", True, error.message
        detail = self._redact(" ".join(str(detail).split()))[:500]
        return BackendError(f"{self.model}: {detail}", retryable=retryable, kind=kind), retry_after

    # ---- adaptive concurrency ------------------------------------------------------------------------------

    def _rate_limited(self, retry_after: float | None) -> None:
        now = time.monotonic()
        in_window = now < self.backoff_until
        wait = min(retry_after if retry_after is not None else self.backoff_base, self.max_retry_after)
        self.backoff_until = max(self.backoff_until, now + wait)
        if in_window and self.suggested_concurrency is not None:
            return  # one decrease per backoff window: requests that were already in flight are not news
        current = self.inflight + 1  # the request that was just refused
        ceiling = current if self.suggested_concurrency is None else min(self.suggested_concurrency, current)
        self.suggested_concurrency = max(1, ceiling // 2)
        self._successes_since_change = 0
        logger.info("rate limited: backing off %.2f s, suggested concurrency %d", wait, self.suggested_concurrency)

    def _succeeded(self) -> None:
        if self.suggested_concurrency is None:
            return
        self._successes_since_change += 1
        if self._successes_since_change >= self.suggested_concurrency:
            self.suggested_concurrency += 1
            self._successes_since_change = 0

    # ---- responses -----------------------------------------------------------------------------------------

    def _cost(self, usage: Usage) -> float:
        uncached = usage.prompt_tokens - usage.cached_tokens
        return (uncached * self.price_input + usage.cached_tokens * self.price_cached_input
                + usage.completion_tokens * self.price_output) / 1e6

    def _samples(self, response: Any) -> list[Sample]:
        choices = sorted(response.choices, key=lambda c: c.index)
        texts = [c.message.content if c.message is not None and c.message.content else None for c in choices]
        total = Usage()
        reported = response.usage
        if reported is not None:
            prompt_details = getattr(reported, "prompt_tokens_details", None)
            completion_details = getattr(reported, "completion_tokens_details", None)
            total = Usage(prompt_tokens=reported.prompt_tokens or 0,
                          completion_tokens=reported.completion_tokens or 0,
                          cached_tokens=getattr(prompt_details, "cached_tokens", None) or 0,
                          reasoning_tokens=getattr(completion_details, "reasoning_tokens", None) or 0)
        total.cost_usd = self._cost(total)
        self.usage.add(total)
        shares = split_usage(total, [len(t or "") for t in texts])
        samples = []
        for choice, text, share in zip(choices, texts, shares, strict=True):
            share.cost_usd = self._cost(share)
            samples.append(Sample(text, None, share, choice.finish_reason))
        logger.debug("%s: %d choices, %d prompt + %d completion tokens", self.model, len(samples),
                     total.prompt_tokens, total.completion_tokens)
        return samples
