"""The report's figures and the older per-pool plots of ``dynscaling bench --plot``.

matplotlib is imported inside these functions only (an Agg canvas, no pyplot state for reports), so the core
never pays for it.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bench import BenchPoint
from .analysis import _base, _Calibration, _ordered

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def plot_accuracy(points: Sequence[BenchPoint], directory: str | Path) -> list[Path]:
    """One figure per pool: accuracy (mean, 95% band over seeds) against spent samples per question.

    Writes ``<pool>.png`` and ``<pool>.svg`` into ``directory`` and returns their paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pools = list(dict.fromkeys(p.pool for p in points))
    for pool in pools:
        figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=150)
        series: dict[str, list[BenchPoint]] = {}
        for point in points:
            if point.pool == pool:
                series.setdefault(point.strategy, []).append(point)
        for strategy, ps in series.items():
            ps = sorted(ps, key=lambda p: p.samples_per_question)
            x = [p.samples_per_question for p in ps]
            y = [p.accuracy_mean for p in ps]
            low = [p.accuracy_mean - p.accuracy_ci95 for p in ps]
            high = [p.accuracy_mean + p.accuracy_ci95 for p in ps]
            (line,) = axes.plot(x, y, marker="o", markersize=3.5, linewidth=1.4, label=strategy)
            axes.fill_between(x, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
        axes.set_xscale("log", base=2)
        axes.set_xlabel("samples per question spent")
        axes.set_ylabel("accuracy")
        seeds = max(p.seeds for p in points if p.pool == pool)
        axes.set_title(f"{pool}  (mean and 95% interval over {seeds} seeds)", fontsize=9)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
        figure.tight_layout()
        for suffix in ("png", "svg"):
            path = out / f"{pool}.{suffix}"
            figure.savefig(path)
            written.append(path)
        plt.close(figure)
    return written


def _colors(strategies: Sequence[str]) -> dict[str, str]:
    """One colour per strategy for every figure: tab10 for methods, dark grey for single, grey for oracle."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    colors, index = {}, 0
    for strategy in strategies:
        if _base(strategy) == "single":
            colors[strategy] = "#333333"
        elif _base(strategy) == "oracle":
            colors[strategy] = "#8a8a8a"
        else:
            colors[strategy] = palette[index % len(palette)]
            index += 1
    return colors


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _accuracy_figure(pool: str, points: Sequence[dict[str, Any]], colors: Mapping[str, str]) -> Any:
    """Accuracy against samples per question spent (left) and tokens per question spent (right)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator, PercentFormatter

    figure = _new_figure(10.0, 4.2)
    left, right = figure.subplots(1, 2, sharey=True)
    strategies = _ordered(p["strategy"] for p in points)
    has_tokens = all(p["tokens_per_question"] > 0 for p in points)
    for index, strategy in enumerate(strategies):
        series = sorted((p for p in points if p["strategy"] == strategy), key=lambda p: p["samples_per_question"])
        y = [p["accuracy_mean"] for p in series]
        low = [p["accuracy_mean"] - p["accuracy_ci95"] for p in series]
        high = [p["accuracy_mean"] + p["accuracy_ci95"] for p in series]
        style = {"color": colors[strategy], "marker": _MARKERS[index % len(_MARKERS)], "markersize": 4.5,
                 "linewidth": 1.6, "linestyle": "--" if _base(strategy) == "oracle" else "-", "label": strategy}
        for axes, key in ((left, "samples_per_question"), (right, "tokens_per_question")):
            if axes is right and not has_tokens:
                continue
            shown = [i for i, p in enumerate(series) if p[key] > 0]  # a log axis has no room for 0
            x = [series[i][key] for i in shown]
            axes.plot(x, [y[i] for i in shown], zorder=3, **style)
            if len(shown) > 1:
                axes.fill_between(x, [low[i] for i in shown], [high[i] for i in shown], color=colors[strategy],
                                  alpha=0.1, linewidth=0, zorder=1)
            elif shown:
                axes.errorbar(x, [y[i] for i in shown], yerr=[series[i]["accuracy_ci95"] for i in shown],
                              color=colors[strategy], linewidth=1.2, capsize=3)
    plain = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    for axes, label in ((left, "samples per question spent (log scale)"),
                        (right, "tokens per question spent (log scale)")):
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_locator(LogLocator(base=2))
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_locator(NullLocator())
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel(label)
        axes.grid(True, alpha=0.3)
        axes.spines[["top", "right"]].set_visible(False)
    low, high = left.get_ylim()
    left.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if high - low >= 0.05 else 1))
    left.set_ylabel("accuracy (mean, 95% band over seeds)")
    left.set_title("accuracy vs samples", fontsize=10)
    right.set_title("accuracy vs tokens", fontsize=10)
    if not has_tokens:
        right.text(0.5, 0.5, "no token counts in this run", transform=right.transAxes, ha="center",
                   color="#666666")
    seeds = max(int(p["seeds"]) for p in points)
    figure.suptitle(f"{pool} ({seeds} seeds)", fontsize=11)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), frameon=False,
                  fontsize=9)
    return figure


