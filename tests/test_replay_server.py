"""The replay server over real HTTP on 127.0.0.1, driven by the official ``openai`` client."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import openai
import pytest

from dynscaling.answers import extract_answer
from dynscaling.backends.replay import ReplayBackend
from dynscaling.errors import ConfigError
from dynscaling.replay_server import FaultPlan, ReplayServer
from fakes import bundled, opening, run, tiny_pool


def _default_signal_dispositions() -> None:
    """In the child before exec: SIGINT and SIGTERM as a terminal would deliver them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def client_for(server: ReplayServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, **kwargs)  # type: ignore[arg-type]


def raw_request(server: ReplayServer, method: str, path: str, body: bytes | None = None,
                connection: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        if connection is None:
            conn.close()


def expected_contents(pool, question_index: int, seed: int = 0) -> list[str]:
    """What the server should serve for a question, in order: the replay backend's order, with the answer line."""
    backend = ReplayBackend(pool, seed)
    entry = pool.entries[question_index]
    out = []
    for _ in range(backend.remaining(question_index)):
        position = backend.draw(question_index)
        answer = entry.answers[position]
        shown = f"\\boxed{{{answer}}}" if entry.question.answer_type == "latex" else answer
        out.append(f"{entry.texts[position]}\n\nThe answer is {shown}.")
    return out


class TestRecognition:
    def test_our_prompt_template_finds_the_question(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server, client_for(server) as client:
            for qi, entry in enumerate(pool.entries):
                reply = client.chat.completions.create(model=server.model, messages=opening(entry.question))
                assert reply.choices[0].message.content == expected_contents(pool, qi)[0]

    def test_a_question_inside_another_template_is_found(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        text = pool.entries[1].question.text
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": f"Solve this.\nQuestion: {text}\nAnswer:"}]
        with ReplayServer(pool) as server, client_for(server) as client:
            reply = client.chat.completions.create(model=server.model, messages=messages)
        assert reply.choices[0].message.content.startswith("Question 1, attempt")

    def test_an_unknown_question_is_a_404(self, tmp_path: Path) -> None:
        with ReplayServer(tiny_pool(tmp_path)) as server, client_for(server) as client:
            with pytest.raises(openai.NotFoundError) as caught:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is love?"}])
            assert caught.value.code == "unknown_question"
            assert server.stats.status == {404: 1}


class TestSamples:
    def test_samples_come_in_the_replay_order_without_repeats_then_409(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=5)
        messages = opening(pool.entries[0].question)
        with ReplayServer(pool, seed=7) as server, client_for(server) as client:
            served = []
            for expected_count in (2, 2, 1):  # five samples: the last request gets what is left
                reply = client.chat.completions.create(model="m", messages=messages, n=2)
                assert [c.index for c in reply.choices] == list(range(expected_count))
                served += [c.message.content for c in reply.choices]
            with pytest.raises(openai.ConflictError) as caught:
                client.chat.completions.create(model="m", messages=messages)
            assert caught.value.code == "pool_exhausted"
            other = client.chat.completions.create(model="m", messages=opening(pool.entries[1].question))
        assert served == expected_contents(pool, 0, seed=7)
        assert len(set(served)) == 5
        assert other.choices[0].message.content.startswith("Question 1")
        assert server.stats.samples == 6

    def test_extracting_over_http_gives_the_replay_answers(self) -> None:
        pool = bundled("qwen2.5-math")  # LaTeX answers: the answer line is boxed
        with ReplayServer(pool) as server, client_for(server) as client:
            for entry in pool.entries:
                reply = client.chat.completions.create(model="m", messages=opening(entry.question),
                                                       n=len(entry.texts))
                got = Counter(extract_answer(c.message.content, "latex") for c in reply.choices)
                assert got == Counter(entry.answers), entry.question.id
            assert server.stats.samples == sum(len(e.texts) for e in pool.entries)

    def test_usage_is_four_characters_per_token_and_totals_add_up(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=6)
        messages = opening(pool.entries[0].question)
        with ReplayServer(pool) as server, client_for(server) as client:
            first = client.chat.completions.create(model="m", messages=messages, n=3)
            second = client.chat.completions.create(model="m", messages=messages, n=3)
        prompt = sum(len(m["content"]) for m in messages) // 4 + 1
        for reply in (first, second):
            assert reply.usage.prompt_tokens == prompt
            assert reply.usage.completion_tokens == sum(len(c.message.content) // 4 + 1 for c in reply.choices)
            assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
        assert first.usage.prompt_tokens_details.cached_tokens == 0
        assert second.usage.prompt_tokens_details.cached_tokens == prompt - 1  # the same prompt again: cached
        assert server.stats.prompt_tokens == 2 * prompt
        assert server.stats.completion_tokens == first.usage.completion_tokens + second.usage.completion_tokens

    def test_max_tokens_cuts_the_content_with_finish_reason_length(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server, client_for(server) as client:
            reply = client.chat.completions.create(model="m", messages=opening(pool.entries[0].question),
                                                   max_tokens=3)
        assert reply.choices[0].finish_reason == "length"
        assert reply.choices[0].message.content == expected_contents(pool, 0)[0][:12]

    def test_streaming_gives_the_same_choices_and_usage(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=6)
        messages = opening(pool.entries[0].question)
        with ReplayServer(pool) as server, client_for(server) as client:
            stream = client.chat.completions.create(model="m", messages=messages, n=3, stream=True,
                                                    stream_options={"include_usage": True})
            parts: dict[int, str] = {}
            finish: dict[int, str] = {}
            usage = None
            with stream:
                for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        parts[choice.index] = parts.get(choice.index, "") + (choice.delta.content or "")
                        if choice.finish_reason:
                            finish[choice.index] = choice.finish_reason
            # without include_usage: no usage chunk
            plain = client.chat.completions.create(model="m", messages=messages, stream=True)
            with plain:
                plain_chunks = list(plain)
        assert [parts[i] for i in range(3)] == expected_contents(pool, 0)[:3]
        assert finish == {0: "stop", 1: "stop", 2: "stop"}
        assert usage is not None
        assert usage.completion_tokens == sum(len(parts[i]) // 4 + 1 for i in range(3))
        assert all(c.usage is None for c in plain_chunks)
        assert "".join(c.choices[0].delta.content or "" for c in plain_chunks) == expected_contents(pool, 0)[3]
        assert server.stats.samples == 4


class TestWhatAModelWouldWrite:
    def test_a_whole_number_recorded_as_a_float_is_written_as_a_whole_number(self, tmp_path: Path) -> None:
        from dynscaling.pools import load_pool
        from fakes import write_pool

        pool = load_pool(write_pool(tmp_path / "floats.jsonl", [{
            "id": "q", "question": "How many eggs?", "gold": "18", "answer_type": "number",
            "samples": [{"text": "ans = 18", "answer": "18.0"}, {"text": "ans = 2.5", "answer": "2.50"},
                        {"text": "ans = -3", "answer": "-3.00"}]}]))
        with ReplayServer(pool) as server, client_for(server) as client:
            reply = client.chat.completions.create(model=server.model, n=3,
                                                   messages=[{"role": "user", "content": "How many eggs?"}])
        endings = sorted(c.message.content.rsplit("\n", 1)[-1] for c in reply.choices)
        assert endings == ["The answer is -3.", "The answer is 18.", "The answer is 2.50."]

    def test_stop_is_honoured_and_every_request_is_recorded(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server, client_for(server) as client:
            reply = client.chat.completions.create(model=server.model, messages=opening(pool.entries[0].question),
                                                   stop=[", attempt"], seed=5, top_p=0.5,
                                                   extra_body={"top_k": 3})
            (sent,) = server.received
        assert reply.choices[0].message.content == "Question 0"
        assert sent == {"model": server.model, "stop": [", attempt"], "seed": 5, "top_p": 0.5, "top_k": 3}

    def test_a_stop_that_is_not_text_is_a_400(self, tmp_path: Path) -> None:
        with ReplayServer(tiny_pool(tmp_path)) as server:
            status, body = raw_request(server, "POST", "/v1/chat/completions", json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3}).encode())
        assert status == 400 and body["error"]["param"] == "stop"


class TestFaults:
    def test_rate_limit_is_a_429_with_retry_after_and_serves_nothing(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(rate_limit=1.0, retry_after=0.25)) as server, \
                client_for(server) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                client.chat.completions.create(model="m", messages=opening(pool.entries[0].question))
        assert caught.value.response.headers["retry-after"] == "0.25"
        assert caught.value.response.headers["retry-after-ms"] == "250"
        assert server.stats.faults == {"rate_limit": 1}
        assert server.stats.samples == 0

    def test_server_error_is_a_500_and_serves_nothing(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(server_error=1.0)) as server, client_for(server) as client:
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="m", messages=opening(pool.entries[0].question))
        assert server.stats.faults == {"server_error": 1}
        assert server.stats.status == {500: 1}
        assert server.stats.samples == 0

    def test_timeout_hangs_past_the_client_timeout(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        faults = FaultPlan(timeout=1.0, hang_seconds=3600.0)  # an hour: only a stop that does not wait returns
        server = ReplayServer(pool, faults=faults).start()
        try:
            with client_for(server, timeout=0.3) as client, pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model="m", messages=opening(pool.entries[0].question))
            assert server.stats.faults == {"timeout": 1}
        finally:
            stopper = threading.Thread(target=server.stop, daemon=True)
            stopper.start()
            stopper.join(timeout=120)  # a deadlock guard, far below the hour a waiting stop() would take
        assert not stopper.is_alive(), "stop() waited for the hanging request"
        assert server.stats.samples == 0

    def test_a_client_that_gave_up_waiting_costs_no_sample(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        # 3 s of latency against a 0.2 s timeout: the client has hung up long before, however loaded the machine
        with ReplayServer(pool, latency=3.0) as server, client_for(server, timeout=0.2) as client:
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model="m", messages=opening(pool.entries[0].question))
            deadline = time.monotonic() + 60  # a liveness guard: the server notices within the latency
            while server.stats.inflight and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.stats.abandoned == 1
            assert server.stats.samples == 0
            served = client.chat.completions.create(model="m", messages=opening(pool.entries[0].question),
                                                    timeout=5)
        assert served.choices[0].message.content == expected_contents(pool, 0)[0]

    def test_empty_gives_one_empty_choice_that_consumes_no_sample(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=5)
        messages = opening(pool.entries[0].question)
        with ReplayServer(pool, faults=FaultPlan(empty=1.0)) as server, client_for(server) as client:
            one = client.chat.completions.create(model="m", messages=messages)
            three = client.chat.completions.create(model="m", messages=messages, n=3)
        assert one.choices[0].message.content == ""
        contents = [c.message.content for c in three.choices]
        assert contents.count("") == 1
        assert [c for c in contents if c] == expected_contents(pool, 0)[:2]
        assert server.stats.samples == 2
        assert server.stats.faults == {"empty": 2}

    def test_length_cuts_one_choice_half_way(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool, faults=FaultPlan(length=1.0)) as server, client_for(server) as client:
            reply = client.chat.completions.create(model="m", messages=opening(pool.entries[0].question))
        full = expected_contents(pool, 0)[0]
        assert reply.choices[0].finish_reason == "length"
        assert reply.choices[0].message.content == full[:len(full) // 2]
        assert server.stats.faults == {"length": 1}
        assert server.stats.samples == 1

    def test_fewer_choices_returns_fewer_and_consumes_only_those(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=8)
        with ReplayServer(pool, faults=FaultPlan(fewer_choices=1.0)) as server, client_for(server) as client:
            reply = client.chat.completions.create(model="m", messages=opening(pool.entries[0].question), n=4)
            single = client.chat.completions.create(model="m", messages=opening(pool.entries[1].question))
        assert 1 <= len(reply.choices) < 4
        assert len(single.choices) == 1  # n=1 cannot get fewer
        assert server.stats.samples == len(reply.choices) + 1
        assert server.stats.faults == {"fewer_choices": 1}

    def test_faults_are_reproducible_from_the_seed(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path, samples=40)
        plan = FaultPlan(rate_limit=0.2, server_error=0.2, empty=0.3, length=0.3, fewer_choices=0.3,
                         retry_after=0.0)

        def outcomes(seed: int) -> list[str]:
            seen = []
            with ReplayServer(pool, faults=plan, seed=seed) as server, client_for(server) as client:
                for _ in range(12):
                    try:
                        reply = client.chat.completions.create(model="m", messages=opening(pool.entries[0].question),
                                                               n=2)
                    except openai.APIStatusError as error:
                        seen.append(str(error.status_code))
                    else:
                        seen.append("|".join(f"{c.finish_reason}:{c.message.content}" for c in reply.choices))
            return seen

        first = outcomes(3)
        assert outcomes(3) == first
        assert outcomes(4) != first
        assert {"429", "500"} <= set(first)

    def test_fault_rates_are_validated(self) -> None:
        with pytest.raises(ConfigError, match="rate_limit"):
            FaultPlan(rate_limit=1.5)
        with pytest.raises(ConfigError, match="hang_seconds"):
            FaultPlan(hang_seconds=0)


class TestConcurrency:
    def test_slots_cap_the_requests_processed_at_once(self) -> None:
        pool = bundled("code-davinci")
        questions = [e.question for e in pool.entries[:6]]

        async def main(server: ReplayServer) -> float:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
                started = time.perf_counter()
                await asyncio.gather(*(client.chat.completions.create(model="m", messages=opening(q))
                                       for q in questions))
                return time.perf_counter() - started

        with ReplayServer(pool, slots=2, latency=0.15) as server:
            wall = run(main(server))
        assert server.stats.max_active == 2
        assert server.stats.max_inflight > 2
        assert wall >= 3 * 0.15  # six requests, two at a time
        assert 6 * 0.15 <= server.stats.busy_seconds <= 2 * wall  # two slots cannot be busy longer than that
        assert server.stats.inflight == 0 and server.stats.active == 0

    def test_a_hundred_and_twenty_concurrent_connections(self) -> None:
        pool = bundled("code-davinci")
        questions = [e.question for e in pool.entries[:120]]

        async def main(server: ReplayServer) -> list[str]:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
                replies = await asyncio.gather(*(client.chat.completions.create(model="m", messages=opening(q))
                                                 for q in questions))
                return [r.choices[0].message.content for r in replies]

        with ReplayServer(pool, latency=0.5) as server:
            contents = run(main(server))
        assert len(contents) == 120 and all(contents)
        # Concurrent, not one after another: most of them slept their latency at the same time. (Counted, not
        # timed: a wall-clock bound flakes on a loaded machine.)
        assert server.stats.max_inflight >= 100 and server.stats.max_active >= 100
        assert server.stats.inflight == 0


class TestBadRequests:
    def test_bad_json_and_missing_messages_are_400s_and_the_server_keeps_serving(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                status, body = raw_request(server, "POST", "/v1/chat/completions", b"{not json", conn)
                assert status == 400
                assert set(body["error"]) >= {"message", "type", "code"}
                assert body["error"]["code"] == "invalid_json"
                status, body = raw_request(server, "POST", "/v1/chat/completions", b'{"model": "m"}', conn)
                assert (status, body["error"]["code"]) == (400, "missing_required_parameter")
                status, body = raw_request(server, "POST", "/v1/chat/completions",
                                           b'{"messages": [{"content": "no role"}]}', conn)
                assert status == 400
                # the same keep-alive connection still works
                good = json.dumps({"model": "m", "messages": opening(pool.entries[0].question)}).encode()
                status, body = raw_request(server, "POST", "/v1/chat/completions", good, conn)
                assert status == 200 and body["choices"][0]["message"]["content"]
            finally:
                conn.close()
            with client_for(server) as client:
                with pytest.raises(openai.BadRequestError):
                    client.chat.completions.create(model="m", messages=opening(pool.entries[0].question), n=0)
                assert client.chat.completions.create(model="m", messages=opening(pool.entries[0].question)).choices
            assert server.stats.status == {400: 4, 200: 2}
            assert server.stats.requests == 6

    def test_unknown_routes_and_methods(self, tmp_path: Path) -> None:
        with ReplayServer(tiny_pool(tmp_path)) as server:
            assert raw_request(server, "GET", "/v1/nothing")[0] == 404
            status, body = raw_request(server, "GET", "/v1/chat/completions")
            assert (status, body["error"]["code"]) == (405, "method_not_allowed")

    def test_models_and_stats_endpoints(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as server, client_for(server) as client:
            assert [m.id for m in client.models.list()] == ["tiny"]
            client.chat.completions.create(model="tiny", messages=opening(pool.entries[0].question))
            status, stats = raw_request(server, "GET", "/stats")
        assert status == 200
        assert stats["requests"] == 1 and stats["samples"] == 1 and stats["status"] == {"200": 1}


class TestLifecycle:
    def test_stop_frees_the_port_and_is_idempotent(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        server = ReplayServer(pool)
        with pytest.raises(RuntimeError, match="not started"):
            _ = server.base_url
        server.start()
        port = server.port
        server.stop()
        server.stop()
        with ReplayServer(pool, port=port) as again:
            assert again.port == port

    def test_a_taken_port_fails_at_start(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as first:
            with pytest.raises(OSError):
                ReplayServer(pool, port=first.port).start()

    @pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
    def test_the_command_prints_the_url_and_stops_cleanly_on_a_signal(self, tmp_path: Path,
                                                                      stop_signal: signal.Signals) -> None:
        tiny_pool(tmp_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "dynscaling.replay_server", "--pool", str(tmp_path / "tiny.jsonl"), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            # pytest may itself run with SIGINT ignored (nohup, a background job), which the child would inherit
            preexec_fn=_default_signal_dispositions)
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
            with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as client:
                assert [m.id for m in client.models.list()] == ["tiny"]
            process.send_signal(stop_signal)
            _, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0, err
        assert "stopped after" in err

    def test_the_command_reports_a_bad_pool_in_one_line(self, tmp_path: Path) -> None:
        result = subprocess.run([sys.executable, "-m", "dynscaling.replay_server", "--pool", str(tmp_path / "no")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.startswith("error:") and "no such file" in result.stderr

    def test_the_command_reports_a_taken_port_in_one_line(self, tmp_path: Path) -> None:
        pool = tiny_pool(tmp_path)
        with ReplayServer(pool) as running:
            result = subprocess.run([sys.executable, "-m", "dynscaling.replay_server", "--pool",
                                     str(tmp_path / "tiny.jsonl"), "--port", str(running.port)],
                                    capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.startswith("error: cannot listen") and "--port" in result.stderr
