"""Answer extraction from raw model text, and equivalence between answers.

Three steps, kept apart so each can be tested on real cases (``tests/cases/``):

1. ``extract_answer(text, answer_type)``: find the final answer in a model's output. Reasoning inside
   ``<think>…</think>`` is dropped first (an unclosed ``<think>`` means the answer never came). Then, in order:
   the last balanced ``\\boxed{…}``; the last "the answer is …" / "Final answer: …" / "Answer: …" / "A: …" /
   "ans = …" phrase, even one later on the line of another (the first value of the type after it, on its
   line); finally the last value of the type on the final line of the text (trailing notes and lines of bare
   LaTeX delimiters skipped). The fallback stops at
   the final line on purpose: on real outputs a final line without a value is a refusal or a hedge ("we cannot
   determine the date") or a program, and the last value higher up is then an intermediate result, not an
   answer. Two different values offered as alternatives or as a list ("either 03/04/2019 or 03/05/2019",
   "12 apples and 7 pears", "02/01/2010, 02/02/2010, ..., 02/28/2010") or under different conditions ("If it is a
   leap year, then X. If not, then Y.") are no single answer: None. Values in a premise ("(if today is X)",
   "if today is X, then ...") are not the answer, and of one date written both ways the one labelled UK /
   day-first is dropped. Programs (``is_program``) hold no answer until run, which never happens here.
2. ``canonical_key(answer, answer_type)``: a string such that equal keys mean equal answers: ``18.0``, ``18``,
   ``$18``, ``18.00`` all give ``18``; ``1,000`` gives ``1000``; ``0.5`` and ``1/2`` give ``1/2``; ``5/1/2021``
   gives ``05/01/2021``; ``(B)`` gives ``B``. The whole answer must be one clean value: otherwise None, and the
   sample abstains instead of voting for garbage.
3. ``AnswerClusterer``: assigns each answer of one question to a vote class. LaTeX answers with different keys
   are merged when math-verify finds them equivalent in both directions.

Code found in model output is never executed.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from fractions import Fraction
from typing import NamedTuple

from ._mathverify import latex_equivalent, latex_matches_gold
from .errors import ConfigError
from .types import ANSWER_TYPES

__all__ = [
    "AnswerClusterer",
    "answers_match",
    "canonical_key",
    "extract_answer",
    "is_program",
    "strip_thinking",
]


class _Found(NamedTuple):
    """One value of the answer type found in a piece of text."""

    start: int
    end: int
    value: str


# --- plain text out of LaTeX (for numbers, dates and letters) ------------------------------------------------------

_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_FRAC = re.compile(
    r"\\[dt]?frac\s*(?:\{\s*(-?\d+(?:\.\d+)?)\s*\}|(\d))\s*(?:\{\s*(\d+(?:\.\d+)?)\s*\}|(\d))")
_PLAIN_REPLACEMENTS = (("{,}", ","), ("\\,", ""), ("\\!", ""), ("\\$", "$"), ("\\%", "%"), ("\u2212", "-"))


def _plain(s: str) -> str:
    """``\\text{…}`` unwrapped, numeric ``\\frac{a}{b}`` as ``a/b``, LaTeX thousands separators and escapes undone."""
    if "\\" in s or "{" in s or "\u2212" in s:
        s = _LATEX_TEXT.sub(r"\1", s)
        s = _LATEX_FRAC.sub(lambda m: f"{m[1] or m[2]}/{m[3] or m[4]}", s)
        for old, new in _PLAIN_REPLACEMENTS:
            s = s.replace(old, new)
    return s


# --- values of each type ------------------------------------------------------------------------------------------

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
# A number is not part of a word ("H2O", "Q1"), of a time ("2:00 pm"), of a date ("5/1/2021") or of a longer
# number ("1,00", "1.2.3"). A minus sign counts only when it is glued to the digits ("16 - 7" holds no "-7").
_NUMBER = re.compile(
    r"(?<![\w.,])(?<!\d[:/])(?P<sign>-)?(?:\$\s?)?"
    rf"(?P<num>{_DIGITS}(?:\.\d+)?|\.\d+)(?:[eE](?P<exp>[-+]?\d{{1,3}}))?"
    rf"(?:\s?/\s?(?P<den>{_DIGITS}(?:\.\d+)?))?"
    r"(?![\d/]|[.,:]\d)")
_NUMBER_VALUE = re.compile(
    rf"(?P<sign>[-+]?)(?P<num>{_DIGITS}(?:\.\d+)?|\.\d+)(?:[eE](?P<exp>[-+]?\d{{1,3}}))?"
    rf"(?:/(?P<den>{_DIGITS}(?:\.\d+)?))?")
_LEADING_DOLLAR = re.compile(r"^([-+]?)\s*\$\s*")
_SLASH = re.compile(r"\s*/\s*")


def _month_pattern(name: str) -> str:
    return (rf"(?P<{name}>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
            r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")


_DATE = re.compile(
    r"\b(?P<m1>\d{1,2})/(?P<d1>\d{1,2})/(?P<y1>\d{4})\b(?!/)"                                     # 5/1/2021
    r"|\b(?P<y2>\d{4})-(?P<m2>\d{1,2})-(?P<d2>\d{1,2})\b(?!-)"                                    # 2021-05-01
    rf"|\b{_month_pattern('n3')}\s+(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y3>\d{{4}})\b"        # May 1st, 2021
    rf"|\b(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_month_pattern('n4')},?\s+(?P<y4>\d{{4}})\b",  # 1 May 2021
    re.IGNORECASE)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# "(C)" in any case; "option C"; a bare capital A-J that is not a word: "A" and "I" followed by a lowercase word
# are the article and the pronoun ("A month ago", "I think"); "E.g.", "N/A", "D-Day" hold no letter either.
_CHOICE = re.compile(
    r"(?<![\w(])\((?P<p>[A-Za-z])\)"
    r"|\b(?i:option|choice)\s+(?P<o>[A-Za-z])\b"
    r"|(?<![/\\'\u2019-])\b(?P<b>[B-HJ])\b(?![a-z'\u2019]|-\w|\.[A-Za-z]|/\w)"
    r"|(?<![/\\'\u2019-])\b(?P<a>[AI])\b(?![a-z'\u2019]|-\w|\.[A-Za-z]|/\w|\s+[a-z])")
_CHOICE_VALUE = re.compile(
    r"(?:(?:option|choice)\s*)?(?:\((?P<p>[A-Za-z])\)|\[(?P<s>[A-Za-z])\]|(?P<b>[A-Za-z])(?=[.:)]|$))"
    r"[.:)]?(?:\s+\S.*)?",
    re.IGNORECASE | re.DOTALL)


def _find_numbers(text: str) -> list[_Found]:
    found = []
    for m in _NUMBER.finditer(text):
        value = (m["sign"] or "") + m["num"]
        if m["exp"]:
            value += "e" + m["exp"]
        if m["den"]:
            value += "/" + m["den"]
        found.append(_Found(m.start(), m.end(), value))
    return found


def _find_dates(text: str) -> list[_Found]:
    return [_Found(m.start(), m.end(), m.group(0)) for m in _DATE.finditer(text)]


def _find_choices(text: str) -> list[_Found]:
    return [_Found(m.start(), m.end(), (m["p"] or m["o"] or m["b"] or m["a"]).upper()) for m in _CHOICE.finditer(text)]


_FINDERS = {"number": _find_numbers, "date": _find_dates, "choice": _find_choices}

# What may stand between two different values offered together: "X or Y", "either X or Y", "X (or Y if …)",
# "X in the US format, or Y"; "12 apples and 7 pears", "3 red, 5 green", "between X and Y".
_ALTERNATIVE_GAP = re.compile(
    r"[^.!?;\n]{0,40}?\bor\b[^.!?;\n]{0,20}"
    r"|[ \t]*(?:[A-Za-z]+[ \t]*)?(?:,|&|\band\b|,[ \t]*and\b)[ \t]*",
    re.IGNORECASE)
# "02/29/2024 (or 02/28/2024 in a common year)": an aside after the answer, which stands.
_ASIDE_GAP = re.compile(r"[ \t]*\([ \t]*or[ \t]+", re.IGNORECASE)
# "could be 02/01/2010, 02/02/2010, ..., 02/28/2010": an elided list is no single answer either.
_ELLIPSIS_GAP = re.compile(r"[ \t]*,?[ \t]*(?:\.\.\.|\u2026)[ \t]*,?[ \t]*")
# "(if today is 12/31/1929)", "(assuming the current date is 12/30/2014)": a premise, not the answer.
# So is the condition of "if today is 12/22/2014, then ... 12/12/2014", up to its comma or "then".
_PREMISE = re.compile(r"\(\s*(?:if|assuming|assume|when|given|since|based on)\b[^()\n]*\)"
                      r"|\b(?:if|assuming|suppose)\b[^,.;:()\n]*?(?:,|\bthen\b)", re.IGNORECASE)
# A date labelled day-first ("02/01/1987 in UK format"): our dates are MM/DD/YYYY, so it is not the answer
# when the same text also gives the date month-first ("01/02/1987 in US format").
_DAY_FIRST = re.compile(r"\b(?:U\.?K\.?|British|European|day[- ]first|DD/MM(?:/YYYY)?)(?![\w/])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;](?:\s|$)|\n")


def _day_first(found: list[_Found], index: int, region: str) -> bool:
    """Whether the date ``found[index]`` is labelled day-first: by the words after it (up to the next date or the
    end of the sentence), or, when those say nothing of a format, by the words before it in its sentence."""
    date = found[index]
    right_end = found[index + 1].start if index + 1 < len(found) else len(region)
    after = region[date.end:right_end]
    stop = _SENTENCE_END.search(after)
    after = after[:stop.start()] if stop else after
    if _DAY_FIRST.search(after):
        return True
    if re.search(r"\b(?:US|U\.S\.|American|standard|month[- ]first|MM/DD)", after, re.IGNORECASE):
        return False
    left_start = found[index - 1].end if index > 0 else 0
    before = region[left_start:date.start]
    ends = list(_SENTENCE_END.finditer(before))
    before = before[ends[-1].end():] if ends else before
    return bool(_DAY_FIRST.search(before))


def _drop_premises(found: list[_Found], region: str, answer_type: str) -> list[_Found]:
    """The values that can be the answer: those inside a conditional aside ("(if today is ...)") and, for dates,
    those labelled day-first are dropped, as long as some other value remains."""
    premises = [(m.start(), m.end()) for m in _PREMISE.finditer(region)]
    kept = [f for f in found if not any(start <= f.start < end for start, end in premises)]
    if answer_type == "date" and len(kept) > 1:
        month_first = [f for i, f in enumerate(kept) if not _day_first(kept, i, region)]
        kept = month_first or kept
    return kept or found


_CONDITION = re.compile(r"\bif\b[^,.;:()\n]*?(?:,|\bthen\b)", re.IGNORECASE)


def _conditional_answers(found: list[_Found], region: str, answer_type: str) -> bool:
    """Whether the region gives different answers under different conditions ("If it is a leap year, then X.
    If it is not, then Y."): no single answer."""
    return (len(_CONDITION.findall(region)) >= 2
            and len({canonical_key(f.value, answer_type) for f in found}) >= 2)


def _pick(found: list[_Found], region: str, answer_type: str, *, first: bool) -> str | None:
    """The first (or last) value of ``region``; None when it and its neighbour are different values offered
    together as alternatives or as a list."""
    if not found:
        return None
    chosen = found[0] if first else found[-1]
    if len(found) > 1:
        neighbour = found[1] if first else found[-2]
        left, right = sorted((chosen, neighbour))
        gap = region[left.end:right.start]
        if canonical_key(chosen.value, answer_type) != canonical_key(neighbour.value, answer_type):
            if _ASIDE_GAP.fullmatch(gap):
                return left.value
            if _ALTERNATIVE_GAP.fullmatch(gap) or _ELLIPSIS_GAP.fullmatch(gap):
                return None
    return chosen.value


# --- where the answer is ------------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
# Searched in "\n" + text. The leading lookahead (the first letters of the alternatives) halves the search time.
_ANSWER_PHRASE = re.compile(
    r"(?=[tmofa\n])"
    r"(?:\b(?:the|my|our)\s+(?:final\s+|correct\s+|best\s+)?answer\s+is\b"
    r"|\bfinal\s+answer\b(?:\s+is\b)?"
    r"|\n[ \t>#*_]*(?:answer|a)\b[ \t*_]*:"
    r"|\b(?P<ans>ans)[ \t]*=(?=[ \t]*-?\$?[ \t]?\.?\d))"                 # "ans = 18" closing a GSM8K answer
    r"[ \t*_]*:?[ \t*_]*\s*(?=(?P<span>[^\n]*))",  # a lookahead: a later phrase on the line is found too
    re.IGNORECASE)
# Lines that only a program has. A program-of-thought output holds no answer until it is run (never here): its
# "ans = 0" and its last numbers are not answers.
# Two such lines make a program: keywords, "eggs_per_day = ..." (not "x_1 = 3"), "ans += 1".
_PROGRAM_LINE = re.compile(
    r"^[ \t]*(?:def |import |from [\w.]+ import |return\b|print\(|#[ \t]*[Pp]ython\b"
    r"|[A-Za-z][A-Za-z0-9]+_\w*[A-Za-z]{2}\w*[ \t]*(?:[-+*/%]|//|\*\*)?=(?!=)"
    r"|[A-Za-z_]\w*[ \t]*(?:[-+*/%]|//|\*\*)=)"
    # "ans = today.strftime('%m/%d/%Y')", "today = date(2021, 5, 1)": assigning a method call or a call of two
    # or more arguments
    r"|[A-Za-z_]\w*[ \t]*=[ \t]*(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*\(|[A-Za-z_]\w*[ \t]*=[ \t]*[A-Za-z_]\w*\([^()\n]*,",
    re.MULTILINE)
# "from datetime import date, timedelta", "import math" or "# Python code" on a line of its own: no prose
# looks like that.
_IMPORT_LINE = re.compile(r"^[ \t]*(?:#[ \t]*python code\b.*|from[ \t]+[\w.]+[ \t]+import[ \t]+[\w., *()]+"
                          r"|import[ \t]+[\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+)*)[ \t]*$",
                          re.MULTILINE | re.IGNORECASE)
# "ans = coins - 55": an assignment computing from variables is code, and its numbers are operands.
_CODE_ASSIGNMENT = re.compile(
    r"^\s*[A-Za-z_]\w*\s*=(?!=)[^=\n]*?(?:\b[a-z_][a-z0-9_]+\s*[-+*/%]|[-+*/%]\s*[a-z_][a-z0-9_]+\b)")
_ALNUM = re.compile(r"[^\W_]")
_SKIPPED_LINE = re.compile(r"^[\s*_(>#-]*(?:note|n\.b\.|p\.s\.)\b|^\s*\\(?:begin|end)\{[^{}]*\}\s*$", re.IGNORECASE)


def strip_thinking(text: str) -> str:
    """Drop ``<think>…</think>`` reasoning. An unclosed ``<think>`` means the answer never came: it and all that
    follows it are dropped (usually nothing is left)."""
    lowered = text.lower()
    close = lowered.rfind("</think>")
    if close >= 0:
        text, lowered = text[close + len("</think>"):], lowered[close + len("</think>"):]
    opened = lowered.find("<think>")
    if opened >= 0:
        text = text[:opened]
    return text


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces (``\\boxed 5`` too)."""
    matches = list(_BOXED.finditer(text))
    for match in reversed(matches):
        start = match.end()
        if start < len(text) and text[start] == "{":
            depth = 0
            for i in range(start, len(text)):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[start + 1:i].strip()
            continue  # unbalanced (a truncated output): try an earlier box
        token = re.match(r"[^\s$]+", text[start:])
        if token:
            return token.group(0)
    return None


def is_program(text: str) -> bool:
    """Whether ``text`` is a program (two program-only lines): its numbers are operands, its answer is what it
    would print, and code is never run here."""
    if _IMPORT_LINE.search(text):
        return True
    found = _PROGRAM_LINE.finditer(text)
    return next(found, None) is not None and next(found, None) is not None


def _answer_span(text: str, *, program: bool = False) -> str | None:
    """The rest of the line after the last answer phrase ("the answer is ...", "Answer: ...", "A: ...", "ans = 18";
    in a program, only the phrases in words)."""
    found = _ANSWER_PHRASE.finditer("\n" + text)
    spans = [m.group("span").strip() for m in found if not (program and m.group("ans"))]
    spans = [s for s in spans if s]
    return spans[-1] if spans else None


def _final_line(text: str) -> str:
    """The last line with a letter or digit in it, trailing notes ("Note: ...") and ``\\end{...}`` lines skipped."""
    for line in reversed(text.splitlines()):
        if _ALNUM.search(line) and not _SKIPPED_LINE.match(line):
            return line
    return ""


def _clean_span(span: str) -> str:
    # the sentence's full stop first, so that bold markers before it come off too ("**Xavier**." is Xavier)
    span = span.strip().rstrip(".").strip().strip("*").strip()
    if span.startswith("$") and span.count("$") >= 2:
        span = span[1:span.index("$", 1)] if not span.startswith("$$") else span[2:].split("$$", 1)[0]
    elif span.startswith("\\(") and "\\)" in span:
        span = span[2:span.index("\\)")]
    elif span.startswith("\\[") and "\\]" in span:
        span = span[2:span.index("\\]")]
    return span.strip().rstrip(".").strip()


def _check_type(answer_type: str) -> None:
    if answer_type not in ANSWER_TYPES:
        raise ConfigError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")


def extract_answer(text: str | None, answer_type: str) -> str | None:
    """The final answer in ``text``, as a string of the given type, or None when there is none.

    >>> extract_answer("so she makes 9 * 2 = $18 per day. The answer is 18.", "number")
    '18'
    >>> extract_answer("<think>maybe 3</think> Thus $\\\\boxed{\\\\frac{1}{2}}$.", "latex")
    '\\\\frac{1}{2}'
    >>> extract_answer("So she has 12 apples and 7 pears.", "number") is None
    True
    """
    _check_type(answer_type)
    if not text:
        return None
    text = strip_thinking(text)
    if not text.strip():
        return None
    boxed = _last_boxed(text)
    program = is_program(text)
    span = _answer_span(text, program=program)
    if answer_type == "text":
        candidate = boxed if boxed else span
        return (_clean_span(candidate) or None) if candidate else None
    if answer_type == "latex":
        if boxed:
            return boxed
        if span and _clean_span(span):
            return _clean_span(span)
        line = _final_line(text)
        line = "" if program or _CODE_ASSIGNMENT.match(line) else _plain(line)
        return _pick(_find_numbers(line), line, "number", first=False)
    find = _FINDERS[answer_type]
    for candidate in (boxed, span):
        if candidate:
            region = _plain(candidate)
            found = _drop_premises(find(region), region, answer_type)
            if found:
                if _conditional_answers(found, region, answer_type):
                    return None
                return _pick(found, region, answer_type, first=True)
    line = _final_line(text)
    if program or _CODE_ASSIGNMENT.match(line):
        return None
    line = _plain(line)
    found = _drop_premises(find(line), line, answer_type)
    if _conditional_answers(found, line, answer_type):
        return None
    if answer_type == "choice" and len({f.value for f in found}) > 1:
        return None  # "C is right, not B": with no answer phrase, two letters on the last line are no answer
    return _pick(found, line, answer_type, first=False)


# --- canonical keys -----------------------------------------------------------------------------------------------

def _number_key(answer: str) -> str | None:
    """The exact value as a reduced fraction string (``18``, ``1/2``, ``-3``) when the whole answer is a number."""
    s = _plain(answer).strip().rstrip(".").strip()
    s = _LEADING_DOLLAR.sub(r"\1", s)
    if s.endswith("%"):
        s = s[:-1].rstrip()
    m = _NUMBER_VALUE.fullmatch(_SLASH.sub("/", s))
    if not m:
        return None
    value = Fraction(m["num"].replace(",", ""))
    if m["exp"]:
        value *= Fraction(10) ** int(m["exp"])
    if m["den"] is not None:
        denominator = Fraction(m["den"].replace(",", ""))
        if denominator == 0:
            return None
        value /= denominator
    return str(-value if m["sign"] == "-" else value)


def _date_parts(m: re.Match[str]) -> tuple[int, int, int]:
    """(year, month, day) of a ``_DATE`` match."""
    if m["y1"]:
        return int(m["y1"]), int(m["m1"]), int(m["d1"])
    if m["y2"]:
        return int(m["y2"]), int(m["m2"]), int(m["d2"])
    name, day, year = (m["n3"], m["d3"], m["y3"]) if m["y3"] else (m["n4"], m["d4"], m["y4"])
    return int(year), _MONTHS.index(name.lower()[:3]) + 1, int(day)


def _date_key(answer: str) -> str | None:
    """``MM/DD/YYYY`` when the whole answer is one real calendar date (numeric, ISO, or with a month name)."""
    m = _DATE.fullmatch(answer.strip().rstrip(".").strip())
    if not m:
        return None
    year, month, day = _date_parts(m)
    try:
        datetime.date(year, month, day)
    except ValueError:  # 02/29/2017, 12/32/1929: not a date
        return None
    return f"{month:02d}/{day:02d}/{year:04d}"


def _choice_key(answer: str) -> str | None:
    """The letter, when the whole answer is one: ``B``, ``(B)``, ``B.``, ``B) text``, ``option B``."""
    m = _CHOICE_VALUE.fullmatch(_plain(answer).strip().strip("*").strip())
    if not m:
        return None
    return (m["p"] or m["s"] or m["b"]).upper()


_TEXT_STRIP = re.compile(r"[^\w\s/.-]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_BRACKETS_ONLY = re.compile(r"[\s()\[\]{}<>]+")


def _text_key(answer: str) -> str | None:
    s = unicodedata.normalize("NFKC", answer).strip()
    if _BRACKETS_ONLY.fullmatch(s):  # BIG-Bench Hard dyck_languages: "] ) }" is the answer, not punctuation
        return " ".join(s.replace(" ", ""))
    s = _plain(s).lower()
    s = _TEXT_STRIP.sub(" ", s)
    s = _ARTICLES.sub(" ", s)
    s = " ".join(s.split()).strip(" .")
    return s or None


_LATEX_NOISE = [
    (re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\displaystyle(?![A-Za-z])|\\[!,;: ]"), ""),
    (re.compile(r"\\[dt]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°"), ""),
    (re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\%"), "%"),
    (re.compile("\u2212"), "-"),
]
_LATEX_UNIT = re.compile(r"(-?(?:[\d.,]|\{,\})+)\s*\\(?:text|textrm|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z ]*\}\s*\.?")
_COMMAND_SPACE = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])")  # "\pi r": the space ends the command name
_WHITESPACE = re.compile(r"\s+")
_LATEX_NUMBER = re.compile(r"[-+]?[\d.,]+%?")
_LATEX_FRACTION = re.compile(r"(-?)\\frac(?:\{(\d+)\}|(\d))(?:\{(\d+)\}|(\d))")


def _latex_key(answer: str) -> str | None:
    s = answer.strip()
    unit = _LATEX_UNIT.fullmatch(s)  # "5 \text{ cm}", "18\text{ dollars}": the number is the answer
    if unit:
        s = unit[1]
    for pattern, replacement in _LATEX_NOISE:
        s = pattern.sub(replacement, s)
    s = _WHITESPACE.sub("", _COMMAND_SPACE.sub(lambda m: m[1] + "\0", s)).replace("\0", " ")
    s = s.rstrip(".")
    if not s:
        return None
    number = None
    if _LATEX_NUMBER.fullmatch(s):
        number = _number_key(s)
    elif m := _LATEX_FRACTION.fullmatch(s):
        number = _number_key(f"{m[1]}{m[2] or m[3]}/{m[4] or m[5]}")
    return number if number is not None else s


_KEYS = {"number": _number_key, "date": _date_key, "choice": _choice_key, "text": _text_key, "latex": _latex_key}


def canonical_key(answer: str | None, answer_type: str) -> str | None:
    """A string equal for equal answers of this type, or None when the answer is not a usable value."""
    _check_type(answer_type)
    if answer is None:
        return None
    return _KEYS[answer_type](answer)


def answers_match(prediction: str | None, gold: str | None, answer_type: str) -> bool:
    """Whether a predicted answer equals the gold answer (math-verify, gold first, for ``latex``)."""
    if prediction is None or gold is None:
        return False
    pred_key = canonical_key(prediction, answer_type)
    gold_key = canonical_key(gold, answer_type)
    if pred_key is None:
        return False
    if pred_key == gold_key:
        return True
    if answer_type == "latex":
        return latex_matches_gold(gold, prediction)
    return False


class AnswerClusterer:
    """Assigns the answers of one question to vote classes ``0, 1, 2, ...`` in order of first appearance."""

    __slots__ = ("answer_type", "verbatim_unparsed", "_by_key", "_representatives", "_keys")

    def __init__(self, answer_type: str, *, verbatim_unparsed: bool = False) -> None:
        """``verbatim_unparsed=True`` lets an answer that is not a clean value vote as its literal text instead
        of abstaining: only to reproduce upstream evaluations that compared strings that way."""
        _check_type(answer_type)
        self.answer_type = answer_type
        self.verbatim_unparsed = verbatim_unparsed
        self._by_key: dict[str, int] = {}
        self._representatives: list[str] = []
        self._keys: list[str] = []

    def assign(self, answer: str | None) -> int | None:
        """The class of ``answer``, creating one if it is new; None for an abstention."""
        if answer is None:
            return None
        key = canonical_key(answer, self.answer_type)
        if key is None:
            if not (self.verbatim_unparsed and answer.strip()):
                return None
            key = "\0verbatim:" + answer.strip()
        found = self._by_key.get(key)
        if found is not None:
            return found
        if self.answer_type == "latex" and not key.startswith("\0"):
            for index, other in enumerate(self._keys):
                if not other.startswith("\0") and latex_equivalent(other, key):
                    self._by_key[key] = index
                    return index
        index = len(self._representatives)
        self._by_key[key] = index
        self._representatives.append(answer.strip())
        self._keys.append(key)
        return index

    def representative(self, cls: int) -> str:
        """The first answer text that founded the class."""
        return self._representatives[cls]

    def key(self, cls: int) -> str:
        return self._keys[cls]

    def __len__(self) -> int:
        return len(self._representatives)
