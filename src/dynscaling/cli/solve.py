"""``dynscaling solve``: answer a questions file against a live endpoint, under a budget, journaled."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, InputError
from .backend_options import check_endpoint, local_backend, local_model_options
from .common import fail_cleanly, parse_fields, parse_price


@click.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write one JSON line per question (written atomically at the end).")
@click.option("--base-url", envvar="OPENAI_BASE_URL",
              help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL).")
@click.option("--model", help="Model name at the endpoint.")
@local_model_options
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Name of the environment variable holding the API key (the key itself is never printed).")
@click.option("--strategy", default="dynscaling", show_default=True, help="Strategy spec, e.g. dynscaling:k0=2,m=2.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True),
              help="Average samples per question (default 4 when no other budget is given).")
@click.option("--budget-tokens", type=click.IntRange(min=1), help="Total tokens (prompt + completion) for the batch.")
@click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), help="Total dollars for the batch.")
@click.option("--price", help="USD per million input and output tokens, 'IN,OUT' (e.g. 0.15,0.6).")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--top-p", type=float)
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion cap per request.")
@click.option("--stop", multiple=True, help="Stop sequence (repeatable).")
@click.option("--extra-body", help="JSON object merged into every request body.")
@click.option("--field", "fields", multiple=True, help="Map a field name: ours=theirs, e.g. question=problem.")
@click.option("--answer-type", default="text", show_default=True,
              type=click.Choice(["number", "date", "latex", "choice", "text"]),
              help="Answer type for lines that do not give one.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--timeout", default=600.0, show_default=True, type=float, help="Seconds per request.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite journal (default $DYNSCALING_HOME/journal.sqlite, i.e. ~/.dynscaling/journal.sqlite).")
@click.option("--fresh", is_flag=True, help="Start over: forget this run's journaled samples.")
@click.option("--prompts", "prompts_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON object overriding the prompt wording (fields of dynscaling.Prompts: system, question, "
                   "format_hints, reconsider, fresh_solution, revise).")
@fail_cleanly
def solve(input_path: Path, out_path: Path, base_url: str | None, model: str | None, backend_kind: str,
          model_path: Path | None, n_ctx: int, threads: int, api_key_env: str, strategy: str,
          budget: float | None, budget_tokens: int | None, budget_usd: float | None, price: str | None,
          concurrency: int, temperature: float, top_p: float | None, max_tokens: int | None, stop: Sequence[str],
          extra_body: str | None, fields: Sequence[str], answer_type: str, seed: int, timeout: float,
          journal_path: Path | None, fresh: bool, prompts_path: Path | None) -> None:
    """Answer every question of INPUT.jsonl against a live OpenAI-compatible endpoint (or a local GGUF model with
    --backend llama-cpp), under a budget.

    Every sample is journaled as it arrives: re-running the same command resumes without paying twice, and a
    re-run with a larger budget reuses what it has.
    """
    import asyncio
    import time

    from rich.console import Console

    from ..backends.openai import OpenAIBackend
    from ..budget import Budget
    from ..inputs import read_questions
    from ..journal import default_journal_path
    from ..samplers import Prompts
    from ..solve import SolveConfig, asolve, write_results
    from ..strategies import parse_strategy

    err = Console(stderr=True)
    check_endpoint(backend_kind, base_url, model)
    parsed_strategy = parse_strategy(strategy)
    price_in, price_out = parse_price(price)
    body = None
    if extra_body:
        try:
            body = json.loads(extra_body)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--extra-body is not valid JSON: {error.msg}") from None
        if not isinstance(body, dict):
            raise ConfigError("--extra-body must be a JSON object")
    read = read_questions(input_path, fields=parse_fields(fields), answer_type=answer_type)
    for error in read.errors:
        err.print(f"[red]skipped[/] {error}", highlight=False)
    questions = read.questions
    if not questions:
        raise InputError("no usable question in the file", path=str(input_path))
    if budget is None and budget_tokens is None and budget_usd is None:
        budget = 4.0
    total_samples = None if budget is None else max(1, round(budget * len(questions)))
    if budget_usd is not None and price is None:
        raise ConfigError("--budget-usd needs --price IN,OUT so that requests can be costed")
    caps = Budget(samples=total_samples, tokens=budget_tokens, usd=budget_usd)
    if total_samples is not None and total_samples < len(questions):
        err.print(f"[yellow]budget of {total_samples} samples is smaller than the batch ({len(questions)} questions): "
                  f"{len(questions) - total_samples} questions will get no sample and no answer[/]")
    backend: Any
    if backend_kind == "llama-cpp":
        backend = local_backend(model_path, n_ctx=n_ctx, threads=threads, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, stop=stop)
        identity = backend.identity
    else:
        backend = OpenAIBackend(base_url=base_url, model=model or "", api_key_env=api_key_env,
                                temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=list(stop) or None,
                                extra_body=body, price_input=price_in, price_output=price_out, timeout=timeout)
        identity = {"base_url": base_url, "model": model, "temperature": temperature, "top_p": top_p,
                    "max_tokens": max_tokens, "stop": list(stop), "extra_body": body}
    prompts = Prompts.from_file(str(prompts_path)) if prompts_path is not None else None
    config = SolveConfig(parsed_strategy, caps, seed=seed, concurrency=concurrency, backend_identity=identity,
                         max_tokens=max_tokens, price_input=price_in, price_output=price_out, prompts=prompts)
    journal = journal_path or default_journal_path()
    started = time.monotonic()
    progress_bar = _SpendProgress(err, total_samples)

    async def go() -> Any:
        try:
            return await asolve(questions, backend, config, journal_path=journal, fresh=fresh,
                                on_progress=progress_bar.update)
        finally:
            await backend.aclose()

    try:
        with progress_bar:
            result = asyncio.run(go())
    except KeyboardInterrupt:
        err.print(f"interrupted: every sample that arrived is kept in {journal}; run the same command again to "
                  "resume without paying twice", highlight=False)
        sys.exit(130)
    write_results(out_path, result)
    wall = time.monotonic() - started
    summary = (f"{len(questions)} questions, {result.samples} samples, {result.usage.total_tokens} tokens "
               f"({result.usage.prompt_tokens} prompt, {result.usage.completion_tokens} completion), "
               f"${result.usage.cost_usd:.4f}, {wall:.1f} s")
    if progress_bar.reused:
        summary += f", {progress_bar.reused} samples reused from the journal"
    failures = sum(v for k, v in result.failures.items() if k != "exhausted")
    if failures:
        summary += f", {failures} failed requests ({', '.join(f'{k}: {v}' for k, v in result.failures.items())})"
    if result.accuracy is not None:
        summary += f", accuracy {result.accuracy:.4f}"
    err.print(summary, highlight=False)
    click.echo(f"wrote {out_path}", err=True)


class _SpendProgress:
    """A progress bar on stderr with the spend so far."""

    def __init__(self, console: Any, total_samples: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.reused = 0
        self._progress = Progress(TextColumn("[bold]solving"), BarColumn(), TextColumn("{task.description}"),
                                  TimeElapsedColumn(), console=console, transient=False)
        self._task = self._progress.add_task("", total=total_samples)

    def __enter__(self) -> _SpendProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.__exit__(*exc_info)  # type: ignore[arg-type]

    def update(self, p: Any) -> None:
        self.reused = p.reused
        of = f"/{p.budget_samples}" if p.budget_samples is not None else ""
        text = (f"{p.samples}{of} samples, {p.tokens} tokens, ${p.cost_usd:.4f}, {p.inflight} in flight"
                + (f", {p.failures} failed" if p.failures else "") + (f", {p.reused} reused" if p.reused else ""))
        self._progress.update(self._task, completed=p.samples, description=text)

