"""What every command shares: one-line errors, option parsing, the results console."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import click

from ..errors import ConfigError, DynscalingError, InputError, redact

#: Exit statuses every command keeps to.
EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected failure of ours
EXIT_BAD_INPUT = 2  # bad input, parameters or environment (journal, output folder); nothing was lost
EXIT_UNANSWERED = 3  # some questions have no answer because the backend failed; the same command retries them
EXIT_INTERRUPTED = 130
#: probe failures that no retry fixes: a wrong host name, key or model is configuration (exit 2); others exit 3
CONFIG_PROBE_KINDS = ("dns", "auth", "unknown_model")

F = TypeVar("F", bound=Callable[..., Any])


def fail_cleanly(function: F) -> F:
    """Turn our errors into one line on stderr and exit status 2, never a traceback."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (InputError, ConfigError) as error:
            click.echo(f"error: {one_line(error)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except DynscalingError as error:
            click.echo(f"error: {one_line(error)}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def one_line(error: BaseException | str) -> str:
    """An error as one masked line: whitespace folded, anything shaped like a key replaced by ``***``."""
    return redact(" ".join(str(error).split()))


class FiniteFloat(click.ParamType):
    """A float that must be finite (no nan, no inf) and, optionally, above ``minimum`` (or at least it)."""

    name = "number"

    def __init__(self, minimum: float | None = None, *, open_minimum: bool = False) -> None:
        self.minimum = minimum
        self.open_minimum = open_minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.minimum is not None and (number <= self.minimum if self.open_minimum else number < self.minimum):
            self.fail(f"{value!r} must be {'>' if self.open_minimum else '>='} {self.minimum:g}", param, ctx)
        return number


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

