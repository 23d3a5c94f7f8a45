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

The batch's usual form comes from a count of every leader's form at each refit (a few lookups a question); a
batch whose leaders all have one form at the first refit, when every question could have an answer, is not
looked at again, so the form groups cost a batch of dates nothing per sample.
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
    """The forms of the questions' leaders: all of them at a refit (``scan``), and one leader as it stands
    (``unusual``)."""

    def __init__(self, clusterers: Sequence[AnswerClusterer] | None, questions: int) -> None:
        #: each question's class keys (the clusterers' live lists); None: no answer classes, no forms
        self._keys = [clusterer.keys for clusterer in clusterers] if clusterers is not None else None
        self._counts: dict[str, int] = {}
        self._known: dict[str, str] = {}  # key -> form: many questions share their answers' keys
        #: None: the leaders' forms are to be read at the first refit; True: at every refit, since the first found
        #: more than one; False: never (no answer classes, or one form at the first refit). Kept by the allocator.
        self.scans: bool | None = None if clusterers is not None else False
        #: the usual form of the models in use; None: no group of unusual forms. Kept by the allocator.
        self.usual: str | None = None

    def form(self, qi: int, cls: int | None) -> str | None:
        """The form of question ``qi``'s class ``cls``; None for no class, or one the clusterer never made (a
        source that numbers classes itself, ``Engine.run_sync``, may leave the clusterer without them)."""
        keys = self._keys[qi] if self._keys is not None else ()
        if cls is None or cls >= len(keys):
            return None
        key = keys[cls]
        form = self._known.get(key)
        if form is None:
            form = self._known[key] = answer_form(key)
        return form

    def scan(self, leaders: Sequence[int | None]) -> bool:
        """Count the forms of every question's leader (``leaders[qi]``); whether more than one form is among them."""
        counts: dict[str, int] = {}
        self._counts = counts
        if self._keys is None:
            return False
        known = self._known
        for keys, leader in zip(self._keys, leaders, strict=True):  # once per refit: kept to a few lookups a question
            if leader is None or leader >= len(keys):
                continue
            key = keys[leader]
            form = known.get(key)
            if form is None:
                form = known[key] = answer_form(key)
            counts[form] = counts.get(form, 0) + 1
        return len(counts) > 1

    def choose_usual(self) -> str | None:
        """The form most leaders had at the last ``scan`` (the first in sort order among equals), or None where all
        but fewer than a handful had it."""
        counts = self._counts
        if not counts:
            return None
        usual = min(counts, key=lambda form: (-counts[form], form))
        return usual if sum(counts.values()) - counts[usual] >= _MIN_UNUSUAL else None

    def unusual(self, qi: int, leader: int | None, usual: str | None) -> bool:
        """Whether ``leader``, question ``qi``'s leader, has a form other than ``usual`` (never, where ``usual`` is
        None)."""
        if usual is None:
            return False
        form = self.form(qi, leader)
        return form is not None and form != usual
