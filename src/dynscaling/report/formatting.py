"""Formatting helpers shared by the HTML and Markdown renderings: numbers, escaping, tables."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _accuracy(point: Mapping[str, Any]) -> str:
    return f"{_pct(point['accuracy_mean'])} ± {_pct(point['accuracy_ci95'])}"


def _number(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _money(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:,.4f}"


def _slug(name: str, taken: set[str]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pool"
    unique, n = slug, 2
    while unique in taken:
        unique, n = f"{slug}-{n}", n + 1
    taken.add(unique)
    return unique


def _md_cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """A GitHub-flavoured Markdown table; the first ``left`` columns align left, the others right."""
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join(":---" if i < left else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int | set[int] = 1,
                groups: Sequence[bool] | None = None, caption: str | None = None) -> str:
    """An HTML table of already-escaped cells; ``groups[i]`` starts a new group of rows at row ``i``. Columns
    align right (numbers) except the first ``left`` ones, or the ``left`` set of column indices."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{caption}</caption>")
    lefts = left if isinstance(left, set) else set(range(left))
    align = [' class="l"' if i in lefts else "" for i in range(len(headers))]
    out.append("<thead><tr>" + "".join(f'<th{align[i]} scope="col">{h}</th>' for i, h in enumerate(headers)) +
               "</tr></thead><tbody>")
    for index, row in enumerate(rows):
        group = ' class="group"' if groups and groups[index] and index else ""
        out.append(f"<tr{group}>" + "".join(f"<td{align[i]}>{c}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
