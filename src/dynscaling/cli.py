"""The ``dynscaling`` command line. Results go to stdout, progress and errors to stderr.

Exit status: 0 on success, 2 on bad input or parameters (one line naming the file, line and field), 1 on any
other failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import ConfigError, DynscalingError, InputError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STRATEGIES = "single,sc,esc,adaptive,dynscaling-parallel,oracle"


def _fail_cleanly(function: F) -> F:
    """Turn our errors into one line on stderr and exit status 2, never a traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (InputError, ConfigError) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except DynscalingError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def split_strategies(text: str) -> list[str]:
    """Split ``"sc,dynscaling-parallel:c=0.3,k0=3,esc"`` into specs; ``key=value`` items join the spec before."""
    specs: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return specs


def _parse_budgets(text: str) -> list[float]:
    try:
        budgets = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets must be numbers separated by commas, got {text!r}") from None
    if not budgets or any(b <= 0 for b in budgets):
        raise ConfigError(f"--budgets must be positive samples per question, got {text!r}")
    return budgets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynscaling")
def cli() -> None:
    """Better LLM answers for less: adaptive sampling and voting under a budget, no verifier."""


@cli.command()
@click.option("--pool", "pools", multiple=True, type=click.Path(path_type=Path),
              help="Replay pool (JSONL, optionally gzipped). Repeatable. Default: the pools bundled with the package.")
@click.option("--strategies", default=DEFAULT_STRATEGIES, show_default=True,
              help="Comma-separated strategy specs, e.g. 'sc,dynscaling-parallel:c=0.3,k0=3'.")
@click.option("--budgets", default="1,2,4,8", show_default=True, help="Samples per question, comma-separated.")
@click.option("--seeds", default=10, show_default=True, type=click.IntRange(min=1),
              help="Random sample orders per point; intervals are over seeds.")
@click.option("--answers", type=click.Choice(["extract", "upstream"]), default="extract", show_default=True,
              help="'extract': our extractor on the recorded answers; 'upstream': the recorded answers compared "
                   "as upstream evaluations did (to reproduce published figures).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every point as a JSON list to this file.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write accuracy-vs-samples plots (PNG and SVG), one per pool, into this folder.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the run (points and per-question results) into this folder, for 'dynscaling report'.")
@click.option("--dataset", help="Live bench on a benchmark (gsm8k, math500, gpqa_diamond, bbh, ...): needs "
                                "--base-url and --model.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder laid out like shared/data/benchmarks (default $DYNSCALING_BENCHMARKS).")
@click.option("--limit", type=click.IntRange(min=1), help="First N questions only.")
@click.option("--subset", help="A subset of the dataset (a BBH task, an MMLU-Pro category, ...).")
@click.option("--base-url", help="OpenAI-compatible endpoint for a live bench.")
@click.option("--model", help="Model name at the endpoint.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--max-tokens", type=click.IntRange(min=1))
@click.option("--price", help="USD per million input and output tokens, 'IN,OUT'.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Journal shared by every point (default $DYNSCALING_HOME/journal.sqlite).")
@click.option("--yes", is_flag=True, help="Do not ask before spending more than --confirm-above.")
@click.option("--confirm-above", default=1.0, show_default=True, type=float,
              help="Ask for confirmation when the estimated cost is above this many dollars.")
