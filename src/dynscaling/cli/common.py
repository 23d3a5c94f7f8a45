"""What every command shares: one-line errors, option parsing, the results console."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import ConfigError, DynscalingError, InputError

F = TypeVar("F", bound=Callable[..., Any])


def fail_cleanly(function: F) -> F:
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


def parse_budgets(text: str) -> list[float]:
    try:
        budgets = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets must be numbers separated by commas, got {text!r}") from None
    if not budgets or any(b <= 0 for b in budgets):
        raise ConfigError(f"--budgets must be positive samples per question, got {text!r}")
    return budgets


def parse_fields(items: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        ours, eq, theirs = item.partition("=")
        if not eq or not ours.strip() or not theirs.strip():
            raise ConfigError(f"--field must look like ours=theirs (e.g. question=problem), got {item!r}")
        fields[ours.strip()] = theirs.strip()
    return fields


def parse_price(text: str | None) -> tuple[float, float]:
    if text is None:
        return 0.0, 0.0
    try:
        prices = [float(p) for p in text.split(",")]
    except ValueError:
        prices = []
    if len(prices) != 2 or any(p < 0 for p in prices):
        raise ConfigError(f"--price must be 'INPUT,OUTPUT' in USD per million tokens, e.g. 0.15,0.6; got {text!r}")
    return prices[0], prices[1]



def stdout_console() -> Any:
    """A console for results: full width when piped, so no figure is ever cut to fit 80 columns."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)

