"""`dynscaling serve` speaks the OpenAI API faithfully: every surface driven by the official ``openai`` client
against our app under uvicorn on 127.0.0.1, in front of real upstreams on 127.0.0.1 (the replay server, or a small
scripted chat server that records what it was sent). Nothing is patched."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from dynscaling import load_pool  # noqa: E402
from dynscaling.pools import bundled_pools  # noqa: E402
from dynscaling.replay_server import ReplayServer  # noqa: E402
from dynscaling.server import ServeConfig, create_app  # noqa: E402
from serving import ChatUpstream, Uvicorn  # noqa: E402

DATE_POOL = next(p for p in bundled_pools() if p.name.startswith("chatgpt_date"))
SECRET = "sk-upstream-SECRET-0123456789"


@pytest.fixture(scope="module")
def pool():  # noqa: ANN201
    return load_pool(DATE_POOL)


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", SECRET)


@pytest.fixture()
def replay(pool) -> Iterator[ReplayServer]:  # noqa: ANN001
    with ReplayServer(pool, seed=3) as server:
        yield server


def serve_config(upstream_url: str, model: str, **overrides: Any) -> ServeConfig:
    settings: dict[str, Any] = {"upstream_api_key_env": "UPSTREAM_KEY", "concurrency": 4, "answer_type": "date"}
    settings.update(overrides)
    return ServeConfig(upstream_url=upstream_url, upstream_model=model, **settings)


@pytest.fixture()
def serve(replay: ReplayServer) -> Iterator[str]:
    with Uvicorn(create_app(serve_config(replay.base_url, replay.model))) as url:
        yield url


def client(url: str, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60, **kwargs)


def ask(pool, i: int) -> list[dict[str, Any]]:  # noqa: ANN001
    return [{"role": "user", "content": pool.entries[i].question.text}]


def raw(url: str, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class TestScaledRequestsHonourTheRequest:
    def test_every_sampling_parameter_reaches_every_upstream_sample(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.chat.completions.create(
                model=f"dynscaling/4/{replay.model}", messages=ask(pool, 0), max_tokens=900, stop=["\n\nQ:"],
                top_p=0.9, presence_penalty=0.5, frequency_penalty=-0.5, reasoning_effort="low", seed=1234,
                temperature=0.3, logit_bias={"50256": -100}, user="u-1", extra_body={"top_k": 20},
                extra_headers={})
        extra = reply.model_extra["dynscaling"]
        received = list(replay.received)
        assert len(received) >= 1 and sum(r["n"] for r in received) == extra["samples"]
        for sent in received:
            assert sent["max_tokens"] == 900 and sent["stop"] == ["\n\nQ:"] and sent["top_p"] == 0.9
            assert sent["presence_penalty"] == 0.5 and sent["frequency_penalty"] == -0.5
            assert sent["reasoning_effort"] == "low" and sent["temperature"] == 0.3
            assert sent["logit_bias"] == {"50256": -100} and sent["user"] == "u-1" and sent["top_k"] == 20
            assert sent["model"] == replay.model
        seeds = [r["seed"] for r in received]
        assert len(set(seeds)) == len(seeds)  # a distinct seed per upstream call, derived from the client's
        assert extra["temperature"] == 0.3

    def test_the_same_seed_draws_the_same_upstream_seeds(self, pool) -> None:  # noqa: ANN001
        seen = []
        for _ in range(2):
            with ReplayServer(pool, seed=3) as replay, Uvicorn(create_app(serve_config(replay.base_url, replay.model))
                                                              ) as url, client(url) as c:
                c.chat.completions.create(model=f"dynscaling/3/{replay.model}", messages=ask(pool, 2), seed=7)
                seen.append([r["seed"] for r in replay.received])
        assert seen[0] == seen[1] and len(set(seen[0])) == len(seen[0])

    def test_temperature_zero_samples_at_the_servers_temperature_and_says_so(self, serve, replay,
                                                                            pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.chat.completions.create(model=f"dynscaling/3/{replay.model}", messages=ask(pool, 1),
                                              temperature=0, max_completion_tokens=500)
        assert reply.model_extra["dynscaling"]["temperature"] == 0.7
        assert all(r["temperature"] == 0.7 and r["max_completion_tokens"] == 500 for r in replay.received)

    def test_a_tiny_max_tokens_gives_a_cut_reply_not_a_full_answer(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.chat.completions.create(model=f"dynscaling/3/{replay.model}", messages=ask(pool, 3),
                                              max_tokens=5)
        choice = reply.choices[0]
        assert choice.finish_reason == "length" and len(choice.message.content) <= 20
        assert all(r["max_tokens"] == 5 for r in replay.received)

    @pytest.mark.parametrize(("field", "value"), [("logprobs", True), ("top_logprobs", 2),
                                                  ("functions", [{"name": "f"}]), ("modalities", ["audio"])])
    def test_a_parameter_we_cannot_honour_is_a_400_naming_it(self, serve, replay, pool, field: str,
                                                             value: Any) -> None:  # noqa: ANN001
        with client(serve) as c, pytest.raises(openai.BadRequestError) as caught:
            c.chat.completions.create(model=f"dynscaling/3/{replay.model}", messages=ask(pool, 4),
                                      extra_body={field: value})
        error = caught.value.body
        assert error["code"] == "unsupported_parameter" and error["param"] == field and field in error["message"]
        assert replay.stats.requests == 0


class TestBadRequestsAreNamed4xxBeforeAnySample:
    @pytest.mark.parametrize(("body", "param"), [
        ({"dynscaling": {"k0": "abc"}}, "dynscaling.k0"),
        ({"dynscaling": {"stop": "high"}}, "dynscaling.stop"),
        ({"dynscaling": {"k0": [1]}}, "dynscaling.k0"),
        ({"dynscaling": "fast"}, "dynscaling"),
        ({"messages": [{"role": "user", "content": [1, "x"]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "42"}, {"role": "user", "content": "q"}]},
         "messages[0].tool_call_id"),
        ({"stream_options": "x", "stream": True}, "stream_options"),
        ({"stream": "yes"}, "stream"),
        ({"stop": 3}, "stop"),
        ({"top_p": 2}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"n": 9}, "n"),
        ({"seed": "x"}, "seed"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"tools": "all"}, "tools"),
        ({"model": "dynscaling/3/"}, "model"),
        ({"model": "dynscaling/lots/x"}, "model"),
        ({"model": "dynscaling/0/x"}, "model"),
        ({"model": "dynscaling/"}, "model"),
    ])
    def test_the_field_is_named(self, serve, replay, pool, body: dict, param: str) -> None:  # noqa: ANN001
        request = {"model": f"dynscaling/4/{replay.model}", "messages": ask(pool, 5), **body}
        status, _, data = raw(serve, "POST", "/v1/chat/completions", json.dumps(request).encode())
        error = json.loads(data)["error"]
        assert status == 400, error
        assert error["param"] == param and error["message"].startswith(param), error
        assert replay.stats.requests == 0  # nothing paid for

    @pytest.mark.parametrize(("text", "param"), [('"temperature": NaN', "temperature"),
                                                 ('"top_p": Infinity', "top_p"),
                                                 ('"presence_penalty": -Infinity', "presence_penalty")])
    def test_non_finite_numbers_are_refused(self, serve, replay, pool, text: str,
                                            param: str) -> None:  # noqa: ANN001
        body = (f'{{"model": "dynscaling/4/{replay.model}", "messages": {json.dumps(ask(pool, 5))}, {text}}}')
        status, _, data = raw(serve, "POST", "/v1/chat/completions", body.encode())
        assert status == 400 and json.loads(data)["error"]["param"] == param
        assert replay.stats.requests == 0

    def test_deep_nesting_and_lone_surrogates_are_400s(self, serve, replay) -> None:  # noqa: ANN001
        deep = b'{"model": "dynscaling/2/m", "messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        status, _, data = raw(serve, "POST", "/v1/chat/completions", deep)
        assert status == 400 and json.loads(data)["error"]["code"] == "invalid_json"
        lone = b'{"model": "dynscaling/2/m", "messages": [{"role": "user", "content": "x\\ud800"}]}'
        status, _, data = raw(serve, "POST", "/v1/chat/completions", lone)
        assert status == 400 and "surrogate" in json.loads(data)["error"]["message"]
        assert replay.stats.requests == 0


class TestVotingOnStructure:
    def test_json_replies_vote_on_canonical_json_and_broken_json_abstains(self) -> None:
        replies = [{"role": "assistant", "content": '{"city": "Paris", "n": 1}'},
                   {"role": "assistant", "content": "Sure! Here it is: city=Paris"},
                   {"role": "assistant", "content": '{ "n" : 1,  "city":"Paris" }'},
                   {"role": "assistant", "content": '{"city": "Lyon", "n": 1}'}]
        with ChatUpstream(replies) as up, Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            with client(url) as c:
                reply = c.chat.completions.create(
                    model="dynscaling/4/fake-model", messages=[{"role": "user", "content": "Where? JSON please."}],
                    response_format={"type": "json_object"}, extra_body={"dynscaling": {"strategy": "sc"}})
            sent = up.chat_bodies()
        extra = reply.model_extra["dynscaling"]
        assert json.loads(reply.choices[0].message.content) == {"city": "Paris", "n": 1}
        assert extra["vote"] == "json" and extra["answer"] == '{"city":"Paris","n":1}'
        assert extra["votes"] == [['{"city":"Paris","n":1}', 2], ['{"city":"Lyon","n":1}', 1]]
        assert extra["abstentions"] == 1 and extra["samples"] == 4
        assert all(b["response_format"] == {"type": "json_object"} for b in sent)

    def test_json_schema_parse_works_through_the_sdk(self) -> None:
        from pydantic import BaseModel

        class Eggs(BaseModel):
            answer: int

        replies = [{"role": "assistant", "content": '{"answer": 18}'},
                   {"role": "assistant", "content": "I think 18"}, {"role": "assistant", "content": '{"answer":18}'}]
        with ChatUpstream(replies) as up, Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            with client(url) as c:
                reply = c.chat.completions.parse(
                    model="dynscaling/3/fake-model", messages=[{"role": "user", "content": "How many eggs?"}],
                    response_format=Eggs, extra_body={"dynscaling": {"strategy": "sc"}})
            sent = up.chat_bodies()
        assert reply.choices[0].message.parsed == Eggs(answer=18)
        assert all(b["response_format"]["type"] == "json_schema" and
                   b["response_format"]["json_schema"]["name"] == "Eggs" for b in sent)

    def test_tool_calls_vote_and_the_winner_comes_back_as_tool_calls(self) -> None:
        def call(args: str, call_id: str) -> dict[str, Any]:
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": args}}]}

        replies = [call('{"city": "Paris", "unit": "C"}', "a"), call('{"city": "Lyon"}', "b"),
                   call('{"unit":"C","city":"Paris"}', "c"), {"role": "assistant", "content": "No idea."}]
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}}]
        with ChatUpstream(replies) as up, Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            with client(url) as c:
                reply = c.chat.completions.create(
                    model="dynscaling/4/fake-model", messages=[{"role": "user", "content": "Weather in Paris?"}],
                    tools=tools, tool_choice="auto", extra_body={"dynscaling": {"strategy": "sc"}})
                streamed = list(c.chat.completions.create(
                    model="dynscaling/4/fake-model", messages=[{"role": "user", "content": "Weather in Paris?"}],
                    tools=tools, stream=True, extra_body={"dynscaling": {"strategy": "sc"}}))
            sent = up.chat_bodies()
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        (winner,) = choice.message.tool_calls
        assert winner.function.name == "get_weather"
        assert json.loads(winner.function.arguments) == {"city": "Paris", "unit": "C"}
        assert reply.model_extra["dynscaling"]["votes"][0][1] == 2
        assert all(b["tools"] == tools for b in sent)
        calls = [tc for ch in streamed if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
        assert calls and calls[0].function.name == "get_weather"

    def test_a_tool_loop_flows_through_a_scaled_request_untouched(self) -> None:
        loop = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"}]
        with ChatUpstream([{"role": "assistant", "content": "It is 21 C. The answer is 21."}]) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model", answer_type="number"))) as url:
            with client(url) as c:
                reply = c.chat.completions.create(model="dynscaling/2/fake-model", messages=loop)
            sent = up.chat_bodies()
        assert reply.model_extra["dynscaling"]["answer"] == "21"
        assert all(b["messages"][:3] == loop for b in sent)


class TestChoices:
    def test_n_3_returns_three_different_samples_most_voted_first(self, serve, replay,
                                                                  pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.chat.completions.create(model=f"dynscaling/6/{replay.model}", messages=ask(pool, 6), n=3)
        extra = reply.model_extra["dynscaling"]
        contents = [ch.message.content for ch in reply.choices]
        assert [ch.index for ch in reply.choices] == [0, 1, 2] and len(set(contents)) == 3
        assert extra["samples"] >= 3 and len(extra["choices"]) == 3
        assert extra["choices"][0]["answer"] == extra["answer"]
        shares = [ch["share"] for ch in extra["choices"]]
        assert all(0 <= s <= 1 for s in shares) and shares[0] == max(shares)

    def test_a_streamed_n_2_sends_two_choices(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            chunks = list(c.chat.completions.create(model=f"dynscaling/4/{replay.model}", messages=ask(pool, 15),
                                                    n=2, stream=True))
        texts = {0: "", 1: ""}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
        assert texts[0] != texts[1] and all("The answer is" in t for t in texts.values())

    def test_n_above_the_budget_is_a_400(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c, pytest.raises(openai.BadRequestError) as caught:
            c.chat.completions.create(model=f"dynscaling/2/{replay.model}", messages=ask(pool, 6), n=3)
        assert caught.value.body["param"] == "n"


class TestPassThroughIsVerbatim:
    def test_any_field_and_message_shape_reaches_the_upstream_byte_for_byte(self) -> None:
        loop = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]
        with ChatUpstream([{"role": "assistant", "content": "21 C in Paris."}]) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            with client(url) as c:
                reply = c.chat.completions.create(model="fake-model", messages=loop, logprobs=True,
                                                  extra_body={"vendor_field": {"x": [1, 2]}},
                                                  extra_headers={"OpenAI-Beta": "assistants=v2"})
            (request,) = up.requests
        assert reply.choices[0].message.content == "21 C in Paris."
        assert request["body"]["messages"] == loop and request["body"]["vendor_field"] == {"x": [1, 2]}
        assert request["body"]["logprobs"] is True
        assert request["headers"]["authorization"] == f"Bearer {SECRET}"  # the server's key, not the client's
        assert request["headers"]["openai-beta"] == "assistants=v2"

    def test_streaming_passes_through(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            chunks = list(c.chat.completions.create(model=replay.model, messages=ask(pool, 7), stream=True,
                                                    stream_options={"include_usage": True}))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert "The answer is" in text and chunks[-1].usage is not None
        assert replay.stats.requests == 1 and "dynscaling" not in (chunks[-1].model_extra or {})

    def test_an_upstream_error_is_relayed_with_its_status_and_the_key_masked(self) -> None:
        with ChatUpstream(status=401, error="Incorrect API key provided", echo_auth=True) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            status, _, data = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}).encode())
            scaled_status, _, scaled = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": "dynscaling/2/fake-model", "messages": [{"role": "user", "content": "hi"}]}).encode())
        assert status == 401 and "Incorrect API key provided" in json.loads(data)["error"]["message"]
        assert SECRET not in data.decode() and "SECRET" not in data.decode()
        assert scaled_status == 502 and "Incorrect API key provided" in json.loads(scaled)["error"]["message"]
        assert "SECRET" not in scaled.decode()

    def test_a_long_retry_after_fails_that_request_at_once_with_the_upstreams_429(self, pool) -> None:  # noqa: ANN001
        from dynscaling.replay_server import FaultPlan

        with ReplayServer(pool, faults=FaultPlan(rate_limit=1.0, retry_after=300)) as limited, \
                Uvicorn(create_app(serve_config(limited.base_url, limited.model))) as url:
            scaled = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": f"dynscaling/2/{limited.model}", "messages": ask(pool, 16)}).encode())
            plain = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": limited.model, "messages": ask(pool, 16)}).encode())
        status, _, data = scaled
        assert status == 429 and "retry after 300" in json.loads(data)["error"]["message"]
        status, headers, data = plain
        assert status == 429 and headers["retry-after"] == "300"

    def test_a_scaled_request_reports_the_upstreams_status_and_message(self, serve) -> None:  # noqa: ANN001
        status, _, data = raw(serve, "POST", "/v1/chat/completions", json.dumps(
            {"model": "dynscaling/2/whatever", "messages": [{"role": "user", "content": "not in the pool"}]}
        ).encode())
        error = json.loads(data)["error"]
        assert status == 404 and "no question of this replay pool matches" in error["message"]
        assert "upstream HTTP 404" in error["message"]


class TestSurfaces:
    def test_completions_pass_through_and_scale(self, replay, pool) -> None:  # noqa: ANN001
        body = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "fake-model",
                "choices": [{"index": 0, "text": " world", "finish_reason": "stop", "logprobs": None}]}
        with ChatUpstream(raw_replies={"/v1/completions": body}) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url, client(url) as c:
            plain = c.completions.create(model="fake-model", prompt="hello", max_tokens=3)
            assert plain.choices[0].text == " world" and up.requests[0]["body"]["prompt"] == "hello"
        with Uvicorn(create_app(serve_config(replay.base_url, replay.model))) as url, client(url) as c:
            scaled = c.completions.create(model=f"dynscaling/3/{replay.model}",
                                          prompt=pool.entries[8].question.text, max_tokens=800)
            streamed = list(c.completions.create(model=f"dynscaling/2/{replay.model}",
                                                 prompt=pool.entries[9].question.text, stream=True))
        assert "The answer is" in scaled.choices[0].text and scaled.model_extra["dynscaling"]["samples"] >= 1
        assert all(r["max_tokens"] == 800 for r in list(replay.received)[:-2] or replay.received)
        assert "The answer is" in "".join(ch.choices[0].text for ch in streamed)

    def test_responses_pass_through(self) -> None:
        body = {"id": "resp_1", "object": "response", "created_at": 1, "model": "fake-model", "status": "completed",
                "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": "hello there", "annotations": []}]}],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
        with ChatUpstream(raw_replies={"/v1/responses": body}) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url, client(url) as c:
            reply = c.responses.create(model="fake-model", input="hi")
            with pytest.raises(openai.BadRequestError):
                c.responses.create(model="dynscaling/4/fake-model", input="hi")
            (request,) = up.requests
        assert reply.output_text == "hello there"
        assert request["path"] == "/v1/responses" and request["body"]["input"] == "hi"

    def test_embeddings_pass_through(self) -> None:
        body = {"object": "list", "model": "fake-model", "usage": {"prompt_tokens": 2, "total_tokens": 2},
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}]}
        with ChatUpstream(raw_replies={"/v1/embeddings": body}) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url, client(url) as c:
            reply = c.embeddings.create(model="fake-model", input="hi", encoding_format="float")
            (request,) = up.requests
        assert reply.data[0].embedding == [0.25, -0.5] and request["body"]["input"] == "hi"

    def test_models_are_relayed_with_a_scaled_name_each_and_retrievable(self) -> None:
        with ChatUpstream(models=("alpha", "beta")) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "alpha", default_budget=6))) as url, client(url) as c:
            ids = [m.id for m in c.models.list()]
            scaled = c.models.retrieve("dynscaling/4/beta")
            plain = c.models.retrieve("alpha")
            with pytest.raises(openai.NotFoundError):
                c.models.retrieve("gamma")
            with pytest.raises(openai.NotFoundError):
                c.models.retrieve("dynscaling/4/gamma")
        assert ids == ["alpha", "beta", "dynscaling/6/alpha", "dynscaling/6/beta"]
        assert scaled.id == "dynscaling/4/beta" and plain.id == "alpha"

    def test_health_and_openai_shaped_404_and_405(self, serve) -> None:  # noqa: ANN001
        status, _, data = raw(serve, "GET", "/health")
        assert status == 200 and json.loads(data)["status"] == "ok"
        status, headers, data = raw(serve, "GET", "/v1/chat/completions")
        assert status == 405 and headers["content-type"].startswith("application/json")
        assert json.loads(data)["error"]["code"] == "method_not_allowed" and "POST" in headers.get("allow", "")
        status, headers, data = raw(serve, "POST", "/v1/nothing-here", b"{}")
        assert status == 404 and json.loads(data)["error"]["code"] == "unknown_url"
        with client(serve) as c, pytest.raises(openai.NotFoundError) as caught:
            c.get("/nothing-here", cast_to=object)
        assert caught.value.body["code"] == "unknown_url"

    def test_a_header_or_body_field_scales_a_plain_model_name(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve, default_headers={"X-Dynscaling-Budget": "3"}) as c:
            by_header = c.chat.completions.create(model=replay.model, messages=ask(pool, 10))
        with client(serve) as c:
            by_body = c.chat.completions.create(model=replay.model, messages=ask(pool, 11),
                                                extra_body={"dynscaling": {"budget": 2}})
            with pytest.raises(openai.BadRequestError) as caught:
                c.chat.completions.create(model=replay.model, messages=ask(pool, 11),
                                          extra_headers={"X-Dynscaling-Budget": "many"})
        assert 1 <= by_header.model_extra["dynscaling"]["samples"] <= 3
        assert by_header.model_extra["dynscaling"]["budget"] == 3
        assert by_body.model_extra["dynscaling"]["budget"] == 2
        assert caught.value.body["param"] == "X-Dynscaling-Budget"


class TestBatchLines:
    def test_a_batch_line_with_its_own_sampling_parameters_is_refused_not_ignored(self, serve, replay,
                                                                                  pool) -> None:  # noqa: ANN001
        lines = [json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": f"dynscaling/2/{replay.model}", "messages": ask(pool, i),
                                      **({"max_tokens": 5} if i == 1 else {})}}) for i in range(2)]
        status, _, data = raw(serve, "POST", "/v1/dynscaling/batch", "\n".join(lines).encode())
        error = json.loads(data)["error"]
        assert status == 400 and error["message"].startswith("line 2: body.max_tokens")
        assert error["code"] == "unsupported_parameter" and replay.stats.requests == 0


class TestModelNames:
    def test_dynscaling_slash_budget_means_the_servers_model(self, serve, replay, pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.chat.completions.create(model="dynscaling/3", messages=ask(pool, 12))
        assert reply.model == "dynscaling/3" and reply.model_extra["dynscaling"]["budget"] == 3
        assert {r["model"] for r in replay.received} == {replay.model}

    def test_several_prompts_on_a_scaled_completion_get_one_choice_each(self, serve, replay,
                                                                         pool) -> None:  # noqa: ANN001
        with client(serve) as c:
            reply = c.completions.create(model=f"dynscaling/2/{replay.model}",
                                         prompt=[pool.entries[13].question.text, pool.entries[14].question.text])
        assert [ch.index for ch in reply.choices] == [0, 1]
        assert all("The answer is" in ch.text for ch in reply.choices)
        assert len(reply.model_extra["dynscaling"]) == 2

    def test_an_unreachable_upstream_is_a_502_naming_it(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dead = f"http://127.0.0.1:{port}/v1"
        with Uvicorn(create_app(serve_config(dead, "m", upstream_retries=0))) as url:
            plain = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode())
            scaled = raw(url, "POST", "/v1/chat/completions", json.dumps(
                {"model": "dynscaling/2/m", "messages": [{"role": "user", "content": "hi"}]}).encode())
        for status, _, data in (plain, scaled):
            error = json.loads(data)["error"]
            assert status == 502 and error["code"] == "connection" and f"127.0.0.1:{port}" in error["message"]


class TestScaledStreaming:
    def test_the_stream_opens_before_any_upstream_reply_and_keeps_alive(self) -> None:
        gate = threading.Event()
        with ChatUpstream([{"role": "assistant", "content": "The answer is 4."}], gate=gate) as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model", answer_type="number",
                                                keepalive_seconds=0.05))) as url:
            parts = urlsplit(url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.request("POST", "/v1/chat/completions", body=json.dumps({
                "model": "dynscaling/2/fake-model", "stream": True,
                "messages": [{"role": "user", "content": "2+2?"}]}), headers={"content-type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
            comments = []
            while len(comments) < 3 or not up.requests:  # comments keep coming while the upstream holds the reply
                line = response.fp.readline().decode()  # the raw chunked body: chunk sizes, then SSE lines
                if line.startswith(":"):
                    comments.append(line)
            assert not gate.is_set()
            gate.set()
            lines = []
            while not lines or lines[-1] != "data: [DONE]":
                lines.append(response.fp.readline().decode().strip())
            rest = "\n".join(lines)
            conn.close()
        data = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: {")]
        assert "".join(d["choices"][0]["delta"].get("content") or "" for d in data if d["choices"]) == \
            "The answer is 4."
        assert rest.rstrip().endswith("data: [DONE]")

    def test_a_failure_after_the_stream_began_is_an_error_frame(self) -> None:
        with ChatUpstream(status=400, error="model 'fake-model' does not exist") as up, \
                Uvicorn(create_app(serve_config(up.base_url, "fake-model"))) as url:
            status, _, data = raw(url, "POST", "/v1/chat/completions", json.dumps({
                "model": "dynscaling/2/fake-model", "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}).encode())
            with client(url) as c, pytest.raises(openai.APIError) as caught:
                list(c.chat.completions.create(model="dynscaling/2/fake-model", stream=True,
                                               messages=[{"role": "user", "content": "hi"}]))
        frames = [line for line in data.decode().splitlines() if line.startswith("data: ")]
        assert status == 200 and frames[-1] == "data: [DONE]"
        assert "does not exist" in json.loads(frames[-2][6:])["error"]["message"]
        assert "does not exist" in str(caught.value)
