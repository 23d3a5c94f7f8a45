"""Reports on bench runs: a self-contained HTML page and a Markdown summary, plus the older per-pool plots.

``write_report(run_dir)`` reads a run folder (``dynscaling.runs``) and writes ``report.html`` (inline SVG plots
and CSS, no script, no external file, a Content-Security-Policy that forbids loading anything) and ``report.md``
(the same tables, PNG figures in ``figures/`` beside it), for a paper or a pull request.

What the report holds: what was run and how to read the numbers; per pool, accuracy against samples and tokens per
question actually spent (95% bands over seeds) and a cost table; the samples per question each strategy needs to
come within 0.005 of self-consistency's best measured accuracy; calibration of the leader's confidence
(reliability diagrams and expected calibration error); and a drill-down into the questions where strategies
disagree. Per-question sections read ``questions.jsonl`` (seed 0) and say so when a run has none.

matplotlib is imported inside the plotting functions only (Agg canvas, no pyplot state for reports), so the core
never pays for it.

The modules: ``analysis`` (numbers from the run's records), ``figures``, ``content`` (what both renderings
say), ``html_page`` and ``markdown_page`` (the two renderings), ``formatting`` (their shared helpers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runs import read_run
from .analysis import _analyse, _ordered
from .content import _Context
from .figures import _accuracy_figure, _calibration_figure, _colors, _inline_svg, _save_png, plot_accuracy
from .html_page import _render_html
from .markdown_page import _render_markdown

__all__ = ["plot_accuracy", "write_report"]


logger = logging.getLogger(__name__)


_POINT_FIELDS = ("pool", "strategy", "budget", "seeds", "accuracy_mean", "accuracy_ci95", "samples_per_question",
                 "tokens_per_question", "parse_rate")

_QUESTION_FIELDS = ("pool", "strategy", "budget", "id", "answer", "confidence", "votes", "correct")


def _check_records(records: Sequence[Any], fields: Sequence[str], path: Path, unit: str) -> None:
    """Every record is an object with ``fields``; else an ``InputError`` naming the file, record and field."""
    for number, record in enumerate(records, start=1):
        where = {"line": number} if unit == "line" else {}
        if not isinstance(record, dict):
            raise InputError(f"expected a JSON object{'' if where else f' in record {number}'}", path=str(path),
                             **where)
        missing = next((f for f in fields if f not in record), None)
        if missing is not None:
            raise InputError(f"missing{'' if where else f' in record {number}'}", path=str(path), field=missing,
                             **where)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 max_questions: int = 200) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` for the run in ``run_dir`` (into ``out_dir``, default the run
    folder) and return their paths. PNG figures for the Markdown go to ``figures/`` beside it.

    ``max_questions`` caps the drill-down per pool. A missing or malformed run file raises ``InputError``.
    """
    run = read_run(run_dir)
    folder = Path(run_dir)
    if not isinstance(run.meta, dict):
        raise InputError("expected a JSON object", path=str(folder / "run.json"))
    if not isinstance(run.points, list) or not run.points:
        raise InputError("no points in this run (expected a non-empty JSON list)", path=str(folder / "points.json"))
    _check_records(run.points, _POINT_FIELDS, folder / "points.json", "record")
    _check_records(run.questions, _QUESTION_FIELDS, folder / "questions.jsonl", "line")
    points = run.points
    out = Path(out_dir) if out_dir is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    pools = _analyse(points, run.questions)
    colors = _colors(_ordered(p["strategy"] for p in points))
    svgs: dict[str, str] = {}
    pngs: dict[str, Path] = {}
    for pool in pools:
        for kind in ("accuracy", "calibration"):
            if kind == "accuracy":
                figure = _accuracy_figure(pool.name, pool.points, colors)
                label = f"{pool.name}: accuracy against samples and tokens per question spent"
            elif pool.calibrations:
                figure = _calibration_figure(pool.name, pool.calibrations, colors)
                label = f"{pool.name}: reliability diagrams of the confidence"
            else:
                continue
            key = f"{kind}-{pool.slug}"
            svgs[key] = _inline_svg(figure, key, label)
            pngs[key] = out / "figures" / f"{key}.png"
            _save_png(figure, pngs[key])
    html_path, md_path = out / "report.html", out / "report.md"
    context = _Context(run.meta, pools, colors, svgs, {k: p.relative_to(out).as_posix() for k, p in pngs.items()},
                       max_questions, bool(run.questions))
    html_path.write_text(_render_html(context), encoding="utf-8")
    md_path.write_text(_render_markdown(context), encoding="utf-8")
    logger.info("report for %s: %s and %s", run_dir, html_path, md_path)
    return html_path, md_path
