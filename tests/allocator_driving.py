"""Driving an allocator (or a reference model with the same calls) the way the engine does, for the step-by-step
reference tests (tests/test_blend_reference.py, tests/test_bayes_reference.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Events = list[tuple[str, int]]


def drive(agent: Any, serve: Callable[[int], None], budget: int, *, inflight: int = 0, fail_every: int = 0,
          closing: dict[int, int] | None = None, seed: int = 0) -> Events:
    """Run a source against ``agent`` until ``budget`` samples landed or it asks for nothing; returns every event.

    ``serve(qi)`` puts question ``qi``'s next sample in place (its tally, and its usage list where there is one).
    ``inflight`` 0: replay, each sample served then reported with ``sampled``. Otherwise up to ``inflight``
    requests are out at once (``dispatched``) and land in a seeded random order (``landed``), every
    ``fail_every``-th failing (``abandoned``). ``closing`` maps a number of samples landed to a question closed
    then, as the engine closes one whose requests keep failing."""
    events: Events = []
    to_close = dict(closing or {})
    flying: list[int] = []
    rng = random.Random(seed + 1000)
    landed = requests = 0
    while landed < budget:
        if landed in to_close:
            qi = to_close.pop(landed)
            agent.close(qi)
            events.append(("close", qi))
        if not inflight:
            qi = agent.next_question()
            if qi is None:
                break
            serve(qi)
            agent.sampled(qi)
            events.append(("sample", qi))
            landed += 1
            continue
        while len(flying) < inflight and landed + len(flying) < budget:
            qi = agent.next_question()
            if qi is None:
                break
            agent.dispatched(qi)
            flying.append(qi)
            events.append(("ask", qi))
        if not flying:
            break
        qi = flying.pop(rng.randrange(len(flying)))
        requests += 1
        if fail_every and requests % fail_every == 0:
            agent.abandoned(qi)
            events.append(("fail", qi))
            continue
        serve(qi)
        agent.landed(qi)
        events.append(("land", qi))
        landed += 1
    return events
