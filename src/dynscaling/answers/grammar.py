"""The grammar of answer values shared by extraction and keys: plain text out of LaTeX, and what a number, a
date and a choice letter look like."""

from __future__ import annotations

import re

from ..errors import ConfigError
from ..types import ANSWER_TYPES

# --- plain text out of LaTeX (for numbers, dates and letters) ------------------------------------------------------

_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_LATEX_FRAC = re.compile(
    r"\\[dt]?frac\s*(?:\{\s*(-?\d+(?:\.\d+)?)\s*\}|(\d))\s*(?:\{\s*(\d+(?:\.\d+)?)\s*\}|(\d))")
_PLAIN_REPLACEMENTS = (("{,}", ","), ("\\,", ""), ("\\!", ""), ("\\$", "$"), ("\\%", "%"), ("\u2212", "-"))


def plain(s: str) -> str:
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
NUMBER = re.compile(
    r"(?<![\w.,])(?<!\d[:/])(?P<sign>-)?(?:\$\s?)?"
    rf"(?P<num>{_DIGITS}(?:\.\d+)?|\.\d+)(?:[eE](?P<exp>[-+]?\d{{1,3}}))?"
    rf"(?:\s?/\s?(?P<den>{_DIGITS}(?:\.\d+)?))?"
    r"(?![\d/]|[.,:]\d)")
NUMBER_VALUE = re.compile(
    rf"(?P<sign>[-+]?)(?P<num>{_DIGITS}(?:\.\d+)?|\.\d+)(?:[eE](?P<exp>[-+]?\d{{1,3}}))?"
    rf"(?:/(?P<den>{_DIGITS}(?:\.\d+)?))?")
LEADING_DOLLAR = re.compile(r"^([-+]?)\s*\$\s*")
SLASH = re.compile(r"\s*/\s*")


def _month_pattern(name: str) -> str:
    return (rf"(?P<{name}>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
            r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")


DATE = re.compile(
    r"\b(?P<m1>\d{1,2})/(?P<d1>\d{1,2})/(?P<y1>\d{4})\b(?!/)"                                     # 5/1/2021
    r"|\b(?P<y2>\d{4})-(?P<m2>\d{1,2})-(?P<d2>\d{1,2})\b(?!-)"                                    # 2021-05-01
    rf"|\b{_month_pattern('n3')}\s+(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y3>\d{{4}})\b"        # May 1st, 2021
    rf"|\b(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_month_pattern('n4')},?\s+(?P<y4>\d{{4}})\b",  # 1 May 2021
    re.IGNORECASE)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# "(C)" in any case; "option C"; a bare capital A-J that is not a word: "A" and "I" followed by a lowercase word
# are the article and the pronoun ("A month ago", "I think"); "E.g.", "N/A", "D-Day" hold no letter either.
CHOICE = re.compile(
    r"(?<![\w(])\((?P<p>[A-Za-z])\)"
    r"|\b(?i:option|choice)\s+(?P<o>[A-Za-z])\b"
    r"|(?<![/\\'\u2019-])\b(?P<b>[B-HJ])\b(?![a-z'\u2019]|-\w|\.[A-Za-z]|/\w)"
    r"|(?<![/\\'\u2019-])\b(?P<a>[AI])\b(?![a-z'\u2019]|-\w|\.[A-Za-z]|/\w|\s+[a-z])")
CHOICE_VALUE = re.compile(
    r"(?:(?:option|choice)\s*)?(?:\((?P<p>[A-Za-z])\)|\[(?P<s>[A-Za-z])\]|(?P<b>[A-Za-z])(?=[.:)]|$))"
    r"[.:)]?(?:\s+\S.*)?",
    re.IGNORECASE | re.DOTALL)


def check_type(answer_type: str) -> None:
    """Refuse an answer type this package does not know, naming the ones it does."""
    if answer_type not in ANSWER_TYPES:
        raise ConfigError(f"unknown answer type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")


