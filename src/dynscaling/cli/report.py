"""``dynscaling report``: a bench run folder as HTML and Markdown."""

from __future__ import annotations

from pathlib import Path

import click

from .common import fail_cleanly


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, report.md and figures/ (default: the run folder).")
@fail_cleanly
def report(run_dir: Path, out_dir: Path | None) -> None:
    """Turn a bench run folder (dynscaling bench --out RUN) into report.html and report.md; print their paths.

    The HTML page is self-contained (inline SVG plots and CSS, no script, nothing loaded); the Markdown links
    PNG figures written into figures/ beside it.
    """
    from ..report import write_report

    html_path, md_path = write_report(run_dir, out_dir)
    click.echo(str(html_path))
    click.echo(str(md_path))

