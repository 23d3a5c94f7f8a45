"""Splitting one response's usage over its choices, exactly: the shares sum to what the server reported."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Usage

__all__ = ["split_usage"]


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder; ties to the first)."""
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    scaled = [total * w for w in weights]
    parts = [s // whole for s in scaled]
    left = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-(scaled[i] % whole), i))[:left]:
        parts[i] += 1
    return parts


def split_usage(total: Usage, weights: Sequence[int]) -> list[Usage]:
    """Split one response's token counts over its choices so that the shares sum exactly to ``total``.

    Prompt and cached tokens are split evenly; completion and reasoning tokens in proportion to ``weights``
    (each choice's length; all zero means evenly). Costs are not split here: they follow from each share's tokens.
    """
    if not weights:
        return []
    even = [1] * len(weights)
    prompt = _apportion(total.prompt_tokens, even)
    cached = _apportion(total.cached_tokens, even)
    completion = _apportion(total.completion_tokens, weights)
    reasoning = _apportion(total.reasoning_tokens, weights)
    return [Usage(prompt_tokens=p, completion_tokens=c, cached_tokens=k, reasoning_tokens=r)
            for p, c, k, r in zip(prompt, completion, cached, reasoning, strict=True)]
