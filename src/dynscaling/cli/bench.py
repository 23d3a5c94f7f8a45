"""``dynscaling bench``: strategies x budgets x seeds, on replay pools or live on a benchmark dataset."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import BackendError, ConfigError, InputError
from .backend_options import check_endpoint, local_backend, local_model_options
from .common import (
    CONFIG_PROBE_KINDS,
    EXIT_BAD_INPUT,
    EXIT_UNANSWERED,
    fail_cleanly,
    one_line,
    parse_budgets,
    parse_price,
    split_strategies,
    stdout_console,
)

DEFAULT_STRATEGIES = "single,sc,esc,adaptive,dynscaling-parallel,oracle"


@click.command()
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
              help="A benchmarks folder (gsm8k/, math500/, ...) or a data folder holding benchmarks/ (default: "
                   "$DYNSCALING_BENCHMARKS, $DYNSCALING_DATA/benchmarks, ../shared/data/benchmarks, "
                   "~/.dynscaling/data/benchmarks; see 'dynscaling datasets').")
@click.option("--limit", type=click.IntRange(min=1), help="First N questions only.")
@click.option("--subset", help="A subset of the dataset (a BBH task, an MMLU-Pro category, ...).")
@click.option("--base-url", help="OpenAI-compatible endpoint for a live bench.")
@click.option("--model", help="Model name at the endpoint.")
@local_model_options
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
@fail_cleanly
def bench(pools: Sequence[Path], strategies: str, budgets: str, seeds: int, answers: str,
          json_path: Path | None, plot_dir: Path | None, run_dir: Path | None, dataset: str | None,
          data_dir: Path | None, limit: int | None, subset: str | None, base_url: str | None, model: str | None,
          backend_kind: str, model_path: Path | None, n_ctx: int, threads: int,
          api_key_env: str, concurrency: int, temperature: float, max_tokens: int | None, price: str | None,
          journal_path: Path | None, yes: bool, confirm_above: float) -> None:
    """Compare strategies: on recorded model outputs (replay pools; no API key, no network) by default, or live
    on a benchmark dataset with --dataset --base-url --model."""
    from rich.console import Console

    if dataset is not None or base_url is not None or backend_kind != "openai":
        if pools:
            raise ConfigError("--pool replays recorded samples; --dataset/--base-url run live: choose one")
        if dataset is None:
            raise ConfigError("a live bench needs --dataset (with --base-url and --model, or --backend llama-cpp)")
        check_endpoint(backend_kind, base_url, model)
        local = (local_backend(model_path, n_ctx=n_ctx, threads=threads, temperature=temperature,
                               max_tokens=max_tokens) if backend_kind == "llama-cpp" else None)
        _live_bench(dataset=dataset, data_dir=data_dir, limit=limit, subset=subset, base_url=base_url or "",
                    model=model or (local.model if local is not None else ""), local=local,
                    api_key_env=api_key_env, strategies=strategies, budgets=budgets,
                    seeds=seeds if click.get_current_context().get_parameter_source("seeds").name != "DEFAULT"
                    else 1, concurrency=concurrency, temperature=temperature, max_tokens=max_tokens, price=price,
                    journal_path=journal_path, yes=yes, confirm_above=confirm_above, json_path=json_path,
                    plot_dir=plot_dir, run_dir=run_dir)
        return

    from ..bench import headline, run_bench
    from ..pools import bundled_pools, load_pool
    from ..runs import question_rows
    from ..strategies import parse_strategy

    err = Console(stderr=True)
    specs = [parse_strategy(s) for s in split_strategies(strategies)]
    if not specs:
        raise ConfigError("--strategies is empty")
    budget_list = parse_budgets(budgets)
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
        for warning in loaded[-1].warnings:
            err.print(f"[yellow]warning[/] {warning}", highlight=False)
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
    from ..runs import write_run

    if run_dir is not None:
        write_run(run_dir, meta, [p.to_dict() for p in points], rows)
        click.echo(f"wrote {run_dir} (dynscaling report {run_dir})", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps([p.to_dict() for p in points], indent=1) + "\n")
        click.echo(f"wrote {json_path}", err=True)
    if plot_dir is not None:
        from ..report import plot_accuracy

        for path in plot_accuracy(points, plot_dir):
            click.echo(f"wrote {path}", err=True)


def _live_bench(*, dataset: str, data_dir: Path | None, limit: int | None, subset: str | None, base_url: str,
                model: str, local: Any, api_key_env: str, strategies: str, budgets: str, seeds: int, concurrency: int,
                temperature: float, max_tokens: int | None, price: str | None, journal_path: Path | None, yes: bool,
                confirm_above: float, json_path: Path | None, plot_dir: Path | None, run_dir: Path | None) -> None:
    import asyncio

    from rich.console import Console

    from ..backends.openai import OpenAIBackend
    from ..bench import arun_live_bench
    from ..datasets import load_dataset
    from ..journal import default_journal_path
    from ..runs import question_rows
    from ..samplers import Prompts, estimate_tokens
    from ..strategies import parse_strategy

    err = Console(stderr=True)
    specs = [parse_strategy(s) for s in split_strategies(strategies)]
    budget_list = parse_budgets(budgets)
    questions = load_dataset(dataset, data_dir=data_dir, limit=limit, subset=subset)
    if not questions:
        raise InputError(f"dataset {dataset} has no question (check --subset and --limit)")
    price_in, price_out = parse_price(price)
    # What the sweep can cost: the largest budget's samples (every smaller point reuses them), per seed.
    samples = round(max(budget_list) * len(questions)) * seeds
    if any(s.needs_live_model for s in specs):
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
    if local is not None:  # a local model: no endpoint, no key
        backend = local
        identity = local.identity
    else:
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
            if hasattr(backend, "probe"):  # an endpoint: a wrong URL, key or model is one line before any sample
                await backend.probe()
            return await arun_live_bench(questions, backend, specs, budget_list, seeds=seeds, name=dataset,
                                         journal_path=journal_path or default_journal_path(),
                                         concurrency=concurrency, backend_identity=identity, max_tokens=max_tokens,
                                         progress=lambda m: status.update(m), on_result=keep)
        finally:
            await backend.aclose()

    try:
        with err.status("benchmarking") as status:
            points = asyncio.run(go())
    except BackendError as error:  # only the probe raises: the runs record failures per question
        click.echo(f"error: {one_line(error)}", err=True)
        sys.exit(EXIT_BAD_INPUT if error.kind in CONFIG_PROBE_KINDS else EXIT_UNANSWERED)

    _print_points(points, [(dataset, f"{dataset}: {len(questions)} questions, {model} (live)")])
    _write_outputs(points, rows, {"source": "live", "dataset": dataset, "model": model, "base_url": base_url,
                                  "strategies": [s.label for s in specs], "budgets": budget_list, "seeds": seeds,
                                  "questions": len(questions), "backend_requests": backend.requests},
                   run_dir=run_dir, json_path=json_path, plot_dir=plot_dir)
    failed = [p for p in points if p.unanswered]
    if failed:  # a failure is not a result: say which points are short, and how to finish them
        worst = max(failed, key=lambda p: p.unanswered)
        click.echo(f"{len(failed)} of {len(points)} points have questions with no answer because the backend failed "
                   f"(at most {worst.unanswered}, {worst.strategy} at {worst.budget:g}); their accuracy counts them "
                   f"wrong. Run the same command again: every sample paid for is reused", err=True)
        sys.exit(EXIT_UNANSWERED)



def _print_points(points: Sequence[Any], sources: Sequence[tuple[str, str]]) -> None:
    from rich.table import Table

    out = stdout_console()
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
    stdout_console().print(table)

