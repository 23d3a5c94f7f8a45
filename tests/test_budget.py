"""The budget ledger: reserve before dispatch, settle on return, release on failure, never pass the cap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynscaling import Budget, ConfigError, Ledger, Usage

USD_SLACK = 1e-9  # dollars are floats: sums may be off in the last bits


class TestBudgetValidation:
    def test_a_budget_without_any_cap_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="at least one cap: samples, tokens or usd"):
            Budget()

    @pytest.mark.parametrize(("field", "value"), [("samples", -1), ("tokens", -5), ("usd", -0.01)])
    def test_a_negative_cap_is_refused_with_its_name_and_value(self, field: str, value: float) -> None:
        with pytest.raises(ConfigError, match=f"budget {field} must be >= 0, got {value}"):
            Budget(**{field: value})

    @pytest.mark.parametrize("field", ["samples", "tokens", "usd"])
    def test_a_single_cap_is_enough(self, field: str) -> None:
        budget = Budget(**{field: 3})
        assert getattr(budget, field) == 3

    def test_a_zero_cap_allows_nothing(self) -> None:
        ledger = Ledger(Budget(samples=0))
        assert ledger.exhausted
        assert ledger.reserve() is None

    @pytest.mark.parametrize("field", ["samples", "tokens", "usd"])
    def test_a_nan_cap_is_refused(self, field: str) -> None:
        with pytest.raises(ConfigError):
            Budget(**{field: math.nan})

    def test_a_budget_is_hashable_and_frozen(self) -> None:
        budget = Budget(samples=3, usd=1.5)
        assert hash(budget) == hash(Budget(samples=3, usd=1.5))
        with pytest.raises(AttributeError):
            budget.samples = 4  # type: ignore[misc]


class TestLedger:
    def test_reserving_holds_one_sample_until_it_is_settled(self) -> None:
        ledger = Ledger(Budget(samples=2))
        first = ledger.reserve()
        second = ledger.reserve()
        assert first is not None and second is not None
        assert ledger.reserved_samples == 2
        assert ledger.reserve() is None  # in-flight requests count against the cap
        ledger.settle(first, Usage(prompt_tokens=3, completion_tokens=4, cost_usd=0.5))
        assert (ledger.spent_samples, ledger.reserved_samples) == (1, 1)
        assert (ledger.spent_tokens, ledger.spent_usd) == (7, 0.5)
        assert ledger.reserve() is None

    def test_releasing_gives_the_reservation_back_unspent(self) -> None:
        ledger = Ledger(Budget(samples=1, tokens=100, usd=1.0))
        reservation = ledger.reserve(tokens=60, usd=0.25)
        assert reservation is not None
        assert (ledger.reserved_samples, ledger.reserved_tokens, ledger.reserved_usd) == (1, 60, 0.25)
        assert ledger.reserve(tokens=60) is None
        ledger.release(reservation)
        assert (ledger.reserved_samples, ledger.reserved_tokens, ledger.reserved_usd) == (0, 0, 0.0)
        assert (ledger.spent_samples, ledger.spent_tokens, ledger.spent_usd) == (0, 0, 0.0)
        assert ledger.reserve(tokens=100, usd=1.0) is not None

    def test_settling_replaces_the_reservation_by_the_actual_cost(self) -> None:
        ledger = Ledger(Budget(tokens=100))
        reservation = ledger.reserve(tokens=80)
        assert reservation is not None
        ledger.settle(reservation, Usage(prompt_tokens=10, completion_tokens=20))
        assert (ledger.reserved_tokens, ledger.spent_tokens) == (0, 30)
        assert ledger.reserve(tokens=70) is not None
        assert ledger.reserve(tokens=1) is None

    def test_a_token_overrun_is_recorded_and_stops_further_reservations(self) -> None:
        ledger = Ledger(Budget(tokens=50))
        reservation = ledger.reserve(tokens=40)
        assert reservation is not None
        ledger.settle(reservation, Usage(prompt_tokens=30, completion_tokens=30))  # a server ignoring max_tokens
        assert ledger.spent_tokens == 60
        assert ledger.exhausted
        assert ledger.reserve() is None

    def test_a_reservation_that_would_pass_a_cap_is_refused_without_side_effects(self) -> None:
        ledger = Ledger(Budget(samples=10, tokens=100, usd=1.0))
        assert ledger.reserve(tokens=101) is None
        assert ledger.reserve(usd=1.5) is None
        assert (ledger.reserved_samples, ledger.reserved_tokens, ledger.reserved_usd) == (0, 0, 0.0)

    def test_exhausted_means_not_even_a_free_sample_fits(self) -> None:
        ledger = Ledger(Budget(samples=1))
        assert not ledger.exhausted
        reservation = ledger.reserve()
        assert ledger.exhausted
        assert reservation is not None
        ledger.release(reservation)
        assert not ledger.exhausted


caps = st.fixed_dictionaries({
    "samples": st.one_of(st.none(), st.integers(min_value=0, max_value=12)),
    "tokens": st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    "usd": st.one_of(st.none(), st.floats(min_value=0.0, max_value=2.0, allow_nan=False)),
}).filter(lambda c: any(v is not None for v in c.values()))


class TestLedgerNeverExceedsTheCap:
    @settings(max_examples=120, deadline=None)
    @given(caps, st.data())
    def test_under_any_interleaving_of_reserve_settle_and_release(self, cap: dict, data: st.DataObject) -> None:
        budget = Budget(**cap)
        ledger = Ledger(budget)
        outstanding = []
        for _ in range(data.draw(st.integers(min_value=1, max_value=40), label="steps")):
            action = data.draw(st.sampled_from(["reserve", "reserve", "settle", "release"]), label="action")
            if action == "reserve":
                tokens = data.draw(st.integers(min_value=0, max_value=120), label="tokens")
                usd = data.draw(st.floats(min_value=0.0, max_value=0.6, allow_nan=False), label="usd")
                def fits(slack: float, tokens: int = tokens, usd: float = usd) -> bool:
                    return ((budget.samples is None
                             or ledger.spent_samples + ledger.reserved_samples + 1 <= budget.samples)
                            and (budget.tokens is None
                                 or ledger.spent_tokens + ledger.reserved_tokens + tokens <= budget.tokens)
                            and (budget.usd is None
                                 or ledger.spent_usd + ledger.reserved_usd + usd <= budget.usd + slack))

                fits_strictly, fits_loosely = fits(-USD_SLACK), fits(USD_SLACK)
                reservation = ledger.reserve(tokens=tokens, usd=usd)
                if reservation is None:
                    assert not fits_strictly
                else:
                    assert fits_loosely
                    outstanding.append((reservation, tokens, usd))
            elif outstanding:
                index = data.draw(st.integers(min_value=0, max_value=len(outstanding) - 1), label="which")
                reservation, tokens, usd = outstanding.pop(index)
                if action == "settle":
                    prompt = data.draw(st.integers(min_value=0, max_value=tokens), label="prompt")
                    completion = data.draw(st.integers(min_value=0, max_value=tokens - prompt), label="completion")
                    cost = data.draw(st.floats(min_value=0.0, max_value=usd, allow_nan=False), label="cost")
                    ledger.settle(reservation, Usage(prompt_tokens=prompt, completion_tokens=completion,
                                                     cost_usd=cost))
                else:
                    ledger.release(reservation)
            assert ledger.reserved_samples == len(outstanding)
            assert ledger.reserved_tokens == sum(t for _, t, _ in outstanding)
            if budget.samples is not None:
                assert ledger.spent_samples <= budget.samples
                assert ledger.spent_samples + ledger.reserved_samples <= budget.samples
            if budget.tokens is not None:
                assert ledger.spent_tokens <= budget.tokens
                assert ledger.spent_tokens + ledger.reserved_tokens <= budget.tokens
            if budget.usd is not None:
                assert ledger.spent_usd <= budget.usd + USD_SLACK
                assert ledger.spent_usd + ledger.reserved_usd <= budget.usd + USD_SLACK
        for reservation, _, _ in outstanding:
            ledger.release(reservation)
        assert (ledger.reserved_samples, ledger.reserved_tokens) == (0, 0)
        assert ledger.reserved_usd == pytest.approx(0.0, abs=USD_SLACK)
