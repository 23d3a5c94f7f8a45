"""``dynscaling datasets``: every registered benchmark, its size and answer type, and where it is found (or which
file to put where)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import fail_cleanly, stdout_console


def describe_datasets(data_dir: Path | None, *, check: bool = False) -> tuple[list[dict[str, Any]], tuple[Path, ...]]:
    """One entry per registered benchmark, and the folders searched. ``check`` reads every benchmark found on disk
    and counts its questions (``questions`` is then the count read, ``error`` what went wrong)."""
    from ..datasets import DATASETS, benchmark_folders, hf_available, load_dataset, locate
    from ..errors import DynscalingError

    folders = benchmark_folders(data_dir)
    hub_ready = hf_available()
    described = []
    for name, spec in DATASETS.items():
        location = locate(spec, data_dir)
        if location.found is not None:
            where, found = str(location.found), "disk"
        elif spec.hub is not None and hub_ready:
            where, found = (f"not on disk: read from Hugging Face, {spec.hub.label} (or "
                            f"{location.missing_hint()})"), "hf"
        else:
            where, found = f"not found: {location.missing_hint()}", None
        entry: dict[str, Any] = {"name": name, "questions": spec.size, "answer_type": spec.answer_type or "per task",
                                 "where": where, "found": found, "description": spec.description}
        if check and found == "disk":
            try:
                entry["questions"] = len(load_dataset(name, data_dir=data_dir))
            except DynscalingError as error:
                entry["questions"], entry["error"] = None, str(error)
        described.append(entry)
    return described, folders


@click.command("datasets")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="A benchmarks folder (gsm8k/, math500/, ...) or a data folder holding benchmarks/ (default: "
                   "$DYNSCALING_BENCHMARKS, $DYNSCALING_DATA/benchmarks, ../shared/data/benchmarks, "
                   "~/.dynscaling/data/benchmarks).")
@click.option("--check", is_flag=True, help="Read every dataset found on disk and count its questions (slower).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dataset, one per line.")
@fail_cleanly
def datasets(data_dir: Path | None, check: bool, as_json: bool) -> None:
    """List the benchmark datasets: name, questions, answer type, and where each is found or which file to put
    where. A dataset not on disk is read from Hugging Face when the [hf] extra is installed. The count is the
    published size; --check reads each file found and counts what it holds."""
    described, folders = describe_datasets(data_dir, check=check)
    if as_json:
        for entry in described:
            click.echo(json.dumps(entry))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"datasets (searched: {', '.join(map(str, folders))})"), title_justify="left")
    for column in ("dataset", "questions", "answer type", "where"):
        table.add_column(column, justify="right" if column == "questions" else "left", overflow="fold")
    for entry in described:
        where = escape(entry["where"]) + (f": [red]{escape(entry['error'])}[/]" if "error" in entry else "")
        count = "?" if entry["questions"] is None else str(entry["questions"])
        table.add_row(escape(entry["name"]), count, entry["answer_type"], where)
    stdout_console().print(table)
