"""``write_report``: a bench run folder becomes ``report.html`` (self-contained) and ``report.md`` (PNG figures).

The run is real: the bundled MATH pool (100 questions x 8 samples, LaTeX in questions and outputs) benchmarked with
``run_bench`` and written with ``write_run``/``question_rows``, as ``dynscaling bench --out`` does. Live runs also
record each question's samples (``samples_detail``); the fixture adds them from the pool's recorded outputs, with
markup injected into the texts to prove that everything is escaped. Every figure the report prints is checked
against ``points.json`` and ``questions.jsonl``, recomputed here independently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dynscaling.bench import run_bench
from dynscaling.errors import InputError
from dynscaling.pools import bundled_pools, load_pool
from dynscaling.report import write_report
from dynscaling.runs import question_rows, write_run
from render_check import Page, find_chromium, render

POOL_PATH = next(p for p in bundled_pools() if p.name.startswith("qwen2.5-math"))
POOL = "qwen2.5-math-instruct_math-100_x8"
STRATEGIES = ["single", "sc", "esc", "dynscaling-parallel", "oracle"]
BUDGETS = [1.0, 2.0, 4.0]
SEEDS = 3
#: appended to every question text and sample text: must come out as text, never as markup
MARK = ' <script>alert("x")</script> & 5 < 6 </pre><b>'
METHOD_COLORS = ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C))  # sc, esc, dynscaling-parallel


def build_run(directory: Path, samples_detail: bool = True) -> Path:
    pool = load_pool(POOL_PATH)
    texts = {e.question.id: e.question.text + MARK for e in pool.entries}
    golds = {e.question.id: e.question.gold for e in pool.entries}
    rows: list[dict[str, Any]] = []

    def keep(pool: Any, strategy: Any, budget: float, seed: int, result: Any) -> None:
        if seed != 0:
            return
        details = None
        if samples_detail:  # the format of a live run: what each question's samples said, chain samples marked
            entries = {e.question.id: e for e in pool.entries}
            details = {r.question_id: [{"text": (entries[r.question_id].texts[i] or "") + MARK,
                                        "answer": entries[r.question_id].answers[i], "chain": i >= 2}
                                       for i in range(min(r.samples, len(entries[r.question_id].texts)))]
                       for r in result.results}
        rows.extend(question_rows(pool.name, strategy.label, budget, seed, result.results, texts, golds, details))

    points = run_bench([pool], STRATEGIES, BUDGETS, SEEDS, on_result=keep)
    meta = {"source": "replay", "pools": [str(POOL_PATH)], "answers": "extract", "strategies": STRATEGIES,
            "budgets": BUDGETS, "seeds": SEEDS}
    return write_run(directory, meta, [p.to_dict() for p in points], rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run folder, its report (written into it, the default) and what both hold."""
    folder = build_run(tmp_path_factory.mktemp("run"))
    html_path, md_path = write_report(folder)
    return {"dir": folder, "html_path": html_path, "md_path": md_path, "html": html_path.read_text("utf-8"),
            "md": md_path.read_text("utf-8"), "page": Page(html_path.read_text("utf-8")),
            "points": json.loads((folder / "points.json").read_text()),
            "questions": [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()]}


# --------------------------------------------------------------------------------------------------------------
# Independent recomputations


