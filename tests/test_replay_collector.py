"""Replay pauses Python's cyclic garbage collector while it runs, and leaves it as it found it afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dynscaling import Budget, Question, replay, run_replay
from dynscaling.answers import AnswerClusterer
from dynscaling.backends.replay import ReplayBackend
from dynscaling.engine import Engine
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.types import Usage


def small_pool(questions: int = 20, samples: int = 6) -> Pool:
    entries = []
    for i in range(questions):
        clusterer = AnswerClusterer("number")
        answers = tuple(str((i + j) % 3) if j % 4 else None for j in range(samples))
        classes = tuple(clusterer.assign(a) for a in answers)
        usages = tuple(Usage(prompt_tokens=10, completion_tokens=20 + j) for j in range(samples))
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "number", gold="1"), answers, answers,
                                    classes, usages, clusterer))
    return Pool("small", "<memory>", tuple(entries))


class WatchedBackend(ReplayBackend):
    """A replay backend that notes, at every draw, whether the collector is running."""

    def __init__(self, pool: Pool, seed: int = 0, fail_after: int | None = None) -> None:
        super().__init__(pool, seed)
        self.collector_on: list[bool] = []
        self.fail_after = fail_after

    def draw_class(self, question_index: int) -> tuple[int | None, Usage]:
        self.collector_on.append(gc.isenabled())
        if self.fail_after is not None and len(self.collector_on) > self.fail_after:
            raise RuntimeError("the source broke")
        return super().draw_class(question_index)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
class TestCollector:
    def test_paused_during_the_run_and_running_after(self) -> None:
        pool = small_pool()
        engine = Engine(pool.questions, "dynscaling-parallel", Budget(samples=60), needs_messages=False,
                        clusterers=[e.clusterer for e in pool.entries])
        backend = WatchedBackend(pool)
        result = run_replay(engine, backend)
        assert result.samples == 60 == backend.served
        assert backend.collector_on and not any(backend.collector_on)
        assert gc.isenabled()

    def test_a_caller_who_turned_it_off_finds_it_off(self) -> None:
        gc.disable()
        result = replay(small_pool(), "sc", Budget(samples=40))
        assert result.samples == 40
        assert not gc.isenabled()

    def test_running_again_after_a_run_that_raised(self) -> None:
        pool = small_pool()
        engine = Engine(pool.questions, "sc", Budget(samples=60), needs_messages=False,
                        clusterers=[e.clusterer for e in pool.entries])
        backend = WatchedBackend(pool, fail_after=5)
        with pytest.raises(RuntimeError, match="the source broke"):
            run_replay(engine, backend)
        assert not any(backend.collector_on)
        assert gc.isenabled()
        assert engine.ledger.spent_samples == 5  # what was drawn before the failure is still counted
