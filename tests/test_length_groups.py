"""The batch prior by answer length: groups from the batch's own lengths, and an allocator that uses them only
where they tell questions apart."""

from __future__ import annotations

import math
import random

import pytest

from dynscaling import Budget, Question, replay
from dynscaling.allocators.length_groups import LengthGroups
from dynscaling.answers import AnswerClusterer
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.types import Usage


def usage(tokens: int) -> Usage:
    return Usage(prompt_tokens=40, completion_tokens=tokens)


class TestLengthGroups:
    def test_terciles_of_the_batch(self) -> None:
        usages = [[usage(10 * (i + 1))] for i in range(30)]
        groups = LengthGroups(3, 30)
        groups.bind(usages)
        cuts = groups.cut_points(range(30))
        groups.cuts = cuts
        assert len(cuts) == 2
        assert [groups.group(i) for i in range(30)] == [0] * 10 + [1] * 10 + [2] * 10

    def test_a_question_moves_as_its_samples_land(self) -> None:
        usages: list[list[Usage]] = [[usage(10 * (i + 1))] for i in range(30)]
        groups = LengthGroups(3, 30)
        groups.bind(usages)
        groups.cuts = groups.cut_points(range(30))
        assert groups.group(0) == 0
        usages[0] += [usage(10_000)] * 5  # the engine appends; the running mean catches up on the next look
        assert groups.group(0) == 2

    def test_one_group_when_lengths_say_nothing(self) -> None:
        groups = LengthGroups(3, 30)
        assert groups.count == 1 and groups.group(0) == 0  # before any refit
        groups.bind([[usage(50)] for _ in range(30)])  # every length the same (or none reported)
        assert groups.cut_points(range(30)) == []
        assert LengthGroups(1, 30).cut_points(range(30)) == []

    def test_enough_questions_for_the_groups(self) -> None:
        distinct = [[usage(10 * (i + 1))] for i in range(30)]
        three = LengthGroups(3, 30)
        three.bind(distinct)
        assert three.cut_points(range(23)) == []  # 8 questions a group at least
        assert len(three.cut_points(range(24))) == 2
        two = LengthGroups(2, 30)
        two.bind(distinct)
        assert len(two.cut_points(range(30))) == 1  # the median

    def test_one_answer_of_another_length_is_enough_to_cut(self) -> None:
        # most answers of one length: the cut sits at that length, and the odd one out is on its own side
        for odd in (1, 5000):
            usages = [[usage(50)] for _ in range(29)] + [[usage(odd)]]
            groups = LengthGroups(3, 30)
            groups.bind(usages)
            groups.cuts = groups.cut_points(range(30))
            assert groups.cuts == [math.log1p(50)]
            assert (groups.group(29) == 0) == (odd == 1)

    def test_no_usages_and_unsampled_questions_are_group_zero(self) -> None:
        groups = LengthGroups(3, 4)
        assert groups.cut_points(range(4)) == []
        groups.bind([[], [usage(5)], [usage(50)], [usage(500)]])
        groups.cuts = [2.0, 4.0]
        assert groups.group(0) == 0
        assert [groups.group(i) for i in (1, 2, 3)] == [0, 1, 2]  # log(1 + tokens): 1.8, 3.9, 6.2


def pool_by_length(seed: int, questions: int = 240, samples: int = 12, equal_lengths: bool = False) -> Pool:
    """Half the questions answer briefly and agree; the other half answer at length and split, their first answer
    right only half the time: what the recorded pools show, in its plainest form."""
    rng = random.Random(seed)
    entries = []
    for i in range(questions):
        long = i % 2 == 1
        answers: list[str | None] = []
        for _ in range(samples):
            if not long:
                answers.append("1" if rng.random() < 0.97 else "2")
            else:
                u = rng.random()
                answers.append("1" if u < 0.5 else "2" if u < 0.8 else str(rng.randint(3, 6)))
        clusterer = AnswerClusterer("number")
        classes = tuple(clusterer.assign(a) for a in answers)
        tokens = 40 if equal_lengths else (300 if long else 40)
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "number", gold="1"), tuple(answers),
                                    tuple(answers), classes,
                                    tuple(usage(tokens if equal_lengths else tokens + rng.randint(0, 9))
                                          for _ in answers),
                                    clusterer))
    return Pool("by-length", "<memory>", tuple(entries))


def samples_by_group(result) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    short = [r.samples for i, r in enumerate(result.results) if i % 2 == 0]
    long = [r.samples for i, r in enumerate(result.results) if i % 2 == 1]
    return sum(short) / len(short), sum(long) / len(long)


def assert_same_decisions(pool: Pool, spec: str, other: str, seed: int) -> None:
    """Both specs, at 3 samples per question, give every question the same samples and the same answer."""
    budget = Budget(samples=3 * len(pool.entries))
    first, second = replay(pool, spec, budget, seed=seed), replay(pool, other, budget, seed=seed)
    assert [r.samples for r in first.results] == [r.samples for r in second.results]
    assert [r.answer for r in first.results] == [r.answer for r in second.results]


class TestAllocatorByLength:
    def test_long_answers_get_the_budget_when_they_are_the_unreliable_ones(self) -> None:
        grouped_long = plain_long = 0.0
        for seed in range(3):
            pool = pool_by_length(seed)
            budget = Budget(samples=3 * len(pool.entries))
            grouped = replay(pool, "dynscaling-parallel", budget, seed=seed)
            plain = replay(pool, "dynscaling-parallel:length_groups=1", budget, seed=seed)
            short, long = samples_by_group(grouped)
            assert long > 1.5 * short
            grouped_long += long
            plain_long += samples_by_group(plain)[1]
        # the plain prior sees the split only once a question's own tally shows it
        assert grouped_long > plain_long

    @pytest.mark.parametrize("seed", [0, 1])
    def test_equal_lengths_decide_exactly_as_one_group(self, seed: int) -> None:
        pool = pool_by_length(seed, equal_lengths=True)
        pool = Pool(pool.name, pool.path, tuple(
            PoolQuestion(e.question, e.texts, e.answers, e.classes, tuple(usage(40) for _ in e.usages), e.clusterer)
            for e in pool.entries))
        assert_same_decisions(pool, "dynscaling-parallel", "dynscaling-parallel:length_groups=1", seed)

    def test_length_groups_is_checked(self) -> None:
        from dynscaling.errors import ConfigError
        from dynscaling.strategies import parse_strategy

        with pytest.raises(ConfigError, match="length_groups"):
            parse_strategy("dynscaling-parallel:length_groups=0").build()
