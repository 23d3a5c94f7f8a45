"""The batch prior by answer form: an answer's form from its canonical key, the batch's usual form among leaders,
and an allocator that fits the unusual ones apart only where the batch has them."""

from __future__ import annotations

import random

import pytest

from dynscaling import Budget, Question, replay
from dynscaling.allocators.answer_forms import AnswerForms, answer_form
from dynscaling.answers import AnswerClusterer
from dynscaling.errors import ConfigError
from dynscaling.pools import Pool, PoolQuestion
from dynscaling.strategies import parse_strategy
from dynscaling.types import Usage
from dynscaling.votes import Tally
from test_length_groups import assert_same_decisions


@pytest.mark.parametrize(("answer", "answer_type", "form"), [
    ("18", "number", "9"),
    ("1,234", "number", "9"),
    ("18.0", "number", "9"),
    ("3/4", "number", "9/9"),
    ("0.75", "number", "9/9"),  # a decimal is a fraction by value
    ("-2", "number", "-9"),
    ("05/01/2021", "date", "9/9/9"),
    ("\\frac{3}{4}", "latex", "9/9"),
    ("2\\sqrt{3}", "latex", "9\\sqrt{9}"),
    ("(B)", "choice", "a"),
    ("New York", "text", "a a"),
])
def test_the_form_of_an_answer(answer: str, answer_type: str, form: str) -> None:
    clusterer = AnswerClusterer(answer_type)
    cls = clusterer.assign(answer)
    assert cls is not None
    assert answer_form(clusterer.key(cls)) == form


def forms_of(answers: list[list[str]], answer_type: str = "number") -> tuple[AnswerForms, list[Tally],
                                                                         list[AnswerClusterer]]:
    """Each question's answers counted, and the forms of the leaders scanned as at a refit."""
    tallies = [Tally() for _ in answers]
    clusterers = [AnswerClusterer(answer_type) for _ in answers]
    for qi, own in enumerate(answers):
        for answer in own:
            tallies[qi].add(clusterers[qi].assign(answer))
    forms = AnswerForms(clusterers, len(answers))
    forms.scan([t.leader for t in tallies])
    return forms, tallies, clusterers


class TestAnswerForms:
    def test_the_usual_form_is_the_leaders_most_common(self) -> None:
        forms, tallies, _ = forms_of([["4"]] * 20 + [["1/2"]] * 8 + [["-3", "5"]] * 2)
        usual = forms.choose_usual()
        assert usual == "9"
        assert [forms.unusual(qi, tallies[qi].leader, usual) for qi in (0, 20, 28)] == [False, True, True]
        assert not forms.unusual(20, tallies[20].leader, None)

    def test_no_group_with_a_handful_of_unusual_leaders(self) -> None:
        forms, _, _ = forms_of([["4"]] * 20 + [["1/2"]] * 7)
        assert forms.choose_usual() is None

    def test_a_scan_says_whether_the_leaders_have_more_than_one_form(self) -> None:
        tallies = [Tally() for _ in range(3)]
        clusterers = [AnswerClusterer("date") for _ in range(3)]
        for tally, clusterer, answer in zip(tallies, clusterers, ["05/01/2021", "12/31/1999", "01/02/2003"],
                                            strict=True):
            tally.add(clusterer.assign(answer))
        forms = AnswerForms(clusterers, 3)
        assert not forms.scan([t.leader for t in tallies])
        tallies[2].add(clusterers[2].assign("a week ago") or None)  # no date: abstains
        assert not forms.scan([t.leader for t in tallies])
        forms, _, _ = forms_of([["4"], ["1/2"]])
        assert forms.choose_usual() is None  # two forms, but one unusual leader is too few for a group

    def test_nothing_without_answer_classes_or_leaders(self) -> None:
        forms = AnswerForms(None, 3)
        assert not forms.scan([None, None, None]) and forms.choose_usual() is None
        assert forms.form(0, 0) is None
        assert not AnswerForms([AnswerClusterer("number")] * 3, 3).scan([None] * 3)

    def test_a_class_the_clusterer_never_made_has_no_form(self) -> None:
        """``Engine.run_sync`` takes classes from its source as they come: they may be unknown to the clusterer."""
        forms = AnswerForms([AnswerClusterer("number") for _ in range(10)], 10)
        assert not forms.scan([2] * 10)
        assert forms.choose_usual() is None and not forms.unusual(0, 2, "9")

    def test_a_leader_is_read_as_it_stands(self) -> None:
        forms, tallies, clusterers = forms_of([["1/2"]] * 8 + [["4"]] * 9)
        assert forms.choose_usual() == "9" and forms.unusual(0, tallies[0].leader, "9")
        tallies[0].add(clusterers[0].assign("4"))  # 1-1: the fraction got there first and still leads
        assert forms.unusual(0, tallies[0].leader, "9")
        tallies[0].add(clusterers[0].assign("4"))
        assert not forms.unusual(0, tallies[0].leader, "9")
        assert forms.choose_usual() == "9"  # the counts are the last scan's
        forms.scan([t.leader for t in tallies])
        assert forms.choose_usual() is None  # seven unusual leaders left: too few for a group

    def test_equal_counts_choose_by_sort_order_not_by_arrival(self) -> None:
        one, _, _ = forms_of([["1/2"]] * 9 + [["4"]] * 9)
        other, _, _ = forms_of([["4"]] * 9 + [["1/2"]] * 9)
        assert one.choose_usual() == other.choose_usual() == "9"


