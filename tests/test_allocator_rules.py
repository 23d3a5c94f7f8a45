"""Allocator rules a user picks a strategy for, checked through the engine on fixed answer streams: how
Blend-ASC paces its ranking by the budget, ..."""

from __future__ import annotations

from dynscaling import Budget, Engine, Question, Usage

# Each question's answer classes in the order a replay serves them (None: a sample with no answer). Five
# questions whose Beta and PPR rankings disagree late in the run, so the pacing shows in the order served.
STREAMS: list[list[int | None]] = [
    [0, 1, None, 1, 0, None, 1, None, 0, None, None, None],
    [1, 2, 0, None, 2, 1, None, 0, 1, 0, 0, 0],
    [0, None, 1, 2, 0, 0, 0, 0, 0, 0, None, 2],
    [None, 1, None, 0, 0, None, 2, None, 1, 2, 2, 1],
    [0, 1, None, 0, 2, None, 1, 0, 0, 0, 1, 0],
]


def served_order(strategy: str, budget: Budget, streams: list[list[int | None]] = STREAMS) -> list[int]:
    """The questions in the order the engine sampled them, one token per sample."""
    engine = Engine([Question(f"q{i}", "q", "number") for i in range(len(streams))], strategy, budget,
                    needs_messages=False, seed=1)
    served: list[int] = []

    def draw(qi: int) -> tuple[int | None, Usage]:
        served.append(qi)
        return streams[qi][sum(1 for s in served if s == qi) - 1], Usage(prompt_tokens=1)

    engine.run_sync(draw)
    return served


class TestBlendAscPacing:
    """Blend-ASC moves from the Beta ranking to PPR's as the budget is spent; with a sample budget it paces
    against that budget, and only a token or dollar budget falls back to ``horizon`` samples per question."""

    def test_with_a_sample_budget_the_horizon_changes_nothing(self) -> None:
        budget = Budget(samples=4 * len(STREAMS))
        assert served_order("blend-asc:horizon=2", budget) == served_order("blend-asc:horizon=8", budget)

    def test_a_token_budget_paces_against_the_horizon(self) -> None:
        samples = 4 * len(STREAMS)
        by_samples = served_order("blend-asc", Budget(samples=samples))
        # one token per sample: the token cap ends the run after the same number of samples (the last draw is
        # the one that goes over, and is not counted)
        assert served_order("blend-asc:horizon=4", Budget(tokens=samples))[:samples] == by_samples
        assert served_order("blend-asc:horizon=8", Budget(tokens=samples))[:samples] != by_samples
