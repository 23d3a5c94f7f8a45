"""``dynscaling strategies``: every registered strategy, its parameters (type and default) and what it does.

Read from the registry (``dynscaling.strategies.STRATEGIES``), so a strategy registered there is listed here with
no change to this command."""

from __future__ import annotations

import json
from typing import Any

import click

from .common import fail_cleanly, stdout_console


def _parameter_type(name: str, default: Any) -> str:
    from ..strategies import parameter_type

    kind = parameter_type(name, default).__name__
    return f"{kind} | none" if default is None else kind


def describe_strategies() -> list[dict[str, Any]]:
    """One entry per registered strategy: name, summary, whether it needs a live model, and its parameters."""
    from .. import strategies

    described = []
    for name, spec in strategies.STRATEGIES.items():
        capped = tuple(getattr(spec, "budget_capped", ()))
        parameters = []
        for key, default in dict(getattr(spec, "defaults", {})).items():
            parameters.append({"name": key, "type": _parameter_type(key, default),
                               "default": default, "follows_budget": key in capped})
        described.append({"name": name, "summary": getattr(spec, "summary", ""),
                          "live_only": strategies.Strategy(name).needs_live_model, "parameters": parameters})
    return described


def _parameter_text(parameter: dict[str, Any]) -> str:
    default = "none" if parameter["default"] is None else parameter["default"]
    if parameter["follows_budget"]:
        default = f"the budget per question ({default} without one)"
    return f"{parameter['name']}: {parameter['type']} = {default}"


@click.command("strategies")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per strategy, one per line.")
@fail_cleanly
def strategies(as_json: bool) -> None:
    """List every strategy with its parameters (type = default) and one line of what it does.

    Parameters go after a colon, e.g. dynscaling:k0=2,m=2 or esc:w=4.
    """
    described = describe_strategies()
    if as_json:
        for entry in described:
            click.echo(json.dumps(entry))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="strategies (parameters go after a colon: name:key=value,...)", title_justify="left")
    for column in ("strategy", "parameters (type = default)", "what it does"):
        table.add_column(column, overflow="fold")
    for entry in described:
        summary = entry["summary"]
        if entry["live_only"] and "live" not in summary:
            summary += " (live models only)"
        table.add_row(escape(entry["name"]),
                      escape("\n".join(_parameter_text(p) for p in entry["parameters"])) or "(none)", escape(summary))
    stdout_console().print(table)
