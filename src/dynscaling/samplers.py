"""Samplers: how one more sample of a question is asked for (the messages sent to the model).

- ``ParallelSampler``: the question alone; samples are independent.
- ``IntegratedSampler``: DynScaling's integrated parallel-sequential sampling. The first ``k0`` samples are
  independent; every later one sees a *synthetic chain*: ``m`` of the question's earlier answers, preferring
  different final answers, in random order, shown as the model's own previous attempts in a multi-turn history,
  then a request for a fresh, complete solution. The chain is cut to a token limit by dropping the longest
  attempts first.
- ``SequentialSampler``: sequential revision; each sample sees only the previous one.

All wording lives in ``Prompts``, a frozen dataclass a user can replace field by field.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .errors import ConfigError
from .types import Question

__all__ = [
    "Attempt",
    "IntegratedSampler",
    "Message",
    "ParallelSampler",
    "Prompts",
    "Sampler",
    "SequentialSampler",
    "estimate_tokens",
]

Message = dict[str, str]

_FORMAT_HINTS = {
    "latex": "Reason step by step, and put your final answer within \\boxed{}.",
    "number": "Reason step by step, and end with a line 'The answer is N.' where N is a number.",
    "date": "Reason step by step, and end with a line 'The answer is MM/DD/YYYY.'",
    "choice": "Reason step by step, and end with a line 'The answer is (X).' where X is the letter of your choice.",
    "text": "Reason step by step, and end with a line 'The answer is ...' giving your final answer.",
}


_QUESTION_PLACEHOLDERS = ("question", "format_hint")


def _template_problem(template: str, allowed: Sequence[str]) -> str | None:
    """What is wrong with a ``str.format`` template (a lone brace, an unknown or positional placeholder), or None."""
    import string

    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:  # "Single '{' encountered in format string", "expected '}' before end of string"
        return f"a lone brace ({error}); write {{{{ and }}}} for literal braces"
    expected = ", ".join("{" + a + "}" for a in allowed)
    for name in names:
        if name not in allowed:  # "{question.upper}" or "{0}" would fail only when the first question is asked
            shown = "{" + name + "}" if name else "{}"
            return (f"unknown placeholder {shown}; the template may use {expected} (write {{{{ and }}}} for "
                    "literal braces)")
    return None


@lru_cache(maxsize=64)
def _hint(format_hints: tuple[tuple[str, str], ...], answer_type: str) -> str:
    return dict(format_hints).get(answer_type, "")


@dataclass(frozen=True, slots=True)
class Prompts:
    """Every piece of wording a sampler uses.

    Attributes:
        system: an optional system message, sent first when not empty.
        question: template for the user turn; ``{question}`` and ``{format_hint}`` are filled in.
        format_hints: per answer type, how the model should state its final answer.
        reconsider: the user turn after each earlier attempt in a chain.
        fresh_solution: the final user turn of a chain: asks for a new, complete solution.
        revise: the final user turn of sequential revision.
    """

    system: str = ""
    question: str = "{question}\n\n{format_hint}"
    format_hints: tuple[tuple[str, str], ...] = tuple(_FORMAT_HINTS.items())
    reconsider: str = "Please reconsider the problem carefully and solve it again."
    fresh_solution: str = (
        "Your previous attempts are above; they may contain mistakes, and they may disagree. Write a fresh, "
        "complete solution from the start, checking each step, and end with your final answer in the same "
        "format as before.")
    revise: str = (
        "Review your previous solution above for mistakes. Then write a complete, corrected solution and end with "
        "your final answer in the same format as before.")

    def __post_init__(self) -> None:
        problem = _template_problem(self.question, _QUESTION_PLACEHOLDERS)
        if problem:
            raise ConfigError(f"Prompts.question: {problem}")

    @classmethod
    def from_file(cls, path: str) -> Prompts:
        """Prompts from a JSON object whose keys are this class's fields (any subset; the rest keep defaults)."""
        import json
        from dataclasses import fields

        from .errors import InputError
        from .jsonlines import valid_unicode

        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as error:
            raise InputError(f"cannot read the file: {error.strerror}", path=path) from None
        except json.JSONDecodeError as error:
            raise InputError(f"malformed JSON ({error.msg})", path=path, line=error.lineno) from None
        except RecursionError:
            raise InputError("JSON nested too deeply to read", path=path) from None
        except UnicodeDecodeError as error:
            raise InputError(f"not UTF-8 (byte {error.object[error.start]:#04x} at offset {error.start})",
                             path=path) from None
        if not isinstance(data, dict):
            raise InputError("must be a JSON object of prompt fields", path=path)
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise InputError(f"unknown prompt field; expected some of {', '.join(sorted(known))}", path=path,
                                 field=key)
            if key == "format_hints":
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    raise InputError("must map answer types to strings", path=path, field=key)
            elif not isinstance(value, str):
                raise InputError("must be a string", path=path, field=key)
            texts = list(value.values()) if isinstance(value, dict) else [value]
            if not all(valid_unicode(t) for t in texts):
                raise InputError("holds a lone surrogate, which is not valid Unicode", path=path, field=key)
        if "format_hints" in data:
            data["format_hints"] = tuple({**_FORMAT_HINTS, **data["format_hints"]}.items())
        if isinstance(data.get("question"), str):
            problem = _template_problem(data["question"], _QUESTION_PLACEHOLDERS)
            if problem:
                raise InputError(problem, path=path, field="question")
        return cls(**data)

    def user_question(self, question: Question) -> str:
        hint = _hint(self.format_hints, question.answer_type)
        return self.question.format(question=question.text, format_hint=hint)

    def opening(self, question: Question) -> list[Message]:
        """The conversation before any earlier attempt. A question that carries its own ``messages`` (a client's
        chat request through the server) is asked verbatim."""
        given = question.meta.get("messages")
        if given:
            return [dict(m) for m in given]
        messages: list[Message] = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.user_question(question)})
        return messages


