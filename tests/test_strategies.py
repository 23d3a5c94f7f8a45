"""Strategy specs: parsing, validation with helpful messages, labels that parse back to the same strategy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import STRATEGIES, ConfigError, Strategy, parse_strategy
from dynscaling.allocators import (
    SCORES,
    AdaptiveAllocator,
    BanditAllocator,
    BayesAllocator,
    BlendAscAllocator,
    ConsolAllocator,
    EscAllocator,
    OracleAllocator,
    PprAllocator,
    UniformAllocator,
)
from dynscaling.samplers import IntegratedSampler, ParallelSampler, SequentialSampler

positive = st.integers(min_value=1, max_value=64)
probability = st.floats(min_value=0.51, max_value=0.99, allow_nan=False)
bandit_params = {
    "score": st.sampled_from(sorted(SCORES)),
    "c": st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
    "k0": st.integers(1, 4),
    "stop": st.floats(min_value=0.51, max_value=1.0, allow_nan=False),
    "cap": st.one_of(st.none(), st.integers(4, 64)),
    "max_inflight": positive,
}
bayes_params = {
    "horizon": st.integers(1, 12),
    "min_gain": st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
    "refit": st.floats(min_value=1.01, max_value=4.0, allow_nan=False),
    "prior_weight": st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    "cap": st.one_of(st.none(), st.integers(1, 64)),
    "max_inflight": positive,
}
chain_params = {"m": positive, "max_chain_tokens": st.integers(0, 10_000)}
PARAMS = {
    "single": {},
    "sc": {"cap": st.one_of(st.none(), positive)},
    "esc": {"w": positive, "cap": positive},
    "adaptive": {"threshold": probability, "cap": positive},
    "sequential": {"max_chain_tokens": st.integers(0, 10_000)},
    "dynscaling": {**bayes_params, "k0": st.integers(1, 4), **chain_params},
    "dynscaling-parallel": bayes_params,
    "dynscaling-ucb": {**bandit_params, **chain_params},
    "ucb": bandit_params,
    "integrated-uniform": {"k0": st.integers(1, 4), **chain_params},
    "oracle": {},
    "consol": {"p1": st.floats(min_value=0.5001, max_value=0.99), "alpha": st.floats(min_value=0.001, max_value=0.05),
               "beta": st.floats(min_value=0.01, max_value=0.94), "max_trials": positive},
    "ppr": {"delta": st.floats(min_value=0.001, max_value=1.0), "cap": positive},
    "blend-asc": {"horizon": st.floats(min_value=1.0, max_value=64.0)},
}


@st.composite
def strategy_specs(draw: st.DrawFn) -> tuple[str, dict]:
    name = draw(st.sampled_from(sorted(PARAMS)))
    keys = draw(st.lists(st.sampled_from(sorted(PARAMS[name])), unique=True)) if PARAMS[name] else []
    return name, {key: draw(PARAMS[name][key]) for key in keys}


class TestParsing:
    def test_a_full_spec_gives_typed_parameters_in_order(self) -> None:
        strategy = parse_strategy("dynscaling-ucb:k0=2,m=2,c=0.3")
        assert strategy == Strategy("dynscaling-ucb", (("k0", 2), ("m", 2), ("c", 0.3)))
        values = dict(strategy.params)
        assert type(values["k0"]) is int and type(values["m"]) is int and type(values["c"]) is float

    def test_a_bare_name_has_no_parameters(self) -> None:
        assert parse_strategy("sc") == Strategy("sc")
        assert parse_strategy("sc").params == ()

    def test_spaces_around_names_keys_and_values_are_ignored(self) -> None:
        assert parse_strategy(" esc : w = 3 , cap = 9 ") == Strategy("esc", (("w", 3), ("cap", 9)))

    def test_none_clears_an_optional_parameter(self) -> None:
        assert parse_strategy("dynscaling-parallel:cap=none").params == (("cap", None),)

    def test_a_strategy_object_passes_through_unchanged(self) -> None:
        strategy = Strategy("esc", (("w", 2),))
        assert parse_strategy(strategy) is strategy

    def test_the_parameters_reach_the_built_sampler_and_allocator(self) -> None:
        sampler, allocator = parse_strategy("dynscaling-ucb:k0=3,m=4,c=0.7,score=entropy,stop=0.9").build()
        assert isinstance(sampler, IntegratedSampler) and (sampler.k0, sampler.m) == (3, 4)
        assert isinstance(allocator, BanditAllocator)
        assert (allocator.k0, allocator.c, allocator.score_name, allocator.stop) == (3, 0.7, "entropy", 0.9)

    @pytest.mark.parametrize(("name", "sampler_type", "allocator_type"), [
        ("single", ParallelSampler, UniformAllocator),
        ("sc", ParallelSampler, UniformAllocator),
        ("esc", ParallelSampler, EscAllocator),
        ("adaptive", ParallelSampler, AdaptiveAllocator),
        ("sequential", SequentialSampler, UniformAllocator),
        ("dynscaling", IntegratedSampler, BayesAllocator),
        ("dynscaling-parallel", ParallelSampler, BayesAllocator),
        ("dynscaling-ucb", IntegratedSampler, BanditAllocator),
        ("ucb", ParallelSampler, BanditAllocator),
        ("integrated-uniform", IntegratedSampler, UniformAllocator),
        ("oracle", ParallelSampler, OracleAllocator),
        ("consol", ParallelSampler, ConsolAllocator),
        ("ppr", ParallelSampler, PprAllocator),
        ("blend-asc", ParallelSampler, BlendAscAllocator),
    ])
    def test_each_strategy_is_the_documented_sampler_and_allocator(self, name: str, sampler_type: type,
                                                                   allocator_type: type) -> None:
        strategy = parse_strategy(name)
        sampler, allocator = strategy.build()
        assert type(sampler) is sampler_type
        assert type(allocator) is allocator_type
        assert strategy.needs_live_model == sampler.needs_live_model

    def test_the_registry_holds_exactly_the_documented_strategies(self) -> None:
        assert set(STRATEGIES) == set(PARAMS)

    def test_each_build_gives_a_fresh_allocator(self) -> None:
        strategy = parse_strategy("dynscaling-parallel")
        assert strategy.build()[1] is not strategy.build()[1]

    def test_single_caps_every_question_at_one_sample(self) -> None:
        allocator = parse_strategy("single").build()[1]
        assert isinstance(allocator, UniformAllocator) and allocator.cap == 1

    @pytest.mark.parametrize("name", ["esc", "adaptive"])
    def test_the_cap_follows_the_budget_per_question_unless_given(self, name: str) -> None:
        assert parse_strategy(name).resolved(2.5)["cap"] == 3
        assert parse_strategy(name).resolved(0.2)["cap"] == 1
        assert parse_strategy(f"{name}:cap=7").resolved(2.5)["cap"] == 7
        assert parse_strategy(name).resolved(None)["cap"] == STRATEGIES[name].defaults["cap"]


class TestErrors:
    def test_an_unknown_strategy_names_every_allowed_one(self) -> None:
        with pytest.raises(ConfigError, match="unknown strategy 'best'; expected one of") as raised:
            parse_strategy("best:k0=2")
        for name in STRATEGIES:
            assert name in str(raised.value)

    def test_an_unknown_parameter_names_the_allowed_ones(self) -> None:
        with pytest.raises(ConfigError, match="strategy esc has no parameter 'window'; it takes w, cap"):
            parse_strategy("esc:window=3")

    def test_a_strategy_without_parameters_says_so(self) -> None:
        with pytest.raises(ConfigError, match="strategy single has no parameter 'cap'; it takes no parameters"):
            parse_strategy("single:cap=2")

    def test_a_parameter_without_a_value_must_look_like_key_equals_value(self) -> None:
        with pytest.raises(ConfigError, match="parameter 'k0' must look like key=value"):
            parse_strategy("dynscaling:k0")

    @pytest.mark.parametrize(("spec", "message"), [
        ("esc:w=three", "strategy esc: w must be a whole number, got 'three'"),
        ("dynscaling:k0=1.5", "strategy dynscaling: k0 must be a whole number, got '1.5'"),
        ("adaptive:threshold=high", "strategy adaptive: threshold must be a number, got 'high'"),
        ("adaptive:threshold=1.5", r"adaptive threshold must be in \(0.5, 1\), got 1.5"),
        ("ucb:c=-1", "exploration bonus c must be >= 0, got -1"),
        ("ucb:score=luck", "unknown bandit score 'luck'; expected one of beta, margin, entropy, voi"),
        ("dynscaling:m=0", "m must be >= 1, got 0"),
        ("sc:cap=0", "uniform cap must be >= 1, got 0"),
    ])
    def test_a_bad_value_is_refused_naming_the_value_and_what_is_allowed(self, spec: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_strategy(spec)

    @pytest.mark.parametrize("spec", ["sc:cap=abc", "dynscaling-parallel:cap=lots"])
    def test_a_non_numeric_optional_cap_is_refused_as_a_config_error(self, spec: str) -> None:
        with pytest.raises(ConfigError, match="cap"):
            parse_strategy(spec)

    def test_a_fractional_cap_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="cap"):
            parse_strategy("sc:cap=2.5")

    def test_building_a_strategy_directly_checks_its_parameter_names(self) -> None:
        with pytest.raises(ConfigError, match="unknown strategy"):
            Strategy("nope")
        with pytest.raises(ConfigError, match="strategy sc has no parameter 'w'; it takes cap"):
            Strategy("sc", (("w", 2),))


class TestLabels:
    def test_a_label_is_the_spec_it_was_parsed_from(self) -> None:
        assert parse_strategy("dynscaling-ucb:k0=2,m=2,c=0.3").label == "dynscaling-ucb:k0=2,m=2,c=0.3"
        assert parse_strategy("sc").label == "sc"

    @settings(max_examples=200)
    @given(strategy_specs())
    def test_a_label_parses_back_to_an_equal_strategy_with_the_same_hash(self, spec: tuple[str, dict]) -> None:
        name, params = spec
        strategy = Strategy(name, tuple(params.items()))
        again = parse_strategy(strategy.label)
        assert again == strategy
        assert hash(again) == hash(strategy)
        assert again.label == strategy.label
        assert again.resolved() == strategy.resolved()
