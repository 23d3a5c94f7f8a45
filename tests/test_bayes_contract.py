"""The default allocator's contract with its users: parameter bounds, requests in flight, and how often it refits."""

from __future__ import annotations

import pytest

from dynscaling import Budget, ConfigError, Engine, Question
from dynscaling.allocators.bayes import BayesAllocator
from dynscaling.backends.replay import ReplayBackend
from dynscaling.drivers import run_replay
from dynscaling.errors import BackendError
from dynscaling.strategies import parse_strategy
from test_length_groups import pool_by_length


@pytest.mark.parametrize(("name", "highest"), [("horizon", 64), ("length_groups", 10)])
def test_parameter_bounds(name: str, highest: int) -> None:
    assert getattr(BayesAllocator(**{name: highest}), name) == highest
    with pytest.raises(ConfigError, match=f"{name} must be in 1..{highest}, got {highest + 1}"):
        BayesAllocator(**{name: highest + 1})


def test_max_inflight_error_names_it() -> None:
    with pytest.raises(ConfigError, match="max_inflight must be >= 1, got 0"):
        BayesAllocator(max_inflight=0)


def test_the_class_defaults_are_the_strategy_defaults() -> None:
    _, from_spec = parse_strategy("dynscaling-parallel").build()
    built = BayesAllocator()
    for name in ("horizon", "min_gain", "refit", "prior_weight", "cap", "max_inflight", "length_groups"):
        assert getattr(built, name) == getattr(from_spec, name), name
    assert (built.max_inflight, built.length_groups) == (1, 3)


def test_the_settings_are_readable_and_fixed() -> None:
    built = BayesAllocator(horizon=5, refit=2.0, prior_weight=1.0, length_groups=2, form_groups=False)
    assert (built.horizon, built.refit, built.prior_weight, built.length_groups, built.form_groups) == (
        5, 2.0, 1.0, 2, False)
    with pytest.raises(AttributeError):
        built.horizon = 7  # type: ignore[misc]


def test_the_description_names_every_setting_as_a_spec_would_write_it() -> None:
    built = BayesAllocator(horizon=5, refit=2.0, prior_weight=1.0, length_groups=2, form_groups=False,
                           per_token=True)
    assert built.describe() == ("bayes(horizon=5, min_gain=0.0, refit=2.0, prior_weight=1.0, length_groups=2, "
                                "form_groups=false, per_token=true)")


def test_a_run_leaves_the_allocator_with_fewer_than_30_attributes() -> None:
    """From 30 attributes on, CPython 3.11 stops sharing an instance dict's keys and every attribute read slows
    down: on the replay loop that cost 3-5% of the default's speed (``benchmarks/replay_speed.py``). Counted after a
    whole run with the answer-form group in use."""
    from test_answer_forms import pool_by_form

    pool = pool_by_form(0)
    engine = Engine(pool.questions, "dynscaling-parallel", Budget(samples=2 * len(pool.entries)),
                    needs_messages=False, clusterers=[e.clusterer for e in pool.entries])
    run_replay(engine, ReplayBackend(pool))
    assert engine.allocator._forms.usual is not None  # type: ignore[attr-defined]  # the form group was in use
    assert len(vars(engine.allocator)) < 30


def engine_of(spec: str, questions: int = 1) -> Engine:
    return Engine([Question(f"q{i}", "q", "number") for i in range(questions)], spec, Budget(samples=50),
                  needs_messages=False)


def test_max_inflight_bounds_the_requests_of_one_question() -> None:
    engine = engine_of("dynscaling-parallel:max_inflight=2")
    first, second = engine.next_request(), engine.next_request()
    assert first is not None and second is not None
    assert engine.next_request() is None  # two in flight: the third waits
    engine.fail(first, BackendError("cancelled by the test", kind="cancelled"))
    assert engine.next_request() is not None  # one came back: room for one more


def test_a_cap_counts_the_requests_in_flight() -> None:
    engine = engine_of("dynscaling-parallel:max_inflight=5,cap=3")
    requests = [engine.next_request() for _ in range(4)]
    assert [r is not None for r in requests] == [True, True, True, False]


class CountingBayes(BayesAllocator):
    """Counts refit checks and the models they built."""

    def _start(self) -> None:
        self.checks = 0
        self.models_built: list[object] = []
        super()._start()

    def _rebuild(self) -> None:
        self.checks += 1
        super()._rebuild()
        if not self.models_built or self.models_built[-1] is not self.model:
            self.models_built.append(self.model)


def refits(equal_lengths: bool, per_question: int = 12) -> CountingBayes:
    pool = pool_by_length(0, questions=240, samples=per_question, equal_lengths=equal_lengths)
    allocator = CountingBayes()
    engine = Engine(pool.questions, "dynscaling-parallel", Budget(samples=per_question * 240), seed=0,
                    needs_messages=False, clusterers=[e.clusterer for e in pool.entries], allocator=allocator)
    run_replay(engine, ReplayBackend(pool, 0))
    return allocator


def test_refits_are_few_and_come_early_only_with_length_groups() -> None:
    grouped = refits(equal_lengths=False)
    plain = refits(equal_lengths=True)
    # at start, at Q, then every 10% up to 3Q with groups (about 12), then every x1.5 up to 12Q (about 4)
    assert 12 <= grouped.checks <= 24
    # without groups: x1.5 from Q (about 6): the early refits are the groups' alone
    assert plain.checks <= 9 < grouped.checks
    # a refit whose priors barely moved keeps its models (and their memos)
    assert len(plain.models_built) < plain.checks
