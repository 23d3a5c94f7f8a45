"""Every parameter a strategy spec takes reaches the part it configures, and the spellings of "not set": what a
user writes after the colon (``ucb:cap=6,stop_max=0.99``) is what the run uses."""

from __future__ import annotations

from typing import Any

import pytest

from dynscaling import Budget, ConfigError, Engine, Question, Usage
from dynscaling.samplers import Prompts
from dynscaling.strategies import STRATEGIES, Strategy, parameter_type, parse_strategy

# spec -> attributes of the built (sampler, allocator), each set away from its default
GIVEN: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("sc:cap=3", {}, {"cap": 3}),
    ("esc:w=3,cap=9", {}, {"w": 3, "cap": 9}),
    ("adaptive:threshold=0.8,cap=7", {}, {"threshold": 0.8, "cap": 7}),
    ("consol:p1=0.6,alpha=0.1,beta=0.2,max_trials=11", {}, {"p1": 0.6, "alpha": 0.1, "beta": 0.2, "cap": 11}),
    ("ppr:delta=0.2,cap=5", {}, {"delta": 0.2, "cap": 5}),
    ("blend-asc:horizon=3", {}, {"horizon": 3.0}),
    ("sequential:max_chain_tokens=99", {"max_chain_tokens": 99}, {}),
    ("dynscaling:horizon=3,min_gain=0.01,refit=2.5,prior_weight=9,cap=8,max_inflight=2,length_groups=2,k0=3,m=4,"
     "max_chain_tokens=77,form_groups=no,per_token=yes", {"k0": 3, "m": 4, "max_chain_tokens": 77},
     {"horizon": 3, "min_gain": 0.01, "refit": 2.5, "prior_weight": 9.0, "cap": 8, "max_inflight": 2,
      "length_groups": 2, "form_groups": False, "per_token": True}),
    ("dynscaling-parallel:horizon=5,min_gain=0.02,refit=3,prior_weight=0.5,cap=6,max_inflight=3,length_groups=1,"
     "form_groups=false,per_token=true", {},
     {"horizon": 5, "min_gain": 0.02, "refit": 3.0, "prior_weight": 0.5, "cap": 6, "max_inflight": 3,
      "length_groups": 1, "form_groups": False, "per_token": True}),
    ("ucb:score=margin,c=0.5,k0=3,stop=0.9,stop_max=0.99,cap=6,max_inflight=2", {},
     {"score_name": "margin", "c": 0.5, "k0": 3, "stop": 0.9, "stop_max": 0.99, "cap": 6, "max_inflight": 2}),
    ("dynscaling-ucb:score=entropy,c=0.1,stop=0.8,k0=3,m=1,max_chain_tokens=50,cap=5,stop_max=0.97,max_inflight=2",
     {"k0": 3, "m": 1, "max_chain_tokens": 50},
     {"score_name": "entropy", "c": 0.1, "stop": 0.8, "k0": 3, "cap": 5, "stop_max": 0.97, "max_inflight": 2}),
    ("integrated-uniform:k0=4,m=3,max_chain_tokens=40", {"k0": 4, "m": 3, "max_chain_tokens": 40}, {}),
]


@pytest.mark.parametrize(("spec", "sampler_attributes", "allocator_attributes"), GIVEN)
def test_every_given_parameter_reaches_what_it_configures(spec: str, sampler_attributes: dict[str, Any],
                                                         allocator_attributes: dict[str, Any]) -> None:
    sampler, allocator = parse_strategy(spec).build()
    assert {k: getattr(sampler, k) for k in sampler_attributes} == sampler_attributes
    assert {k: getattr(allocator, k) for k in allocator_attributes} == allocator_attributes


def test_the_table_above_covers_every_parameter_of_every_strategy() -> None:
    covered: dict[str, set[str]] = {}
    for spec, _, _ in GIVEN:
        strategy = parse_strategy(spec)
        covered.setdefault(strategy.name, set()).update(k for k, _ in strategy.params)
    for name, spec in STRATEGIES.items():
        assert covered.get(name, set()) == set(spec.defaults), name


