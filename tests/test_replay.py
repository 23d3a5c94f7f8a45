"""Replay reproduces the reference figures of the shared pools (../shared/data/README.md).

Self-consistency over the whole pool and single-sample accuracy, averaged over 10 seeds (a seed fixes the order
samples are drawn in, which decides ties). Skipped when ../shared is absent.

Measured on the date pool with the default ``answers="extract"`` (our extractor rescues answers that upstream
kept as whole sentences): self-consistency 0.7778, single sample 0.7569 (0.7767 / 0.7556 with the first
extractor) -- against 0.717 / 0.675 upstream. On the GSM8K pools both modes agree: llama2 0.4517 / 0.3027,
GPT-4 0.9623 / 0.9424 upstream and 0.9625 / 0.9424 extracted.
"""

from __future__ import annotations

import statistics

import pytest

from dynscaling import Budget, replay
from dynscaling.backends.replay import ReplayBackend

SEEDS = range(10)
TOLERANCE = 0.005

# pool -> (self-consistency over the whole pool, single sample), as published with the data
REFERENCE = {
    "llama2-13b_gsm8k-400_pot_x48": (0.452, 0.300),
    "gpt35-turbo_date_cot_x40": (0.717, 0.675),
    "gpt4_gsm8k_x12": (0.964, 0.945),
}


_measured: dict[tuple[str, str], tuple[float, float]] = {}


def figures(shared_pool, name: str, answers: str = "extract") -> tuple[float, float]:  # noqa: ANN001
    """(self-consistency over the whole pool, single sample), each averaged over the seeds; measured once."""
    if (name, answers) not in _measured:
        _measured[name, answers] = measure(shared_pool(name, answers))
    return _measured[name, answers]


def measure(pool) -> tuple[float, float]:  # noqa: ANN001
    questions = len(pool.entries)
    whole = statistics.fmean(
        replay(pool, "sc", Budget(samples=pool.max_samples * questions), seed=s).accuracy for s in SEEDS)
    single = statistics.fmean(replay(pool, "single", Budget(samples=questions), seed=s).accuracy for s in SEEDS)
    return whole, single


class TestReferenceFigures:
    @pytest.mark.parametrize("name", sorted(REFERENCE))
    def test_upstream_answers_reproduce_the_published_figures(self, shared_pool, name: str) -> None:  # noqa: ANN001
        whole, single = figures(shared_pool, name, "upstream")
        expected_whole, expected_single = REFERENCE[name]
        assert whole == pytest.approx(expected_whole, abs=TOLERANCE)
        assert single == pytest.approx(expected_single, abs=TOLERANCE)

    @pytest.mark.parametrize("name", ["llama2-13b_gsm8k-400_pot_x48", "gpt4_gsm8k_x12"])
    def test_our_extractor_gives_the_same_figures_on_the_gsm8k_pools(self, shared_pool, name: str) -> None:  # noqa: ANN001
        whole, single = figures(shared_pool, name)
        expected_whole, expected_single = REFERENCE[name]
        assert whole == pytest.approx(expected_whole, abs=TOLERANCE)
        assert single == pytest.approx(expected_single, abs=TOLERANCE)

    def test_our_extractor_loses_nothing_against_upstream_on_the_date_pool(self, shared_pool) -> None:  # noqa: ANN001
        extracted = figures(shared_pool, "gpt35-turbo_date_cot_x40")
        upstream = figures(shared_pool, "gpt35-turbo_date_cot_x40", "upstream")
        assert extracted[0] >= upstream[0] - TOLERANCE
        assert extracted[1] >= upstream[1] - TOLERANCE


class TestWholePoolReplay:
    def test_self_consistency_over_the_whole_pool_uses_every_sample_once(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("gpt4_gsm8k_x12", "upstream")  # 9 to 12 samples per question
        result = replay(pool, "sc", Budget(samples=pool.max_samples * len(pool.entries)), seed=0)
        assert [r.samples for r in result.results] == [len(e.classes) for e in pool.entries]
        assert result.samples == sum(len(e.classes) for e in pool.entries)
        short = sum(len(e.classes) < pool.max_samples for e in pool.entries)
        assert result.failures.get("exhausted", 0) >= short

    def test_the_backend_serves_each_question_a_permutation_fixed_by_the_seed(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("gpt4_gsm8k_x12", "upstream")
        first, again, other = ReplayBackend(pool, 3), ReplayBackend(pool, 3), ReplayBackend(pool, 4)
        orders = {}
        for name, backend in (("first", first), ("again", again), ("other", other)):
            # ask in a different question order each time: a question's order must not depend on it
            indices = range(len(pool.entries)) if name != "again" else reversed(range(len(pool.entries)))
            orders[name] = {qi: [backend.draw(qi) for _ in pool.entries[qi].classes] for qi in indices}
        for qi, entry in enumerate(pool.entries):
            assert sorted(orders["first"][qi]) == list(range(len(entry.classes)))
            assert orders["first"][qi] == orders["again"][qi]
        assert any(orders["first"][qi] != orders["other"][qi] for qi in range(len(pool.entries)))