@_fail_cleanly
def bench(pools: Sequence[Path], strategies: str, budgets: str, seeds: int, answers: str,
          json_path: Path | None, plot_dir: Path | None, run_dir: Path | None, dataset: str | None,
          data_dir: Path | None, limit: int | None, subset: str | None, base_url: str | None, model: str | None,
          api_key_env: str, concurrency: int, temperature: float, max_tokens: int | None, price: str | None,
          journal_path: Path | None, yes: bool, confirm_above: float) -> None:
    """Compare strategies: on recorded model outputs (replay pools; no API key, no network) by default, or live
    on a benchmark dataset with --dataset --base-url --model."""
    from rich.console import Console

    if dataset is not None or base_url is not None:
        if pools:
            raise ConfigError("--pool replays recorded samples; --dataset/--base-url run live: choose one")
        if dataset is None or base_url is None or model is None:
            raise ConfigError("a live bench needs --dataset, --base-url and --model together")
        _live_bench(dataset=dataset, data_dir=data_dir, limit=limit, subset=subset, base_url=base_url, model=model,
                    api_key_env=api_key_env, strategies=strategies, budgets=budgets,
                    seeds=seeds if click.get_current_context().get_parameter_source("seeds").name != "DEFAULT"
                    else 1, concurrency=concurrency, temperature=temperature, max_tokens=max_tokens, price=price,
                    journal_path=journal_path, yes=yes, confirm_above=confirm_above, json_path=json_path,
                    plot_dir=plot_dir, run_dir=run_dir)
        return

    from .bench import headline, run_bench
    from .pools import bundled_pools, load_pool
    from .runs import question_rows
    from .strategies import parse_strategy

    err = Console(stderr=True)
    specs = [parse_strategy(s) for s in split_strategies(strategies)]
    if not specs:
        raise ConfigError("--strategies is empty")
    budget_list = _parse_budgets(budgets)
    live_only = [s for s in specs if s.needs_live_model]
    if live_only and len(live_only) == len(specs):
        raise ConfigError(f"{', '.join(s.label for s in live_only)} need a live model (they show the model its "
                          "earlier answers), which replay pools cannot; on pools, use dynscaling-parallel")
    for s in live_only:
        err.print(f"[yellow]skipping {s.label}: it needs a live model; replay pools hold independent samples[/]")
    specs = [s for s in specs if not s.needs_live_model]
    paths = list(pools) or bundled_pools()
    loaded = []
    for path in paths:
        with err.status(f"loading {path}"):  # transient: leaves nothing behind on stderr
            loaded.append(load_pool(path, answers=answers))  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = []

    def keep(pool: Any, strategy: Any, budget: float, seed: int, result: Any) -> None:
        if seed == 0 and run_dir is not None:
            texts = {e.question.id: e.question.text for e in pool.entries}
            golds = {e.question.id: e.question.gold for e in pool.entries}
            rows.extend(question_rows(pool.name, strategy.label, budget, seed, result.results, texts, golds))

    with err.status("benchmarking") as status:
        points = run_bench(loaded, specs, budget_list, seeds, progress=lambda m: status.update(m), on_result=keep)
    _print_points(points, [(p.name, f"{p.name}: {len(p.entries)} questions x {p.samples_per_question:g} samples")
                           for p in loaded])
    if any(s.name == "sc" for s in specs):
        _print_headline(headline(points, loaded))
    _write_outputs(points, rows, {"source": "replay", "pools": [str(p) for p in paths], "answers": answers,
                                  "strategies": [s.label for s in specs], "budgets": budget_list, "seeds": seeds},
                   run_dir=run_dir, json_path=json_path, plot_dir=plot_dir)


def _write_outputs(points: Sequence[Any], rows: Sequence[dict[str, Any]], meta: dict[str, Any], *,
                   run_dir: Path | None, json_path: Path | None, plot_dir: Path | None) -> None:
    """The run folder, the JSON list of points and the plots a bench was asked for."""
    from .runs import write_run

    if run_dir is not None:
        write_run(run_dir, meta, [p.to_dict() for p in points], rows)
        click.echo(f"wrote {run_dir} (dynscaling report {run_dir})", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps([p.to_dict() for p in points], indent=1) + "\n")
        click.echo(f"wrote {json_path}", err=True)
    if plot_dir is not None:
        from .report import plot_accuracy

        for path in plot_accuracy(points, plot_dir):
            click.echo(f"wrote {path}", err=True)


