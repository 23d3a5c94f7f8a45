"""OpenAIBackend against real HTTP servers on 127.0.0.1: the replay server and a scripted fake."""

from __future__ import annotations

import logging
import math
import socket
import time
import traceback
from pathlib import Path

import pytest

from dynscaling.backends.openai import OpenAIBackend, split_usage
from dynscaling.errors import BackendError, ConfigError
from dynscaling.replay_server import FaultPlan, ReplayServer
from dynscaling.types import Usage
from fakes import Reply, ScriptedServer, completion, error_body, opening, run, tiny_pool

KEY = "sk-test-SECRET123"


def backend_for(url: str, **kwargs: object) -> OpenAIBackend:
    options: dict[str, object] = {"api_key": KEY, "backoff_base": 0.01, "backoff_max": 0.05}
    options.update(kwargs)
    return OpenAIBackend("replay", base_url=url, **options)  # type: ignore[arg-type]


async def generate(backend: OpenAIBackend, messages: list, n: int = 1, seed: int | None = None) -> list:
    try:
        return await backend.agenerate(messages, n, seed=seed)
    finally:
        await backend.aclose()


async def failure(backend: OpenAIBackend, messages: list, n: int = 1) -> BackendError:
    try:
        await backend.agenerate(messages, n)
    except BackendError as error:
        return error
    finally:
        await backend.aclose()
    raise AssertionError("agenerate did not fail")


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert "SECRET123" not in text


class TestSamples:
    def test_n_samples_come_from_one_request_without_answers(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=6)
        with ReplayServer(pool) as server:
            samples = run(generate(backend_for(server.base_url), opening(pool.entries[0].question), n=4))
        assert len(samples) == 4
        assert server.stats.requests == 1
        assert all(s.text and s.answer is None and s.finish_reason == "stop" for s in samples)
        assert len({s.text for s in samples}) == 4

    def test_fewer_choices_are_filled_with_single_requests(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=8)
        with ReplayServer(pool, faults=FaultPlan(fewer_choices=1.0)) as server:
            backend = backend_for(server.base_url)
            samples = run(generate(backend, opening(pool.entries[0].question), n=4))
        assert len(samples) == 4 and all(s.text for s in samples)
        assert len({s.text for s in samples}) == 4
        assert server.stats.faults == {"fewer_choices": 1}
        first = server.stats.choices - (server.stats.requests - 1)  # the refills are n=1 each
        assert 1 <= first < 4 and server.stats.requests == 1 + 4 - first
        assert backend.requests == server.stats.requests and backend.retries == 0
        assert sum(s.usage.prompt_tokens for s in samples) == server.stats.prompt_tokens
        assert sum(s.usage.completion_tokens for s in samples) == server.stats.completion_tokens

    def test_refills_get_their_own_seeds_and_parameters_pass_through(self) -> None:
        replies = [Reply(body=completion(["one"])), Reply(body=completion(["two"]))]
        with ScriptedServer(replies) as fake:
            backend = backend_for(fake.base_url, temperature=0.7, top_p=0.9, max_tokens=64, stop=["\n\n\n"],
                                  extra_body={"top_k": 20})
            samples = run(generate(backend, [{"role": "user", "content": "hi"}], n=3, seed=10))
        bodies = [r["body"] for r in fake.requests]
        assert [s.text for s in samples] == ["one", "two", "two"]
        assert bodies[0]["n"] == 3 and bodies[0]["seed"] == 10
        assert sorted(b["seed"] for b in bodies[1:]) == [11, 12] and all(b["n"] == 1 for b in bodies[1:])
        for body in bodies:
            assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["top_k"]) == (
                0.7, 0.9, 64, ["\n\n\n"], 20)
        assert fake.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"

    def test_no_seed_is_sent_unless_given(self) -> None:
        with ScriptedServer([Reply(body=completion(["x"]))]) as fake:
            run(generate(backend_for(fake.base_url), [{"role": "user", "content": "hi"}]))
        assert "seed" not in fake.requests[0]["body"]

    def test_empty_content_is_text_none(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=6)
        with ReplayServer(pool, faults=FaultPlan(empty=1.0)) as server:
            one = run(generate(backend_for(server.base_url), opening(pool.entries[0].question)))
            three = run(generate(backend_for(server.base_url), opening(pool.entries[1].question), n=3))
        assert one[0].text is None and one[0].finish_reason == "stop"
        assert [s.text is None for s in three].count(True) == 1

    def test_finish_reason_length_is_passed_through(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(length=1.0)) as server:
            cut = run(generate(backend_for(server.base_url), opening(pool.entries[0].question)))
        with ReplayServer(pool) as server:
            capped = run(generate(backend_for(server.base_url, max_tokens=2), opening(pool.entries[0].question)))
        assert cut[0].finish_reason == "length" and cut[0].text
        assert capped[0].finish_reason == "length" and len(capped[0].text) == 8


