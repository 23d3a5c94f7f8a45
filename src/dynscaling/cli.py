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
@_fail_cleanly
def bench(pools: Sequence[Path], strategies: str, budgets: str, seeds: int, answers: str,
          json_path: Path | None, plot_dir: Path | None) -> None:
    """Compare strategies on recorded model outputs (replay pools): no API key, no network."""
    from rich.console import Console

    from .bench import headline, run_bench
    from .pools import bundled_pools, load_pool
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
        err.print(f"loading {path}", highlight=False)
        loaded.append(load_pool(path, answers=answers))  # type: ignore[arg-type]
    with err.status("benchmarking") as status:
        points = run_bench(loaded, specs, budget_list, seeds, progress=lambda m: status.update(m))
    _print_points(points, loaded)
    if any(s.name == "sc" for s in specs):
        _print_headline(headline(points, loaded))
    if json_path is not None:
        json_path.write_text(json.dumps([p.to_dict() for p in points], indent=1) + "\n")
        err.print(f"wrote {json_path}", highlight=False)
    if plot_dir is not None:
        from .report import plot_accuracy

        for path in plot_accuracy(points, plot_dir):
            err.print(f"wrote {path}", highlight=False)


def _print_points(points: Sequence[Any], pools: Sequence[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    for pool in pools:
        table = Table(title=f"{pool.name}: {len(pool.entries)} questions x {pool.samples_per_question:g} samples",
                      title_justify="left")
        for column in ("strategy", "budget", "accuracy", "± 95%", "samples/q spent", "parse rate"):
            table.add_column(column, justify="left" if column == "strategy" else "right", no_wrap=True)
        for p in points:
            if p.pool == pool.name:
                table.add_row(p.strategy, f"{p.budget:g}", f"{p.accuracy_mean:.4f}", f"{p.accuracy_ci95:.4f}",
                              f"{p.samples_per_question:.2f}", f"{p.parse_rate:.3f}")
        out.print(table)


def _print_headline(rows: Sequence[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="samples per question to reach self-consistency's full-pool accuracy (within 0.005)",
                  title_justify="left")
    for column in ("pool", "strategy", "target", "samples/q", "of pool"):
        table.add_column(column, justify="left" if column in ("pool", "strategy") else "right", no_wrap=True)
    for row in rows:
        reached = "not reached" if row.samples_per_question is None else f"{row.samples_per_question:.2f}"
        share = "" if row.fraction_of_pool is None else f"{row.fraction_of_pool:.0%}"
        table.add_row(row.pool, row.strategy, f"{row.target:.4f}", reached, share)
    Console().print(table)


def main() -> None:
    cli(prog_name="dynscaling")


if __name__ == "__main__":
    main()
