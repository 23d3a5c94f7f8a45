"""Plain data: questions, samples, usage and results. No behaviour beyond arithmetic on usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ANSWER_TYPES",
    "AnswerType",
    "Question",
    "QuestionResult",
    "RunResult",
    "Sample",
    "Usage",
]

AnswerType = Literal["number", "date", "latex", "choice", "text"]
ANSWER_TYPES: tuple[str, ...] = ("number", "date", "latex", "choice", "text")


@dataclass(frozen=True, slots=True)
class Question:
    """One question of a batch.

    Attributes:
        id: unique within the batch; keys the journal and the results.
        text: the question as shown to the model.
        answer_type: how answers are extracted and compared (see ``dynscaling.answers``).
        gold: the reference answer when known (benchmarks); never shown to a strategy except the oracle.
        meta: free-form extras carried through to results (choices, source, ...).
    """

    id: str
    text: str
    answer_type: AnswerType = "text"
    gold: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    """Tokens and money spent. Summed exactly as the backend reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost_usd += other.cost_usd

    def to_dict(self) -> dict[str, float | int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 8),
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """One model output for one question.

    Attributes:
        text: the full output, or None when nothing usable came back.
        answer: the extracted final answer, or None (the sample abstains from the vote).
        usage: what producing it cost.
        finish_reason: as the backend reported it (``stop``, ``length``, ...).
        mean_logprob: the mean log-probability of the generated tokens, when the backend reports them.
        token_logprobs: each generated token's log-probability, when the backend was asked to keep them.
    """

    text: str | None
    answer: str | None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    mean_logprob: float | None = None
    token_logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """The outcome for one question.

    Attributes:
        answer: the plurality answer (representative text of the winning class), None if no sample had an answer.
        confidence: posterior probability that the leader stays the leader (``dynscaling.votes``).
        votes: (answer, count) pairs, most votes first.
        samples: samples spent on this question, abstentions included.
        abstentions: samples with no extractable answer.
        usage: tokens and money spent on this question.
        correct: whether ``answer`` matches the gold answer, None when there is no gold answer.
    """

    question_id: str
    answer: str | None
    confidence: float
    votes: tuple[tuple[str, int], ...]
    samples: int
    abstentions: int
    usage: Usage
    correct: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.question_id,
            "answer": self.answer,
            "confidence": round(self.confidence, 6),
            "votes": [[a, c] for a, c in self.votes],
            "samples": self.samples,
            "abstentions": self.abstentions,
            "usage": self.usage.to_dict(),
            "correct": self.correct,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """Every question's result plus the run's totals."""

    results: tuple[QuestionResult, ...]
    samples: int
    usage: Usage
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        graded = [r.correct for r in self.results if r.correct is not None]
        return sum(graded) / len(graded) if graded else None

    @property
    def parse_rate(self) -> float:
        """Fraction of spent samples that yielded an answer."""
        if self.samples == 0:
            return 0.0
        return 1.0 - sum(r.abstentions for r in self.results) / self.samples
