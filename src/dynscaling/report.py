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
"""

from __future__ import annotations

import html
import io
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bench import BenchPoint
from .errors import InputError
from .runs import read_run

__all__ = ["plot_accuracy", "write_report"]

logger = logging.getLogger(__name__)

#: self-consistency's best accuracy minus this is the headline's target
TOLERANCE = 0.005
#: equal-width confidence bins of the reliability diagrams
CALIBRATION_BINS = 10
#: characters of one sample's text shown in the drill-down; the rest is cut with a note
MAX_SAMPLE_CHARS = 4000
#: vote-table rows shown per strategy in the drill-down
MAX_VOTES = 12
#: strategies that are not methods: a 1-sample baseline and an upper bound that reads the gold answers
_REFERENCE = ("single", "oracle")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
_SECRET = re.compile(r"key|secret|token|password|authori[sz]ation", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------------------
# The older plots (``dynscaling bench --plot``)


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


# --------------------------------------------------------------------------------------------------------------
# Analysis: plain data in, plain data out (no matplotlib)


@dataclass(frozen=True)
class _Reach:
    """The fewest samples per question (spent) at which a strategy's mean accuracy reaches the target."""

    strategy: str
    samples: float | None
    budget: float | None
    accuracy: float | None


@dataclass(frozen=True)
class _Headline:
    pool: str
    sc_best: dict[str, Any]
    target: float
    reaches: list[_Reach]

    @property
    def sc_samples(self) -> float | None:
        return next((r.samples for r in self.reaches if r.strategy == self.sc_best["strategy"]), None)


@dataclass(frozen=True)
class _Bin:
    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class _Calibration:
    """Calibration of one strategy's confidence at one budget, over the graded questions it answered."""

    strategy: str
    budget: float
    bins: list[_Bin]
    answered: int
    unanswered: int
    ungraded: int
    accuracy: float
    confidence: float
    ece: float
    brier: float


@dataclass(frozen=True)
class _Disagreement:
    question_id: str
    rows: dict[str, dict[str, Any]]  # strategy -> its row at the drill-down budget
    core: bool  # the methods (not single, not oracle) disagree among themselves


def _base(strategy: str) -> str:
    return strategy.split(":", 1)[0]


def _is_reference(strategy: str) -> bool:
    return _base(strategy) in _REFERENCE


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _sc_label(strategies: Sequence[str]) -> str | None:
    """Plain ``sc`` if present, else the first ``sc:...`` variant."""
    if "sc" in strategies:
        return "sc"
    return next((s for s in strategies if _base(s) == "sc"), None)


def _headline(pool: str, points: Sequence[dict[str, Any]], tolerance: float) -> _Headline | None:
    strategies = _ordered(p["strategy"] for p in points)
    sc = _sc_label(strategies)
    if sc is None:
        return None
    best = max((p for p in points if p["strategy"] == sc),
               key=lambda p: (p["accuracy_mean"], -p["samples_per_question"]))
    target = best["accuracy_mean"] - tolerance
    reaches = []
    for strategy in strategies:
        reached = [p for p in points if p["strategy"] == strategy and p["accuracy_mean"] >= target - 1e-12]
        if not reached:
            reaches.append(_Reach(strategy, None, None, None))
            continue
        first = min(reached, key=lambda p: (p["samples_per_question"], p["budget"]))
        reaches.append(_Reach(strategy, first["samples_per_question"], first["budget"], first["accuracy_mean"]))
    return _Headline(pool, best, target, reaches)


def _calibrate(strategy: str, budget: float, rows: Sequence[dict[str, Any]], low: float) -> _Calibration:
    graded = [r for r in rows if r.get("correct") is not None]
    answered = [r for r in graded if r.get("answer") is not None]
    width = (1.0 - low) / CALIBRATION_BINS
    members: list[list[dict[str, Any]]] = [[] for _ in range(CALIBRATION_BINS)]
    for row in answered:
        index = min(CALIBRATION_BINS - 1, max(0, int((float(row["confidence"]) - low) / width)))
        members[index].append(row)
    bins, ece = [], 0.0
    for index, inside in enumerate(members):
        if not inside:
            bins.append(_Bin(low + index * width, low + (index + 1) * width, 0, math.nan, math.nan))
            continue
        confidence = sum(float(r["confidence"]) for r in inside) / len(inside)
        accuracy = sum(bool(r["correct"]) for r in inside) / len(inside)
        bins.append(_Bin(low + index * width, low + (index + 1) * width, len(inside), confidence, accuracy))
        ece += len(inside) / len(answered) * abs(accuracy - confidence)
    n = len(answered)
    return _Calibration(
        strategy, budget, bins, n, len(graded) - n, len(rows) - len(graded),
        accuracy=sum(bool(r["correct"]) for r in answered) / n if n else math.nan,
        confidence=sum(float(r["confidence"]) for r in answered) / n if n else math.nan,
        ece=ece if n else math.nan,
        brier=sum((float(r["confidence"]) - bool(r["correct"])) ** 2 for r in answered) / n if n else math.nan)


