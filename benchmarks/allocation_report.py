"""Rendering of ``allocation.py``'s results: the Markdown tables, the figure, and the reading of a saved
``allocation.json`` (for ``--replot`` and ``--reanalyse``). Nothing here replays or analyses; it only shows."""

from __future__ import annotations

import json
import math
import statistics
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dynscaling.bench import mean_ci95

# ---- report -----------------------------------------------------------------------------------------------

def _num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "not reached" if value is None else f"{value:.{digits}f}{suffix}"


def pool_table(summary: dict[str, object], methods: Sequence[str], default: str) -> list[str]:
    spends = summary["equal_spend"]
    assert isinstance(spends, dict)
    reach, ratio = summary["samples_to_target"], summary["ratio_to_sc"]
    assert isinstance(reach, dict) and isinstance(ratio, dict)
    lines = [f"### {summary['pool']} ({summary['questions']} questions x {summary['pool_size']}; SC over the whole "
             f"pool {summary['sc_whole_pool']:.4f}, target {summary['target']:.4f})", "",
             "| method | samples/q to target | SC / method | " + " | ".join(f"acc @ {s}" for s in spends) + " |",
             "|---|---:|---:|" + "---:|" * len(spends)]
    for method in methods:
        cells = []
        for entry in spends.values():
            accuracy = entry["accuracy"].get(method)
            cells.append("—" if accuracy is None else f"{accuracy[0]:.4f} ± {accuracy[1]:.4f}")
        name = f"default ({default})" if method == "default" else method
        lines.append(f"| {name} | {_num(reach[method])} | {_num(ratio[method], 2, 'x')} | " + " | ".join(cells)
                     + " |")
    lines += ["", "| spend (samples/q) | best peer there | default - best peer (paired, 95%) |", "|---:|---|---:|"]
    for spend, entry in spends.items():
        if "best_peer" not in entry:
            lines.append(f"| {spend} | — | default not measured at this spend |")
            continue
        flag = " **significantly below**" if entry["below"] else ""
        lines.append(f"| {spend} | {entry['best_peer']} | {entry['difference']:+.4f} ± {entry['ci95']:.4f}{flag} |")
    return [*lines, ""]


