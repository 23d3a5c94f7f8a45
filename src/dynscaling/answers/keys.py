"""Canonical keys: equal keys mean equal answers of a type (``canonical_key``), and grading (``answers_match``)."""

from __future__ import annotations

import datetime
import re
import unicodedata
from fractions import Fraction

from .._mathverify import latex_matches_gold
from .grammar import CHOICE_VALUE, DATE, LEADING_DOLLAR, MONTHS, NUMBER_VALUE, SLASH, check_type, plain

__all__ = ["answers_match", "canonical_key"]


def _number_key(answer: str) -> str | None:
    """The exact value as a reduced fraction string (``18``, ``1/2``, ``-3``) when the whole answer is a number."""
    s = plain(answer).strip().rstrip(".").strip()
    s = LEADING_DOLLAR.sub(r"\1", s)
    if s.endswith("%"):
        s = s[:-1].rstrip()
    m = NUMBER_VALUE.fullmatch(SLASH.sub("/", s))
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
    """(year, month, day) of a ``DATE`` match."""
    if m["y1"]:
        return int(m["y1"]), int(m["m1"]), int(m["d1"])
    if m["y2"]:
        return int(m["y2"]), int(m["m2"]), int(m["d2"])
    name, day, year = (m["n3"], m["d3"], m["y3"]) if m["y3"] else (m["n4"], m["d4"], m["y4"])
    return int(year), MONTHS.index(name.lower()[:3]) + 1, int(day)


def _date_key(answer: str) -> str | None:
    """``MM/DD/YYYY`` when the whole answer is one real calendar date (numeric, ISO, or with a month name)."""
    m = DATE.fullmatch(answer.strip().rstrip(".").strip())
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
    m = CHOICE_VALUE.fullmatch(plain(answer).strip().strip("*").strip())
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
    s = plain(s).lower()
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
    check_type(answer_type)
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