def _live_bench(*, dataset: str, data_dir: Path | None, limit: int | None, subset: str | None, base_url: str,
                model: str, api_key_env: str, strategies: str, budgets: str, seeds: int, concurrency: int,
                temperature: float, max_tokens: int | None, price: str | None, journal_path: Path | None, yes: bool,
                confirm_above: float, json_path: Path | None, plot_dir: Path | None, run_dir: Path | None) -> None:
    import asyncio

    from rich.console import Console

    from .backends.openai import OpenAIBackend
    from .bench import arun_live_bench
    from .datasets import load_dataset
    from .journal import default_journal_path
    from .runs import question_rows
    from .samplers import Prompts, estimate_tokens
    from .strategies import parse_strategy

    err = Console(stderr=True)
    specs = [parse_strategy(s) for s in split_strategies(strategies)]
    budget_list = _parse_budgets(budgets)
    questions = load_dataset(dataset, data_dir=data_dir, limit=limit, subset=subset)
    if not questions:
        raise InputError(f"dataset {dataset} has no question (check --subset and --limit)")
    price_in, price_out = _parse_price(price)
    # What the sweep can cost: the largest budget's samples (every smaller point reuses them), per seed.
    samples = round(max(budget_list) * len(questions)) * seeds
    if any(s.name in ("dynscaling", "integrated-uniform", "sequential") for s in specs):
        samples *= 2  # chain samples cannot be shared with independent ones
    prompt = sum(estimate_tokens(Prompts().user_question(q)) for q in questions) / len(questions)
    completion = max_tokens or 500
    usd = samples * (prompt * price_in + completion * price_out) / 1e6
    cost_note = f"cost at most ${usd:.2f}" if price else "cost unknown (give --price IN,OUT)"
    click.echo(f"{dataset}: {len(questions)} questions; at most {samples} samples, about "
               f"{samples * (prompt + completion):,.0f} tokens (~{completion} completion tokens each"
               f"{'' if max_tokens else ', a guess: set --max-tokens to bound it'}); {cost_note}. "
               "Samples already in the journal are reused, not paid again.", err=True)
    if price and usd > confirm_above and not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"the estimated cost ${usd:.2f} is above --confirm-above ${confirm_above:g}; "
                              "pass --yes to go ahead")
        if not click.confirm("go ahead?", err=True):
            raise ConfigError("cancelled")
    backend = OpenAIBackend(model, base_url=base_url, api_key_env=api_key_env, temperature=temperature,
                            max_tokens=max_tokens, price_input=price_in, price_output=price_out)
    identity = {"base_url": base_url, "model": model, "temperature": temperature, "max_tokens": max_tokens}
    rows: list[dict[str, Any]] = []
    texts = {q.id: q.text for q in questions}
    golds = {q.id: q.gold for q in questions}

    def keep(strategy: Any, budget: float, seed: int, result: Any, engine: Any) -> None:
        if seed == 0:
            detail = {q.id: engine.samples_detail(qi) for qi, q in enumerate(engine.questions)}
            rows.extend(question_rows(dataset, strategy.label, budget, seed, result.results, texts, golds, detail))

    async def go() -> Any:
        try:
            return await arun_live_bench(questions, backend, specs, budget_list, seeds=seeds, name=dataset,
                                         journal_path=journal_path or default_journal_path(),
                                         concurrency=concurrency, backend_identity=identity, max_tokens=max_tokens,
                                         progress=lambda m: status.update(m), on_result=keep)
        finally:
            await backend.aclose()

    with err.status("benchmarking") as status:
        points = asyncio.run(go())

    _print_points(points, [(dataset, f"{dataset}: {len(questions)} questions, {model} (live)")])
    _write_outputs(points, rows, {"source": "live", "dataset": dataset, "model": model, "base_url": base_url,
                                  "strategies": [s.label for s in specs], "budgets": budget_list, "seeds": seeds,
                                  "questions": len(questions), "backend_requests": backend.requests},
                   run_dir=run_dir, json_path=json_path, plot_dir=plot_dir)


