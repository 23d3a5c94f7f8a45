"""Recording a replay pool: ``n`` independent samples per question from any backend, journaled and resumable.

Each sample is what self-consistency would ask for: the question alone (``Prompts.opening``), the i-th request of
a question seeded with ``sample_seed(seed, question id, i)``. Samples are journaled under the same keys a live
run uses (backend identity, seed, question, index, prompt), so

- an interrupted recording resumes where it stopped, paying nothing twice;
- samples a live ``solve`` or ``bench`` already drew with the same backend and seed are reused, and the other way
  round.

The pool is written at the end, atomically, in the documented replay format (``dynscaling.pools``), each sample
with its ``usage``, ``finish_reason`` and, when the backend reports it, ``mean_logprob``. A sample cut off by
``max_tokens`` (``finish_reason == "length"``) gets ``"answer": null``: it abstains on replay as it does live.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .answers import extract_answer
from .drivers import AsyncBackend, sample_seed
from .errors import BackendError, ConfigError
from .journal import Journal, RunLog, stable_hash
from .samplers import Message, Prompts
from .types import Question, Sample

__all__ = ["RecordProgress", "RecordResult", "arecord", "pool_records", "write_pool"]

logger = logging.getLogger("dynscaling.record")


@dataclass(frozen=True, slots=True)
class RecordProgress:
    """A snapshot for progress displays, after every request that lands."""

    done: int
    total: int
    reused: int
    failed: int
    completion_tokens: int


@dataclass(frozen=True)
class RecordResult:
    """What a recording holds: per question, its samples in index order (missing ones are None)."""

    questions: tuple[Question, ...]
    samples: tuple[tuple[Sample | None, ...], ...]
    reused: int
    generated: int
    failures: Mapping[str, int]

    @property
    def missing(self) -> int:
        return sum(s is None for row in self.samples for s in row)


def _chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """Runs of consecutive indices, at most ``size`` long: one request each (one prefill, ``n`` choices)."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1 and len(runs[-1]) < size:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


async def arecord(questions: Sequence[Question], backend: AsyncBackend, samples_per_question: int, *,
                  journal_path: str | Path, backend_identity: Mapping[str, Any], seed: int = 0,
                  concurrency: int = 4, per_request: int = 4, prompts: Prompts | None = None, fresh: bool = False,
                  on_progress: Callable[[RecordProgress], None] | None = None) -> RecordResult:
    """Draw ``samples_per_question`` independent samples of every question (see the module docstring).

    Requests ask for up to ``per_request`` samples of one question at once (``n``; a server that ignores ``n``
    is refilled by the backend). A request that fails for good leaves its samples missing (``RecordResult.missing``)
    and the others go on; running again fills them in.
    """
    if samples_per_question < 1:
        raise ConfigError(f"samples per question must be >= 1, got {samples_per_question}")
    if concurrency < 1 or per_request < 1:
        raise ConfigError(f"concurrency and per_request must be >= 1, got {concurrency} and {per_request}")
    if not questions:
        raise ConfigError("no question to record")
    wording = prompts or Prompts()
    opened = [wording.opening(q) for q in questions]
    digests = [stable_hash(m) for m in opened]
    table: list[list[Sample | None]] = [[None] * samples_per_question for _ in questions]
    failures: dict[str, int] = {}
    with Journal(journal_path) as journal:
        # The sample key is the one ``dynscaling.solve.asolve`` uses, so live runs and recordings share samples.
        log = journal.open_run(
            sample_key={"backend": dict(backend_identity), "seed": seed,
                        **({"prompts": asdict(prompts)} if prompts is not None else {})},
            run_key={"record": samples_per_question,
                     "questions": stable_hash([[q.id, q.text, q.answer_type] for q in questions])},
            fresh=fresh)
        reused = 0
        pending: list[tuple[int, list[int]]] = []
        for qi, question in enumerate(questions):
            missing = []
            for index in range(samples_per_question):
                cached = log.lookup(question.id, index, digests[qi])
                if cached is None:
                    missing.append(index)
                else:
                    table[qi][index] = cached
                    reused += 1
            pending.extend((qi, run) for run in _chunks(missing, per_request))
        total = len(questions) * samples_per_question
        state = {"done": reused, "generated": 0, "failed": 0, "tokens": 0}

        def report() -> None:
            if on_progress is not None:
                on_progress(RecordProgress(state["done"], total, reused, state["failed"], state["tokens"]))

        report()
        queue = iter(pending)

        async def worker() -> None:
            for qi, run in queue:
                await _one(log, backend, questions[qi], opened[qi], digests[qi], run, seed, table[qi], state,
                           failures)
                report()

        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(pending))))))
    return RecordResult(tuple(questions), tuple(tuple(row) for row in table), reused, state["generated"],
                        failures)


async def _one(log: RunLog, backend: AsyncBackend, question: Question, messages: list[Message], digest: str,
               run: list[int], seed: int, row: list[Sample | None], state: dict[str, int],
               failures: dict[str, int]) -> None:
    try:
        samples = await backend.agenerate(messages, len(run), seed=sample_seed(seed, question.id, run[0]))
    except BackendError as error:
        failures[error.kind] = failures.get(error.kind, 0) + 1
        state["failed"] += len(run)
        logger.warning("question %s, samples %d-%d failed: %s", question.id, run[0], run[-1], error)
        return
    for index, sample in zip(run, samples, strict=False):  # a short answer leaves the rest missing
        log.record_result(question.id, index, digest, sample, messages, new=True)  # journaled as it lands
        row[index] = sample
        state["done"] += 1
        state["generated"] += 1
        state["tokens"] += sample.usage.completion_tokens
    if len(samples) < len(run):
        failures["fewer_choices"] = failures.get("fewer_choices", 0) + 1
        state["failed"] += len(run) - len(samples)


def pool_records(result: RecordResult, meta: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Pool lines: one per question that has at least one sample, samples in index order."""
    records = []
    for question, row in zip(result.questions, result.samples, strict=True):
        samples = []
        for sample in row:
            if sample is None:
                continue
            cut_off = sample.finish_reason == "length"
            answer = None if cut_off or not sample.text else extract_answer(sample.text, question.answer_type)
            entry: dict[str, Any] = {"text": sample.text, "answer": answer, "finish_reason": sample.finish_reason,
                                     "usage": {"prompt_tokens": sample.usage.prompt_tokens,
                                               "completion_tokens": sample.usage.completion_tokens}}
            if sample.mean_logprob is not None:
                entry["mean_logprob"] = round(sample.mean_logprob, 5)
            samples.append(entry)
        if samples:
            records.append({"id": question.id, "question": question.text, "gold": question.gold,
                            "answer_type": question.answer_type, "samples": samples, "meta": dict(meta or {})})
    return records


def write_pool(path: str | Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write pool lines atomically, gzipped when the name ends in ``.gz``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        if target.name.endswith(".gz"):
            with open(temporary, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                out.write(text)  # mtime=0: the same samples give the same bytes
        else:
            Path(temporary).write_bytes(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # a pool is data to share: not mkstemp's owner-only mode
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