def md_tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table as (headers, rows), cells stripped of bold."""
    tables, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip().strip("*").strip() for c in line.strip().strip("|").split(" | ")])
        elif block:
            tables.append((block[0], block[2:]))
            block = []
    return tables


def table_with(markdown: str, *headers: str) -> list[tuple[list[str], list[list[str]]]]:
    return [t for t in md_tables(markdown) if t[0][:len(headers)] == list(headers)]


def pm(cell: str) -> tuple[float, float]:
    mean, half = cell.split(" ± ")
    return float(mean), float(half)


def largest_budget_rows(questions: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    budget = max(r["budget"] for r in questions if r["strategy"] == strategy)
    return [r for r in questions if r["strategy"] == strategy and r["budget"] == budget]


def ece(rows: list[dict[str, Any]]) -> float:
    """Expected calibration error over 10 equal bins of [0.5, 1], answered questions only."""
    answered = [r for r in rows if r["answer"] is not None]
    bins: dict[int, list[dict[str, Any]]] = {}
    for r in answered:
        assert r["confidence"] >= 0.5  # a leader's confidence never is below 0.5
        bins.setdefault(min(9, int((r["confidence"] - 0.5) / 0.05)), []).append(r)
    return sum(len(b) / len(answered) * abs(sum(r["correct"] for r in b) / len(b)
                                            - sum(r["confidence"] for r in b) / len(b)) for b in bins.values())


def disagreeing_ids(questions: list[dict[str, Any]]) -> set[str]:
    """Questions whose correctness differs across strategies: single at 1, everyone else at 4."""
    verdicts: dict[str, set[bool]] = {}
    for r in questions:
        if r["budget"] == (1.0 if r["strategy"] == "single" else 4.0):
            verdicts.setdefault(r["id"], set()).add(r["correct"])
    return {q for q, v in verdicts.items() if len(v) > 1}


# --------------------------------------------------------------------------------------------------------------


class TestMarkdown:
    def test_the_cost_table_holds_every_point_with_its_real_figures(self, run: dict[str, Any]) -> None:
        [(headers, rows)] = table_with(run["md"], "strategy", "budget", "accuracy (%)")
        assert headers == ["strategy", "budget", "accuracy (%)", "samples/q", "tokens/q", "parse rate"]  # no $: free
        by_key = {(r[0], float(r[1])): r for r in rows}
        assert len(by_key) == len(rows) == len(run["points"]) == 1 + 4 * len(BUDGETS)
        for p in run["points"]:
            row = by_key[(p["strategy"], p["budget"])]
            mean, half = pm(row[2])
            assert mean == pytest.approx(100 * p["accuracy_mean"], abs=0.051)
            assert half == pytest.approx(100 * p["accuracy_ci95"], abs=0.051)
            assert float(row[3]) == pytest.approx(p["samples_per_question"], abs=0.0051)
            assert float(row[4].replace(",", "")) == pytest.approx(p["tokens_per_question"], abs=0.51)
            assert float(row[5]) == pytest.approx(p["parse_rate"], abs=0.00051)

    def test_the_headline_gives_the_fewest_samples_reaching_sc_best_within_half_a_point(self,
                                                                                        run: dict[str, Any]) -> None:
        [(_, rows)] = table_with(run["md"], "pool", "strategy", "samples/q to reach")
        target = max(p["accuracy_mean"] for p in run["points"] if p["strategy"] == "sc") - 0.005
        for strategy in STRATEGIES:
            reached = [p["samples_per_question"] for p in run["points"]
                       if p["strategy"] == strategy and p["accuracy_mean"] >= target]
            [row] = [r for r in rows if r[1] == strategy]
            assert row[2] == (f"{min(reached):.2f}" if reached else "not reached")
        assert "within 0.005 of self-consistency's best accuracy" in run["md"]

    def test_it_links_png_figures_that_exist_beside_it(self, run: dict[str, Any]) -> None:
        links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", run["md"])
        assert len(links) == 2  # accuracy and calibration, one pool
        for link in links:
            path = run["md_path"].parent / link
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
            assert path.stat().st_size > 20_000

    def test_the_calibration_table_gives_the_ece_recomputed_from_the_questions(self, run: dict[str, Any]) -> None:
        [(headers, rows)] = table_with(run["md"], "strategy", "budget", "answered")
        assert headers[-2:] == ["ECE", "Brier"]
        assert [r[0] for r in rows] == STRATEGIES
        for row in rows:
            chosen = largest_budget_rows(run["questions"], row[0])
            assert float(row[1]) == chosen[0]["budget"]  # each strategy at the largest budget it ran
            assert int(row[2]) == sum(r["answer"] is not None for r in chosen)
            assert float(row[6]) == pytest.approx(ece(chosen), abs=0.0005)

    def test_it_says_how_to_read_the_numbers(self, run: dict[str, Any]) -> None:
        md = run["md"]
        assert f"mean over {SEEDS} seeds ± the half-width of the 95% Student-t interval" in md
        assert "actually spent" in md and "not the nominal budget" in md
        assert f"{POOL} (100 questions)" in md and str(POOL_PATH) in md

    def test_it_points_to_the_html_for_the_disagreements(self, run: dict[str, Any]) -> None:
        expected = len(disagreeing_ids(run["questions"]))
        assert f"{expected} of 100 questions are right for some strategies and wrong for others" in run["md"]


class TestHtml:
    def test_it_is_one_well_formed_html5_document(self, run: dict[str, Any]) -> None:
        page = run["page"]
        assert page.doctype == "DOCTYPE html"
        assert page.errors == []
        root = page.root.find("html")
        assert root.attrs["lang"] == "en"
        assert root.find("meta").attrs == {"charset": "utf-8"}
        assert root.find("title").text().startswith("dynscaling report")

    def test_it_loads_nothing_and_runs_nothing(self, run: dict[str, Any]) -> None:
        root = run["page"].root
        for tag in ("script", "link", "img", "iframe", "object", "embed"):
            assert root.find_all(tag) == [], tag
        for node in root.iter():
            for name, value in node.attrs.items():
                if name in ("href", "xlink:href", "src"):
                    assert value.startswith("#"), (node.tag, name, value)
        [csp] = [m for m in root.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
        assert "default-src 'none'" in csp.attrs["content"]

    def test_the_table_of_contents_links_every_section(self, run: dict[str, Any]) -> None:
        page = run["page"].root
        targets = [a.attrs["href"][1:] for a in page.find("nav", "toc").find_all("a")]
        for section in ("run", "reading", "headline", "results", "calibration", "disagreements"):
            assert section in targets
        for target in targets:
            assert page.by_id(target).tag == "section"

    def test_the_plots_are_inline_svg_with_their_own_ids(self, run: dict[str, Any]) -> None:
        root = run["page"].root
        svgs = root.find_all("svg", "plot")
        assert len(svgs) == 2
        ids = {n.attrs["id"] for n in root.iter() if "id" in n.attrs}
        for svg in svgs:
            assert svg.parent is not None and svg.parent.tag == "figure"
            assert svg.attrs["role"] == "img" and svg.attrs["aria-label"]
            assert "viewbox" in svg.attrs  # html.parser lowers attribute names
            assert len(svg.find_all("path")) > 50
            for node in svg.iter():  # every internal reference resolves on this page
                for value in node.attrs.values():
                    for ref in re.findall(r"url\(#([^)]+)\)", value) + re.findall(r"^#(.+)$", value):
                        assert ref in ids, ref
        assert root.by_id("results").find("svg", "plot").attrs["aria-label"].endswith("tokens per question spent")
        assert root.by_id("calibration").find("svg", "plot")

    def test_the_cost_table_shows_the_points(self, run: dict[str, Any]) -> None:
        text = run["page"].root.by_id("results").text()
        for p in run["points"]:
            assert f"{100 * p['accuracy_mean']:.1f} ± {100 * p['accuracy_ci95']:.1f}" in text

    def test_the_drill_down_shows_each_disagreement_in_a_details_element(self, run: dict[str, Any]) -> None:
        section = run["page"].root.by_id("disagreements")
        questions = section.find_all("details", "q")
        expected = disagreeing_ids(run["questions"])
        assert len(questions) == len(expected) > 0
        by_id = {(r["id"], r["strategy"], r["budget"]): r for r in run["questions"]}
        for item in questions:
            summary = item.children[0]
            assert isinstance(summary, type(item)) and summary.tag == "summary"
            qid = summary.find("span", "qid").text()
            assert qid in expected
            body = item.find("div", "qbody")
            sc = by_id[(qid, "sc", 4.0)]
            assert body.find("p", "question").text() == sc["question"]  # the injected markup, as text
            assert f"Gold: {sc['gold']}" in body.text()
            rows = body.find("table").find("tbody").find_all("tr")
            assert [r.children[0].text() for r in rows] == STRATEGIES  # type: ignore[union-attr]
            assert f"{sc['confidence']:.3f}" in body.text()
            for answer, count in sc["votes"][:12]:
                assert f"{answer} × {count}" in body.text()
            samples = body.find_all("details", "samples")
            assert len(samples) == len(STRATEGIES)
            assert samples[1].find("summary").text().startswith(f"sc: {sc['samples']} samples")
            texts = [pre.text() for pre in samples[1].find_all("pre", "sample")]
            assert texts and all(t.endswith(MARK) for t in texts)
            tags = [n.text() for n in samples[1].find_all("span", "tag")]
            assert tags == ["chain"] * (len(sc["samples_detail"]) - 2)

    def test_model_text_is_escaped_never_markup(self, run: dict[str, Any]) -> None:
        html_text = run["html"]
        assert "<script" not in html_text and "<b>" not in html_text
        assert html_text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 5 &lt; 6") > 10
        shown = disagreeing_ids(run["questions"])
        latex = next(r["question"] for r in run["questions"] if r["id"] in shown and "\\" in r["question"])
        assert latex in run["page"].root.by_id("disagreements").text()  # backslashes and dollars kept as they are

    def test_the_header_says_what_was_run(self, run: dict[str, Any]) -> None:
        facts = run["page"].root.by_id("run").text()
        for expected in ("replay of recorded model outputs", f"{POOL} (100 questions)", "1, 2, 4 samples per "
                         "question", f"{SEEDS} (random sample orders", "date", *STRATEGIES):
            assert expected in facts


class TestMissingParts:
    def test_a_run_without_questions_reports_points_and_says_what_is_missing(self, run: dict[str, Any],
                                                                            tmp_path: Path) -> None:
        folder = tmp_path / "run"
        folder.mkdir()
        for name in ("run.json", "points.json"):
            shutil.copy(run["dir"] / name, folder / name)
        html_path, md_path = write_report(folder, tmp_path / "out")
        assert html_path == tmp_path / "out" / "report.html" and md_path == tmp_path / "out" / "report.md"
        page = Page(html_path.read_text("utf-8"))
        assert page.errors == []
        assert len(page.root.find_all("svg", "plot")) == 1  # accuracy only: calibration needs the questions
        for section in ("calibration", "disagreements"):
            assert "no questions.jsonl" in page.root.by_id(section).find("p", "note").text()
        md = md_path.read_text("utf-8")
        assert "no questions.jsonl" in md
        assert "questions not recorded" in md
        assert (tmp_path / "out" / "figures").is_dir()

    def test_a_run_without_sample_texts_says_so(self, run: dict[str, Any], tmp_path: Path) -> None:
        folder = tmp_path / "run"
        folder.mkdir()
        for name in ("run.json", "points.json"):
            shutil.copy(run["dir"] / name, folder / name)
        with (folder / "questions.jsonl").open("w") as handle:
            for row in run["questions"]:
                handle.write(json.dumps({k: v for k, v in row.items() if k != "samples_detail"}) + "\n")
        html_path, _ = write_report(folder, max_questions=2)
        section = Page(html_path.read_text("utf-8")).root.by_id("disagreements")
        assert "kept no sample texts" in section.find("p", "note").text()
        assert len(section.find_all("details", "q")) == 2
        assert section.find_all("details", "samples") == []
        assert "The first 2 are shown." in section.text()

    def test_a_folder_that_is_not_a_run_is_an_input_error(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="not a run folder"):
            write_report(tmp_path / "nothing")

    def test_a_run_with_no_points_is_an_input_error(self, tmp_path: Path) -> None:
        write_run(tmp_path, {"source": "replay"}, [], [])
        with pytest.raises(InputError, match="no points"):
            write_report(tmp_path)


    def test_a_question_row_without_its_confidence_is_an_input_error_naming_the_line(self, run: dict[str, Any],
                                                                                    tmp_path: Path) -> None:
        for name in ("run.json", "points.json"):
            shutil.copy(run["dir"] / name, tmp_path / name)
        rows = [dict(r) for r in run["questions"][:3]]
        del rows[2]["confidence"]
        (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(InputError, match=r"questions.jsonl:3: field 'confidence': missing"):
            write_report(tmp_path)


class TestLiveRun:
    def test_the_header_names_the_model_and_hides_credentials(self, run: dict[str, Any], tmp_path: Path) -> None:
        meta = {"source": "live", "dataset": "math500", "model": "qwen2.5-7b-instruct",
                "base_url": "https://user:sk-secret1@llm.example/v1", "strategies": STRATEGIES, "budgets": BUDGETS,
                "seeds": SEEDS, "questions": 100, "backend_requests": 1234, "api_key": "sk-secret2"}
        write_run(tmp_path, meta, run["points"], run["questions"])
        html_path, md_path = write_report(tmp_path)
        facts = Page(html_path.read_text("utf-8")).root.by_id("run").text()
        for expected in ("live: the model was called", "math500", "qwen2.5-7b-instruct",
                         "https://***@llm.example/v1", "backend requests1234", "api key(hidden)"):
            assert expected in facts
        for text in (html_path.read_text("utf-8"), md_path.read_text("utf-8")):
            assert "sk-secret" not in text
            assert "4 characters per token" not in text  # live token counts are the backend's own


class TestCommand:
    @pytest.fixture()
    def invoke(self) -> Any:
        from click.testing import CliRunner

        from dynscaling.cli import cli

        if "report" not in cli.commands:
            pytest.skip("dynscaling.cli has no 'report' command yet")
        return lambda *args: CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)

    def test_it_prints_the_two_paths(self, invoke: Any, run: dict[str, Any], tmp_path: Path) -> None:
        result = invoke(str(run["dir"]), "--out", str(tmp_path / "out"))
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == [str(tmp_path / "out" / "report.html"),
                                              str(tmp_path / "out" / "report.md")]

    def test_a_missing_run_is_one_error_line_and_exit_2(self, invoke: Any, tmp_path: Path) -> None:
        result = invoke(str(tmp_path / "nothing"))
        assert result.exit_code == 2
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_importing_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, dynscaling, dynscaling.report; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_page_renders_in_headless_chromium_with_its_plots(run: dict[str, Any], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium, or set DYNSCALING_CHROMIUM)")
    rendered = render(binary, run["html_path"], tmp_path)
    with capsys.disabled():
        print(f"\nreport screenshot: {rendered.screenshot} ({rendered.seconds:.1f} s)")
    assert rendered.errors == []
    assert rendered.console == []  # a blocked load (CSP) or a script error would be logged here

    dom = Page(rendered.dom)
    plots = dom.root.find_all("svg", "plot")
    assert len(plots) == 2 and all(len(svg.find_all("path")) > 50 for svg in plots)
    assert len(dom.root.find_all("details", "q")) == len(disagreeing_ids(run["questions"]))

    import matplotlib.image

    pixels = matplotlib.image.imread(rendered.screenshot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    rgb = (pixels * 255).round().astype(int)
    assert len({tuple(p) for p in rgb[::7, ::7].reshape(-1, 3)}) > 100  # text, tables and a plot, not blank
    lines = sum(int((abs(rgb - color).sum(axis=-1) < 30).sum()) for color in METHOD_COLORS)
    assert lines > 500, "the accuracy plot (the methods' coloured lines) is not on screen"