class TestUsage:
    def test_shares_of_one_response_sum_exactly_to_the_reported_usage(self) -> None:
        body = completion(["a" * 10, "b" * 25, None, "c" * 3], prompt=101, completion_tokens=77, cached=33,
                          reasoning=13)
        with ScriptedServer([Reply(body=body)]) as fake:
            backend = backend_for(fake.base_url, price_input=2.5, price_output=10.0, price_cached_input=1.25)
            samples = run(generate(backend, [{"role": "user", "content": "hi"}], n=4))
        shares = [s.usage for s in samples]
        assert sum(u.prompt_tokens for u in shares) == 101
        assert sum(u.completion_tokens for u in shares) == 77
        assert sum(u.cached_tokens for u in shares) == 33
        assert sum(u.reasoning_tokens for u in shares) == 13
        assert samples[2].text is None and shares[2].completion_tokens == 0  # no content, no completion share
        assert shares[1].completion_tokens > shares[0].completion_tokens > shares[3].completion_tokens
        expected_cost = ((101 - 33) * 2.5 + 33 * 1.25 + 77 * 10.0) / 1e6
        assert math.isclose(math.fsum(u.cost_usd for u in shares), expected_cost, rel_tol=1e-12)
        assert backend.usage.prompt_tokens == 101 and math.isclose(backend.usage.cost_usd, expected_cost)

    def test_shares_match_the_replay_server_totals(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=9)
        messages = opening(pool.entries[0].question)

        async def main(backend: OpenAIBackend) -> list:
            try:
                return [s for _ in range(3) for s in await backend.agenerate(messages, 3)]
            finally:
                await backend.aclose()

        with ReplayServer(pool) as server:
            samples = run(main(backend_for(server.base_url)))
        total = Usage()
        for s in samples:
            total.add(s.usage)
        assert (total.prompt_tokens, total.completion_tokens, total.cached_tokens) == (
            server.stats.prompt_tokens, server.stats.completion_tokens, server.stats.cached_tokens)
        assert total.cached_tokens > 0  # the repeated prompt was cached

    @pytest.mark.parametrize("weights", [[1, 1, 1], [0, 0, 0], [5, 0, 2, 9], [1], [3, 3, 3, 3, 3, 3, 3]])
    def test_split_usage_is_exact_for_any_weights(self, weights: list[int]) -> None:
        total = Usage(prompt_tokens=97, completion_tokens=1001, cached_tokens=31, reasoning_tokens=7)
        shares = split_usage(total, weights)
        assert len(shares) == len(weights)
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
            assert sum(getattr(u, name) for u in shares) == getattr(total, name)
        for name in ("prompt_tokens", "cached_tokens"):  # one shared prompt: split evenly, whatever the lengths
            assert max(getattr(u, name) for u in shares) - min(getattr(u, name) for u in shares) <= 1
        if len(set(weights)) == 1:
            assert max(u.completion_tokens for u in shares) - min(u.completion_tokens for u in shares) <= 1