def summary_table(summaries: Sequence[dict[str, object]], methods: Sequence[str], resamples: int) -> list[str]:
    lines = ["| pool | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for s in summaries:
        reach = s["samples_to_target"]
        assert isinstance(reach, dict)
        lines.append(f"| {s['pool']} | " + " | ".join(_num(reach[m]) for m in methods) + " |")
    means = []
    for m in methods:
        ratios = [s["ratio_to_sc"][m] for s in summaries]  # type: ignore[index]
        reached = [r for r in ratios if r]
        mean = math.exp(statistics.fmean(math.log(r) for r in reached)) if reached else None
        missing = len(ratios) - len(reached)
        means.append(_num(mean, 2, "x") + (f" ({missing} pool(s) not reached)" if missing and reached else ""))
    lines.append("| geometric mean of SC / method | " + " | ".join(means) + " |")
    lines += ["", "Samples/q to target, the default minus the peer that needs the fewest (paired bootstrap over seeds, "
              f"{resamples} resamples; negative: the default needs fewer):", "",
              "| pool | best peer | default - peer | 95% interval | resamples where the default needs no more |",
              "|---|---|---:|---:|---:|"]
    for s in summaries:
        versus = s.get("reach_vs_best_peer") or {}
        assert isinstance(versus, dict)
        if not versus:
            lines.append(f"| {s['pool']} | — | not reached by the default or by any peer | | |")
            continue
        interval = (f"[{versus['ci95'][0]:+.2f}, {versus['ci95'][1]:+.2f}]" if "ci95" in versus else "—")
        share = f"{versus['share_not_more']:.0%}" if "share_not_more" in versus else "—"
        lines.append(f"| {s['pool']} | {versus['peer']} | {versus['difference']:+.2f} | {interval} | {share} |")
    below = [f"{s['pool']} @ {spend}" for s in summaries
             for spend, e in s["equal_spend"].items() if e.get("below")]  # type: ignore[union-attr]
    lines += ["", "Equal spends where the default is significantly below the best peer: "
              + (", ".join(below) if below else "none") + "."]
    return lines


# ---- figure -----------------------------------------------------------------------------------------------

#: how each method is drawn: the default in front and bold, the reference bounds thin and grey
_STYLE = {"default": {"color": "#1f4fa3", "linewidth": 2.2, "zorder": 5}, "sc": {"color": "#333333"},
          "oracle": {"color": "#9a9a9a", "linestyle": ":"}}
_PEER_COLORS = {"blend-asc": "#e07b00", "esc": "#2ca02c", "adaptive": "#d62728", "consol": "#9467bd",
                "ppr": "#8c564b"}


def plot(records: Sequence[dict[str, object]], default: str, seeds: int, tolerance: float, out: Path) -> list[Path]:
    """One panel per pool: each method's mean accuracy against mean samples/q spent (log scale), the default with
    its 95% band over seeds, and SC's target as a dashed line. Writes ``allocation.png`` and ``.svg``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(4, len(records))
    rows = math.ceil(len(records) / columns)
    width = max(3.6 * columns, 6.4)  # one panel alone is drawn wider: its heading and legend need the room
    figure = Figure(figsize=(width, 3.0 * rows + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, record in zip(axes.flat, records, strict=False):
        curves = record["curves"]
        assert isinstance(curves, dict)
        shown: list[float] = [float(record["target"])]  # type: ignore[arg-type]
        for method, points in curves.items():
            ordered = sorted(points, key=lambda p: statistics.fmean(p["spends"]))
            x = [statistics.fmean(p["spends"]) for p in ordered]
            y = [statistics.fmean(p["accuracies"]) for p in ordered]
            if method != "oracle":  # the oracle runs off the top: the methods' differences are what is read here
                shown += y
            style = _STYLE.get(method, {"color": _PEER_COLORS.get(method, "#17becf"), "linewidth": 1.1})
            ax.plot(x, y, label="default" if method == "default" else method, marker="o", markersize=2.2,
                    **{"linewidth": 1.3, **style})
            if method == "default":
                bands = [mean_ci95(p["accuracies"])[1] for p in ordered]
                ax.fill_between(x, [a - b for a, b in zip(y, bands, strict=True)],
                                [a + b for a, b in zip(y, bands, strict=True)], color=style["color"], alpha=0.15,
                                linewidth=0)
        ax.axhline(float(record["target"]), color="#555555", linestyle="--", linewidth=0.8)  # type: ignore[arg-type]
        pad = 0.06 * (max(shown) - min(shown)) or 0.01
        ax.set_ylim(min(shown) - pad, max(shown) + pad)
        ax.set_xscale("log", base=2)
        # a mixed batch's name joins its pools' names: wrapped at the joins so a narrow panel shows all of it
        title = f"{str(record['pool']).replace('+', ' + ')} ({record['questions']} q)"
        ax.set_title(textwrap.fill(title, 52), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes.flat[len(records):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("samples per question spent", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), max(4, 2 * columns)), fontsize=8,
                  frameon=False)
    heading = (f"Accuracy at equal spent samples, {seeds} seeds (default: {default}; dashed: SC's whole-pool "
               f"accuracy - {tolerance})")
    figure.suptitle(textwrap.fill(heading, round(16 * width)), fontsize=9)  # about 16 characters an inch
    written = []
    for suffix in ("png", "svg"):
        path = out / f"allocation.{suffix}"
        figure.savefig(path, dpi=150, metadata={"Software": None} if suffix == "png" else {"Date": None})
        written.append(path)
    return written


def read_saved(path: Path) -> dict[str, Any]:
    """An ``allocation.json`` this script wrote, or exit with one line naming the file and what is wrong."""
    try:
        saved = json.loads(path.read_text())
    except OSError as error:
        sys.exit(f"{path}: cannot read it ({error.strerror or error})")
    except json.JSONDecodeError as error:
        sys.exit(f"{path}:{error.lineno}: not JSON ({error.msg})")
    if not isinstance(saved, dict):
        sys.exit(f"{path}: expected the JSON object allocation.py writes")
    missing = next((k for k in ("default", "seeds", "pools") if k not in saved), None)
    if missing is not None:
        sys.exit(f"{path}: missing field {missing!r} (not an allocation.json written by this script?)")
    if not isinstance(saved["pools"], list) or not saved["pools"]:
        sys.exit(f"{path}: field 'pools' holds no pool to draw")
    for number, pool in enumerate(saved["pools"], start=1):
        absent = next((k for k in ("pool", "questions", "pool_size", "target", "curves") if not isinstance(pool, dict)
                       or k not in pool), None)
        if absent is not None:
            sys.exit(f"{path}: pools[{number - 1}] has no field {absent!r}")
    return saved
