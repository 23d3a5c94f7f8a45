"""Symmetric LaTeX equivalence through ``math-verify``, safe to call from any thread.

math-verify guards its sympy work with ``signal.alarm``, which only works on the main thread. On the main thread
we let it use those timeouts. Anywhere else (the asyncio driver's executor, the server) the check runs in a
one-process worker whose main thread can use signals, and we put our own deadline on the result: a check that
overruns counts as "not equivalent" and the worker is replaced.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache

logger = logging.getLogger("dynscaling.answers")

TIMEOUT_SECONDS = 5

_worker: ProcessPoolExecutor | None = None
_worker_lock = threading.Lock()


def _verify_both_ways(a: str, b: str, timeout: int) -> bool:
    """Equivalent only if math-verify accepts the pair in both directions (``verify`` is not symmetric)."""
    import warnings

    from math_verify import parse, verify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed_a = parse(f"${a}$", parsing_timeout=timeout)
        parsed_b = parse(f"${b}$", parsing_timeout=timeout)
        if not parsed_a or not parsed_b:
            return False
        return bool(verify(parsed_a, parsed_b, timeout_seconds=timeout)
                    and verify(parsed_b, parsed_a, timeout_seconds=timeout))


def _verify_gold(gold: str, pred: str, timeout: int) -> bool:
    import warnings

    from math_verify import parse, verify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed_gold = parse(f"${gold}$", parsing_timeout=timeout)
        parsed_pred = parse(f"${pred}$", parsing_timeout=timeout)
        if not parsed_gold or not parsed_pred:
            return False
        return bool(verify(parsed_gold, parsed_pred, timeout_seconds=timeout))


def _in_worker(function: object, *args: object) -> bool:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        worker = _worker
    future = worker.submit(function, *args)  # type: ignore[arg-type]
    try:
        return bool(future.result(timeout=TIMEOUT_SECONDS * 3 + 10))
    except FutureTimeout:
        logger.warning("math-verify check overran its deadline; counting it as not equivalent")
        with _worker_lock:
            if _worker is worker:
                _worker = None
        worker.shutdown(wait=False, cancel_futures=True)
        return False


def _run(function: object, *args: object) -> bool:
    try:
        if threading.current_thread() is threading.main_thread():
            return bool(function(*args, TIMEOUT_SECONDS))  # type: ignore[operator]
        return _in_worker(function, *args, TIMEOUT_SECONDS)
    except Exception as error:  # best effort: an unparsable answer is simply not equivalent
        logger.debug("math-verify failed on %r: %s", args, error)
        return False


@lru_cache(maxsize=65536)
def _equivalent_sorted(a: str, b: str) -> bool:
    return _run(_verify_both_ways, a, b)


def latex_equivalent(a: str, b: str) -> bool:
    """True when two LaTeX answers denote the same value, whichever order they are given in."""
    if a == b:
        return True
    return _equivalent_sorted(*sorted((a, b)))


@lru_cache(maxsize=65536)
def latex_matches_gold(gold: str, pred: str) -> bool:
    """math-verify's own gold-first check, used for grading."""
    if gold == pred:
        return True
    return _run(_verify_gold, gold, pred)
