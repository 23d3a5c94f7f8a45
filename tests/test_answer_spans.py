"""Answer spans in math delimiters and markdown, and the edges of the canonical keys: cases the mutation run found
untested (benchmarks/mutation.py answers). Each is a way real model output ends."""

from __future__ import annotations

import pytest

from dynscaling.answers import answers_match, canonical_key, extract_answer


class TestDelimitedSpans:
    @pytest.mark.parametrize(("text", "expected"), [
        ("The answer is $\\frac{1}{2}$ (not $3$).", "\\frac{1}{2}"),
        ("The answer is $$\\frac{1}{2}$$.", "\\frac{1}{2}"),
        ("The answer is $$\\frac{1}{2}$$ and $$3$$.", "\\frac{1}{2}"),
        ("The answer is \\(\\frac{1}{2}\\) or \\(3\\).", "\\frac{1}{2}"),
        ("The answer is \\[\\frac{3}{4}\\].", "\\frac{3}{4}"),
        ("The answer is \\[1\\] or \\[2\\].", "1"),
    ])
    def test_the_first_delimited_expression_after_the_phrase_is_the_answer(self, text: str, expected: str) -> None:
        assert extract_answer(text, "latex") == expected

    @pytest.mark.parametrize("text", [
        "The answer is f(x) = \\(x+1\\).",  # delimiters inside the answer, not around it
        "The answer is x \\in [0, 1\\].",  # a stray closing delimiter
    ])
    def test_delimiters_that_do_not_enclose_the_span_are_kept(self, text: str) -> None:
        assert extract_answer(text, "latex") == text.removeprefix("The answer is ").removesuffix(".")

    def test_dollar_signs_inside_a_text_answer_are_kept(self) -> None:
        assert extract_answer("The answer is between $5 and $6.", "text") == "between $5 and $6"

    def test_bold_markers_are_removed_and_letters_at_the_edges_kept(self) -> None:
        assert extract_answer("The answer is **Xavier**", "text") == "Xavier"
        assert extract_answer("The answer is **Xavier**.", "text") == "Xavier"  # it was "Xavier**"
        assert extract_answer("Final answer: **$18$**.", "latex") == "18"
        assert extract_answer("The answer is MAX.", "text") == "MAX"


class TestKeyEdges:
    def test_month_names_are_read_in_any_case_and_abbreviation(self) -> None:
        for spelling in ("September 5, 2021", "Sept. 5, 2021", "sep 5, 2021", "5 SEPTEMBER 2021"):
            assert canonical_key(spelling, "date") == "09/05/2021", spelling

    def test_trailing_junk_is_not_a_date_or_a_choice(self) -> None:
        assert canonical_key("5/1/2021X", "date") is None
        assert canonical_key("BX", "choice") is None

    @pytest.mark.parametrize("answer_type", ["number", "latex", "text", "date", "choice"])
    def test_without_a_gold_answer_nothing_matches(self, answer_type: str) -> None:
        assert answers_match("1/2", None, answer_type) is False
        assert answers_match(None, "1/2", answer_type) is False


class TestVerbatimClasses:
    def test_unparsed_answers_vote_as_their_own_text_when_asked(self) -> None:
        from dynscaling.answers import AnswerClusterer

        clusterer = AnswerClusterer("number", verbatim_unparsed=True)
        first = clusterer.assign("seven apples")
        assert first is not None and clusterer.assign(" seven apples ") == first
        assert clusterer.assign("nine pears") not in (None, first)
        assert AnswerClusterer("number").assign("seven apples") is None  # by default it abstains

    def test_trailing_junk_is_not_a_number(self) -> None:
        assert canonical_key("18X", "number") is None
