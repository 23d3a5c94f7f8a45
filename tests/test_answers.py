"""Answer extraction and equivalence, proved on real model outputs.

Three layers:

- ``tests/cases/*.json``: tables of real outputs (MIT / CC-BY pools only) with the answer a human reads in them;
- hand-written cases for each rule (``<think>``, boxes, phrases, numbers, dates, letters, text, abstention);
- run-time checks on the whole shared pools (``../shared/data``, skipped when absent), including the pools that
  are "evaluation only": their texts are read here at run time and never copied into the project.
"""

from __future__ import annotations

import doctest
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest

from dynscaling import _mathverify, answers
from dynscaling.answers import (
    AnswerClusterer,
    answers_match,
    canonical_key,
    extract_answer,
    strip_thinking,
)
from dynscaling.errors import ConfigError

CASES_DIR = Path(__file__).parent / "cases"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))


def _corpus() -> list[tuple[str, dict]]:
    found = []
    for path in CASE_FILES:
        document = json.loads(path.read_text(encoding="utf-8"))
        for case in document["cases"]:
            found.append((document["answer_type"], case))
    return found


def _case_id(item: tuple[str, dict]) -> str:
    m = re.fullmatch(r"(\S+) question (\S+) sample (\d+)", item[1]["source"])
    assert m, item[1]["source"]
    return f"{m[1].split('_')[0]}-q{m[2]}-s{m[3]}"


CORPUS = _corpus()


