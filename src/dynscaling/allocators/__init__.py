"""Allocators: which question gets the next sample, and when to stop.

An allocator sees only vote tallies (never answers' text, never the backend) and speaks to the engine through
five calls: ``start`` once, ``next_question`` whenever the engine could dispatch a request (None: nothing to
dispatch now), ``dispatched`` when a request for a question leaves, ``landed`` when its sample has been counted,
and ``close`` when a question cannot be sampled any more (its replay pool ran dry, or it failed for good).

The engine finishes when ``next_question`` returns None and nothing is in flight, or when the budget is spent.
"""

from .bandit import SCORES, BanditAllocator
from .base import Allocator
from .baselines import AdaptiveAllocator, EscAllocator, OracleAllocator, UniformAllocator
from .bayes import BayesAllocator
from .blend import BlendAscAllocator
from .stopping import ConsolAllocator, PprAllocator

__all__ = [
    "SCORES",
    "AdaptiveAllocator",
    "Allocator",
    "BanditAllocator",
    "BayesAllocator",
    "BlendAscAllocator",
    "ConsolAllocator",
    "EscAllocator",
    "OracleAllocator",
    "PprAllocator",
    "UniformAllocator",
]