def _parse_fields(items: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        ours, eq, theirs = item.partition("=")
        if not eq or not ours.strip() or not theirs.strip():
            raise ConfigError(f"--field must look like ours=theirs (e.g. question=problem), got {item!r}")
        fields[ours.strip()] = theirs.strip()
    return fields


def _parse_price(text: str | None) -> tuple[float, float]:
    if text is None:
        return 0.0, 0.0
    try:
        prices = [float(p) for p in text.split(",")]
    except ValueError:
        prices = []
    if len(prices) != 2 or any(p < 0 for p in prices):
        raise ConfigError(f"--price must be 'INPUT,OUTPUT' in USD per million tokens, e.g. 0.15,0.6; got {text!r}")
    return prices[0], prices[1]


@cli.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write one JSON line per question (written atomically at the end).")
@click.option("--base-url", envvar="OPENAI_BASE_URL", required=True,
              help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL).")
@click.option("--model", required=True, help="Model name at the endpoint.")
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
@_fail_cleanly
def solve(input_path: Path, out_path: Path, base_url: str, model: str, api_key_env: str, strategy: str,
          budget: float | None, budget_tokens: int | None, budget_usd: float | None, price: str | None,
          concurrency: int, temperature: float, top_p: float | None, max_tokens: int | None, stop: Sequence[str],
          extra_body: str | None, fields: Sequence[str], answer_type: str, seed: int, timeout: float,
          journal_path: Path | None, fresh: bool, prompts_path: Path | None) -> None:
    """Answer every question of INPUT.jsonl against a live OpenAI-compatible endpoint, under a budget.

    Every sample is journaled as it arrives: re-running the same command resumes without paying twice, and a
    re-run with a larger budget reuses what it has.
    """
    import asyncio
    import time

    from rich.console import Console

    from .backends.openai import OpenAIBackend
    from .budget import Budget
    from .inputs import read_questions
    from .journal import default_journal_path
    from .samplers import Prompts
    from .solve import SolveConfig, asolve, write_results
    from .strategies import parse_strategy

    err = Console(stderr=True)
    parsed_strategy = parse_strategy(strategy)
    price_in, price_out = _parse_price(price)
    body = None
    if extra_body:
        try:
            body = json.loads(extra_body)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--extra-body is not valid JSON: {error.msg}") from None
        if not isinstance(body, dict):
            raise ConfigError("--extra-body must be a JSON object")
    read = read_questions(input_path, fields=_parse_fields(fields), answer_type=answer_type)
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
    backend = OpenAIBackend(base_url=base_url, model=model, api_key_env=api_key_env, temperature=temperature,
                            top_p=top_p, max_tokens=max_tokens, stop=list(stop) or None, extra_body=body,
                            price_input=price_in, price_output=price_out, timeout=timeout)
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


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, report.md and figures/ (default: the run folder).")
@_fail_cleanly
def report(run_dir: Path, out_dir: Path | None) -> None:
    """Turn a bench run folder (dynscaling bench --out RUN) into report.html and report.md; print their paths.

    The HTML page is self-contained (inline SVG plots and CSS, no script, nothing loaded); the Markdown links
    PNG figures written into figures/ beside it.
    """
    from .report import write_report

    html_path, md_path = write_report(run_dir, out_dir)
    click.echo(str(html_path))
    click.echo(str(md_path))


@cli.command("replay-server")
@click.option("--pool", "pool_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Replay pool to serve (JSONL, optionally gzipped).")
@click.option("--answers", type=click.Choice(["extract", "upstream"]), default="extract", show_default=True,
              help="How the pool's recorded answers are read (see 'bench --answers').")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--latency", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds each request takes.")
@click.option("--slots", type=click.IntRange(min=1), default=None,
              help="Requests processed at once; the others wait. Default: no limit.")
