"""``dynscaling serve``: an OpenAI-compatible server that scales inference in front of any model.

Applications change only their base URL. The model name chooses what happens:

- ``dynscaling/8/gpt-4o-mini``: up to 8 samples of ``gpt-4o-mini`` for this request, with DynScaling's
  integrated chains and adaptive stopping (stop once the leader is settled, never beyond 8);
  ``dynscaling/gpt-4o-mini`` uses the server's default budget, ``dynscaling/8`` the server's model.
- any other name: passed through to the upstream verbatim (any field, any message shape, streaming included).
  A client that cannot rename its model scales a request with the header ``X-Dynscaling-Budget: 8`` or the body
  field ``"dynscaling": {"budget": 8}``.

A scaled request is checked field by field before any sample is paid for (a 400 names the field), and honours
what it asks: ``max_tokens``/``max_completion_tokens``, ``stop``, ``top_p``, the penalties, ``reasoning_effort``,
``logit_bias``, ``response_format``, ``tools``/``tool_choice`` and any server-specific field go to every upstream
sample; ``seed`` seeds the run (each sample gets a distinct seed derived from it); the client's ``temperature``
is used when above 0, otherwise the server's sampling temperature (reported as ``dynscaling.temperature``).
What cannot be honoured (``logprobs``, audio, predicted outputs, legacy ``functions``) is a 400
``unsupported_parameter``. Samples vote on their extracted answer; with ``response_format`` json_object or
json_schema on their canonical JSON (a sample that is not JSON abstains); with ``tools`` on their tool calls
(function name + canonical arguments), and the winner comes back as ``tool_calls``. ``n > 1`` returns ``n``
different samples, most-voted distinct answers first (``dynscaling.server.scaled``).

``extra_body={"dynscaling": {...}}`` overrides per request: ``strategy`` (a spec), ``answer_type`` (number, date,
latex, choice, text), ``seed``, ``budget``, and any of the strategy's parameters (``k0``, ``m``, ``stop``, ...).

A scaled ``/v1/completions`` request samples the upstream's chat endpoint with each prompt as one user turn (a list
of prompts gets one choice per prompt, in order). A scaled response is an ordinary chat completion (or text
completion) whose message is a sample that voted for the winning answer, with ``usage`` summed over every upstream
call, plus one documented extra field::

    "dynscaling": {"answer": "18", "confidence": 0.97, "votes": [["18", 4], ["17", 1]], "samples": 5,
                   "abstentions": 0, "strategy": "dynscaling:...", "budget": 8, "temperature": 0.7,
                   "vote": "answer"}

A scaled stream opens at once with SSE comments while it samples, then streams the voted reply; an error after
it began is an error frame, then ``[DONE]``.

Endpoints: ``/v1/chat/completions`` and ``/v1/completions`` (scaled or pass-through), ``/v1/responses`` and
``/v1/embeddings`` (pass-through), ``/v1/models`` (the upstream's list plus a scaled name for each),
``/v1/models/{id}``, ``/health``, ``/stats``, and ``/v1/dynscaling/batch`` (OpenAI Batch-API lines, one budget
shared across the batch, journaled). Every error, 404 and 405 included, is OpenAI-shaped
(``{"error": {"message", "type", "param", "code"}}``); the upstream's status and message reach the client with
secrets masked; internals go to the log. All clients share one limit on concurrent upstream requests. Starlette
and uvicorn come with the ``server`` extra.
"""

from __future__ import annotations

from .app import create_app
from .config import ServeConfig
from .probe import probe_upstream

__all__ = ["ServeConfig", "create_app", "probe_upstream"]
