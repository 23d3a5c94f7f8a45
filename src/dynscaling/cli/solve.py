"""``dynscaling solve``: answer a questions file against a live endpoint, under a budget, journaled."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import BackendError, ConfigError, InputError, JournalError
from .backend_options import check_endpoint, local_backend, local_model_options
from .common import (
    CONFIG_PROBE_KINDS,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_UNANSWERED,
    FiniteFloat,
    fail_cleanly,
    one_line,
    parse_fields,
    parse_price,
)

if TYPE_CHECKING:  # the engine's modules load only when a command runs, not for --help
    from ..drivers import RunStats
    from ..types import RunResult


@click.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
              help="Where to write one JSON line per question (written atomically at the end; '-': standard "
                   "output).")
@click.option("--base-url", envvar="OPENAI_BASE_URL",
              help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL).")
@click.option("--model", help="Model name at the endpoint.")
@local_model_options
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Name of the environment variable holding the API key (the key itself is never printed). "
                   "Unset, a server on this machine or a private network gets a placeholder key.")
@click.option("--no-api-key", "allow_no_key", is_flag=True,
              help="Send a placeholder key to any host when none is set (a gateway that checks no key).")
@click.option("--strategy", default="dynscaling", show_default=True, help="Strategy spec, e.g. dynscaling:k0=2,m=2.")
@click.option("--budget", type=FiniteFloat(0, open_minimum=True),
              help="Average samples per question (default 4 when no other budget is given).")
@click.option("--budget-tokens", type=click.IntRange(min=1), help="Total tokens (prompt + completion) for the batch.")
@click.option("--budget-usd", type=FiniteFloat(0, open_minimum=True), help="Total dollars for the batch.")
@click.option("--price", help="USD per million input and output tokens, 'IN,OUT' (e.g. 0.15,0.6).")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.7, show_default=True, type=FiniteFloat(0))
@click.option("--top-p", type=FiniteFloat(0, open_minimum=True))
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion cap per request.")
@click.option("--max-tokens-field", default="max_tokens", show_default=True,
              type=click.Choice(["max_tokens", "max_completion_tokens"]),
              help="The request field that carries --max-tokens (some models want max_completion_tokens).")
@click.option("--stop", multiple=True, help="Stop sequence (repeatable).")
@click.option("--extra-body", help="JSON object merged into every request body (server-specific fields such as "
                                   "top_k; not n, max_tokens or anything an option here controls).")
@click.option("--field", "fields", multiple=True, help="Map a field name: ours=theirs, e.g. question=problem.")
@click.option("--answer-type", default="text", show_default=True,
              type=click.Choice(["number", "date", "latex", "choice", "text"]),
              help="Answer type for lines that do not give one.")
@click.option("--limit", type=click.IntRange(min=1), help="Answer only the first N usable questions of the file.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--timeout", default=600.0, show_default=True, type=FiniteFloat(0, open_minimum=True),
              help="Seconds per request.")
@click.option("--max-retries", default=4, show_default=True, type=click.IntRange(min=0),
              help="Retries of a request that failed with a rate limit, server error, timeout or lost connection.")
@click.option("--max-retry-after", default=120.0, show_default=True, type=FiniteFloat(0),
              help="Longest Retry-After (seconds) waited for; a longer one fails that request alone.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite journal (default $DYNSCALING_HOME/journal.sqlite, i.e. ~/.dynscaling/journal.sqlite).")
@click.option("--journal-wait", default=0.0, show_default=True, type=FiniteFloat(0),
              help="Seconds to wait for another run holding the journal; after that, exit 2.")
@click.option("--fresh", is_flag=True,
              help="Start over: forget every journaled sample of these questions (at any budget) and pay again.")
@click.option("--prompts", "prompts_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON object overriding the prompt wording (fields of dynscaling.Prompts: system, question, "
                   "format_hints, reconsider, fresh_solution, revise).")
@fail_cleanly
def solve(input_path: Path, out_path: Path, base_url: str | None, model: str | None, backend_kind: str,
          model_path: Path | None, n_ctx: int, threads: int, api_key_env: str, allow_no_key: bool,
          strategy: str, budget: float | None, budget_tokens: int | None, budget_usd: float | None,
          price: str | None, concurrency: int, temperature: float, top_p: float | None, max_tokens: int | None,
          max_tokens_field: str, stop: Sequence[str], extra_body: str | None, fields: Sequence[str],
          answer_type: str, limit: int | None, seed: int, timeout: float, max_retries: int, max_retry_after: float,
          journal_path: Path | None, journal_wait: float, fresh: bool, prompts_path: Path | None) -> None:
    """Answer every question of INPUT.jsonl ('-': standard input) against a live OpenAI-compatible endpoint (or a
    local GGUF model with --backend llama-cpp), under a budget.

    Every sample is journaled as it arrives: re-running the same command resumes without paying twice, retries
    every question the backend failed, and a re-run with a larger budget reuses what it has. Before any sample,
    one free request (the models list) checks the URL, the key and the model. One run at a time per journal.

    \b
    Exit status:
      0    every question answered (a sample that gives no answer still counts)
      2    bad input or configuration: a file, an option, the key, the model, the journal or --out;
           also after a run that answered every usable line but skipped bad ones (listed first)
      3    some questions have no answer because the backend failed (their lines carry "error"),
           or the run stopped early on repeated connection failures; the same command again
           retries and resumes, paying for nothing twice
      130  interrupted; the same command again resumes
    """
    import asyncio
    import time

    from rich.console import Console

    from ..backends.openai import OpenAIBackend
    from ..budget import Budget
    from ..drivers import RunStats
    from ..inputs import read_questions
    from ..journal import default_journal_path
    from ..samplers import Prompts
    from ..solve import SolveConfig, asolve, unanswered, write_results
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
    prompts = Prompts.from_file(str(prompts_path)) if prompts_path is not None else None  # checked before any cost
    read = read_questions(input_path, fields=parse_fields(fields), answer_type=answer_type)
    for error in read.errors:
        err.print(f"[red]skipped[/] {error}", highlight=False)
    questions = read.questions[:limit] if limit is not None else read.questions
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
    _check_writable(out_path)
    backend: Any
    if backend_kind == "llama-cpp":
        backend = local_backend(model_path, n_ctx=n_ctx, threads=threads, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, stop=stop)
        identity = backend.identity
    else:
        backend = OpenAIBackend(base_url=base_url or "", model=model or "", api_key_env=api_key_env,
                                allow_no_key=allow_no_key, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, max_tokens_field=max_tokens_field, stop=list(stop) or None,
                                extra_body=body, price_input=price_in, price_output=price_out, timeout=timeout,
                                max_retries=max_retries, max_retry_after=max_retry_after)
        identity = {"base_url": base_url, "model": model, "temperature": temperature, "top_p": top_p,
                    "max_tokens": max_tokens, "stop": list(stop), "extra_body": body}
        if max_tokens_field != "max_tokens":  # only when set, so that journals written before keep their keys
            identity["max_tokens_field"] = max_tokens_field
    config = SolveConfig(parsed_strategy, caps, seed=seed, concurrency=concurrency, backend_identity=identity,
                         max_tokens=max_tokens, price_input=price_in, price_output=price_out, prompts=prompts)
    journal = journal_path or default_journal_path()
    started = time.monotonic()
    stats = RunStats()

    async def go() -> Any:
        try:
            if hasattr(backend, "probe"):  # an endpoint: checked before the journal is opened
                await backend.probe()
            with _SpendProgress(err, total_samples) as progress_bar:
                return await asolve(questions, backend, config, journal_path=journal, fresh=fresh,
                                    on_progress=progress_bar.update, stats=stats, journal_wait=journal_wait)
        finally:
            await backend.aclose()

    try:
        result = asyncio.run(go())
    except BackendError as error:  # only the probe raises: the run itself records failures per question
        click.echo(f"error: {one_line(error)}", err=True)
        sys.exit(EXIT_BAD_INPUT if error.kind in CONFIG_PROBE_KINDS else EXIT_UNANSWERED)
    except KeyboardInterrupt:
        err.print(f"interrupted: every sample that arrived is kept in {journal}; run the same command again to "
                  "resume without paying twice", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except JournalError as error:
        kept = ""
        if stats.result is not None and stats.new:  # paid for and not journaled: hand them over anyway
            try:
                write_results(out_path, stats.result, unanswered(stats.result, stats))
                kept = f"; the {stats.new} samples of this run are in {out_path}"
            except OSError:
                pass
        click.echo(f"error: {one_line(error)}{kept}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    reasons = unanswered(result, stats)
    try:
        if str(out_path) == "-":
            _print_results(result, reasons)
        else:
            write_results(out_path, result, reasons)
    except OSError as error:
        raise ConfigError(f"--out {out_path}: cannot write it ({error.strerror or error}); every sample is kept in "
                          f"{journal}: run the same command again to write it without paying twice") from None
    wall = time.monotonic() - started
    click.echo(_summary(len(questions), result, stats, reasons, wall), err=True)  # one line, never wrapped
    if str(out_path) != "-":
        click.echo(f"wrote {out_path}", err=True)
    if reasons or stats.stopped:
        what = (f"{len(reasons)} questions have no answer because the backend failed" if reasons
                else "the run stopped before its budget was spent")
        click.echo(f"{what}; to go on (nothing paid for is asked again), run: {_same_command()}", err=True)
        sys.exit(EXIT_UNANSWERED)
    if read.errors:
        # The file lost questions: a script that checks only the exit status must not take the output as whole.
        # The answered ones are journaled, so fixing the lines and running again pays only for those.
        click.echo(f"{len(read.errors)} input lines were skipped (listed above) and have no answer; fix them and run "
                   "the same command again: every sample paid for now is reused, none is paid twice", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _print_results(result: RunResult, reasons: Mapping[str, str]) -> None:
    """``--out -``: the answer lines on standard output (the summary stays on standard error)."""
    for r in result.results:
        row = r.to_dict()
        if r.question_id in reasons:
            row["error"] = reasons[r.question_id]
        click.echo(json.dumps(row, ensure_ascii=False))


def _check_writable(out_path: Path) -> None:
    """Refuse before paying for anything when the answers could not be written."""
    if str(out_path) == "-":
        return
    folder = out_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out_path.name}.", suffix=".check")
        probe.close()
    except OSError as error:
        raise ConfigError(f"--out {out_path}: cannot write there ({error.strerror or error})") from None


def _summary(count: int, result: RunResult, stats: RunStats, reasons: Mapping[str, str], wall: float) -> str:
    """One paragraph: what was spent, reused / new / retried / failed, and the upstream's own words."""
    summary = (f"{count} questions, {result.samples} samples ({stats.reused} reused from the journal, "
               f"{stats.new} new), {result.usage.total_tokens} tokens ({result.usage.prompt_tokens} prompt, "
               f"{result.usage.completion_tokens} completion), ${result.usage.cost_usd:.4f}, {wall:.1f} s")
    if stats.retried:
        summary += f"; {stats.retried} questions failed before and were retried"
    failures = {k: v for k, v in result.failures.items() if k not in ("exhausted", "cancelled")}
    if failures:
        summary += f"; {sum(failures.values())} failed requests ({', '.join(f'{k}: {v}' for k, v in failures.items())})"
    if reasons:
        distinct = sorted(set(reasons.values()), key=list(reasons.values()).index)
        shown = "; ".join(one_line(r) for r in distinct[:3]) + (f"; ... ({len(distinct)} kinds)" if len(distinct) > 3
                                                                 else "")
        summary += f"; {len(reasons)} questions unanswered: {shown}"
    if stats.stopped:
        summary += f"; {one_line(stats.stopped)}"
    if result.accuracy is not None:
        summary += f", accuracy {result.accuracy:.4f}"
    return summary


