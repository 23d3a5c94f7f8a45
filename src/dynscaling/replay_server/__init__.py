"""An OpenAI-compatible HTTP server that answers chat completions from a replay pool.

It lets the live path (the ``openai`` SDK, ``OpenAIBackend``, the asyncio driver) run against recorded model
outputs, offline and reproducibly, with faults injected on purpose::

    with ReplayServer(load_pool("pool.jsonl.gz"), latency=0.2, slots=32) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        ...

Endpoints: ``POST /v1/chat/completions`` (JSON or ``stream: true``), ``GET /v1/models`` (one model, named after
the pool) and ``GET /stats`` (the counters of ``ServerStats`` as JSON).

**Which question.** The first user message is ``"{question}\\n\\n{format_hint}"`` (``dynscaling.samplers``), so
the question is recognised by the text before a blank line; failing that, by the longest pool question whose
text the first user message (then any user message) contains. An unknown question gets a 404.

**Which samples.** Each question's recorded samples are served without replacement in the seeded random order of
``ReplayBackend(pool, seed)`` (so HTTP and in-process replay with one seed see the same sequence). A request for
``n`` choices gets the next ``n`` unseen samples, or what is left; with nothing left, HTTP 409 with error code
``pool_exhausted``. A sample's content is its recorded text followed by ``"\\n\\nThe answer is X."`` (X in
``\\boxed{}`` for LaTeX answers), where X is the answer the pool loader extracted, so that extracting over HTTP
gives exactly the replay backend's answer. A whole number is written as one (``18``, not the ``18.0`` some pools
record), as a model would write it, so that evaluators comparing strings score it right. (Exception: a sample
that the pool records as abstaining but whose text holds a value gets no suffix, and an extractor run on its text
may find that value.)

**Usage.** ``prompt_tokens`` = characters of all messages // 4 + 1; ``completion_tokens`` = the sum over choices
of characters // 4 + 1; ``cached_tokens`` = the tokens of the longest run of leading messages an earlier request
already sent (a prefix cache); ``reasoning_tokens`` = the tokens before ``</think>``. ``max_tokens`` (or
``max_completion_tokens``) is honoured: longer content is cut, with finish_reason ``length``. ``stop`` is
honoured: content ends before the first stop string.

**What was asked.** ``received`` holds the parameters of the latest chat requests (the body without
``messages``), so tests can see what a client, or ``dynscaling serve`` in front, really sent.

**Faults.** ``FaultPlan`` gives each fault a rate; a seeded RNG decides them per request, so a run that sends
the same requests in the same order sees the same faults. Faults that return no content consume no sample.

**Why asyncio streams rather than ``http.server``.** One event loop serves every connection: a hundred or a
thousand concurrent keep-alive connections cost a coroutine each, not a thread each; ``latency``, ``slots`` and
the hanging ``timeout`` fault are ``asyncio.sleep`` and an ``asyncio.Semaphore``, not parked threads; all pool
state is touched by one thread, so it needs no lock; and ``stop()`` cancels every connection, even idle
keep-alive ones and hanging ones, which ``ThreadingHTTPServer.server_close()`` would wait on (it joins handler
threads blocked reading the next request). The price is a small HTTP/1.1 reader and writer (Content-Length
bodies, keep-alive, chunked responses for streaming), in ``http.py`` and ``server.py``.
"""

from __future__ import annotations

from .cli import main, serve
from .faults import FAULTS, FaultPlan
from .server import ReplayServer
from .stats import ServerStats

__all__ = ["FAULTS", "FaultPlan", "ReplayServer", "ServerStats", "main", "serve"]