@dataclass(frozen=True, slots=True)
class Attempt:
    """An earlier sample of the question, as a sampler sees it."""

    text: str
    answer_class: int | None
    #: produced with earlier attempts in its context (a synthetic chain or a revision)
    chain: bool = False


def estimate_tokens(text: str) -> int:
    """A deliberately high token estimate (3 characters per token) for chain limits and budget reservations."""
    return len(text) // 3 + 1


class Sampler(ABC):
    """Builds the messages for one more sample of a question, from its earlier attempts."""

    #: True when the sampler must show the model earlier outputs, so recorded (replay) samples cannot stand in.
    needs_live_model: bool = False
    name: str = "sampler"

    def __init__(self, prompts: Prompts | None = None) -> None:
        self.prompts = prompts or Prompts()
        self._count_prompt: Callable[[list[Message]], int] | None = None
        self._prompt_limit = 0

    def fit_context(self, count_prompt_tokens: Callable[[list[Message]], int], prompt_token_limit: int,
                    count_tokens: Callable[[str], int] | None = None) -> None:
        """Count with the backend's real tokenizer instead of the estimate: a chain's attempts are then dropped
        (longest first) until the whole conversation, as the model's chat template renders it, takes at most
        ``prompt_token_limit`` tokens; ``count_tokens`` replaces the estimate in ``max_chain_tokens`` checks."""
        self._count_prompt = count_prompt_tokens
        self._prompt_limit = prompt_token_limit
        if count_tokens is not None and hasattr(self, "count_tokens"):
            self.count_tokens = count_tokens

    def _history(self, opening: list[Message], shown: Sequence[Attempt], closing: str) -> list[Message]:
        """The conversation showing ``shown``, cut to the context when a real token count is known."""
        kept = list(shown)
        messages = _as_history(opening, kept, self.prompts.reconsider, closing)
        while kept and self._count_prompt is not None and self._count_prompt(messages) > self._prompt_limit:
            del kept[max(range(len(kept)), key=lambda i: len(kept[i].text))]
            messages = _as_history(opening, kept, self.prompts.reconsider, closing)
        return messages

    @abstractmethod
    def messages(self, question: Question, attempts: Sequence[Attempt], rng: random.Random) -> list[Message]:
        """The chat messages for the next sample, given every earlier attempt in the order they arrived."""


class ParallelSampler(Sampler):
    """Independent samples: the question alone, every time."""

    name = "parallel"

    def messages(self, question: Question, attempts: Sequence[Attempt], rng: random.Random) -> list[Message]:
        return self.prompts.opening(question)