def _in_thread(function, *args):  # noqa: ANN001, ANN002, ANN202
    """Run ``function(*args)`` on a fresh ``threading.Thread`` (as the async server does) and return its result."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = function(*args)
        except BaseException as error:  # pragma: no cover (re-raised below)
            result["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the check never came back"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


# --- the corpus of real cases ---------------------------------------------------------------------------------------

class TestCorpusOfRealOutputs:
    def test_the_corpus_has_tens_of_cases_in_each_file(self) -> None:
        counts = Counter(case["source"].split()[0] for _, case in CORPUS)
        assert set(counts) == {
            "qwen2.5-math-instruct_math-100_x8",
            "chatgpt_date_natural-program_x10",
            "code-davinci-002_date_least-to-most_x40",
        }
        assert all(20 <= n <= 60 for n in counts.values()), counts

    @pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
    def test_every_file_names_its_origin_and_a_licence_that_allows_copying(self, path: Path) -> None:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["origin"] and document["pool"] and document["changes"]
        assert document["licence"].startswith(("MIT", "CC-BY"))
        for case in document["cases"]:
            assert case["source"].startswith(document["pool"] + " question ")
            assert case["shape"] and case["text"]

    @pytest.mark.parametrize("answer_type, case", CORPUS, ids=[_case_id(item) for item in CORPUS])
    def test_the_extractor_reads_the_answer_a_human_reads(self, answer_type: str, case: dict) -> None:
        assert extract_answer(case["text"], answer_type) == case["expected"], case["shape"]

    @pytest.mark.parametrize("answer_type, case", CORPUS, ids=[_case_id(item) for item in CORPUS])
    def test_the_canonical_key_and_the_grade_are_as_recorded(self, answer_type: str, case: dict) -> None:
        expected = case["expected"]
        assert canonical_key(expected, answer_type) == case["key"]
        assert answers_match(expected, case["gold"], answer_type) is case["matches_gold"]

    def test_padded_and_unpadded_spellings_of_one_answer_fall_in_one_vote_class(self) -> None:
        same = [case["expected"] for _, case in CORPUS if "question 246 sample" in case["source"]]
        assert sorted(same) == ["07/10/1972", "7/10/1972"]
        clusterer = AnswerClusterer("date")
        assert clusterer.assign(same[0]) == clusterer.assign(same[1]) == 0


# --- reasoning blocks -----------------------------------------------------------------------------------------------

class TestThinkingIsStripped:
    def test_an_answer_inside_think_is_not_the_answer(self) -> None:
        text = "<think>First guess: the answer is 5. No, wait.</think>So the answer is 7."
        assert extract_answer(text, "number") == "7"

    def test_an_unclosed_think_means_the_answer_never_came(self) -> None:
        assert extract_answer("<think>Let me see... the answer is \\boxed{5}", "latex") is None
        assert extract_answer("<think>Let me see... the answer is 5", "number") is None

    def test_a_closing_tag_alone_ends_the_reasoning(self) -> None:
        assert strip_thinking("reasoning the model was prompted into</think> Final answer: 12") == " Final answer: 12"
        assert extract_answer("maybe 3 </think> The answer is $\\boxed{4}$.", "number") == "4"

    def test_only_the_text_after_the_last_closing_tag_counts(self) -> None:
        text = "<think>a</think>draft: 1<think>b</think>The answer is 2."
        assert extract_answer(text, "number") == "2"

    def test_a_new_think_left_open_after_the_answer_is_dropped(self) -> None:
        assert strip_thinking("<think>a</think>The answer is 7. <think>more") == "The answer is 7. "

    def test_the_tags_are_matched_in_any_case(self) -> None:
        assert extract_answer("<THINK>5</THINK>Answer: 6", "number") == "6"


# --- boxes and answer phrases ---------------------------------------------------------------------------------------

class TestBoxedAnswers:
    def test_nested_braces_are_balanced(self) -> None:
        assert extract_answer("So $x = \\boxed{\\frac{1}{\\sqrt{2}}}$.", "latex") == "\\frac{1}{\\sqrt{2}}"

    def test_deeper_nesting_and_escaped_braces_stay_whole(self) -> None:
        text = "Hence \\boxed{\\left\\{ \\frac{a^{2}}{b_{1}} \\right\\}} and done."
        assert extract_answer(text, "latex") == "\\left\\{ \\frac{a^{2}}{b_{1}} \\right\\}"

    def test_the_last_box_wins(self) -> None:
        assert extract_answer("First \\boxed{3}, corrected: \\boxed{4}.", "latex") == "4"

    def test_a_truncated_last_box_falls_back_to_the_one_before(self) -> None:
        assert extract_answer("We had \\boxed{12}. Recheck: \\boxed{\\frac{1}{", "latex") == "12"

    def test_a_box_without_braces_and_an_fbox_are_read(self) -> None:
        assert extract_answer("The result is \\boxed 5.", "number") == "5"
        assert extract_answer("\\fbox{42}", "number") == "42"

    def test_a_box_beats_an_answer_phrase(self) -> None:
        assert extract_answer("The answer is 3.\nActually \\boxed{4}", "number") == "4"

    def test_a_numeric_fraction_in_a_box_is_a_number(self) -> None:
        assert extract_answer("\\boxed{\\dfrac{3}{4}}", "number") == "3/4"
        assert canonical_key(extract_answer("\\boxed{\\frac{1}{2}}", "number"), "number") == "1/2"


class TestAnswerPhrases:
    @pytest.mark.parametrize("text, expected", [
        ("so she makes 9 * 2 = $18 per day. The answer is 18.", "18"),
        ("The final answer is: 1,250 dollars", "1,250"),
        ("Final answer: -3", "-3"),
        ("**Final Answer:** 27", "27"),
        ("### Final Answer\n\n64", "64"),
        ("**Answer:** 9", "9"),
        ("Q: how many?\nA: 12", "12"),
        ("She earns 2 * 9 = 18 dollars.\nans = 18", "18"),
        ("My answer is 5 apples, because 2 + 3 = 5.", "5"),
    ])
    def test_the_first_number_after_the_last_phrase(self, text: str, expected: str) -> None:
        assert extract_answer(text, "number") == expected

    def test_the_last_phrase_wins(self) -> None:
        text = "Earlier I thought the answer is 4.\nRechecking, the answer is 6."
        assert extract_answer(text, "number") == "6"

    @pytest.mark.parametrize("text, answer_type, expected", [
        ("A: Let me think it over. The answer is yajo.", "text", "yajo"),
        ("A: 3 cats, so the answer is 5.", "number", "5"),
        ("Answer: the first guess was 02/01/2020, but the answer is 03/01/2020.", "date", "03/01/2020"),
    ])
    def test_the_last_phrase_wins_even_on_the_line_of_an_earlier_one(self, text: str, answer_type: str,
                                                                    expected: str) -> None:
        assert extract_answer(text, answer_type) == expected

    def test_a_phrase_with_no_value_falls_back_to_the_final_line(self) -> None:
        text = "Final Answer: what is the total?\nThe total is 3 + 4 = 7."
        assert extract_answer(text, "number") == "7"

    def test_latex_after_a_phrase_loses_its_dollar_signs_and_full_stop(self) -> None:
        assert extract_answer("The final answer is $\\frac{3}{4}$. I hope it is correct.", "latex") == "\\frac{3}{4}"
        assert extract_answer("Final answer: \\(2\\sqrt{3}\\).", "latex") == "2\\sqrt{3}"


class TestLookalikesOfEvaluationOnlyPools:
    """Shapes seen in the pools that may not be copied (gpt-3.5 date, GPT-4 and LLaMA-2 GSM8K), written anew here:
    each is a disagreement kind found by ``benchmarks/extraction_agreement.py``."""

    @pytest.mark.parametrize("text, expected", [
        ("Explain: we do not know the day, so suppose it is 12/30/2014.\n"
         "A: 01/01/2015 (assuming the current date is 12/30/2014)", "01/01/2015"),
        ("A: It depends on the day. If today is 12/22/2014, then 10 days ago was 12/12/2014.", "12/12/2014"),
        ("A: It depends. If today is March 3rd, 2015, then a week later is March 10th, 2015, which is 03/10/2015.",
         "March 10th, 2015"),
        ("A: 03/02/1987 in UK format, 02/03/1987 in US format.", "02/03/1987"),
        ("A: 03/09/1987 (for the UK), March 9th, 1987 (for the US)", "March 9th, 1987"),
        ("The date one year ago is 02/01/1986 (in the UK format) or 01/02/1986 (in the US format).", "01/02/1986"),
        ("So the date is 11/04/1990 in the standard format. In the UK format it would be written 04/11/1990.",
         "11/04/1990"),
        ("It could be 05/01/2011, 05/02/2011, ..., 05/31/2011.", None),
        ("A: It depends. If it is a leap year, then it is 03/01/2012. If it is not, then it is 03/01/2013.", None),
        ("If today is 05/05/2015, tomorrow is 05/06/2015. If today is 05/06/2015, tomorrow is 05/07/2015.", None),
        ("Hence one week ago from 06/15/2001 is 06/08/2001.", "06/08/2001"),
    ])
    def test_date_answers_of_chain_of_thought(self, text: str, expected: str | None) -> None:
        assert extract_answer(text, "date") == expected

    @pytest.mark.parametrize("text", [
        "# Python code, return ans\ncookies = 12\nans = cookies - 5",
        "from datetime import date\n# The answer formatted with %m/%d/%Y is\nans = date(2001, 6, 8)",
        "today = date(2001, 6, 15)\n# a week ago\nans = today.strftime('%m/%d/%Y')",
    ])
    def test_programs_hold_no_answer_until_run_which_is_never(self, text: str) -> None:
        assert answers.is_program(text)
        assert extract_answer(text, "number") is None and extract_answer(text, "date") is None

    @pytest.mark.parametrize("text, expected", [
        ("She has 12 - 5 = <<12-5=7>>7 cookies left.\nans = 7", "7"),
        ("The room is 9 feet long, so P = 2 * (length + width) = 2 * (9 + 40) = 98 feet.\nans = 98", "98"),
    ])
    def test_chain_of_thought_closed_by_ans_is_no_program(self, text: str, expected: str) -> None:
        assert not answers.is_program(text)
        assert extract_answer(text, "number") == expected


# --- numbers --------------------------------------------------------------------------------------------------------

class TestNumbers:
    @pytest.mark.parametrize("text, expected", [
        ("It costs $1,000,000.", "1,000,000"),
        ("The temperature is -12 degrees.", "-12"),
        ("The temperature is \u221212 degrees.", "-12"),
        ("She ran 3.75 miles.", "3.75"),
        ("He keeps 2/3 of it.", "2/3"),
        ("The distance is 1.5e+10 metres.", "1.5e+10"),
        ("In all, 16 - 7 = 9", "9"),
        ("That is 10{,}000 steps.", "10,000"),
        ("That is 1\\,000 steps.", "1000"),
    ])
    def test_the_value_on_the_final_line(self, text: str, expected: str) -> None:
        assert extract_answer(text, "number") == expected

    def test_a_minus_sign_must_touch_its_digits(self) -> None:
        assert extract_answer("The answer is 20 - 5.", "number") == "20"

    def test_digits_inside_words_times_and_dates_are_not_numbers(self) -> None:
        assert extract_answer("Add H2O to step Q1.", "number") is None
        assert extract_answer("They leave at 2:30 pm.", "number") is None
        assert extract_answer("It was 5/1/2021.", "number") is None

    def test_two_different_values_offered_together_are_no_single_answer(self) -> None:
        assert extract_answer("So she has 12 apples and 7 pears.", "number") is None
        assert extract_answer("The answer is 3 red, 5 green", "number") is None
        assert extract_answer("It is either 4 or 6.", "number") is None
        assert extract_answer("The answer is between 10 and 20.", "number") is None

    def test_the_same_value_twice_is_still_one_answer(self) -> None:
        assert extract_answer("The answer is 18 or $18.00.", "number") == "18"

    def test_maths_with_subscripts_is_not_a_program(self) -> None:
        assert extract_answer("a_1 = 3\na_2 = 5\nso the sum is 8", "number") == "8"
        assert extract_answer("Adding up:\nTotal = 30 + 20 = 50", "number") == "50"
        assert extract_answer("x = 200 / 20", "number") == "200/20"

    def test_an_assignment_computed_from_variables_is_code(self) -> None:
        assert extract_answer("marbles = 3 * 4\nans = marbles - 5", "number") is None

    def test_a_program_holds_no_answer_until_it_is_run(self) -> None:
        program = "# Python code, return ans\ntotal_eggs = 16\neggs_used = 3 + 4\nans = (total_eggs - eggs_used) * 2"
        assert extract_answer(program, "number") is None
        loop = "def solution():\n    ans = 0\n    for i in range(3):\n        ans += 2\n"
        assert extract_answer(loop, "number") is None

    def test_a_final_note_or_a_pleasantry_does_not_hide_the_answer_line(self) -> None:
        assert extract_answer("So she pays 45 dollars.\nNote: tax is included.", "number") == "45"
        assert extract_answer("So she pays 45 dollars.\n\nI hope this helps!", "number") is None


class TestCanonicalKeys:
    @pytest.mark.parametrize("spellings, answer_type", [
        (["18.0", "18", "$18", "18.00", "\\$18", "18.", " 18 "], "number"),
        (["1,000", "1000", "$1,000.00", "1000.0", "1{,}000"], "number"),
        (["0.5", "1/2", ".5", "2/4", "\\frac{1}{2}"], "number"),
        (["-3", "-3.0", "\u22123", "-$3"], "number"),
        (["5 \\text{ cm}", "5", "5\\text{cm}"], "latex"),
        (["1.5e3", "1500", "1,500"], "number"),
        (["50%", "50", "50.0 %"], "number"),
        (["5/1/2021", "05/01/2021", "May 1, 2021", "May 1st, 2021", "1 May 2021", "2021-05-01", "05/01/2021."],
         "date"),
        (["Sept. 9, 1909", "09/09/1909", "9th of September 1909"], "date"),
        (["(B)", "B", "b", "B.", "B) 42", "(B) Paris", "option B", "\\text{(B)}", "**B**"], "choice"),
        (["\\frac{1}{2}", "\\dfrac12", "0.5", "1/2", "\\tfrac{1}{2}"], "latex"),
        (["10{,}000", "10000", "10,000"], "latex"),
        (["-\\frac{40}{153}", "\u2212\\frac{40}{153}", "-\\dfrac{40}{153}"], "latex"),
        (["90^\\circ", "90", "90\u00b0"], "latex"),
        (["4:30 \\text{ p.m.}", "4:30p.m."], "latex"),
        (["Yes", "yes.", "The yes", "  YES  ", "\uff39\uff25\uff33"], "text"),
        (["] ) }", "]) }", "]  )  }"], "text"),
    ])
    def test_equal_answers_have_equal_keys(self, spellings: list[str], answer_type: str) -> None:
        keys = {canonical_key(s, answer_type) for s in spellings}
        assert len(keys) == 1 and None not in keys, keys

    @pytest.mark.parametrize("a, b, answer_type", [
        ("18", "18.5", "number"),
        ("1/2", "1/3", "number"),
        ("05/01/2021", "01/05/2021", "date"),
        ("A", "B", "choice"),
        ("\\frac{1}{2}", "\\frac{1}{3}", "latex"),
        ("2\\pi r", "2\\pir", "latex"),
        ("yes", "no", "text"),
    ])
    def test_different_answers_have_different_keys(self, a: str, b: str, answer_type: str) -> None:
        assert canonical_key(a, answer_type) != canonical_key(b, answer_type)

    def test_the_keys_are_the_documented_canonical_forms(self) -> None:
        assert canonical_key("18.00", "number") == "18"
        assert canonical_key("1,000", "number") == "1000"
        assert canonical_key("0.5", "number") == "1/2"
        assert canonical_key("5/1/2021", "date") == "05/01/2021"
        assert canonical_key("(C)", "choice") == "C"

    @pytest.mark.parametrize("answer, answer_type", [
        ("1,2", "number"),
        ("3, 4", "number"),
        ("18 dollars", "number"),
        ("2:00 pm", "number"),
        ("1/0", "number"),
        ("five", "number"),
        ("02/29/2017", "date"),
        ("12/32/1929", "date"),
        ("26/01/1987", "date"),
        ("11/xx/2020", "date"),
        ("Tomorrow is 7/9/1972", "date"),
        ("I think it's B", "choice"),
        ("A great answer", "choice"),
        ("", "latex"),
        ("  ", "text"),
        ("?!", "text"),
    ])
    def test_an_answer_that_is_not_one_clean_value_has_no_key(self, answer: str, answer_type: str) -> None:
        assert canonical_key(answer, answer_type) is None

    def test_none_has_no_key_and_an_unknown_type_is_refused(self) -> None:
        assert canonical_key(None, "number") is None
        with pytest.raises(ConfigError):
            canonical_key("1", "integer")
        with pytest.raises(ConfigError):
            extract_answer("1", "integer")


# --- dates ----------------------------------------------------------------------------------------------------------

class TestDates:
    @pytest.mark.parametrize("text, expected", [
        ("So the answer is 05/01/2021.", "05/01/2021"),
        ("The day after is Wed, 3/4/1999.", "3/4/1999"),
        ("A week before 10/15/1924 is 10/8/1924.", "10/8/1924"),
        ("The date was March 3rd, 2003.", "March 3rd, 2003"),
        ("The date was the 28th of February 2017.", "28th of February 2017"),
        ("In ISO form the date is 2017-02-28.", "2017-02-28"),
        ("The date is 02/29/2024 (or 02/28/2024 in a common year).", "02/29/2024"),
    ])
    def test_the_date_of_the_answer(self, text: str, expected: str) -> None:
        assert extract_answer(text, "date") == expected

    @pytest.mark.parametrize("text", [
        "It is either 03/04/2019 or 03/05/2019, depending on the year.",
        "The date lies between 06/01/2022 and 06/30/2022.",
        "We cannot tell without knowing today's date.",
        "Today was 04/19/1969.\nWithout the current year we cannot say what tomorrow is.",
        "The date is 07/14/YYYY.",
    ])
    def test_no_single_date_means_no_answer(self, text: str) -> None:
        assert extract_answer(text, "date") is None

    def test_an_impossible_date_is_extracted_but_never_votes(self) -> None:
        assert extract_answer("So the answer is 02/29/2015.", "date") == "02/29/2015"
        assert canonical_key("02/29/2015", "date") is None
        assert AnswerClusterer("date").assign("02/29/2015") is None


# --- multiple choice ------------------------------------------------------------------------------------------------

class TestChoiceLetters:
    @pytest.mark.parametrize("letter", list("ABCDEFGHIJ"))
    def test_each_letter_a_to_j_is_read(self, letter: str) -> None:
        assert extract_answer(f"The answer is ({letter}).", "choice") == letter
        assert extract_answer(f"Answer: {letter}", "choice") == letter
        assert canonical_key(f"({letter})", "choice") == letter

    @pytest.mark.parametrize("text, expected", [
        ("The answer is (B).", "B"),
        ("Answer: D", "D"),
        ("(C)", "C"),
        ("\\boxed{\\text{(E)}}", "E"),
        ("After checking each one, I pick option g.", "G"),
        ("So the correct choice is (K).", "K"),
        ("A quick check shows I was wrong before: the answer is C", "C"),
        ("I think it is F", "F"),
    ])
    def test_the_letter_of_the_answer(self, text: str, expected: str) -> None:
        assert extract_answer(text, "choice") == expected

    def test_the_article_a_and_the_pronoun_i_are_not_letters(self) -> None:
        assert extract_answer("A month ago I was sure.", "choice") is None
        assert extract_answer("E.g. this one.", "choice") is None

    def test_two_letters_offered_together_are_no_single_answer(self) -> None:
        assert extract_answer("The answer is (A) or (C).", "choice") is None
        assert extract_answer("So C fits, but B does too.", "choice") is None
        assert extract_answer("The answer is (B), not (C).", "choice") == "B"


# --- free text ------------------------------------------------------------------------------------------------------

class TestText:
    def test_text_is_read_after_a_phrase_or_in_a_box(self) -> None:
        assert extract_answer("Plausible? So the answer is yes.", "text") == "yes"
        assert extract_answer("\\boxed{\\text{valid}}", "text") == "\\text{valid}"
        assert canonical_key("\\text{valid}", "text") == "valid"

    def test_text_with_no_phrase_and_no_box_has_no_answer(self) -> None:
        assert extract_answer("It depends on the reading.", "text") is None

    def test_normalisation_ignores_case_articles_punctuation_and_spacing(self) -> None:
        assert canonical_key("The Eiffel  Tower!", "text") == canonical_key("eiffel tower", "text") == "eiffel tower"
        assert canonical_key("apple banana cherry", "text") == "apple banana cherry"

    def test_a_bracket_sequence_is_an_answer_not_punctuation(self) -> None:
        assert extract_answer("So the answer is ] ) }.", "text") == "] ) }"
        assert canonical_key("] ) }", "text") == "] ) }"
        assert canonical_key("] ) }", "text") != canonical_key("] ]", "text")


# --- abstention -----------------------------------------------------------------------------------------------------

GARBAGE = [None, "", "   ", "I don't know.", "N/A", "???", "<think>", "\\boxed{}", "The answer is: unknown."]


class TestAbstention:
    @pytest.mark.parametrize("answer_type", ["number", "date", "latex", "choice", "text"])
    @pytest.mark.parametrize("text", GARBAGE, ids=repr)
    def test_garbage_gives_no_answer(self, text: str | None, answer_type: str) -> None:
        found = extract_answer(text, answer_type)
        if answer_type in ("text", "latex") and text == GARBAGE[-1]:
            assert found == "unknown"  # free-form types take the word after the phrase (MATH has word answers)
        else:
            assert found is None

    def test_an_abstaining_sample_never_forms_a_class(self) -> None:
        clusterer = AnswerClusterer("number")
        assert [clusterer.assign(a) for a in (None, "1,2", "18 dollars", "18")] == [None, None, None, 0]
        assert len(clusterer) == 1

    def test_no_answer_never_matches_gold(self) -> None:
        assert not answers_match(None, "18", "number")
        assert not answers_match("garbage", "garbage", "number")


# --- grading and clustering -----------------------------------------------------------------------------------------

class TestGrading:
    @pytest.mark.parametrize("prediction, gold, answer_type", [
        ("18.0", "18", "number"),
        ("$1,000", "1000", "number"),
        ("5/1/2021", "05/01/2021", "date"),
        ("(B)", "B", "choice"),
        ("0.5", "\\frac{1}{2}", "latex"),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", "latex"),
        ("12.6", "12\\frac{3}{5}", "latex"),
        ("10000", "10{,}000", "latex"),
        ("Yes.", "yes", "text"),
    ])
    def test_equivalent_answers_match(self, prediction: str, gold: str, answer_type: str) -> None:
        assert answers_match(prediction, gold, answer_type)

    @pytest.mark.parametrize("prediction, gold, answer_type", [
        ("18.5", "18", "number"),
        ("01/05/2021", "05/01/2021", "date"),
        ("C", "B", "choice"),
        ("\\frac{1}{3}", "\\frac{1}{2}", "latex"),
        ("1\\frac{1}{9}", "1\\frac{1}{10}", "latex"),
        ("\\frac{1}{10}", "1\\frac{1}{10}", "latex"),
    ])
    def test_different_answers_do_not(self, prediction: str, gold: str, answer_type: str) -> None:
        assert not answers_match(prediction, gold, answer_type)


class TestClusterer:
    def test_one_half_in_three_spellings_is_one_class(self) -> None:
        clusterer = AnswerClusterer("latex")
        assert [clusterer.assign(a) for a in ("\\frac{1}{2}", "0.5", "\\dfrac12", "1/2")] == [0, 0, 0, 0]
        assert clusterer.representative(0) == "\\frac{1}{2}"

    def test_math_verify_merges_what_keys_cannot(self) -> None:
        clusterer = AnswerClusterer("latex")
        classes = [clusterer.assign(a) for a in ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", "\\sqrt{2}", "0.25")]
        assert classes == [0, 0, 1, 2]
        assert len(clusterer) == 3

    def test_classes_are_numbered_in_order_of_first_appearance(self) -> None:
        clusterer = AnswerClusterer("number")
        assert [clusterer.assign(a) for a in ("7", "18.0", "$18", "7.00", "1,000", "1000")] == [0, 1, 1, 0, 2, 2]
        assert clusterer.key(2) == "1000"

    def test_dates_group_padded_and_unpadded_and_named(self) -> None:
        clusterer = AnswerClusterer("date")
        assert [clusterer.assign(a) for a in ("5/1/2021", "05/01/2021", "May 1, 2021", "05/02/2021")] == [0, 0, 0, 1]

    def test_verbatim_mode_lets_an_unparsed_answer_vote_as_itself(self) -> None:
        clusterer = AnswerClusterer("date", verbatim_unparsed=True)
        assert [clusterer.assign(a) for a in ("No answer!", "No answer!", "05/01/2021", " ")] == [0, 0, 1, None]


# --- math-verify off the main thread --------------------------------------------------------------------------------

class TestMathVerifyOffTheMainThread:
    def test_equivalence_works_from_a_plain_thread(self) -> None:
        assert _in_thread(_mathverify.latex_equivalent, "\\frac{3}{12}", "0.25") is True
        assert _in_thread(_mathverify.latex_equivalent, "\\frac{3}{12}", "0.3") is False
        assert _mathverify._worker is not None  # the check ran in the worker process

    def test_grading_works_from_a_plain_thread(self) -> None:
        assert _in_thread(answers_match, "\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", "latex") is True
        assert _in_thread(_mathverify.latex_matches_gold, "\\frac{1}{\\sqrt{3}}", "\\sqrt{3}") is False

    def test_the_clusterer_merges_from_a_plain_thread(self) -> None:
        def cluster() -> list[int | None]:
            clusterer = AnswerClusterer("latex")
            return [clusterer.assign(a) for a in ("\\frac{\\sqrt{5}}{5}", "\\frac{1}{\\sqrt{5}}", "5")]

        assert _in_thread(cluster) == [0, 0, 1]

    def test_a_dead_worker_is_replaced(self) -> None:
        _in_thread(_mathverify.latex_equivalent, "\\frac{6}{12}", "0.5")
        worker = _mathverify._worker
        assert worker is not None
        worker.process.kill()
        worker.process.wait(timeout=10)
        assert _in_thread(_mathverify.latex_equivalent, "\\frac{7}{14}", "0.5") is True
        assert _mathverify._worker is not worker

    def test_an_overrun_counts_as_not_equivalent_and_is_not_fatal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with _mathverify._worker_lock:
            _mathverify._close_worker()  # a fresh worker cannot even import sympy in a millisecond
        monkeypatch.setattr(_mathverify, "DEADLINE_SECONDS", 0.001)
        assert _in_thread(_mathverify.latex_equivalent, "\\frac{8}{16}", "0.5") is False
        assert _mathverify._worker is None  # killed
        monkeypatch.setattr(_mathverify, "DEADLINE_SECONDS", 60)
        assert _in_thread(_mathverify.latex_equivalent, "\\frac{9}{18}", "0.5") is True

    def test_the_main_thread_needs_no_worker(self) -> None:
        assert _mathverify.latex_equivalent("\\frac{10}{20}", "0.5")


def test_the_module_examples_hold() -> None:
    failures, tried = doctest.testmod(answers.extraction)
    assert tried >= 3 and failures == 0


# --- the whole shared pools (skipped without ../shared/data) ---------------------------------------------------------

DATE = r"(\d{1,2}/\d{1,2}/\d{4})"


class TestSharedPools:
    def test_code_davinci_extraction_reproduces_the_upstream_figure(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("code-davinci-002_date_least-to-most_x40")
        answers_ = [(a, e.question.gold) for e in pool.entries for a in e.answers]
        assert len(answers_) == 14360
        # Extraction from the text succeeds on every sample (every text ends "So the answer is ...").
        assert all(a is not None for a, _ in answers_)
        # Verbatim string comparison of the extracted span against gold is how upstream graded: 0.771.
        verbatim = sum(a == gold for a, gold in answers_) / len(answers_)
        assert verbatim == pytest.approx(0.771, abs=0.01)  # measured 0.7710
        # After date normalisation it is higher: 527 right answers are written M/D/YYYY without zero padding
        # ("6/18/2019" for gold 06/18/2019), and a string comparison counts them wrong.
        normalised = sum(canonical_key(a, "date") == gold for a, gold in answers_) / len(answers_)
        assert normalised == pytest.approx(0.808, abs=0.005)  # measured 0.8077
        assert normalised > verbatim + 0.03

    def test_qwen_grading_with_math_verify(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("qwen2.5-math-instruct_math-100_x8", "upstream")
        pairs = [(a, e.question.gold) for e in pool.entries for a in e.answers]
        graded = [answers_match(a, gold, "latex") for a, gold in pairs]
        # 729 / 800 = 0.911: near the 0.916 quoted upstream; the gap is question 3, whose gold "4:30p.." lost the
        # "m" of "p.m." upstream, so its eight right answers "4:30" match nothing (gold labels are kept as they are).
        assert sum(graded) / len(graded) == pytest.approx(0.916, abs=0.01)
        # Where math-verify and a plain string comparison disagree, the equivalence is genuine: the same integer
        # with and without thousands separators. A string match that math-verify rejects would be a bug.
        verdicts = list(zip(pairs, graded, strict=True))
        disagreements = Counter((a, gold) for (a, gold), ok in verdicts if ok != (a.strip() == gold.strip()))
        assert all(ok or a.strip() != gold.strip() for (a, gold), ok in verdicts)
        assert set(disagreements) == {
            ("900000000", "900,000,000"), ("3250", "3,250"), ("10000", "10{,}000"), ("50625", "50,625")}
        for a, gold in disagreements:
            assert int(a) == int(gold.replace("{,}", "").replace(",", ""))

    def test_gpt35_date_sentences_give_their_date_or_nothing(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("gpt35-turbo_date_cot_x40", "upstream")
        shapes = {  # shape of the upstream answer -> group holding the answer
            "bare date": (re.compile(rf"{DATE}\.?"), 1),
            "Today/Tomorrow/Yesterday is [weekday,] date.": (
                re.compile(rf"(?:Today|Tomorrow|Yesterday) is (?:[A-Z][a-z]{{2}}, )?{DATE}\."), 1),
            "If ... today is A, then ... B.": (
                re.compile(rf"If [^\n]*?today is {DATE}[^\n]*?, then [^\n]*? {DATE}\."), 2),
            "... The answer is date.": (re.compile(rf"[^\n]*\bThe answer is {DATE}\.?"), 1),
        }
        month = re.compile(r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d", re.IGNORECASE)
        seen: Counter[str] = Counter()
        wrong = []
        for entry in pool.entries:
            for upstream in entry.answers:
                assert upstream is not None
                for name, (pattern, group) in shapes.items():
                    m = pattern.fullmatch(upstream)
                    if m:
                        seen[name] += 1
                        if extract_answer(upstream, "date") != m[group]:
                            wrong.append((name, extract_answer(upstream, "date")))
                        break
                else:
                    if not re.search(r"\d/\d", upstream) and not month.search(upstream):
                        seen["no date at all"] += 1
                        if extract_answer(upstream, "date") is not None:
                            wrong.append(("no date at all", extract_answer(upstream, "date")))
                    elif re.search(rf"\beither\b[^\n]*{DATE}[^\n]* or [^\n]*{DATE}", upstream, re.IGNORECASE):
                        seen["either A or B"] += 1
                        if extract_answer(upstream, "date") is not None:
                            wrong.append(("either A or B", extract_answer(upstream, "date")))
        assert not wrong, wrong[:5]
        assert min(seen.values()) >= 4 and len(seen) == 6, seen  # measured 12825 / 86 / 177 / 94 / 260 / 4

    def test_gpt35_date_reading_sentences_beats_comparing_them_verbatim(self, shared_pool) -> None:  # noqa: ANN001
        def accuracy(pool) -> float:  # noqa: ANN001
            pairs = [(e.question.gold, a) for e in pool.entries for a in e.answers]
            return sum(answers_match(a, gold, "date") for gold, a in pairs) / len(pairs)

        upstream = accuracy(shared_pool("gpt35-turbo_date_cot_x40", "upstream"))
        extracted = accuracy(shared_pool("gpt35-turbo_date_cot_x40"))
        assert upstream == pytest.approx(0.675, abs=0.005)  # the published single-sample figure
        assert extracted > upstream + 0.05  # measured 0.754

    def test_gpt4_gsm8k_answers_that_are_not_one_number(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("gpt4_gsm8k_x12", "upstream")
        clean = re.compile(r"-?\d+(?:\.\d+)?")
        seen: Counter[str] = Counter()
        for entry in pool.entries:
            for upstream in entry.answers:
                if upstream is None or clean.fullmatch(upstream):
                    continue
                found = extract_answer(upstream, "number")
                if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", upstream):
                    seen["thousands separators"] += 1
                    assert found == upstream
                    assert canonical_key(found, "number") == canonical_key(upstream.replace(",", ""), "number")
                elif re.fullmatch(r"\d+ [a-z]+,? (?:and )?\d+ [a-z]+", upstream):
                    seen["two quantities"] += 1  # "N things and M things": no single answer
                    assert found is None
                elif re.fullmatch(r"\d{1,2}:\d\d [ap]m", upstream):
                    seen["a time"] += 1  # a clock time is not a number
                    assert found is None
                elif re.fullmatch(r"[\d.]+ \(approx\)", upstream):
                    seen["approximate"] += 1
                    assert found == upstream.split()[0]
                else:
                    seen["other"] += 1
                    assert found is None or found in upstream
        assert seen["thousands separators"] >= 30 and seen["two quantities"] >= 5 and seen["a time"] >= 3
        assert seen["approximate"] >= 1 and seen["other"] <= 3, seen

    def test_program_texts_are_never_read_as_answers(self, shared_pool) -> None:  # noqa: ANN001
        pool = shared_pool("gpt4_gsm8k_x12", "upstream")
        programs = [t for e in pool.entries for t in e.texts if t and t.startswith("# Python code")]
        assert len(programs) > 7000
        assert all(extract_answer(t, "number") is None for t in programs)
