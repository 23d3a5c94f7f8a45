"""The ``dynscaling`` command line. Results go to stdout, progress and errors to stderr.

Exit status: 0 on success, 2 on bad input or parameters (one line naming the file, line and field), 3 when
``solve`` left questions unanswered because the backend failed (the same command retries them), 130 when
interrupted, 1 on any other failure.
"""

from __future__ import annotations

import click

from .bench import DEFAULT_STRATEGIES, bench
from .common import split_strategies
from .datasets import datasets
from .record import record
from .replay_server import replay_server
from .report import report
from .serve import serve
from .solve import solve
from .strategies import strategies

__all__ = ["DEFAULT_STRATEGIES", "cli", "main", "split_strategies"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynscaling")
def cli() -> None:
    """Better LLM answers for less: adaptive sampling and voting under a budget, no verifier."""


for _command in (bench, solve, report, replay_server, serve, strategies, datasets, record):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="dynscaling")
