"""Answer extraction from raw model text, and equivalence between answers.

Three steps, kept apart so each can be tested on real cases:

1. ``extract_answer(text, answer_type)``: find the final answer in a model's output. Reasoning inside
   ``<think>…</think>`` is dropped first. Then, in order: the last balanced ``\\boxed{…}``; the last "the answer
   is …" / "Final answer: …" / "Answer: …" / "A: …" phrase; finally the last value of the type anywhere in the text.
2. ``canonical_key(answer, answer_type)``: a string such that equal keys mean equal answers: ``18.0``, ``18``,
   ``$18``, ``18.00`` all give ``18``; ``1,000`` gives ``1000``; ``0.5`` and ``1/2`` give ``1/2``; ``5/1/2021``
   gives ``05/01/2021``. None means "no usable answer": the sample abstains instead of voting for garbage.
3. ``AnswerClusterer``: assigns each answer of one question to a vote class. LaTeX answers with different keys
   are merged when math-verify finds them equivalent in both directions.

Code found in model output is never executed.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

from ._mathverify import latex_equivalent, latex_matches_gold
from .errors import ConfigError
from .types import ANSWER_TYPES

__all__ = [
    "AnswerClusterer",
    "answers_match",
    "canonical_key",
    "extract_answer",
    "strip_thinking",
]

_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?|-?\$?\.\d+")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
_MONTH_DATE = re.compile(
    r"\b(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b",
    re.IGNORECASE)
_CHOICE = re.compile(r"\(([A-J])\)|\b([A-J])\b(?![a-z'])")
_ANSWER_PHRASE = re.compile(
    r"(?:the\s+(?:final\s+|correct\s+)?answer\s+is|final\s+answer\s*(?:is)?\s*:?|"
    r"(?:^|\n)\s*(?:answer|a)\s*:|\bans\s*=)\s*:?\s*(?P<span>[^\n]*)",
    re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_TEXT_STRIP = re.compile(r"[^\w\s/.-]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def strip_thinking(text: str) -> str:
    """Drop ``<think>…</think>`` reasoning. An unclosed ``<think>`` means the answer never came: nothing is left."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return text.split("<think>", 1)[0]
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
            continue  # unbalanced: try an earlier box
        token = re.match(r"[^\s$]+", text[start:])
        if token:
            return token.group(0)
    return None


def _answer_span(text: str) -> str | None:
    """The text after the last answer phrase ("the answer is ...", "Answer: ...", "A: ...")."""
    spans = [m.group("span").strip() for m in _ANSWER_PHRASE.finditer(text)]
    spans = [s for s in spans if s]
    return spans[-1] if spans else None


def _find_number(text: str, last: bool) -> str | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    return (found[-1] if last else found[0]).strip()


def _find_date(text: str, last: bool) -> str | None:
    found: list[tuple[int, str]] = []
    for m in _NUMERIC_DATE.finditer(text):
        found.append((m.start(), m.group(0)))
    for m in _MONTH_DATE.finditer(text):
        found.append((m.start(), m.group(0)))
    if not found:
        return None
    found.sort()
    return found[-1][1] if last else found[0][1]


def _find_choice(text: str, last: bool) -> str | None:
    found = [a or b for a, b in _CHOICE.findall(text)]
    if not found:
        return None
    return found[-1] if last else found[0]


def _clean_span(span: str) -> str:
    span = span.strip().strip("*").strip()
    if span.startswith("$") and span.count("$") >= 2:
        span = span[1:span.index("$", 1)]
    elif span.startswith("\\(") and "\\)" in span:
        span = span[2:span.index("\\)")]
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
    """
    _check_type(answer_type)
    if not text:
        return None
    text = strip_thinking(text)
    if not text.strip():
        return None
    finders = {"number": _find_number, "date": _find_date, "choice": _find_choice}
    boxed = _last_boxed(text)
    span = _answer_span(text)
    if answer_type == "latex":
        if boxed:
            return boxed
        if span:
            cleaned = _clean_span(span)
            return cleaned or None
        return _find_number(text, last=True)
    if answer_type == "text":
        candidate = boxed if boxed is not None else span
        if candidate is None:
            return None
        cleaned = _clean_span(candidate)
        return cleaned or None
    find = finders[answer_type]
    for candidate in (boxed, span):
        if candidate:
            found = find(_strip_latex_text(candidate), last=False)
            if found:
                return found
    return find(text, last=True)


def _strip_latex_text(s: str) -> str:
    return re.sub(r"\\text\{([^{}]*)\}", r"\1", s)


def _number_key(answer: str) -> str | None:
    """The exact value as a reduced fraction string (``18``, ``1/2``, ``-3``) when the whole answer is a number."""
    s = answer.strip().replace("$", "").replace("\\", "").replace(" ", "")
    s = s.replace(",", "").rstrip(".").rstrip("%")
    m = re.fullmatch(r"(-?)(\d+(?:\.\d+)?|\.\d+)(?:/(\d+(?:\.\d+)?))?", s)
    if not m:
        return None
    value = Fraction(m.group(2))
    if m.group(3) is not None:
        denominator = Fraction(m.group(3))
        if denominator == 0:
            return None
        value /= denominator
    return str(-value if m.group(1) else value)


def _date_key(answer: str) -> str | None:
    """``MM/DD/YYYY`` when the whole answer is one date (numeric or with a month name)."""
    s = answer.strip().rstrip(".").strip()
    m = _NUMERIC_DATE.fullmatch(s)
    if m:
        month, day, year = int(m.group(1)), int(m.group(2)), m.group(3)
    else:
        m = _MONTH_DATE.fullmatch(s)
        if not m:
            return None
        prefix = m.group(1).lower()[:3]
        month = next(v for k, v in _MONTHS.items() if k.startswith(prefix))
        day, year = int(m.group(2)), m.group(3)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{month:02d}/{day:02d}/{year}"


def _choice_key(answer: str) -> str | None:
    s = _strip_latex_text(answer).strip()
    m = re.fullmatch(r"\(?([A-Ja-j])\)?[.:)]?(?:\s.*)?", s, flags=re.DOTALL)
    if m:
        return m.group(1).upper()
    found = _find_choice(s, last=False)
    return found.upper() if found else None


def _text_key(answer: str) -> str | None:
    s = unicodedata.normalize("NFKC", answer).lower()
    s = _strip_latex_text(s)
    s = _TEXT_STRIP.sub(" ", s)
    s = _ARTICLES.sub(" ", s)
    s = " ".join(s.split()).strip(" .")
    return s or None


_LATEX_NOISE = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\s"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?|°"), ""),
    (re.compile(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\\$|\$"), ""),
]


def _latex_key(answer: str) -> str | None:
    s = answer.strip()
    for pattern, replacement in _LATEX_NOISE:
        s = pattern.sub(replacement, s)
    s = s.rstrip(".")
    if not s:
        return None
    number = _number_key(s) if re.fullmatch(r"-?[\d.,]+%?", s) else None
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
        if self.answer_type == "latex":
            for index, other in enumerate(self._keys):
                if latex_equivalent(other, key):
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
