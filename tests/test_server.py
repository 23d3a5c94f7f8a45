"""`dynscaling serve` end to end: the official openai client -> our Starlette app under uvicorn on 127.0.0.1 ->
OpenAIBackend -> the replay server (recorded model outputs) on 127.0.0.1. No HTTP layer is patched."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from dynscaling import load_pool  # noqa: E402
from dynscaling.pools import bundled_pools  # noqa: E402
from dynscaling.replay_server import ReplayServer  # noqa: E402
from dynscaling.server import ServeConfig, create_app  # noqa: E402
from serving import Uvicorn  # noqa: E402

DATE_POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))


@pytest.fixture(scope="module")
def pool():  # noqa: ANN201
    return load_pool(DATE_POOL)


@pytest.fixture()
def upstream(pool) -> Iterator[ReplayServer]:  # noqa: ANN001
    with ReplayServer(pool, latency=0.01, seed=3) as server:
        yield server


@pytest.fixture()
def serve(upstream: ReplayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-upstream-SECRET")
    config = ServeConfig(upstream_url=upstream.base_url, upstream_model=upstream.model,
                         upstream_api_key_env="UPSTREAM_KEY", concurrency=4, answer_type="date",
                         journal_path=tmp_path / "journal.sqlite", max_body_bytes=200_000)
    with Uvicorn(create_app(config)) as url:
        yield url


class Reply:
    """A raw HTTP reply (stdlib urllib: for requests the openai client would refuse to send)."""

    def __init__(self, status: int, text: str) -> None:
        self.status_code = status
        self.text = text

    def json(self) -> dict:
        return json.loads(self.text)


def post(url: str, content: bytes | str, timeout: float = 60) -> Reply:
    data = content.encode() if isinstance(content, str) else content
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode())


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)


def ask(pool, i: int) -> list[dict[str, str]]:  # noqa: ANN001
    return [{"role": "user", "content": pool.entries[i].question.text}]


class TestSingleRequests:
    def test_a_scaled_request_returns_a_voted_completion_with_summed_usage(self, serve, upstream, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            response = c.chat.completions.create(model=f"dynscaling/6/{upstream.model}", messages=ask(pool, 0))
        extra = response.model_extra["dynscaling"]
        assert 1 <= extra["samples"] <= 6
        assert sum(v for _, v in extra["votes"]) + extra["abstentions"] == extra["samples"]
        assert 0.5 <= extra["confidence"] <= 1
        content = response.choices[0].message.content
        assert extra["answer"] is not None and extra["answer"] in content
        stats = upstream.stats.snapshot()
        assert stats["samples"] == extra["samples"]
        assert response.usage.prompt_tokens == stats["prompt_tokens"]
        assert response.usage.completion_tokens == stats["completion_tokens"]

    def test_a_streamed_request_sends_the_chosen_answer_after_selection(self, serve, upstream, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            stream = c.chat.completions.create(model=f"dynscaling/4/{upstream.model}", messages=ask(pool, 1),
                                               stream=True, stream_options={"include_usage": True})
            chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        usage = [ch.usage for ch in chunks if ch.usage is not None]
        assert text and "The answer is" in text
        assert len(usage) == 1 and usage[0].completion_tokens == upstream.stats.snapshot()["completion_tokens"]

    def test_a_plain_model_name_passes_through_with_one_upstream_call(self, serve, upstream, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            response = c.chat.completions.create(model=upstream.model, messages=ask(pool, 2))
            streamed = list(c.chat.completions.create(model=upstream.model, messages=ask(pool, 3), stream=True))
        assert response.choices[0].message.content
        assert "dynscaling" not in (response.model_extra or {})
        assert "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices)
        assert upstream.stats.snapshot()["requests"] == 2

    def test_extra_body_overrides_the_strategy(self, serve, upstream, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            response = c.chat.completions.create(
                model=f"dynscaling/5/{upstream.model}", messages=ask(pool, 4),
                extra_body={"dynscaling": {"strategy": "sc", "answer_type": "date"}})
        extra = response.model_extra["dynscaling"]
        assert extra["strategy"] == "sc" and extra["samples"] == 5  # uniform: spends the whole budget


class TestConcurrency:
    def test_a_hundred_concurrent_clients_all_complete_within_the_upstream_limit(self, serve, upstream,
                                                                                 pool) -> None:  # noqa: ANN001
        async def one(c: openai.AsyncOpenAI, i: int) -> dict:
            r = await c.chat.completions.create(model=f"dynscaling/3/{upstream.model}",
                                                messages=ask(pool, i % len(pool.entries)))
            return r.model_extra["dynscaling"]

        async def all_of_them() -> list[dict]:
            async with openai.AsyncOpenAI(base_url=serve, api_key="unused", max_retries=0, timeout=120) as c:
                return await asyncio.gather(*(one(c, i) for i in range(100)))

        results = asyncio.run(all_of_them())
        assert len(results) == 100 and all(r["samples"] >= 1 for r in results)
        stats = get_json(serve.removesuffix("/v1") + "/stats")
        (model_stats,) = stats["upstream"].values()
        assert model_stats["max_inflight"] <= 4
        assert upstream.stats.snapshot()["max_active"] <= 4
        assert upstream.stats.snapshot()["samples"] == sum(r["samples"] for r in results)


class TestBatch:
    def test_a_batch_shares_one_budget_and_resubmitting_it_reuses_the_journal(self, serve, upstream,
                                                                               pool) -> None:  # noqa: ANN001
        lines = [json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": f"dynscaling/3/{upstream.model}", "messages": ask(pool, i)}})
                 for i in range(30)]
        url = serve.removesuffix("/v1") + "/v1/dynscaling/batch"
        first = post(url, "\n".join(lines), timeout=120)
        assert first.status_code == 200
        out = [json.loads(line) for line in first.text.splitlines()]
        assert [o["custom_id"] for o in out] == [f"q{i}" for i in range(30)]
        samples = [o["response"]["body"]["dynscaling"]["samples"] for o in out]
        assert sum(samples) <= 90
        served = upstream.stats.snapshot()["samples"]
        assert served == sum(samples)
        again = post(url, "\n".join(lines), timeout=120)
        assert again.status_code == 200
        assert upstream.stats.snapshot()["samples"] == served  # nothing paid twice
        assert [json.loads(x)["response"]["body"]["dynscaling"]["answer"] for x in again.text.splitlines()] == \
            [o["response"]["body"]["dynscaling"]["answer"] for o in out]


class TestBadRequests:
    @pytest.mark.parametrize(("body", "status", "code"), [
        (b"{not json", 400, "invalid_json"),
        (json.dumps({"model": "dynscaling/4/x"}).encode(), 400, "invalid_messages"),
        (json.dumps({"model": "dynscaling/lots/x", "messages": [{"role": "user", "content": "hi"}]}).encode(), 400,
         "invalid_model"),
        (json.dumps({"model": "dynscaling/4/x", "messages": [{"role": "user", "content": "hi"}],
                     "dynscaling": {"k9": 1}}).encode(), 400, "invalid_dynscaling"),
        (b"{" + b'"pad": "' + b"x" * 300_000 + b'"}', 413, "request_too_large"),
    ])
    def test_malformed_requests_get_openai_shaped_errors_and_the_server_keeps_serving(
            self, serve, upstream, pool, body: bytes, status: int, code: str) -> None:  # noqa: ANN001
        response = post(serve + "/chat/completions", body)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
        with client(serve) as c:
            ok = c.chat.completions.create(model=f"dynscaling/2/{upstream.model}", messages=ask(pool, 5))
        assert ok.choices[0].message.content

    def test_upstream_secrets_never_reach_clients(self, serve, upstream) -> None:  # noqa: ANN001
        response = post(serve + "/chat/completions", json.dumps({
            "model": "dynscaling/2/no-such-model", "messages": [{"role": "user", "content": "not in the pool"}]}))
        assert response.status_code >= 400
        assert "SECRET" not in response.text
        assert response.json()["error"]["message"]

    def test_a_required_api_key_is_enforced(self, upstream, tmp_path, monkeypatch) -> None:  # noqa: ANN001
        monkeypatch.setenv("UPSTREAM_KEY", "k")
        config = ServeConfig(upstream_url=upstream.base_url, upstream_model=upstream.model,
                             upstream_api_key_env="UPSTREAM_KEY", api_key="client-key")
        with Uvicorn(create_app(config)) as url:
            with openai.OpenAI(base_url=url, api_key="wrong", max_retries=0) as c:
                with pytest.raises(openai.AuthenticationError):
                    c.models.list()
            with openai.OpenAI(base_url=url, api_key="client-key", max_retries=0) as c:
                assert [m.id for m in c.models.list()][0] == upstream.model


class TestBatchAccuracy:
    def test_a_300_question_batch_matches_solve_on_the_same_pool_and_budget(self, pool, tmp_path,
                                                                           monkeypatch) -> None:  # noqa: ANN001
        import math
        import statistics

        from click.testing import CliRunner

        from dynscaling import Budget, replay
        from dynscaling.cli import cli
        from dynscaling.pools import Pool

        monkeypatch.setenv("UPSTREAM_KEY", "k")
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        subset = Pool(pool.name, pool.path, pool.entries[:300])
        # Through the batch endpoint: one budget of 4 samples per question across the 300 questions.
        with ReplayServer(subset, seed=21) as upstream:
            config = ServeConfig(upstream_url=upstream.base_url, upstream_model=upstream.model,
                                 upstream_api_key_env="UPSTREAM_KEY", answer_type="date", concurrency=8,
                                 strategy="dynscaling", journal_path=tmp_path / "serve.sqlite")
            lines = [json.dumps({"custom_id": e.question.id, "method": "POST", "url": "/v1/chat/completions",
                                 "body": {"model": f"dynscaling/4/{upstream.model}",
                                          "messages": [{"role": "user", "content": e.question.text}]}})
                     for e in subset.entries]
            with Uvicorn(create_app(config)) as url:
                reply = post(url.removesuffix("/v1") + "/v1/dynscaling/batch", "\n".join(lines), timeout=300)
            batch_served = upstream.stats.snapshot()["samples"]
        assert reply.status_code == 200
        golds = {e.question.id: e.question.gold for e in subset.entries}
        out = [json.loads(line) for line in reply.text.splitlines()]
        from dynscaling import answers_match

        batch_accuracy = statistics.fmean(
            answers_match(o["response"]["body"]["dynscaling"]["answer"], golds[o["custom_id"]], "date")
            for o in out)
        assert batch_served <= 4 * 300
        # The same pool, budget and strategy through `dynscaling solve`.
        batch_file = tmp_path / "in.jsonl"
        batch_file.write_text("".join(json.dumps({"id": e.question.id, "question": e.question.text,
                                                  "answer_type": "date", "gold": e.question.gold}) + "\n"
                                      for e in subset.entries))
        with ReplayServer(subset, seed=22) as upstream:
            result = CliRunner().invoke(cli, ["solve", str(batch_file), "--out", str(tmp_path / "out.jsonl"),
                                              "--base-url", upstream.base_url, "--model", upstream.model,
                                              "--journal", str(tmp_path / "solve.sqlite"), "--budget", "4",
                                              "--strategy", "dynscaling"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        solve_accuracy = statistics.fmean(bool(r["correct"]) for r in rows)
        # Recorded samples do not depend on the chain shown, so the replay bandit gives the spread of one run.
        seeds = [replay(subset, "dynscaling-parallel", Budget(samples=1200), seed=s).accuracy for s in range(10)]
        half = 2.262 * statistics.stdev(seeds) * math.sqrt(1 + 1 / 10)
        assert abs(batch_accuracy - solve_accuracy) <= max(math.sqrt(2) * half, 1 / 300), \
            (batch_accuracy, solve_accuracy, half)