def _calibration_figure(pool: str, calibrations: Sequence[_Calibration], colors: Mapping[str, str]) -> Any:
    """Reliability diagrams: one panel per strategy, bars = observed accuracy per confidence bin, counts above."""
    from matplotlib.ticker import PercentFormatter

    columns = min(3, len(calibrations))
    rows = math.ceil(len(calibrations) / columns)
    figure = _new_figure(3.4 * columns, 3.0 * rows + 0.4)
    panels = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    low = calibrations[0].bins[0].low
    for index, axes in enumerate(panels.flat):
        if index >= len(calibrations):
            axes.set_axis_off()
            continue
        calibration = calibrations[index]
        axes.plot([low, 1.0], [low, 1.0], linestyle="--", color="#555555", linewidth=1.0)
        filled = [b for b in calibration.bins if b.count]
        axes.bar([b.low for b in filled], [b.accuracy for b in filled], width=[b.high - b.low for b in filled],
                 align="edge", color=colors[calibration.strategy], alpha=0.75, edgecolor="white", linewidth=0.6)
        for b in filled:
            axes.text((b.low + b.high) / 2, min(b.accuracy, 1.0) + 0.02, str(b.count), ha="center",
                      va="bottom", fontsize=7, color="#333333")
        ece = "n/a" if math.isnan(calibration.ece) else f"{calibration.ece:.3f}"
        axes.set_title(f"{calibration.strategy} @ {calibration.budget:g}  (ECE {ece})", fontsize=9)
        if not filled:
            axes.text(0.5, 0.5, "no answered question", transform=axes.transAxes, ha="center", color="#666666")
        axes.set_xlim(low, 1.0)
        axes.set_ylim(0, 1.12)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        axes.grid(True, alpha=0.25)
        axes.spines[["top", "right"]].set_visible(False)
        if index % columns == 0:
            axes.set_ylabel("observed accuracy")
        if index >= (rows - 1) * columns or index + columns >= len(calibrations):
            axes.set_xlabel("confidence")
            axes.xaxis.set_tick_params(labelbottom=True)
    figure.suptitle(f"{pool}: reliability of the confidence (seed 0, numbers = questions per bin)", fontsize=10)
    return figure


def _inline_svg(figure: Any, prefix: str, label: str) -> str:
    """The figure as an ``<svg>`` element for inline use: ids prefixed so several plots can share a page,
    no XML prolog, metadata or comments, scaled to the width of its container."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "dynscaling-report"}):  # reproducible ids, made unique below
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r'<style type="text/css">[^<]*</style>\s*', "", svg)  # global "*" rules; the page CSS has them
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def rename(match: re.Match[str]) -> str:
        head, name, tail = match.groups()
        return f"{head}{prefix}-{name}{tail}" if name in ids else match.group(0)

    svg = re.sub(r'(\bid=")([^"]+)(")', rename, svg)
    svg = re.sub(r'(href="#)([^"]+)(")', rename, svg)
    svg = re.sub(r"(url\(#)([^)]+)(\))", rename, svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"',
                 lambda m: f'<svg {m.group(1)}class="plot" role="img" aria-label="{html.escape(label)}"', svg,
                 count=1)
    return re.sub(r"\n\s*", "\n", svg).strip()


def _save_png(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=150, metadata={"Software": None})
