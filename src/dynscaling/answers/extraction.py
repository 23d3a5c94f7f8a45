"""Finding the final answer in a model's output (``extract_answer``; see the package docstring for the rules)."""

from __future__ import annotations

import re
from typing import NamedTuple

from .grammar import CHOICE, DATE, NUMBER, check_type, plain
from .keys import canonical_key

__all__ = ["extract_answer", "is_program", "strip_thinking"]


class _Found(NamedTuple):
    """One value of the answer type found in a piece of text."""

    start: int
    end: int
    value: str


def _find_numbers(text: str) -> list[_Found]:
    found = []
    for m in NUMBER.finditer(text):
        value = (m["sign"] or "") + m["num"]
        if m["exp"]:
            value += "e" + m["exp"]
        if m["den"]:
            value += "/" + m["den"]
        found.append(_Found(m.start(), m.end(), value))
    return found


def _find_dates(text: str) -> list[_Found]:
    return [_Found(m.start(), m.end(), m.group(0)) for m in DATE.finditer(text)]


def _find_choices(text: str) -> list[_Found]:
    return [_Found(m.start(), m.end(), (m["p"] or m["o"] or m["b"] or m["a"]).upper()) for m in CHOICE.finditer(text)]


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


def extract_answer(text: str | None, answer_type: str) -> str | None:
    """The final answer in ``text``, as a string of the given type, or None when there is none.

    >>> extract_answer("so she makes 9 * 2 = $18 per day. The answer is 18.", "number")
    '18'
    >>> extract_answer("<think>maybe 3</think> Thus $\\\\boxed{\\\\frac{1}{2}}$.", "latex")
    '\\\\frac{1}{2}'
    >>> extract_answer("So she has 12 apples and 7 pears.", "number") is None
    True
    """
    check_type(answer_type)
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
        line = "" if program or _CODE_ASSIGNMENT.match(line) else plain(line)
        return _pick(_find_numbers(line), line, "number", first=False)
    find = _FINDERS[answer_type]
    for candidate in (boxed, span):
        if candidate:
            region = plain(candidate)
            found = _drop_premises(find(region), region, answer_type)
            if found:
                if _conditional_answers(found, region, answer_type):
                    return None
                return _pick(found, region, answer_type, first=True)
    line = _final_line(text)
    if program or _CODE_ASSIGNMENT.match(line):
        return None
    line = plain(line)
    found = _drop_premises(find(line), line, answer_type)
    if _conditional_answers(found, line, answer_type):
        return None
    if answer_type == "choice" and len({f.value for f in found}) > 1:
        return None  # "C is right, not B": with no answer phrase, two letters on the last line are no answer
    return _pick(found, line, answer_type, first=False)