@click.option("--seed", default=0, show_default=True, help="Seeds the sample order and the injected faults.")
@click.option("--rate-limit", default=0.0, type=click.FloatRange(0, 1), help="Fraction of requests answered 429.")
@click.option("--retry-after", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds sent in Retry-After with a 429.")
@click.option("--server-error", default=0.0, type=click.FloatRange(0, 1), help="Fraction answered 500.")
@click.option("--timeout", "timeout_rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction that hang --hang-seconds without answering, then close.")
@click.option("--hang-seconds", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="How long a --timeout fault hangs.")
@click.option("--empty", default=0.0, type=click.FloatRange(0, 1), help="Fraction with one empty choice.")
@click.option("--length", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction with one choice cut half-way (finish_reason 'length').")
@click.option("--fewer-choices", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of n>1 requests that get fewer choices than asked.")
@_fail_cleanly
def replay_server(pool_path: Path, answers: str, host: str, port: int, latency: float, slots: int | None,
                  seed: int, rate_limit: float, retry_after: float, server_error: float, timeout_rate: float,
                  hang_seconds: float, empty: float, length: float, fewer_choices: float) -> None:
    """Serve a replay pool as an OpenAI-compatible endpoint (POST /v1/chat/completions), for tests and dry runs.

    Prints the base URL on stdout, then serves until Ctrl-C. GET /stats counts what it served.
    """
    from .pools import load_pool
    from .replay_server import FaultPlan, serve

    pool = load_pool(pool_path, answers=answers)  # type: ignore[arg-type]
    faults = FaultPlan(rate_limit=rate_limit, server_error=server_error, timeout=timeout_rate, empty=empty,
                       length=length, fewer_choices=fewer_choices, retry_after=retry_after,
                       hang_seconds=hang_seconds)
    stats = serve(pool, host=host, port=port, latency=latency, slots=slots, faults=faults, seed=seed,
                  announce=lambda url: click.echo(url))
    click.echo(f"stopped after {stats['requests']} requests, {stats['samples']} samples served", err=True)


@cli.command()
@click.option("--upstream-url", required=True, envvar="DYNSCALING_UPSTREAM_URL",
              help="The model's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--upstream-model", required=True, help="The upstream model for names like dynscaling/8.")
@click.option("--upstream-api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable with the upstream key.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (default: loopback only).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key-env", "client_key_env", default=None,
              help="Environment variable with a key clients must present (Authorization: Bearer ...).")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Concurrent upstream requests at most, over all clients.")
@click.option("--default-budget", default=8, show_default=True, type=click.IntRange(min=1),
              help="Samples per question for model names without a number (dynscaling/<model>).")
@click.option("--strategy", default="dynscaling:max_inflight=2", show_default=True,
              help="Default strategy for scaled requests.")
@click.option("--answer-type", default="text", show_default=True,
              type=click.Choice(["number", "date", "latex", "choice", "text"]))
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--max-tokens", type=click.IntRange(min=1))
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Journal for batches (default $DYNSCALING_HOME/journal.sqlite).")
@_fail_cleanly
def serve(upstream_url: str, upstream_model: str, upstream_api_key_env: str, host: str, port: int,
          client_key_env: str | None, concurrency: int, default_budget: int, strategy: str, answer_type: str,
          temperature: float, max_tokens: int | None, journal_path: Path | None) -> None:
    """Serve the OpenAI chat-completions API with DynScaling in front of an upstream model.

    Model 'dynscaling/8/<model>' = up to 8 samples, voted; any other name passes through unchanged.
    """
    import os

    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the server needs its extra: pip install 'dynscaling[server]'") from None
    from .journal import default_journal_path
    from .server import ServeConfig, create_app

    client_key = None
    if client_key_env is not None:
        client_key = os.environ.get(client_key_env)
        if not client_key:
            raise ConfigError(f"--api-key-env names {client_key_env}, which is not set")
    sampling: dict[str, Any] = {"temperature": temperature}
    if max_tokens is not None:
        sampling["max_tokens"] = max_tokens
    config = ServeConfig(upstream_url=upstream_url, upstream_model=upstream_model,
                         upstream_api_key_env=upstream_api_key_env, api_key=client_key, concurrency=concurrency,
                         default_budget=default_budget, max_budget=max(64, default_budget), strategy=strategy,
                         answer_type=answer_type, sampling=sampling,
                         journal_path=journal_path or default_journal_path())
    if host not in ("127.0.0.1", "localhost", "::1") and client_key is None:
        click.echo(f"warning: serving on {host} with no client key (--api-key-env)", err=True)
    click.echo(f"http://{host}:{port}/v1", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")


def _stdout() -> Any:
    """A console for results: full width when piped, so no figure is ever cut to fit 80 columns."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _print_points(points: Sequence[Any], sources: Sequence[tuple[str, str]]) -> None:
    from rich.table import Table

    out = _stdout()
    for name, title in sources:
        table = Table(title=title, title_justify="left")
        for column in ("strategy", "budget", "accuracy", "± 95%", "samples/q spent", "parse rate"):
            table.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
        for p in points:
            if p.pool == name:
                table.add_row(p.strategy, f"{p.budget:g}", f"{p.accuracy_mean:.4f}", f"{p.accuracy_ci95:.4f}",
                              f"{p.samples_per_question:.2f}", f"{p.parse_rate:.3f}")
        out.print(table)


def _print_headline(rows: Sequence[Any]) -> None:
    from rich.table import Table

    table = Table(title="samples per question to reach self-consistency's full-pool accuracy (within 0.005)",
                  title_justify="left")
    for column in ("pool", "strategy", "target", "samples/q", "of pool"):
        table.add_column(column, justify="left" if column in ("pool", "strategy") else "right", no_wrap=True)
    for row in rows:
        reached = "not reached" if row.samples_per_question is None else f"{row.samples_per_question:.2f}"
        share = "" if row.fraction_of_pool is None else f"{row.fraction_of_pool:.0%}"
        table.add_row(row.pool, row.strategy, f"{row.target:.4f}", reached, share)
    _stdout().print(table)


def main() -> None:
    cli(prog_name="dynscaling")


if __name__ == "__main__":
    main()
