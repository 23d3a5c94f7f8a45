"""Symmetric LaTeX equivalence through ``math-verify``, safe to call from any thread.

math-verify guards its sympy work with ``signal.alarm``, which only works on the main thread. On the main thread
we let it use those timeouts. Anywhere else (the asyncio driver's executor, the server) the check runs in a
worker process, whose main thread can use signals, and we put our own deadline on the reply: a check that
overruns counts as "not equivalent" and the worker is killed and replaced.

The worker is a plain ``python -c`` subprocess speaking JSON lines on its stdin and stdout, not a
``multiprocessing`` pool: a spawned pool re-imports the caller's ``__main__`` in the child, which fails when the
caller is ``python -`` or a REPL (every check would then silently say "not equivalent") and re-runs a script that
has no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger("dynscaling.answers")

TIMEOUT_SECONDS = 5
# The worker's own timeouts come first; ours is the backstop (and covers the worker's first import of sympy).
DEADLINE_SECONDS = TIMEOUT_SECONDS * 3 + 10


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


_FUNCTIONS: dict[str, Callable[[str, str, int], bool]] = {
    "both_ways": _verify_both_ways,
    "gold": _verify_gold,
}


def _serve() -> None:
    """The worker's loop: one JSON request per line on stdin (``[function, a, b, timeout]``), one JSON boolean per
    line on stdout. Anything else the libraries print goes to stderr."""
    replies = sys.stdout
    sys.stdout = sys.stderr
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            name, a, b, timeout = json.loads(line)
            result = bool(_FUNCTIONS[name](a, b, timeout))
        except Exception:  # an unparsable answer is simply not equivalent
            result = False
        replies.write("true\n" if result else "false\n")
        replies.flush()


class _WorkerLostError(Exception):
    """The worker could not be started or died: no verdict (and nothing cached)."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)  # so the child imports this very package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from dynscaling._mathverify import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            text=True, encoding="utf-8")
        self.replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="dynscaling-math-verify-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self.replies.put(line)
        except (OSError, ValueError):  # closed under our feet by close()
            pass
        self.replies.put(None)

    def call(self, name: str, a: str, b: str) -> bool:
        """The worker's verdict; ``TimeoutError`` past the deadline, ``_WorkerLostError`` if it is gone."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps([name, a, b, TIMEOUT_SECONDS]) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            raise _WorkerLostError(f"cannot write to the worker: {error}") from None
        try:
            reply = self.replies.get(timeout=DEADLINE_SECONDS)
        except queue.Empty:
            raise TimeoutError from None
        if reply is None:
            raise _WorkerLostError(f"the worker exited (code {self.process.poll()})")
        return reply.strip() == "true"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover (a process that survives SIGKILL)
            pass
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


_worker: _Worker | None = None
_worker_lock = threading.Lock()  # one request in flight: replies come back in order


def _close_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.close()
        _worker = None


atexit.register(_close_worker)


def _in_worker(name: str, a: str, b: str) -> bool:
    global _worker
    with _worker_lock:
        for attempt in range(2):
            try:
                if _worker is None:
                    _worker = _Worker()
                return _worker.call(name, a, b)
            except TimeoutError:
                logger.warning("math-verify check overran its deadline (%ss); counting it as not equivalent",
                               DEADLINE_SECONDS)
                _close_worker()  # kill it: a sympy call stuck in C code would never come back
                return False
            except (_WorkerLostError, OSError) as error:
                _close_worker()
                logger.warning("math-verify worker lost (%s)%s", error, "; starting another" if not attempt else "")
        raise _WorkerLostError("the math-verify worker keeps failing")


def _run(name: str, a: str, b: str) -> bool:
    """The verdict; raises ``_WorkerLostError`` (not cached by the callers' ``lru_cache``) when there is none."""
    if threading.current_thread() is threading.main_thread():
        try:
            return bool(_FUNCTIONS[name](a, b, TIMEOUT_SECONDS))
        except Exception as error:  # best effort: an unparsable answer is simply not equivalent
            logger.debug("math-verify failed on %r, %r: %s", a, b, error)
            return False
    return _in_worker(name, a, b)


@lru_cache(maxsize=65536)
def _equivalent_sorted(a: str, b: str) -> bool:
    return _run("both_ways", a, b)


@lru_cache(maxsize=65536)
def _matches_gold(gold: str, pred: str) -> bool:
    return _run("gold", gold, pred)


def latex_equivalent(a: str, b: str) -> bool:
    """True when two LaTeX answers denote the same value, whichever order they are given in."""
    if a == b:
        return True
    try:
        return _equivalent_sorted(*sorted((a, b)))
    except _WorkerLostError:
        return False


def latex_matches_gold(gold: str, pred: str) -> bool:
    """math-verify's own gold-first check, used for grading."""
    if gold == pred:
        return True
    try:
        return _matches_gold(gold, pred)
    except _WorkerLostError:
        return False
