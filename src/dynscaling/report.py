"""Plots of bench results: accuracy against samples per question actually spent, one line per strategy.

matplotlib is imported here only, so the core never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .bench import BenchPoint

__all__ = ["plot_accuracy"]


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
