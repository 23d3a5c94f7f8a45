"""Strategies: a sampler x an allocator, registered by name, built from specs like ``dynscaling:k0=2,horizon=6``.

| name                | sampler     | allocator                                  |
|---------------------|-------------|--------------------------------------------|
| single              | parallel    | one sample per question                    |
| sc                  | parallel    | uniform (self-consistency)                 |
| esc                 | parallel    | early-stopping windows                     |
| adaptive            | parallel    | Beta stopping rule                         |
| consol              | parallel    | SPRT of leader vs runner-up, in batches    |
| ppr                 | parallel    | PPR-1v1 stopping rule                      |
| blend-asc           | parallel    | Beta then PPR ranking across questions     |
| sequential          | sequential  | uniform                                    |
| dynscaling          | integrated  | empirical-Bayes value of information       |
| dynscaling-parallel | parallel    | empirical-Bayes value of information       |
| dynscaling-ucb      | integrated  | UCB bandit across questions (the first one) |
| ucb                 | parallel    | UCB bandit across questions (the first one) |
| integrated-uniform  | integrated  | uniform                                    |
| oracle              | parallel    | knows the gold answers (evaluation only)   |

The aggregator is the same for all: plurality over equivalence classes, abstentions excluded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .allocators import (
    AdaptiveAllocator,
    Allocator,
    BanditAllocator,
    BayesAllocator,
    BlendAscAllocator,
    ConsolAllocator,
    EscAllocator,
    OracleAllocator,
    PprAllocator,
    UniformAllocator,
)
from .allocators.stopping import CONSOL_ALPHA, CONSOL_BETA, CONSOL_MAX_TRIALS, CONSOL_P1
from .errors import ConfigError
from .samplers import IntegratedSampler, ParallelSampler, Prompts, Sampler, SequentialSampler

__all__ = ["STRATEGIES", "Strategy", "parse_strategy"]

ParamValue = bool | int | float | str | None

_BANDIT = {"score": "beta", "c": 0.3, "k0": 2, "stop": 0.95, "stop_max": None, "cap": None, "max_inflight": 1}
_BAYES = {"horizon": 6, "min_gain": 0.0, "refit": 1.5, "prior_weight": 4.0, "cap": None, "max_inflight": 1,
          "length_groups": 3, "form_groups": True, "per_token": False}
_CHAIN = {"m": 2, "max_chain_tokens": 6000}


@dataclass(frozen=True)
class _Spec:
    defaults: Mapping[str, ParamValue]
    build: Callable[[dict[str, Any], Prompts | None], tuple[Sampler, Allocator]]
    summary: str
    #: parameters whose default follows the per-question budget when the user does not set them
    budget_capped: tuple[str, ...] = ()


def _bayes(p: dict[str, Any]) -> BayesAllocator:
    return BayesAllocator(horizon=p["horizon"], min_gain=p["min_gain"], refit=p["refit"],
                          prior_weight=p["prior_weight"], cap=p["cap"], max_inflight=p["max_inflight"],
                          length_groups=p["length_groups"], form_groups=p["form_groups"],
                          per_token=p["per_token"])


def _bandit(p: dict[str, Any]) -> BanditAllocator:
    return BanditAllocator(score=p["score"], c=p["c"], k0=p["k0"], stop=p["stop"], cap=p["cap"],
                           max_inflight=p["max_inflight"], stop_max=p["stop_max"])


STRATEGIES: dict[str, _Spec] = {
    "single": _Spec({}, lambda p, pr: (ParallelSampler(pr), UniformAllocator(cap=1)),
                    "one independent sample per question"),
    "sc": _Spec({"cap": None}, lambda p, pr: (ParallelSampler(pr), UniformAllocator(cap=p["cap"])),
                "self-consistency: the budget spread evenly, independent samples"),
    "esc": _Spec({"w": 4, "cap": 40}, lambda p, pr: (ParallelSampler(pr), EscAllocator(w=p["w"], cap=p["cap"])),
                 "early-stopping self-consistency: windows of w, stop on a unanimous window", ("cap",)),
    "adaptive": _Spec({"threshold": 0.95, "cap": 40},
                      lambda p, pr: (ParallelSampler(pr), AdaptiveAllocator(threshold=p["threshold"], cap=p["cap"])),
                      "adaptive-consistency: stop a question when its Beta confidence passes threshold", ("cap",)),
    "consol": _Spec({"p1": CONSOL_P1, "alpha": CONSOL_ALPHA, "beta": CONSOL_BETA, "max_trials": CONSOL_MAX_TRIALS},
                    lambda p, pr: (ParallelSampler(pr), ConsolAllocator(p["p1"], p["alpha"], p["beta"],
                                                                        p["max_trials"])),
                    "ConSol: stop a question when an SPRT tells its leader from the runner-up", ("max_trials",)),
    "ppr": _Spec({"delta": 0.05, "cap": 40},
                 lambda p, pr: (ParallelSampler(pr), PprAllocator(delta=p["delta"], cap=p["cap"])),
                 "PPR-1v1: stop a question when the leader beats the runner-up at level delta", ("cap",)),
    "blend-asc": _Spec({"horizon": 8.0}, lambda p, pr: (ParallelSampler(pr), BlendAscAllocator(p["horizon"])),
                       "Blend-ASC (reconstructed): the budget across questions, Beta ranking then PPR-1v1's"),
    "sequential": _Spec({"max_chain_tokens": 6000},
                        lambda p, pr: (SequentialSampler(p["max_chain_tokens"], pr), UniformAllocator()),
                        "sequential revision: each sample revises the previous one (live models only)"),
    "dynscaling": _Spec({**_BAYES, "k0": 2, **_CHAIN},
                        lambda p, pr: (IntegratedSampler(p["k0"], p["m"], p["max_chain_tokens"], pr), _bayes(p)),
                        "integrated synthetic chains + empirical-Bayes allocation across questions (live models only)"),
    "dynscaling-parallel": _Spec(dict(_BAYES), lambda p, pr: (ParallelSampler(pr), _bayes(p)),
                                 "empirical-Bayes allocation across questions with independent samples"),
    "dynscaling-ucb": _Spec({**_BANDIT, **_CHAIN},
                            lambda p, pr: (IntegratedSampler(p["k0"], p["m"], p["max_chain_tokens"], pr), _bandit(p)),
                            "integrated synthetic chains + the UCB bandit (live models only)"),
    "ucb": _Spec(dict(_BANDIT), lambda p, pr: (ParallelSampler(pr), _bandit(p)),
                 "the UCB bandit across questions (warm-up k0, score + UCB bonus, retire at stop)"),
    "integrated-uniform": _Spec({"k0": 2, **_CHAIN},
                                lambda p, pr: (IntegratedSampler(p["k0"], p["m"], p["max_chain_tokens"], pr),
                                               UniformAllocator()),
                                "integrated synthetic chains, budget spread evenly (live models only)"),
    "oracle": _Spec({}, lambda p, pr: (ParallelSampler(pr), OracleAllocator()),
                    "upper bound for allocation that knows the gold answers (evaluation only)"),
}


#: the type of each parameter whose default is None ("not set")
_OPTIONAL_TYPES: dict[str, type] = {"cap": int, "stop_max": float}


def parameter_type(key: str, default: ParamValue) -> type:
    """The type a spec's value for parameter ``key`` is parsed as: its default's, or for a default of None (not
    set) the registered one (str if none is)."""
    return type(default) if default is not None else _OPTIONAL_TYPES.get(key, str)


def _coerce(name: str, key: str, raw: str, default: ParamValue) -> ParamValue:
    if raw.lower() in ("none", "null", ""):
        return None
    kind = parameter_type(key, default)
    if kind is bool:
        if raw.lower() in ("true", "yes", "on", "1"):
            return True
        if raw.lower() in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"strategy {name}: {key} must be true or false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"strategy {name}: {key} must be a whole number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"strategy {name}: {key} must be a number, got {raw!r}") from None
    return raw


@dataclass(frozen=True)
class Strategy:
    """A named strategy with its parameters. Frozen and hashable, so it can key results and journals.

    ``build()`` makes a fresh sampler and allocator for one run (allocators keep per-run state).
    """

    name: str
    params: tuple[tuple[str, ParamValue], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.name!r}; expected one of {', '.join(STRATEGIES)}")
        allowed = STRATEGIES[self.name].defaults
        for key, _ in self.params:
            if key not in allowed:
                expected = ", ".join(allowed) or "no parameters"
                raise ConfigError(f"strategy {self.name} has no parameter {key!r}; it takes {expected}")

    @property
    def label(self) -> str:
        """The spec string: ``name`` or ``name:key=value,...``."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params)

    @property
    def needs_live_model(self) -> bool:
        return self.name in ("dynscaling", "dynscaling-ucb", "integrated-uniform", "sequential")

    def resolved(self, per_question_budget: float | None = None) -> dict[str, Any]:
        spec = STRATEGIES[self.name]
        params: dict[str, Any] = dict(spec.defaults)
        given = dict(self.params)
        if per_question_budget is not None:
            for key in spec.budget_capped:
                if key not in given:
                    params[key] = max(1, math.ceil(per_question_budget))
        params.update(given)
        return params

    def build(self, per_question_budget: float | None = None,
              prompts: Prompts | None = None) -> tuple[Sampler, Allocator]:
        return STRATEGIES[self.name].build(self.resolved(per_question_budget), prompts)


def parse_strategy(spec: str | Strategy) -> Strategy:
    """``"dynscaling:k0=2,m=2,horizon=6"`` -> ``Strategy("dynscaling", (("k0", 2), ("m", 2), ("horizon", 6)))``."""
    if isinstance(spec, Strategy):
        return spec
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    defaults = STRATEGIES[name].defaults
    params: list[tuple[str, ParamValue]] = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"strategy {name}: parameter {item!r} must look like key=value")
        if key not in defaults:
            expected = ", ".join(defaults) or "no parameters"
            raise ConfigError(f"strategy {name} has no parameter {key!r}; it takes {expected}")
        params.append((key, _coerce(name, key, raw.strip(), defaults[key])))
    strategy = Strategy(name, tuple(params))
    strategy.build()  # validate value ranges now, with the allocator's own messages
    return strategy