class TestRetries:
    def test_rate_limits_are_retried_after_retry_after(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=10)
        faults = FaultPlan(rate_limit=0.5, retry_after=0.15)

        async def main(backend: OpenAIBackend) -> list:
            try:
                return [await backend.agenerate(opening(pool.entries[0].question)) for _ in range(6)]
            finally:
                await backend.aclose()

        with ReplayServer(pool, faults=faults, seed=1) as server:
            backend = backend_for(server.base_url, max_retries=10)
            started = time.perf_counter()
            results = run(main(backend))
            wall = time.perf_counter() - started
        limited = server.stats.faults["rate_limit"]
        assert limited >= 2
        assert all(len(r) == 1 and r[0].text for r in results)
        assert backend.retries == limited and backend.errors == {"rate_limit": limited}
        assert backend.requests == server.stats.requests == 6 + limited
        assert wall >= limited * 0.15  # backoff alone (backoff_base=0.01) would be far shorter
        assert backend.suggested_concurrency is not None and backend.suggested_concurrency >= 1
        assert backend.backoff_until > 0 and not backend.failures

    def test_a_429_pauses_new_requests_until_backoff_until(self) -> None:
        replies = [Reply(429, error_body("slow down", "rate_limit_exceeded"), {"retry-after-ms": "200"}),
                   Reply(body=completion(["ok"]))]
        with ScriptedServer(replies) as fake:
            backend = backend_for(fake.base_url)
            started = time.perf_counter()
            samples = run(generate(backend, [{"role": "user", "content": "hi"}]))
            wall = time.perf_counter() - started
        assert samples[0].text == "ok"
        assert wall >= 0.2
        assert backend.suggested_concurrency == 2  # halved from one in flight, floored at 1, then +1 on success
        assert backend.backoff_remaining() == 0.0

    def test_server_errors_are_retried_then_raised(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(server_error=1.0)) as server:
            backend = backend_for(server.base_url, max_retries=2)
            error = run(failure(backend, opening(pool.entries[0].question)))
        assert (error.kind, error.retryable) == ("server_error", True)
        assert server.stats.requests == backend.requests == 3
        assert backend.retries == 2
        assert backend.failures == {"server_error": 1}
        assert "HTTP 500" in str(error)

    def test_timeouts_are_retried_then_raised(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(timeout=1.0, hang_seconds=10)) as server:
            backend = backend_for(server.base_url, timeout=0.2, max_retries=1)
            error = run(failure(backend, opening(pool.entries[0].question)))
        assert (error.kind, error.retryable) == ("timeout", True)
        assert server.stats.faults == {"timeout": 2}

    def test_connection_errors(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again below: nothing listens there
        backend = backend_for(f"http://127.0.0.1:{port}/v1", max_retries=1)
        error = run(failure(backend, [{"role": "user", "content": "hi"}]))
        assert (error.kind, error.retryable) == ("connection", True)
        assert backend.requests == 2

    def test_an_exhausted_pool_is_not_retried(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=2)
        messages = opening(pool.entries[0].question)

        async def main(backend: OpenAIBackend) -> BackendError:
            try:
                await backend.agenerate(messages, 2)
                await backend.agenerate(messages, 1)
            except BackendError as error:
                return error
            finally:
                await backend.aclose()
            raise AssertionError("no error")

        with ReplayServer(pool) as server:
            backend = backend_for(server.base_url)
            error = run(main(backend))
        assert (error.kind, error.retryable) == ("exhausted", False)
        assert server.stats.requests == 2 and backend.retries == 0

    def test_bad_requests_are_not_retried(self, tmp_path: Path) -> None:
        with ReplayServer(tiny_pool(tmp_path)) as server:
            backend = backend_for(server.base_url)
            error = run(failure(backend, [{"role": "user", "content": "not in the pool"}]))
        assert (error.kind, error.retryable) == ("bad_request", False)
        assert server.stats.requests == 1


class TestApiKey:
    def test_the_key_is_masked_in_repr(self) -> None:
        backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key=KEY)
        try:
            assert_no_key(repr(backend), str(backend))
            assert "api_key='***'" in repr(backend)
        finally:
            run(backend.aclose())

    @pytest.mark.parametrize(("status", "kind"), [(401, "auth"), (500, "server_error"), (400, "bad_request")])
    def test_the_key_never_reaches_errors_or_logs(self, status: int, kind: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
        replies = [Reply(status, error_body("rejected", type_="invalid_request_error"))]
        with ScriptedServer(replies, echo_auth=True) as fake, caplog.at_level(logging.DEBUG):
            backend = backend_for(fake.base_url, max_retries=1)
            error = run(failure(backend, [{"role": "user", "content": "hi"}]))
        assert error.kind == kind
        assert len(fake.requests) == backend.requests == (2 if error.retryable else 1)  # no hidden SDK retries
        assert "Bearer ***" in str(error)  # the server did echo it, and it was scrubbed
        assert_no_key(str(error), repr(error), "".join(traceback.format_exception(error)), caplog.text,
                      repr(backend))
        if kind == "server_error":
            assert "retry 1/1" in caplog.text

    def test_the_key_can_come_from_a_named_environment_variable(self, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MY_REPLAY_KEY", KEY)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server:
            backend = OpenAIBackend("m", base_url=server.base_url, api_key_env="MY_REPLAY_KEY")
            assert run(generate(backend, opening(pool.entries[0].question)))[0].text
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            OpenAIBackend("m", base_url="https://api.openai.com/v1")
        with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
            OpenAIBackend("m", api_key_env="NOT_SET_ANYWHERE")


def test_parameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="top_p"):
        OpenAIBackend("m", api_key=KEY, top_p=0)
    with pytest.raises(ConfigError, match="max_retries"):
        OpenAIBackend("m", api_key=KEY, max_retries=-1)
    with pytest.raises(ConfigError, match="price_output"):
        OpenAIBackend("m", api_key=KEY, price_output=-1)