def _as_history(opening: list[Message], shown: Sequence[Attempt], reconsider: str, closing: str) -> list[Message]:
    messages = list(opening)
    for i, attempt in enumerate(shown):
        messages.append({"role": "assistant", "content": attempt.text})
        messages.append({"role": "user", "content": closing if i == len(shown) - 1 else reconsider})
    return messages


class IntegratedSampler(Sampler):
    """Integrated parallel-sequential sampling with synthetic chains (see the module docstring).

    Args:
        k0: independent samples before chains start (>= 1).
        m: earlier attempts shown in each chain (>= 1).
        max_chain_tokens: the earlier attempts together must fit this many tokens (estimated); the longest are
            dropped first. With none left the sample is an independent one.
        prompts: the wording.
        count_tokens: how to count a text's tokens (default: ``estimate_tokens``).
    """

    needs_live_model = True
    name = "integrated"

    def __init__(self, k0: int = 2, m: int = 2, max_chain_tokens: int = 6000, prompts: Prompts | None = None,
                 count_tokens: Callable[[str], int] = estimate_tokens) -> None:
        super().__init__(prompts)
        if k0 < 1:
            raise ConfigError(f"k0 must be >= 1, got {k0}")
        if m < 1:
            raise ConfigError(f"m must be >= 1, got {m}")
        if max_chain_tokens < 0:
            raise ConfigError(f"max_chain_tokens must be >= 0, got {max_chain_tokens}")
        self.k0 = k0
        self.m = m
        self.max_chain_tokens = max_chain_tokens
        self.count_tokens = count_tokens

    def choose(self, attempts: Sequence[Attempt], rng: random.Random) -> list[Attempt]:
        """Pick up to ``m`` attempts, one per distinct answer first, then fit the token limit, then shuffle."""
        usable = [a for a in attempts if a.text]
        by_class: dict[int | None, list[Attempt]] = {}
        for attempt in usable:
            by_class.setdefault(attempt.answer_class, []).append(attempt)
        # One attempt per distinct answer first (classes in random order), then more of the answered ones, and
        # abstaining attempts only when answered ones run out: differing answers carry different lines of
        # reasoning, which is the point of the chain.
        classes = [c for c in by_class if c is not None]
        rng.shuffle(classes)
        pools = {c: rng.sample(by_class[c], len(by_class[c])) for c in classes}
        chosen: list[Attempt] = []
        while len(chosen) < self.m and any(pools.values()):
            for c in classes:
                if pools[c] and len(chosen) < self.m:
                    chosen.append(pools[c].pop())
        abstaining = rng.sample(by_class.get(None, []), len(by_class.get(None, [])))
        chosen.extend(abstaining[:self.m - len(chosen)])
        sizes = [self.count_tokens(a.text) for a in chosen]
        while chosen and sum(sizes) > self.max_chain_tokens:
            longest = max(range(len(chosen)), key=lambda i: sizes[i])
            del chosen[longest]
            del sizes[longest]
        rng.shuffle(chosen)
        return chosen

    def messages(self, question: Question, attempts: Sequence[Attempt], rng: random.Random) -> list[Message]:
        opening = self.prompts.opening(question)
        if len(attempts) < self.k0:
            return opening
        shown = self.choose(attempts, rng)
        return self._history(opening, shown, self.prompts.fresh_solution)


class SequentialSampler(Sampler):
    """Sequential revision: each sample sees only the one before it."""

    needs_live_model = True
    name = "sequential"

    def __init__(self, max_chain_tokens: int = 6000, prompts: Prompts | None = None,
                 count_tokens: Callable[[str], int] = estimate_tokens) -> None:
        super().__init__(prompts)
        self.max_chain_tokens = max_chain_tokens
        self.count_tokens = count_tokens

    def messages(self, question: Question, attempts: Sequence[Attempt], rng: random.Random) -> list[Message]:
        opening = self.prompts.opening(question)
        if not attempts or not attempts[-1].text or self.count_tokens(attempts[-1].text) > self.max_chain_tokens:
            return opening
        return self._history(opening, [attempts[-1]], self.prompts.revise)

