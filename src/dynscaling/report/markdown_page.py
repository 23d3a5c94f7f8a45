"""The Markdown rendering of a report: the same tables as the HTML page, PNG figures beside it."""

from __future__ import annotations

from .analysis import _base
from .content import (
    _CALIBRATION_HEADERS,
    _HEADLINE_HEADERS,
    _calibration_note,
    _calibration_rows,
    _Context,
    _cost_rows,
    _disagreement_intro,
    _facts,
    _headline_intro,
    _headline_rows,
    _missing_questions,
    _reading,
    _sampling_error,
    _strategy_summaries,
    _version,
)
from .formatting import _md_table


def _render_markdown(c: _Context) -> str:
    summaries = _strategy_summaries()
    out = [f"# Inference-scaling report: {', '.join(p.name for p in c.pools)}", "",
           "The full report, with the per-question drill-down, is `report.html` beside this file.", "",
           "## What was run", ""]
    for label, value in _facts(c):
        out += [f"- **{label}**: {value}"] if isinstance(value, str) else \
            [f"- **{label}**:", *(f"  - {text}" + (f", `{path}`" if path else "") for text, path in value)]
    out += ["", _md_table(["strategy", "what it does"], [[s, summaries.get(_base(s), "")] for s in c.strategies],
                          left=2), "", "## How to read the numbers", ""]
    out += [f"- {line}" for line in _reading(c)]
    if any(p.headline for p in c.pools):
        out += ["", "## Headline: samples per question to match self-consistency", "", _headline_intro(c), "",
                _md_table(_HEADLINE_HEADERS, _headline_rows(c), left=2)]
    out += ["", "## Accuracy and cost"]
    for pool in c.pools:
        out += ["", f"### {pool.name}", "",
                f"![{pool.name}: accuracy against samples and tokens per question spent]"
                f"({c.pngs[f'accuracy-{pool.slug}']})", ""]
        error = _sampling_error(pool)
        if error:
            out += [error, ""]
        headers, rows, _, bold = _cost_rows(pool)
        for row, strong in zip(rows, bold, strict=True):
            row[2] = f"**{row[2]}**" if strong else row[2]
        out += [_md_table(headers, rows), "", "Bold: the best method at that budget (single and oracle aside)."]
    out += ["", "## Calibration of the confidence"]
    for pool in c.pools:
        out += ["", f"### {pool.name}", ""]
        if not pool.calibrations:
            out += [_missing_questions(c)]
            continue
        out += [f"![{pool.name}: reliability diagrams of the confidence]({c.pngs[f'calibration-{pool.slug}']})",
                "", _calibration_note(pool), "", _md_table(_CALIBRATION_HEADERS, _calibration_rows(pool))]
    out += ["", "## Where strategies disagree", ""]
    for pool in c.pools:
        if pool.rows:
            out.append(f"- **{pool.name}**: {_disagreement_intro(pool, c.max_questions)} See report.html.")
        else:
            out.append(f"- **{pool.name}**: {_missing_questions(c)}")
    out += ["", f"*Written by dynscaling {_version()}.*", ""]
    return "\n".join(out)