def _same_command() -> str:
    """The command line that was run, without --fresh (which would pay again for everything)."""
    args = [a for a in sys.argv[1:] if a != "--fresh"]
    return shlex.join(["dynscaling", *args]) if args[:1] == ["solve"] else "the same command"


class _SpendProgress:
    """A progress bar on stderr with the spend so far."""

    def __init__(self, console: Any, total_samples: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]solving"), BarColumn(), TextColumn("{task.description}"),
                                  TimeElapsedColumn(), console=console, transient=False)
        self._task = self._progress.add_task("", total=total_samples)
        self._started = False

    def __enter__(self) -> _SpendProgress:
        return self  # shown from the first sample on: an error before that is one line, with no bar above it

    def __exit__(self, *exc_info: object) -> None:
        if self._started:
            self._progress.__exit__(*exc_info)  # type: ignore[arg-type]

    def update(self, p: Any) -> None:
        if not self._started:
            self._progress.__enter__()
            self._started = True
        of = f"/{p.budget_samples}" if p.budget_samples is not None else ""
        text = (f"{p.samples}{of} samples, {p.tokens} tokens, ${p.cost_usd:.4f}, {p.inflight} in flight"
                + (f", {p.failures} failed" if p.failures else "") + (f", {p.reused} reused" if p.reused else ""))
        self._progress.update(self._task, completed=p.samples, description=text)