def pool_by_form(seed: int, questions: int = 240, samples: int = 12, one_form: bool = False) -> Pool:
    """Two thirds of the questions agree on a whole number; the rest split between a whole number and two
    fractions (or, with ``one_form``, two other whole numbers): a model whose fractions are slips. Every answer
    has the same length, so only the form can tell the two kinds apart before a question's own tally does."""
    rng = random.Random(seed)
    entries = []
    for i in range(questions):
        answers: list[str | None] = []
        for _ in range(samples):
            if i % 3:
                answers.append("5" if rng.random() < 0.97 else "6")
            else:
                u = rng.random()
                slips = ("8", "9") if one_form else ("5/2", "7/3")
                answers.append("5" if u < 0.4 else slips[0] if u < 0.7 else slips[1])
        clusterer = AnswerClusterer("number")
        classes = tuple(clusterer.assign(a) for a in answers)
        usages = tuple(Usage(prompt_tokens=40, completion_tokens=60) for _ in answers)
        entries.append(PoolQuestion(Question(f"q{i}", f"question {i}", "number", gold="5"), tuple(answers),
                                    tuple(answers), classes, usages, clusterer))
    return Pool("by-form", "<memory>", tuple(entries))


def split_share(result) -> float:  # type: ignore[no-untyped-def]
    """The share of the samples spent on the splitting third."""
    split = sum(r.samples for i, r in enumerate(result.results) if i % 3 == 0)
    return split / result.samples


class TestAllocatorByForm:
    def test_questions_led_by_an_unusual_form_get_the_budget_when_those_split(self) -> None:
        for seed in range(3):
            pool = pool_by_form(seed)
            budget = Budget(samples=2 * len(pool.entries))
            grouped = replay(pool, "dynscaling-parallel", budget, seed=seed)
            plain = replay(pool, "dynscaling-parallel:form_groups=false", budget, seed=seed)
            # the plain prior sees the split only once a question's own tally shows it
            assert split_share(grouped) > split_share(plain) + 0.02
            assert grouped.accuracy >= plain.accuracy

    @pytest.mark.parametrize("seed", [0, 1])
    def test_one_form_decides_exactly_as_without_form_groups(self, seed: int) -> None:
        assert_same_decisions(pool_by_form(seed, one_form=True), "dynscaling-parallel",
                              "dynscaling-parallel:form_groups=false", seed)

    def test_form_groups_takes_a_truth_value(self) -> None:
        assert parse_strategy("dynscaling-parallel:form_groups=off").build()[1].form_groups is False
        with pytest.raises(ConfigError, match="form_groups must be true or false"):
            parse_strategy("dynscaling-parallel:form_groups=maybe")
