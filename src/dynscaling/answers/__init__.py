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

from .clustering import AnswerClusterer
from .extraction import extract_answer, is_program, strip_thinking
from .keys import answers_match, canonical_key

__all__ = [
    "AnswerClusterer",
    "answers_match",
    "canonical_key",
    "extract_answer",
    "is_program",
    "strip_thinking",
]
