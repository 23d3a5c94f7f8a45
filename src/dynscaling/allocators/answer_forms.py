"""Questions whose leading answer has an unusual form for the batch, so that the batch prior may differ for them.

An answer's form says something about it before any second sample does. On GSM8K the gold answer is a whole
number, and a model's fraction or negative answer is usually a slip: on our recorded pools a sample agrees with
its question's whole-pool plurality 98% of the time when its answer is a whole number and 31% (fractions) or 49%
(negatives) when not (GPT-4); 52% against 18% and 20% (LLaMA-2 PoT); on MATH, 95% for whole numbers against 83%
for forms other than fractions (Qwen2.5-Math). On the two GSM8K pools an answer's form carries more of that than
its length does. No direction is assumed, and no answer type is special-cased: the form is the answer's canonical
key with every run of digits written ``9`` and every word ``a`` (``18`` and ``42`` are ``9``, ``3/4`` and
``\\frac{3}{4}`` are ``9/9``, ``-2`` is ``-9``, a date ``9/9/9``, ``2\\sqrt{3}`` keeps its command:
``9\\sqrt{9}``), and a question is unusual when its leader's form is not the form most of the batch's leaders
have. The allocator (``bayes``) fits the prior of the unusual ones apart, shrunk toward the whole batch's, and
keeps it only where their tallies say they differ. Where every leader has the same form (dates), or all but a
handful do, there is no such group.

Leaders are tracked as they change (the allocator calls ``see`` when it finds a question's leader moved), so the
batch's usual form comes from running counts, not from a pass over the batch at every refit. A batch whose
answers all have one form when every question first could have one (``scan``) is not tracked at all: its
allocation costs nothing more than without forms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..answers import AnswerClusterer

__all__ = ["AnswerForms", "answer_form"]

#: fewer questions than this with an unusual leader: no group of their own (too few to fit a prior to)
_MIN_UNUSUAL = 8

_DIGITS = re.compile(r"\d+")
_WORDS = re.compile(r"(?<![\\A-Za-z])[A-Za-z]+")


def answer_form(key: str) -> str:
    """An answer's form: its canonical key with digit runs as ``9`` and words (not LaTeX commands) as ``a``."""
    return _WORDS.sub("a", _DIGITS.sub("9", key))


class AnswerForms:
    """The form of each question's leader, and how many of the batch's leaders have each form, kept as leaders
    change (``see``), so that choosing the batch's usual form costs nothing per question."""

    def __init__(self, clusterers: Sequence[AnswerClusterer] | None, questions: int) -> None:
        #: each question's class keys (the clusterers' live lists); None: no answer classes, nothing to track
        self._keys = [clusterer.keys for clusterer in clusterers] if clusterers is not None else None
        self.leaders: list[int | None] | None = [None] * questions if clusterers is not None else None
        self._leader_forms: list[str | None] = [None] * questions
        self._counts: dict[str, int] = {}
        self._known: dict[str, str] = {}  # key -> form: many questions share their answers' keys

    def see(self, qi: int, leader: int | None) -> None:
        """Question ``qi``'s leader is now ``leader`` (a class of its clusterer, or None)."""
        counts = self._counts
        old = self._leader_forms[qi]
        if old is not None:
            counts[old] -= 1
        form = None
        keys = self._keys[qi]  # type: ignore[index]
        # a source that numbers classes itself (``Engine.run_sync``) may leave the clusterer without them: no form
        if leader is not None and leader < len(keys):
            key = keys[leader]
            form = self._known.get(key)
            if form is None:
                form = self._known[key] = answer_form(key)
            counts[form] = counts.get(form, 0) + 1
        self._leader_forms[qi] = form
        self.leaders[qi] = leader  # type: ignore[index]

    def scan(self, leaders: Sequence[int | None]) -> bool:
        """See every question's leader at once (``leaders[qi]``); whether any two of them differ in form. Where
        none do, nothing is kept (there is nothing to track)."""
        keys_of = self._keys
        known = self._known
        forms: list[str | None] = []
        for keys, leader in zip(keys_of, leaders, strict=True):  # type: ignore[arg-type]
            if leader is None or leader >= len(keys):  # no vote, or a class the clusterer never made
                forms.append(None)
                continue
            key = keys[leader]
            form = known.get(key)
            if form is None:
                form = known[key] = answer_form(key)
            forms.append(form)
        counts: dict[str, int] = {}
        for form in forms:
            if form is not None:
                counts[form] = counts.get(form, 0) + 1
        if len(counts) < 2:
            return False
        self._counts = counts
        self._leader_forms = forms
        self.leaders = list(leaders)
        return True

    def choose_usual(self) -> str | None:
        """The form most leaders have, or None where all but fewer than a handful have it (or nothing is
        tracked)."""
        counts = self._counts
        if not counts:
            return None
        usual = max(counts, key=counts.__getitem__)  # the first seen among equals: deterministic
        return usual if sum(counts.values()) - counts[usual] >= _MIN_UNUSUAL else None

    def unusual(self, qi: int, usual: str | None) -> bool:
        """Whether question ``qi``'s leader has a form other than ``usual`` (never, where ``usual`` is None)."""
        form = self._leader_forms[qi]
        return usual is not None and form is not None and form != usual