def _calibrations(rows: Sequence[dict[str, Any]]) -> list[_Calibration]:
    """Every strategy at the largest budget it ran. Bins span [0.5, 1] when no confidence is below 0.5 (a
    leader's confidence never is), else [0, 1]."""
    strategies = _ordered(r["strategy"] for r in rows)
    low = 0.5 if all(float(r["confidence"]) >= 0.5 for r in rows if r.get("answer") is not None) else 0.0
    found = []
    for strategy in strategies:
        budget = max(float(r["budget"]) for r in rows if r["strategy"] == strategy)
        chosen = [r for r in rows if r["strategy"] == strategy and float(r["budget"]) == budget]
        found.append(_calibrate(strategy, budget, chosen, low))
    return found


def _drill_budgets(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The largest budget common to every strategy that ran more than one; a strategy that ran only one budget
    (single) keeps it."""
    budgets: dict[str, set[float]] = {}
    for row in rows:
        budgets.setdefault(row["strategy"], set()).add(float(row["budget"]))
    several = [b for b in budgets.values() if len(b) > 1] or list(budgets.values())
    common = set.intersection(*several) if several else set()
    top = max(common) if common else None
    chosen = {}
    for strategy, options in budgets.items():
        below = [b for b in options if top is None or b <= top]
        chosen[strategy] = max(below) if below else min(options)
    return chosen


def _disagreements(rows: Sequence[dict[str, Any]], budgets: Mapping[str, float]) -> list[_Disagreement]:
    """Questions whose correctness differs across strategies, the methods' own disagreements first, then the most
    evenly split."""
    by_question: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if float(row["budget"]) == budgets.get(row["strategy"]):
            by_question.setdefault(str(row["id"]), {})[row["strategy"]] = row
    methods = [s for s in budgets if not _is_reference(s)]
    found = []
    for question_id, chosen in by_question.items():
        verdicts = [bool(r["correct"]) for r in chosen.values() if r.get("correct") is not None]
        if len(set(verdicts)) < 2:
            continue
        core = len({bool(chosen[s]["correct"]) for s in methods
                    if s in chosen and chosen[s].get("correct") is not None}) > 1
        found.append((not core, -min(verdicts.count(True), verdicts.count(False)), len(found),
                      _Disagreement(question_id, chosen, core)))
    return [item[-1] for item in sorted(found, key=lambda item: item[:3])]


# --------------------------------------------------------------------------------------------------------------
# Figures (matplotlib imported here only)


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


# --------------------------------------------------------------------------------------------------------------
# Formatting helpers


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


# --------------------------------------------------------------------------------------------------------------
# The report


@dataclass
class _Pool:
    name: str
    slug: str
    points: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    headline: _Headline | None
    calibrations: list[_Calibration]
    drill_budgets: dict[str, float]
    disagreements: list[_Disagreement]

    @property
    def questions(self) -> int | None:
        return len({str(r["id"]) for r in self.rows}) or None

    @property
    def has_samples(self) -> bool:
        return any("samples_detail" in r for r in self.rows)

    @property
    def has_cost(self) -> bool:
        return any(p.get("cost_per_question", 0) > 0 for p in self.points)


def _strategy_summaries() -> dict[str, str]:
    from .strategies import STRATEGIES

    return {name: spec.summary for name, spec in STRATEGIES.items()}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynscaling")
    except PackageNotFoundError:
        return "unknown"


def _analyse(points: list[dict[str, Any]], questions: list[dict[str, Any]]) -> list[_Pool]:
    pools, taken = [], set()
    for name in _ordered(p["pool"] for p in points):
        ours = [p for p in points if p["pool"] == name]
        strategies = {p["strategy"] for p in ours}
        rows = [r for r in questions if r["pool"] == name and r["strategy"] in strategies and r.get("seed", 0) == 0]
        budgets = _drill_budgets(rows) if rows else {}
        pools.append(_Pool(name, _slug(name, taken), ours, rows, _headline(name, ours, TOLERANCE),
                           _calibrations(rows) if rows else [], budgets,
                           _disagreements(rows, budgets) if rows else []))
    return pools


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


@dataclass(frozen=True)
class _Context:
    meta: dict[str, Any]
    pools: list[_Pool]
    colors: dict[str, str]
    svgs: dict[str, str]
    pngs: dict[str, str]
    max_questions: int
    has_questions: bool

    @property
    def strategies(self) -> list[str]:
        return list(self.colors)

    @property
    def seeds(self) -> int:
        return max(int(p["seeds"]) for pool in self.pools for p in pool.points)

    @property
    def budgets(self) -> list[float]:
        listed = self.meta.get("budgets")
        if isinstance(listed, list) and listed:
            return [float(b) for b in listed]
        return sorted({float(p["budget"]) for pool in self.pools for p in pool.points})


# ---- shared text


_Fact = tuple[str, "str | list[tuple[str, str | None]]"]


def _facts(c: _Context) -> list[_Fact]:
    """(label, plain text) rows describing the run; pools are a list of (text, file path or None)."""
    meta = c.meta
    facts: list[_Fact] = []
    source = meta.get("source")
    if source == "replay":
        facts.append(("source", "replay of recorded model outputs (no model was called)"))
    elif source == "live":
        facts.append(("source", "live: the model was called for every sample"))
    elif source:
        facts.append(("source", str(source)))
    for key in ("dataset", "model", "base_url"):
        if meta.get(key):
            facts.append((key.replace("_", " "), _without_credentials(str(meta[key]))))
    facts.append(("pools" if len(c.pools) > 1 else "pool", _pool_facts(c)))
    if meta.get("questions") is not None:
        facts.append(("questions", str(meta["questions"])))
    if meta.get("answers"):
        facts.append(("answers", f"{meta['answers']} (how recorded answers were read)"))
    facts.append(("budgets", ", ".join(f"{b:g}" for b in c.budgets) + " samples per question (nominal)"))
    facts.append(("seeds", f"{c.seeds} (random sample orders per point)"))
    if meta.get("created"):
        facts.append(("date", str(meta["created"]).replace("T", " ").replace("Z", " UTC")))
    known = {"source", "dataset", "model", "base_url", "pools", "questions", "answers", "strategies", "budgets",
             "seeds", "created"}
    for key, value in meta.items():
        if key not in known:
            shown = "(hidden)" if _SECRET.search(key) else _without_credentials(str(value))
            facts.append((key.replace("_", " "), shown))
    return facts


def _without_credentials(text: str) -> str:
    """``https://user:key@host/v1`` -> ``https://***@host/v1``: a report gets shared, a key must not be in it."""
    return re.sub(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text, flags=re.IGNORECASE)


def _pool_facts(c: _Context) -> list[tuple[str, str | None]]:
    """One line per pool: name, number of questions, and the file it came from when run.json names it."""
    paths = [str(p) for p in c.meta.get("pools") or []]
    lines = []
    for pool in c.pools:
        size = f"{pool.questions} questions" if pool.questions else "questions not recorded"
        path = next((p for p in paths if re.fullmatch(re.escape(pool.name) + r"(\.jsonl)?(\.gz)?",
                                                      Path(p).name)), None)
        lines.append((f"{pool.name} ({size})", path))
    return lines


def _reading(c: _Context) -> list[str]:
    """How to read the numbers, one paragraph each (plain text)."""
    lines = [
        f"Accuracy is the mean over {c.seeds} seeds ± the half-width of the 95% Student-t interval over seeds, in "
        "percent. A seed fixes the random order in which each question's samples arrive (and every random choice), "
        "so the interval covers sample-order randomness, not the choice of questions.",
        "Spend (samples, tokens and dollars per question) is what was actually spent, averaged over questions and "
        "seeds, not the nominal budget: strategies that stop early spend less than their budget, so the plots put "
        "spend, not budget, on the x axis.",
    ]
    if c.meta.get("source") == "replay":
        lines.append("Tokens on replay pools are estimates (4 characters per token): pools record no usage. "
                     "Dollar figures appear only when the run priced its requests.")
    if any(_base(s) == "oracle" for s in c.strategies):
        lines.append("oracle reads the gold answers to decide where to spend: an upper bound for allocation, "
                     "not a method.")
    lines.append("Confidence is the strategy's posterior probability that its leading answer stays ahead with "
                 "more votes (P(Binomial(v1 + v2 + 1, 1/2) ≤ v1) for the top two vote counts v1 ≥ v2); "
                 "calibration shows how far that is from the probability of being right.")
    if c.has_questions:
        lines.append("Calibration and the drill-down use the per-question results of seed 0.")
    return lines


def _sampling_error(pool: _Pool) -> str | None:
    """What the choice of questions alone adds, which the bands leave out (binomial 95% at SC's best)."""
    if not pool.questions:
        return None
    p = pool.headline.sc_best["accuracy_mean"] if pool.headline else max(x["accuracy_mean"] for x in pool.points)
    half = 1.96 * math.sqrt(max(p * (1 - p), 0.0) / pool.questions)
    return (f"With {pool.questions} questions, the choice of questions alone adds about ±{100 * half:.1f} points "
            f"(binomial 95% at {_pct(p)}%), which the bands over seeds do not include.")


def _best_points(points: Sequence[dict[str, Any]]) -> set[int]:
    """Indices of the points with the best mean accuracy among the methods (not single, not oracle) at each
    budget, when at least two methods ran it and they do not all tie."""
    best: set[int] = set()
    for budget in {p["budget"] for p in points}:
        at = [i for i, p in enumerate(points) if p["budget"] == budget and not _is_reference(p["strategy"])]
        if len(at) < 2:
            continue
        top = max(round(points[i]["accuracy_mean"], 6) for i in at)
        leaders = [i for i in at if round(points[i]["accuracy_mean"], 6) == top]
        if len(leaders) < len(at):  # when every method ties, no one stands out
            best.update(leaders)
    return best


def _cost_rows(pool: _Pool) -> tuple[list[str], list[list[str]], list[bool], list[bool]]:
    """Headers, rows, whether each row starts a strategy, whether its accuracy is the best at its budget."""
    headers = ["strategy", "budget", "accuracy (%)", "samples/q", "tokens/q"]
    if pool.has_cost:
        headers.append("$/q")
    headers.append("parse rate")
    rows, groups, bold, previous = [], [], [], None
    best = {id(pool.points[i]) for i in _best_points(pool.points)}
    for strategy in _ordered(p["strategy"] for p in pool.points):
        for p in sorted((p for p in pool.points if p["strategy"] == strategy), key=lambda p: p["budget"]):
            bold.append(id(p) in best)
            row = [strategy, f"{p['budget']:g}", _accuracy(p), _number(p["samples_per_question"]),
                   _number(p["tokens_per_question"], 0)]
            if pool.has_cost:
                row.append(_money(p.get("cost_per_question", 0.0)))
            row.append(f"{p['parse_rate']:.3f}")
            rows.append(row)
            groups.append(strategy != previous)
            previous = strategy
    return headers, rows, groups, bold


def _headline_rows(c: _Context) -> list[list[str]]:
    rows = []
    for pool in c.pools:
        h = pool.headline
        if h is None:
            continue
        for reach in h.reaches:
            share = ""
            if reach.samples is not None and h.sc_samples:
                share = f"{reach.samples / h.sc_samples:.0%}"
            rows.append([pool.name, reach.strategy,
                         "not reached" if reach.samples is None else _number(reach.samples),
                         "" if reach.budget is None else f"{reach.budget:g}",
                         "" if reach.accuracy is None else _pct(reach.accuracy), share])
    return rows


_HEADLINE_HEADERS = ["pool", "strategy", "samples/q to reach", "at budget", "accuracy (%)", "of sc's samples"]


def _headline_intro(c: _Context, targets_in_text: bool = True) -> str:
    targets = "; ".join(f"{p.name}: sc's best {_pct(p.headline.sc_best['accuracy_mean'])}% at budget "
                        f"{p.headline.sc_best['budget']:g}, target {_pct(p.headline.target)}%"
                        for p in c.pools if p.headline)
    return (f"The fewest samples per question spent (mean over seeds) at which each strategy's mean accuracy comes "
            f"within {TOLERANCE} of self-consistency's best accuracy measured in this run"
            f"{f' ({targets})' if targets_in_text else ''}. Only the "
            "budgets of this run are measured, so a strategy may need less than shown. 'of sc's samples' compares "
            "with what sc itself needs to reach the same target.")


def _calibration_rows(pool: _Pool) -> list[list[str]]:
    rows = []
    for cal in pool.calibrations:
        def value(x: float, digits: int = 3) -> str:
            return "–" if math.isnan(x) else f"{x:.{digits}f}"

        rows.append([cal.strategy, f"{cal.budget:g}", str(cal.answered), str(cal.unanswered), _pct(cal.accuracy),
                     _pct(cal.confidence), value(cal.ece), value(cal.brier)])
    return rows


_CALIBRATION_HEADERS = ["strategy", "budget", "answered", "no answer", "accuracy (%)", "mean confidence (%)", "ECE",
                        "Brier"]


def _calibration_note(pool: _Pool) -> str:
    low = pool.calibrations[0].bins[0].low
    ungraded = sum(c.ungraded for c in pool.calibrations)
    note = (f"Each strategy at the largest budget it ran, over the questions it answered (a question with no "
            f"answer makes no claim and is counted apart). {CALIBRATION_BINS} equal-width confidence bins over "
            f"[{low:g}, 1]; ECE = Σ (questions in bin / answered) × |accuracy − mean confidence|; Brier = mean "
            "squared gap between confidence and correctness (0 or 1).")
    if ungraded:
        note += f" {ungraded} rows without a gold answer are left out."
    return note


def _drill_budget_text(pool: _Pool) -> str:
    groups: dict[float, list[str]] = {}
    for strategy, budget in pool.drill_budgets.items():
        groups.setdefault(budget, []).append(strategy)
    main = max(groups, key=lambda b: len(groups[b]))
    text = f"budget {main:g}"
    others = [f"{', '.join(s)} at {b:g}" for b, s in groups.items() if b != main]
    return text + (f" ({'; '.join(others)})" if others else "")


# ---- HTML

_CSS = """
:root{--fg:#1d2430;--muted:#5b6472;--line:#dfe3ea;--soft:#f5f7fa;--accent:#2f5fb3;--good:#17693a;--bad:#a8261d}
*{box-sizing:border-box}
html{color-scheme:light}
body{margin:0;background:#fff;color:var(--fg);
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.page{max-width:1120px;margin:0 auto;padding:28px 28px 64px}
header h1{font-size:1.7rem;margin:0 0 .2rem;letter-spacing:-.01em}
header .sub{color:var(--muted);margin:0 0 1rem}
h2{font-size:1.35rem;margin:2.6rem 0 .8rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
h3{font-size:1.08rem;margin:1.8rem 0 .5rem}
a{color:var(--accent)}
p{margin:.5rem 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1.2rem;margin:.5rem 0 1rem}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
ul.plain{list-style:none;margin:0;padding:0}
ul.plain li{margin-bottom:.2rem}
code.path{background:none;padding:0;color:var(--muted);font-size:.78rem}
.small{font-size:.8rem}
.run-grid{display:grid;grid-template-columns:minmax(0,1.1fr) minmax(0,1fr);gap:0 2rem;align-items:start}
@media (max-width:900px){.run-grid{grid-template-columns:1fr}}
nav.toc{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:.7rem 1.2rem;margin:1.2rem 0}
nav.toc h2{font-size:1rem;margin:0 0 .3rem;border:0;padding:0}
nav.toc ol{margin:.1rem 0;padding-left:1.3rem}
nav.toc > ol{columns:2;column-gap:2.5rem}
nav.toc li{break-inside:avoid}
ul.reading{padding-left:1.2rem}
ul.reading li{margin:.3rem 0}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.88rem;margin:.4rem 0 1rem}
caption{text-align:left;color:var(--muted);font-size:.85rem;padding-bottom:.3rem}
th,td{padding:.25rem .7rem;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
th.l,td.l{text-align:left}
tr.group td{border-top:2px solid #c9cfda}
tbody tr:hover{background:#fafbfd}
figure{margin:1rem 0 1.2rem}
figure svg.plot{display:block;width:100%;height:auto}
figure svg.plot *{stroke-linejoin:round;stroke-linecap:butt}
figcaption{color:var(--muted);font-size:.85rem;margin-top:.3rem}
.note{background:#fff8e6;border-left:3px solid #d9a400;padding:.5rem .8rem;border-radius:4px;margin:.6rem 0}
.muted{color:var(--muted)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em;background:var(--soft);
padding:0 .25em;border-radius:3px;overflow-wrap:anywhere}
details.q{border:1px solid var(--line);border-radius:6px;margin:.35rem 0;background:#fff}
details.q[open]{box-shadow:0 1px 4px rgba(0,0,0,.06)}
details.q > summary{cursor:pointer;padding:.35rem .7rem;display:flex;gap:.6rem;align-items:baseline}
details.q > summary::before{content:"▸";color:var(--muted)}
details.q[open] > summary::before{content:"▾"}
details.q > summary::-webkit-details-marker{display:none}
.qid{font-weight:600;white-space:nowrap}
.qtext{flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:var(--muted)}
.marks{white-space:nowrap}
.chip{display:inline-block;padding:0 .45em;border-radius:9px;font-size:.75rem;margin-left:.2rem;line-height:1.5}
.ok{background:#e2f3e7;color:var(--good)}
.ko{background:#fbe5e2;color:var(--bad)}
.na{background:#ececec;color:#555}
.qbody{padding:.2rem .9rem .8rem;border-top:1px solid var(--line)}
.qbody .question{white-space:pre-wrap;margin:.6rem 0}
ol.votes{margin:0;padding-left:1.1rem;text-align:left}
details.samples{margin:.4rem 0}
details.samples > summary{cursor:pointer;color:var(--accent)}
ol.samples{padding-left:1.4rem}
ol.samples li{margin:.5rem 0}
ol.samples li.chain pre.sample{border-left:3px solid #8fa8e0}
.tag{display:inline-block;font-size:.72rem;padding:0 .4em;border-radius:3px;background:#e8eefb;color:#24469a}
pre.sample{white-space:pre-wrap;overflow-wrap:anywhere;max-height:22em;overflow:auto;background:var(--soft);
padding:.5rem .7rem;border-radius:4px;font-size:.8rem;margin:.3rem 0}
footer{margin-top:3rem;color:var(--muted);font-size:.82rem;border-top:1px solid var(--line);padding-top:.8rem}
@media print{details.q{break-inside:avoid} nav.toc > ol{columns:1}}
"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'")


def _chip(row: Mapping[str, Any] | None, strategy: str) -> str:
    if row is None or row.get("correct") is None:
        return f'<span class="chip na" title="not graded">{_e(strategy)} –</span>'
    if row.get("answer") is None:
        return f'<span class="chip ko" title="no answer">{_e(strategy)} ∅</span>'
    if row["correct"]:
        return f'<span class="chip ok" title="correct">{_e(strategy)} ✓</span>'
    return f'<span class="chip ko" title="wrong">{_e(strategy)} ✗</span>'


def _verdict(row: Mapping[str, Any]) -> str:
    if row.get("correct") is None:
        return '<span class="chip na">not graded</span>'
    if row.get("answer") is None:
        return '<span class="chip ko">no answer</span>'
    return '<span class="chip ok">right</span>' if row["correct"] else '<span class="chip ko">wrong</span>'


def _votes_html(votes: Sequence[Sequence[Any]]) -> str:
    if not votes:
        return '<span class="muted">no votes</span>'
    items = [f"<li><code>{_e(answer)}</code> × {_e(count)}</li>" for answer, count in votes[:MAX_VOTES]]
    if len(votes) > MAX_VOTES:
        items.append(f'<li class="muted">{len(votes) - MAX_VOTES} more answers</li>')
    return '<ol class="votes">' + "".join(items) + "</ol>"


def _samples_html(strategy: str, samples: Sequence[Mapping[str, Any]]) -> str:
    chains = sum(bool(s.get("chain")) for s in samples)
    items = []
    for sample in samples:
        text = sample.get("text") or ""
        cut = ""
        if len(text) > MAX_SAMPLE_CHARS:
            cut = f'<p class="muted">… {len(text) - MAX_SAMPLE_CHARS:,} more characters not shown</p>'
            text = text[:MAX_SAMPLE_CHARS]
        tag = '<span class="tag">chain</span> ' if sample.get("chain") else ""
        answer = sample.get("answer")
        answer_html = f"<code>{_e(answer)}</code>" if answer is not None else '<span class="muted">abstains</span>'
        body = f'<pre class="sample">{_e(text)}</pre>' if text else '<p class="muted">no text</p>'
        chain = ' class="chain"' if sample.get("chain") else ""
        items.append(f"<li{chain}>{tag}answer {answer_html}{body}{cut}</li>")
    summary = f"{_e(strategy)}: {_plural(len(samples), 'sample')}" + (
        f", {_plural(chains, 'chain sample')}" if chains else "")
    return (f'<details class="samples"><summary>{summary}</summary><ol class="samples">{"".join(items)}</ol>'
            "</details>")


def _question_html(pool: _Pool, item: _Disagreement, strategies: Sequence[str]) -> str:
    rows = item.rows
    first = next(iter(rows.values()))
    text = first.get("question")
    gold = first.get("gold")
    short = (text or "").replace("\n", " ")
    marks = "".join(_chip(rows.get(s), s) for s in strategies if s in pool.drill_budgets)
    table_rows = []
    for strategy in strategies:
        row = rows.get(strategy)
        if row is None:
            continue
        verdict = _verdict(row)
        answer = f"<code>{_e(row['answer'])}</code>" if row.get("answer") is not None else \
            '<span class="muted">none</span>'
        table_rows.append([_e(strategy), f"{float(row['budget']):g}", answer, verdict,
                           f"{float(row['confidence']):.3f}", _e(row.get("samples", "")), _votes_html(row["votes"])])
    question = _e(text) if text else '<span class="muted">question text not recorded</span>'
    body = [f'<p class="question">{question}</p>',
            f"<p>Gold: <code>{_e(gold)}</code></p>" if gold is not None else "",
            '<div class="table-wrap">' + _html_table(["strategy", "budget", "answer", "", "confidence", "samples",
                                                      "votes"], table_rows, left={0, 2, 3, 6}) + "</div>"]
    for strategy in strategies:
        row = rows.get(strategy)
        if row is not None and row.get("samples_detail"):
            body.append(_samples_html(strategy, row["samples_detail"]))
    return (f'<details class="q"><summary><span class="qid">{_e(item.question_id)}</span>'
            f'<span class="qtext">{_e(short[:160])}</span><span class="marks">{marks}</span></summary>'
            f'<div class="qbody">{"".join(body)}</div></details>')


def _render_html(c: _Context) -> str:
    summaries = _strategy_summaries()
    pools_title = ", ".join(p.name for p in c.pools)
    title = f"dynscaling report: {pools_title}"
    toc = ['<li><a href="#run">What was run</a></li>', '<li><a href="#reading">How to read the numbers</a></li>']
    if any(p.headline for p in c.pools):
        toc.append('<li><a href="#headline">Headline: samples to match self-consistency</a></li>')
    for section, label in (("results", "Accuracy and cost"), ("calibration", "Calibration"),
                           ("disagreements", "Where strategies disagree")):
        sub = "".join(f'<li><a href="#{section}-{p.slug}">{_e(p.name)}</a></li>' for p in c.pools)
        toc.append(f'<li><a href="#{section}">{label}</a><ol>{sub}</ol></li>')
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
           f'<meta name="generator" content="dynscaling {_e(_version())}">',
           f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", '<div class="page">',
           "<header>", "<h1>Inference-scaling report</h1>",
           f'<p class="sub">{_e(pools_title)} · {len(c.strategies)} strategies · {c.seeds} seeds</p>', "</header>",
           '<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>' + "".join(toc) + "</ol></nav>",
           "<main>"]

    out.append('<section id="run"><h2>What was run</h2><div class="run-grid"><dl class="facts">')
    for label, value in _facts(c):
        shown = _e(value) if isinstance(value, str) else '<ul class="plain">' + "".join(
            f"<li>{_e(text)}" + (f'<br><code class="path">{_e(path)}</code>' if path else "") + "</li>"
            for text, path in value) + "</ul>"
        out.append(f"<dt>{_e(label)}</dt><dd>{shown}</dd>")
    out.append("</dl>")
    strategy_rows = [[_e(s), _e(summaries.get(_base(s), ""))] for s in c.strategies]
    out.append('<div class="table-wrap">' + _html_table(["strategy", "what it does"], strategy_rows, left=2) +
               "</div></div></section>")

    out.append('<section id="reading"><h2>How to read the numbers</h2><ul class="reading">')
    out += [f"<li>{_e(line)}</li>" for line in _reading(c)]
    out.append("</ul></section>")

    if any(p.headline for p in c.pools):
        out.append('<section id="headline"><h2>Headline: samples per question to match self-consistency</h2>')
        out.append(f"<p>{_e(_headline_intro(c, targets_in_text=False))}</p>")
        rows = [[_e(x) for x in row] for row in _headline_rows(c)]
        groups = [i == 0 or rows[i][0] != rows[i - 1][0] for i in range(len(rows))]
        targets = {p.name: p.headline for p in c.pools if p.headline}
        for row, first in zip(rows, groups, strict=True):
            h = targets.get(html.unescape(row[0]))
            row[0] = "" if not first else row[0] if h is None else (
                f'{row[0]}<br><span class="small muted">sc best {_pct(h.sc_best["accuracy_mean"])}%, '
                f"target {_pct(h.target)}%</span>")
        out.append('<div class="table-wrap">' + _html_table(_HEADLINE_HEADERS, rows, left=2, groups=groups) +
                   "</div>")
        missing = [p.name for p in c.pools if not p.headline]
        if missing:
            out.append(f'<p class="note">No sc in this run for {_e(", ".join(missing))}: no headline there.</p>')
        out.append("</section>")

    out.append('<section id="results"><h2>Accuracy and cost</h2>')
    for pool in c.pools:
        out.append(f'<section id="results-{pool.slug}"><h3>{_e(pool.name)}</h3>')
        out.append(f'<figure>{c.svgs[f"accuracy-{pool.slug}"]}<figcaption>Accuracy against samples per question '
                   "(left) and tokens per question (right) actually spent, log scale; lines are means over seeds, "
                   "bands 95% intervals; dashed: oracle (reads the gold answers).</figcaption></figure>")
        error = _sampling_error(pool)
        if error:
            out.append(f'<p class="muted">{_e(error)}</p>')
        headers, rows, groups, bold = _cost_rows(pool)
        cells = [[_e(x) for x in r] for r in rows]
        for row, first, strong in zip(cells, groups, bold, strict=True):
            row[0] = row[0] if first else ""
            row[2] = f"<strong>{row[2]}</strong>" if strong else row[2]
        out.append('<div class="table-wrap">' + _html_table(
            headers, cells, groups=groups,
            caption="Accuracy ± 95% interval over seeds (bold: the best method at that budget, single and oracle "
                    "aside); spend per question actually spent, mean over seeds.") + "</div></section>")
    out.append("</section>")

    out.append('<section id="calibration"><h2>Calibration of the confidence</h2>')
    for pool in c.pools:
        out.append(f'<section id="calibration-{pool.slug}"><h3>{_e(pool.name)}</h3>')
        if not pool.calibrations:
            out.append(f'<p class="note">{_e(_missing_questions(c))}</p></section>')
            continue
        out.append(f'<figure>{c.svgs[f"calibration-{pool.slug}"]}<figcaption>Bars: observed accuracy of the '
                   "questions in each confidence bin (number of questions above each bar); dashed diagonal: "
                   "perfect calibration (accuracy equal to confidence).</figcaption></figure>")
        out.append(f"<p>{_e(_calibration_note(pool))}</p>")
        rows = [[_e(x) for x in r] for r in _calibration_rows(pool)]
        out.append('<div class="table-wrap">' + _html_table(_CALIBRATION_HEADERS, rows) + "</div></section>")
    out.append("</section>")

    out.append('<section id="disagreements"><h2>Where strategies disagree</h2>')
    for pool in c.pools:
        out.append(f'<section id="disagreements-{pool.slug}"><h3>{_e(pool.name)}</h3>')
        if not pool.rows:
            out.append(f'<p class="note">{_e(_missing_questions(c))}</p></section>')
            continue
        out.append(f"<p>{_e(_disagreement_intro(pool, c.max_questions))}</p>")
        if not pool.has_samples:
            out.append('<p class="note">This run kept no sample texts (<code>samples_detail</code> in '
                       "questions.jsonl): each question shows its answers and votes only.</p>")
        strategies = [s for s in c.strategies if s in pool.drill_budgets]
        out += [_question_html(pool, item, strategies) for item in pool.disagreements[:c.max_questions]]
        out.append("</section>")
    out.append("</section>")

    out += ["</main>", f"<footer>Written by dynscaling {_e(_version())} from <code>run.json</code>, "
            "<code>points.json</code> and <code>questions.jsonl</code>. Self-contained: no script, no external "
            "file.</footer>", "</div>", "</body>", "</html>", ""]
    return "\n".join(out)


def _missing_questions(c: _Context) -> str:
    if not c.has_questions:
        return ("This run has no questions.jsonl (per-question results), so there is nothing to show here; "
                "'dynscaling bench --out DIR' writes it.")
    return "questions.jsonl has no rows for this pool."


def _disagreement_intro(pool: _Pool, limit: int) -> str:
    total = len(pool.disagreements)
    core = sum(d.core for d in pool.disagreements)
    text = (f"{total} of {pool.questions} questions are right for some strategies and wrong for others at "
            f"{_drill_budget_text(pool)}, seed 0.")
    if total and core:
        text += (f" {core} of them split the methods themselves (single and oracle aside): those come first, "
                 "the most evenly split first.")
    elif total:
        text += " None splits the methods themselves: each differs only from single or oracle."
    if total > limit:
        text += f" The first {limit} are shown."
    return text


# ---- Markdown


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