def test_every_parameter_parses_as_a_truth_value_a_whole_number_a_number_or_text() -> None:
    """The spec parser knows these four and rejects what is not one of them."""
    for name, spec in STRATEGIES.items():
        for key, default in spec.defaults.items():
            assert parameter_type(key, default) in (bool, int, float, str), (name, key)
    assert parameter_type("cap", None) is int and parameter_type("stop_max", None) is float


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("Yes", True), ("on", True), ("1", True),
                                            ("false", False), ("NO", False), ("off", False), ("0", False)])
def test_a_truth_value_is_one_of_its_spellings(raw: str, value: bool) -> None:
    assert parse_strategy(f"dynscaling-parallel:form_groups={raw}").build()[1].form_groups is value


@pytest.mark.parametrize("raw", ["2", "maybe", "t"])
def test_anything_else_is_not_a_truth_value(raw: str) -> None:
    """Not "anything else is false": a typo must not turn a feature off."""
    with pytest.raises(ConfigError, match=f"form_groups must be true or false, got '{raw}'"):
        parse_strategy(f"dynscaling-parallel:form_groups={raw}")


@pytest.mark.parametrize("unset", ["none", "None", "null", "NULL", ""])
def test_none_null_and_nothing_all_mean_not_set(unset: str) -> None:
    strategy = parse_strategy(f"ucb:cap={unset},stop_max={unset}")
    assert strategy.params == (("cap", None), ("stop_max", None))
    _, allocator = strategy.build()
    assert (allocator.cap, allocator.stop_max) == (None, allocator.stop)


@pytest.mark.parametrize("spec", ["ucb:cap=3,stop=1.0", "dynscaling-parallel:cap=3"])
def test_a_cap_given_in_the_spec_bounds_every_question_in_a_run(spec: str) -> None:
    engine = Engine([Question(f"q{i}", "q", "number") for i in range(3)], spec, Budget(samples=30),
                    needs_messages=False)
    served = [0, 0, 0]

    def disagreeing(qi: int) -> tuple[int | None, Usage]:  # answers that never agree: nothing settles
        served[qi] += 1
        return served[qi] % 3, Usage()

    engine.run_sync(disagreeing)
    assert max(t.samples for t in engine.tallies) == 3


class TestRefusals:
    def test_an_unknown_name_lists_every_strategy_comma_separated(self) -> None:
        listed = ", ".join(STRATEGIES)
        for make in (parse_strategy, Strategy):
            with pytest.raises(ConfigError) as raised:
                make("nope")
            assert str(raised.value) == f"unknown strategy 'nope'; expected one of {listed}"

    def test_a_parameter_built_in_directly_is_checked_like_a_parsed_one(self) -> None:
        with pytest.raises(ConfigError) as raised:
            Strategy("single", (("cap", 2),))
        assert str(raised.value) == "strategy single has no parameter 'cap'; it takes no parameters"
        with pytest.raises(ConfigError) as raised:
            Strategy("esc", (("window", 2),))
        assert str(raised.value) == "strategy esc has no parameter 'window'; it takes w, cap"

    def test_an_equals_sign_inside_a_value_is_part_of_the_value(self) -> None:
        with pytest.raises(ConfigError, match="unknown bandit score 'beta=2'"):
            parse_strategy("ucb:score=beta=2")


class TestBuild:
    def test_the_prompts_given_reach_the_sampler(self) -> None:
        prompts = Prompts(system="Be brief.")
        for name in ("sc", "dynscaling", "sequential"):
            sampler, _ = parse_strategy(name).build(None, prompts)
            assert sampler.prompts is prompts, name

    def test_the_per_question_budget_sets_the_caps_not_given(self) -> None:
        _, allocator = parse_strategy("esc").build(2.5)
        assert allocator.cap == 3
        _, allocator = parse_strategy("esc:cap=7").build(2.5)
        assert allocator.cap == 7
