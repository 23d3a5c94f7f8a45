"""``dynscaling record``: sample a questions file or a benchmark N times per question into a replay pool."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, InputError
from .backend_options import check_endpoint, local_backend, local_model_options
from .common import fail_cleanly, parse_fields


@click.command()
@click.argument("input_path", metavar="[INPUT.jsonl]", required=False, type=click.Path(path_type=Path))
@click.option("--dataset", help="Record a registered benchmark instead of a file (gsm8k, math500, ...).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder laid out like shared/data/benchmarks (default $DYNSCALING_BENCHMARKS).")
@click.option("--subset", help="A subset of the dataset (a BBH task, an MMLU-Pro category, ...).")
@click.option("--limit", type=click.IntRange(min=1), help="First N questions only.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The pool to write (JSON lines; gzipped when the name ends in .gz), atomically at the end.")
@click.option("--samples", "samples_per_question", default=16, show_default=True, type=click.IntRange(min=1),
              help="Samples per question.")
@local_model_options
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible endpoint (env OPENAI_BASE_URL).")
@click.option("--model", help="Model name at the endpoint.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Name of the environment variable holding the API key (the key itself is never printed).")
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--top-p", type=float)
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion cap per sample.")
@click.option("--logprobs/--no-logprobs", default=True, show_default=True,
              help="Keep each sample's mean token log-probability (local models).")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--per-request", default=4, show_default=True, type=click.IntRange(min=1),
              help="Samples asked for in one request (n).")
@click.option("--field", "fields", multiple=True, help="Map a field name: ours=theirs, e.g. question=problem.")
@click.option("--answer-type", default="text", show_default=True,
              type=click.Choice(["number", "date", "latex", "choice", "text"]),
              help="Answer type for lines that do not give one.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite journal (default $DYNSCALING_HOME/journal.sqlite); shared with solve and bench.")
@click.option("--fresh", is_flag=True, help="Start over: forget the samples this recording journaled.")
@fail_cleanly
def record(input_path: Path | None, dataset: str | None, data_dir: Path | None, subset: str | None,
           limit: int | None, out_path: Path, samples_per_question: int, backend_kind: str,
           model_path: Path | None, n_ctx: int, threads: int, base_url: str | None, model: str | None,
           api_key_env: str, temperature: float, top_p: float | None, max_tokens: int | None, logprobs: bool,
           concurrency: int, per_request: int, fields: Sequence[str], answer_type: str, seed: int,
           journal_path: Path | None, fresh: bool) -> None:
    """Sample every question N times into a replay pool, for offline benchmarks of your own model.

    Every sample is journaled as it arrives: re-running the same command after an interruption resumes without
    paying twice. The pool loads with dynscaling.load_pool and runs with 'dynscaling bench --pool OUT'.
    """
    import asyncio
    import time

    from rich.console import Console

    from ..journal import default_journal_path
    from ..record import arecord, pool_records, write_pool

    err = Console(stderr=True)
    if (input_path is None) == (dataset is None):
        raise ConfigError("give a questions file (INPUT.jsonl) or --dataset NAME, not both and not neither")
    check_endpoint(backend_kind, base_url, model)
    questions = _questions(err, input_path, dataset, data_dir, subset, limit, fields, answer_type)
    if backend_kind == "llama-cpp":
        backend = local_backend(model_path, n_ctx=n_ctx, threads=threads, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, logprobs=logprobs)
        identity = backend.identity
        model_name = backend.model
    else:
        from ..backends.openai import OpenAIBackend

        backend = OpenAIBackend(model or "", base_url=base_url, api_key_env=api_key_env, temperature=temperature,
                                top_p=top_p, max_tokens=max_tokens)
        # the same identity ``dynscaling solve`` journals under, so the two share samples
        identity = {"base_url": base_url, "model": model, "temperature": temperature, "top_p": top_p,
                    "max_tokens": max_tokens, "stop": [], "extra_body": None}
        model_name = model
    journal = journal_path or default_journal_path()
    started = time.monotonic()
    bar = _RecordProgress(err, len(questions) * samples_per_question)

    async def go() -> Any:
        try:
            return await arecord(questions, backend, samples_per_question, journal_path=journal,
                                 backend_identity=identity, seed=seed, concurrency=concurrency,
                                 per_request=per_request, fresh=fresh, on_progress=bar.update)
        finally:
            await backend.aclose()

    try:
        with bar:
            result = asyncio.run(go())
    except KeyboardInterrupt:
        err.print(f"interrupted: every sample that arrived is kept in {journal}; run the same command again to "
                  "resume without paying twice", highlight=False)
        sys.exit(130)
    records = pool_records(result, {"model": model_name, "temperature": temperature, "max_tokens": max_tokens,
                                    "seed": seed})
    if not records:
        raise ConfigError("no sample arrived: nothing to write (see the warnings above)")
    write_pool(out_path, records)
    samples = sum(len(r["samples"]) for r in records)
    err.print(f"{len(records)} questions, {samples} samples ({result.generated} generated, {result.reused} from the "
              f"journal), {time.monotonic() - started:.1f} s; wrote {out_path}", highlight=False)
    if result.missing:
        counts = ", ".join(f"{k}: {v}" for k, v in result.failures.items())
        err.print(f"[yellow]{result.missing} samples are missing ({counts}): run the same command again to fill "
                  "them in[/]", highlight=False)
        sys.exit(1)


def _questions(err: Any, input_path: Path | None, dataset: str | None, data_dir: Path | None, subset: str | None,
               limit: int | None, fields: Sequence[str], answer_type: str) -> list[Any]:
    """The questions to record; every one needs a gold answer, since a replay pool is graded."""
    if dataset is not None:
        from ..datasets import load_dataset

        questions = load_dataset(dataset, data_dir=data_dir, limit=limit, subset=subset)
        source = dataset
    else:
        from ..inputs import read_questions

        assert input_path is not None
        read = read_questions(input_path, fields=parse_fields(fields), answer_type=answer_type)
        for error in read.errors:
            err.print(f"[red]skipped[/] {error}", highlight=False)
        questions = read.questions[:limit] if limit else read.questions
        source = str(input_path)
    if not questions:
        raise InputError("no usable question", path=source)
    ungraded = [q.id for q in questions if q.gold is None]
    if ungraded:
        raise InputError(f"question {ungraded[0]!r} has no gold answer ({len(ungraded)} in all); a replay pool "
                         "grades every question", path=source, field="gold")
    return questions


class _RecordProgress:
    """A progress bar on stderr: samples recorded of the total, tokens generated."""

    def __init__(self, console: Any, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("[bold]recording"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.description}"), TimeRemainingColumn(), console=console)
        self._task = self._progress.add_task("", total=total)

    def __enter__(self) -> _RecordProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)  # type: ignore[arg-type]

    def update(self, p: Any) -> None:
        text = (f"{p.completion_tokens} tokens generated" + (f", {p.reused} from the journal" if p.reused else "")
                + (f", {p.failed} failed" if p.failed else ""))
        self._progress.update(self._task, completed=p.done, description=text)
