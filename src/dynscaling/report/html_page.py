"""The self-contained HTML rendering of a report: inline SVG and CSS, no script, no external file."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from .analysis import _base, _Disagreement, _Pool
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
from .formatting import _e, _html_table, _pct, _plural

#: vote-table rows shown per strategy in the drill-down
MAX_VOTES = 12


#: characters of one sample's text shown in the drill-down; the rest is cut with a note
MAX_SAMPLE_CHARS = 4000


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
