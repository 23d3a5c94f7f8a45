"""Benchmark loaders: every registered set read from the real shared files (skipped when ../shared is absent),
plus the file-format rules, error messages and data-folder lookup on small invented files.

GPQA questions must never be written anywhere in clear, so its tests compare letters, orders and counts only,
never question text (a failing assertion would print it)."""

from __future__ import annotations

import builtins
import collections
import io
import json
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from dynscaling import ConfigError, InputError
from dynscaling.answers import canonical_key
from dynscaling.datasets import DATASETS, ENV_VAR, find_benchmarks_dir, load_dataset, load_hf_dataset
from dynscaling.types import ANSWER_TYPES, Question

LETTERS = "ABCDEFGHIJ"
EXPECTED_COUNTS = {
    "gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gpqa_diamond": 198, "mmlu_pro": 12032,
    "arc_challenge": 1172, "commonsenseqa": 1221, "strategyqa": 2290, "bbh": 6511,
}
CHOICE_SETS = ("gpqa_diamond", "mmlu_pro", "arc_challenge", "commonsenseqa", "bbh")
# Upstream BBH items whose options were split at commas, so the answer is no single option: kept ungraded.
BBH_UNGRADED = {"bbh-movie_recommendation-163", "bbh-ruin_names-99", "bbh-ruin_names-144"}


@pytest.fixture(scope="session")
def benchmarks(shared_data: Path) -> Path:
    path = shared_data / "benchmarks"
    if not path.is_dir():
        pytest.skip("../shared/data/benchmarks is not here")
    return path


@pytest.fixture(scope="session")
def loaded(benchmarks: Path):  # noqa: ANN201 (returns a loader)
    """Each dataset loaded once per session with the default arguments (MMLU-Pro alone takes about a second)."""
    cache: dict[str, list[Question]] = {}

    def load(name: str) -> list[Question]:
        if name not in cache:
            cache[name] = load_dataset(name, data_dir=benchmarks)
        return cache[name]

    return load


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- the real files -----------------------------------------------------------------------------------------------

class TestEveryDatasetReadsItsFile:
    @pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
    def test_the_count_matches_the_data_readme(self, loaded, name: str) -> None:
        assert len(loaded(name)) == EXPECTED_COUNTS[name] == DATASETS[name].size

    @pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
    def test_ids_are_unique_prefixed_and_stable(self, loaded, benchmarks: Path, name: str) -> None:
        questions = loaded(name)
        ids = [q.id for q in questions]
        assert len(set(ids)) == len(ids)
        assert all(i.startswith(f"{name}-") for i in ids)
        if name not in ("gpqa_diamond", "mmlu_pro"):  # slow to read; their reloads are checked in their own tests
            assert [q.id for q in load_dataset(name, data_dir=benchmarks, limit=5)] == ids[:5]

    @pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
    def test_questions_have_text_a_known_answer_type_and_a_clean_gold(self, loaded, name: str) -> None:
        questions = loaded(name)
        assert all(q.text.strip() and q.answer_type in ANSWER_TYPES and q.meta["dataset"] == name for q in questions)
        if DATASETS[name].answer_type is not None:
            assert {q.answer_type for q in questions} == {DATASETS[name].answer_type}
        unclean = [q.id for q in questions if q.gold is not None and canonical_key(q.gold, q.answer_type) is None]
        assert unclean == []
        ungraded = {q.id for q in questions if q.gold is None}
        assert ungraded == (BBH_UNGRADED if name == "bbh" else set())

    @pytest.mark.parametrize("name", CHOICE_SETS)
    def test_choice_golds_are_letters_within_the_number_of_options(self, loaded, name: str) -> None:
        for q in loaded(name):
            if q.answer_type != "choice" or q.gold is None:
                continue
            choices = q.meta["choices"]
            assert len(q.gold) == 1 and 0 <= ord(q.gold) - ord("A") < len(choices), q.id
            if name != "bbh":  # BBH questions come with their options already written in
                shown_last = q.text.endswith(f"({chr(ord('A') + len(choices) - 1)}) {choices[-1]}")
                assert shown_last, q.id  # a bare flag: pytest would print the (GPQA) text of a failing expression


class TestMathSets:
    def test_the_gsm8k_gold_is_the_number_after_the_hashes_without_commas(self, loaded) -> None:
        questions = loaded("gsm8k")
        assert questions[0].gold == "18" and questions[0].id == "gsm8k-0"
        assert all("," not in q.gold and "####" not in q.text for q in questions)
        assert sum(q.gold.startswith("-") for q in questions) > 0

    def test_every_math500_gold_is_latex_that_math_verify_parses(self, loaded) -> None:
        from math_verify import parse

        questions = loaded("math500")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unparsed = [q.id for q in questions if not parse(f"${q.gold}$")]
        assert unparsed == []
        assert questions[0].meta["subject"] == "Number Theory" and questions[0].meta["level"] == 3

    def test_competition_golds_are_clean_integers_with_the_file_value_kept_when_cleaned(self, loaded) -> None:
        for name in ("aime24", "aime25", "amc23"):
            assert all(q.gold.lstrip("-").isdigit() for q in loaded(name)), name
        aime24 = {q.id: q for q in loaded("aime24")}
        assert aime24["aime24-67"].gold == "25" and aime24["aime24-67"].meta["original_gold"] == "025"
        aime25 = loaded("aime25")
        assert aime25[19].gold == "336" and aime25[19].meta["original_gold"] == "336^\\circ"
        assert loaded("amc23")[0].gold == "27" and "original_gold" not in loaded("amc23")[0].meta

    def test_math500_can_be_cut_to_subjects(self, benchmarks: Path) -> None:
        questions = load_dataset("math500", data_dir=benchmarks, subset="number_theory,Algebra")
        assert {q.meta["subject"] for q in questions} == {"Number Theory", "Algebra"}


class TestGpqa:
    def test_golds_spread_over_the_four_letters_and_point_at_the_correct_answer(self, loaded) -> None:
        questions = loaded("gpqa_diamond")
        counts = collections.Counter(q.gold for q in questions)
        assert set(counts) == set("ABCD") and min(counts.values()) >= 25
        # the file lists the correct answer first: after shuffling, the gold letter shows original choice 0
        assert all(q.meta["choice_order"][ord(q.gold) - ord("A")] == 0 for q in questions)
        assert all(sorted(q.meta["choice_order"]) == [0, 1, 2, 3] for q in questions)

    def test_the_same_seed_gives_the_same_order_whatever_else_is_loaded(self, benchmarks: Path, loaded) -> None:
        physics = load_dataset("gpqa_diamond", data_dir=benchmarks, subset="physics")
        everything = {q.id: q for q in loaded("gpqa_diamond")}
        assert len(physics) == 86
        assert all(q.meta["choice_order"] == everything[q.id].meta["choice_order"] for q in physics)
        assert all(hash(q.text) == hash(everything[q.id].text) and q.gold == everything[q.id].gold for q in physics)

    def test_another_seed_gives_another_order(self, benchmarks: Path, loaded) -> None:
        other = load_dataset("gpqa_diamond", data_dir=benchmarks, limit=40, seed=1)
        first = loaded("gpqa_diamond")[:40]
        assert [q.id for q in other] == [q.id for q in first]
        assert [q.meta["choice_order"] for q in other] != [q.meta["choice_order"] for q in first]

    def test_the_choices_cannot_be_left_in_file_order(self, benchmarks: Path) -> None:
        with pytest.raises(ConfigError, match="always shuffled"):
            load_dataset("gpqa_diamond", data_dir=benchmarks, shuffle_choices=False)

    def test_the_zip_is_read_in_memory_and_nothing_is_written(self, benchmarks: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
        scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
        scratch.mkdir()
        cwd.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        monkeypatch.chdir(cwd)
        writes: list[str] = []
        real_open = builtins.open

        def recording_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(flag in mode for flag in "wax+"):
                writes.append(str(file))
            return real_open(file, mode, *args, **kwargs)

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the GPQA zip must not be extracted")

        monkeypatch.setattr(builtins, "open", recording_open)
        monkeypatch.setattr(io, "open", recording_open)
        monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
        monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
        assert len(load_dataset("gpqa_diamond", data_dir=benchmarks)) == 198
        assert writes == [] and list(scratch.iterdir()) == [] and list(cwd.iterdir()) == []

    def test_a_wrong_password_is_an_input_error_naming_the_zip(self, benchmarks: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("dynscaling.datasets.choice.GPQA_PASSWORD", b"wrong")
        with pytest.raises(InputError, match=r"gpqa_diamond\.zip: cannot read the zip"):
            load_dataset("gpqa_diamond", data_dir=benchmarks)


class TestChoiceSets:
    def test_mmlu_pro_has_up_to_ten_options_in_the_benchmark_order(self, loaded) -> None:
        questions = loaded("mmlu_pro")
        assert max(len(q.meta["choices"]) for q in questions) == 10
        assert {q.gold for q in questions} == set(LETTERS)
        assert all("choice_order" not in q.meta for q in questions)
        assert len({q.meta["category"] for q in questions}) == 14

    def test_mmlu_pro_shuffles_only_when_asked_and_the_gold_follows_its_choice(self, benchmarks: Path,
                                                                             loaded) -> None:
        shuffled = load_dataset("mmlu_pro", data_dir=benchmarks, subset="computer science", limit=30,
                                shuffle_choices=True)
        original = {q.id: q for q in loaded("mmlu_pro")}
        assert len(shuffled) == 30 and all(q.meta["category"] == "computer science" for q in shuffled)
        assert any(q.meta["choice_order"] != sorted(q.meta["choice_order"]) for q in shuffled)
        for q in shuffled:
            before = original[q.id]
            assert q.meta["choices"][ord(q.gold) - ord("A")] == before.meta["choices"][ord(before.gold) - ord("A")]

    def test_arc_and_commonsenseqa_show_their_choices_as_lettered_lines(self, loaded) -> None:
        arc = loaded("arc_challenge")
        assert collections.Counter(len(q.meta["choices"]) for q in arc) == {4: 1165, 3: 4, 5: 3}
        csqa = loaded("commonsenseqa")
        assert all(len(q.meta["choices"]) == 5 and q.meta["concept"] for q in csqa)
        assert "\n\n(A) " in csqa[0].text and csqa[0].text.count("\n(") == 5


class TestStrategyQa:
    def test_golds_are_yes_or_no_from_the_target_scores(self, loaded) -> None:
        golds = collections.Counter(q.gold for q in loaded("strategyqa"))
        assert golds == {"no": 1219, "yes": 1071}
        assert loaded("strategyqa")[0].answer_type == "text"


class TestBbh:
    def test_all_27_tasks_are_read_with_an_answer_type_each(self, loaded) -> None:
        by_task: dict[str, set[str]] = collections.defaultdict(set)
        for q in loaded("bbh"):
            by_task[q.meta["task"]].add(q.answer_type)
        assert len(by_task) == 27 and all(len(types) == 1 for types in by_task.values())
        types = {task: types.pop() for task, types in by_task.items()}
        assert collections.Counter(types.values()) == {"choice": 17, "text": 8, "number": 2}
        assert types["multistep_arithmetic_two"] == types["object_counting"] == "number"
        for task in ("boolean_expressions", "dyck_languages", "word_sorting", "web_of_lies", "navigate",
                     "sports_understanding", "causal_judgement", "formal_fallacies"):
            assert types[task] == "text", task

    def test_text_golds_are_the_targets(self, loaded) -> None:
        golds: dict[str, set[str]] = collections.defaultdict(set)
        for q in loaded("bbh"):
            golds[q.meta["task"]].add(q.gold)
        assert golds["boolean_expressions"] == {"True", "False"}
        assert golds["web_of_lies"] == golds["navigate"] == {"Yes", "No"}
        assert golds["sports_understanding"] == {"yes", "no"} and golds["formal_fallacies"] == {"valid", "invalid"}

    def test_a_subset_selects_tasks_and_limit_takes_the_first_after_it(self, benchmarks: Path) -> None:
        one = load_dataset("bbh", data_dir=benchmarks, subset="navigate")
        assert len(one) == 250 and {q.meta["task"] for q in one} == {"navigate"}
        two = load_dataset("bbh", data_dir=benchmarks, subset="web_of_lies, snarks", limit=200)
        assert [q.meta["task"] for q in two] == ["snarks"] * 178 + ["web_of_lies"] * 22
        listed = load_dataset("bbh", data_dir=benchmarks, subset=["snarks", "penguins_in_a_table"])
        assert len(listed) == 178 + 146

    def test_an_unknown_task_lists_the_tasks(self, benchmarks: Path) -> None:
        with pytest.raises(ConfigError, match="unknown task 'navigation'.*boolean_expressions.*word_sorting"):
            load_dataset("bbh", data_dir=benchmarks, subset="navigation")


class TestArguments:
    def test_an_unknown_name_lists_the_datasets(self) -> None:
        with pytest.raises(ConfigError, match="unknown dataset 'gsm8K'; expected one of gsm8k, math500, .*bbh"):
            load_dataset("gsm8K")

    def test_limit_must_be_a_whole_number(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="limit"):
            load_dataset("gsm8k", data_dir=tmp_path, limit=-1)

    def test_limit_zero_gives_nothing(self, benchmarks: Path) -> None:
        assert load_dataset("aime24", data_dir=benchmarks, limit=0) == []

    def test_a_subset_on_a_dataset_without_subsets_is_refused(self, benchmarks: Path) -> None:
        with pytest.raises(ConfigError, match="'gsm8k' has no subsets"):
            load_dataset("gsm8k", data_dir=benchmarks, subset="x")

    def test_shuffling_a_set_without_separate_choices_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="bbh has no separate choices to shuffle; .* mmlu_pro, arc_challenge"):
            load_dataset("bbh", data_dir=tmp_path, shuffle_choices=True)

    def test_hugging_face_options_on_a_local_dataset_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="question_field: only for hf:"):
            load_dataset("gsm8k", data_dir=tmp_path, question_field="q")

    def test_the_registry_describes_every_dataset(self) -> None:
        assert list(DATASETS) == list(EXPECTED_COUNTS)
        for name, spec in DATASETS.items():
            assert spec.name == name and spec.path and spec.description and spec.licence
            assert spec.answer_type in (*ANSWER_TYPES, None)


# --- where the data is --------------------------------------------------------------------------------------------

class TestFindingTheData:
    def test_an_explicit_folder_that_does_not_exist_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="nowhere: benchmarks folder not found"):
            find_benchmarks_dir(tmp_path / "nowhere")

    def test_the_environment_variable_is_used(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_VAR, str(tmp_path))
        assert find_benchmarks_dir() == tmp_path

    def test_an_environment_variable_pointing_nowhere_is_an_error(self, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
        with pytest.raises(InputError, match=rf"missing: \${ENV_VAR} points at no folder"):
            find_benchmarks_dir()

    def test_the_shared_folder_beside_the_working_directory_is_the_fallback(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "shared" / "data" / "benchmarks").mkdir(parents=True)
        (tmp_path / "project").mkdir()
        monkeypatch.delenv(ENV_VAR, raising=False)
        monkeypatch.delenv("DYNSCALING_DATA", raising=False)
        monkeypatch.chdir(tmp_path / "project")
        assert find_benchmarks_dir() == (tmp_path / "shared" / "data" / "benchmarks").resolve()

    def test_with_no_data_and_no_hf_extra_the_error_says_which_file_to_put_where(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in (ENV_VAR, "DYNSCALING_DATA"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DYNSCALING_HOME", str(tmp_path / "home"))
        monkeypatch.setitem(__import__("sys").modules, "datasets", None)
        monkeypatch.chdir(tmp_path)
        expected = tmp_path / "home" / "data" / "benchmarks" / "gsm8k" / "test.jsonl"
        with pytest.raises(InputError) as raised:
            load_dataset("gsm8k")
        assert str(raised.value) == (f"gsm8k not found: put gsm8k/test.jsonl at {expected} (or pip install "
                                     "'dynscaling[hf]' to read openai/gsm8k (test, config main) from Hugging Face)")

    def test_a_missing_file_is_named_with_where_it_goes(self, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(__import__("sys").modules, "datasets", None)
        with pytest.raises(InputError, match=rf"put gsm8k/test\.jsonl at {tmp_path}/gsm8k/test\.jsonl"):
            load_dataset("gsm8k", data_dir=tmp_path)


# --- file formats, on small invented files ------------------------------------------------------------------------

class TestFormats:
    def test_arc_numeric_labels_become_letters_by_position(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "arc_challenge" / "arc_challenge_test.jsonl", [
            {"id": "Q1", "question": "Which one is a colour?", "answer": "3",
             "options": [{"label": str(i), "text": t} for i, t in enumerate(["dog", "table", "red", "rain"], 1)]},
            {"id": "Q2", "question": "Which is largest?", "answer": "A",
             "options": [{"label": "A", "text": "a mountain"}, {"label": "B", "text": "a pebble"}]},
        ])
        one, two = load_dataset("arc_challenge", data_dir=tmp_path)
        assert (one.id, one.gold, one.meta["original_labels"]) == ("arc_challenge-Q1", "C", ["1", "2", "3", "4"])
        assert one.text == "Which one is a colour?\n\n(A) dog\n(B) table\n(C) red\n(D) rain"
        assert (two.gold, "original_labels" in two.meta) == ("A", False)

    def test_arc_in_the_hugging_face_layout_is_read_too(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "arc_challenge" / "arc_challenge_test.jsonl", [
            {"id": "Q1", "question": "Which one is a colour?", "answerKey": "2",
             "choices": {"label": ["1", "2", "3"], "text": ["dog", "red", "rain"]}}])
        assert load_dataset("arc_challenge", data_dir=tmp_path)[0].gold == "B"

    def test_shuffling_is_seeded_per_question_and_the_gold_follows_the_choice(self, tmp_path: Path) -> None:
        texts = ["one", "two", "three", "four", "five"]
        write_jsonl(tmp_path / "commonsenseqa" / "dev_rand_split.jsonl", [
            {"id": f"c{i}", "answerKey": "D", "question": {
                "question_concept": "counting", "stem": f"Which is four? ({i})",
                "choices": [{"label": label, "text": text} for label, text in zip("ABCDE", texts, strict=True)]}}
            for i in range(12)])
        plain = load_dataset("commonsenseqa", data_dir=tmp_path)
        assert all(q.gold == "D" and q.meta["choices"] == texts for q in plain)
        shuffled = load_dataset("commonsenseqa", data_dir=tmp_path, shuffle_choices=True, seed=7)
        assert all(q.meta["choices"][ord(q.gold) - ord("A")] == "four" for q in shuffled)
        assert len({q.gold for q in shuffled}) > 1
        assert load_dataset("commonsenseqa", data_dir=tmp_path, shuffle_choices=True, seed=7) == shuffled

    def test_gsm8k_golds_lose_their_thousands_commas(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [
            {"question": "How many?", "answer": "Work <<2*1000=2000>>.\n#### 2,000"},
            {"question": "How cold?", "answer": "#### -3"}])
        assert [q.gold for q in load_dataset("gsm8k", data_dir=tmp_path)] == ["2000", "-3"]

    def test_an_unknown_bbh_task_is_typed_from_its_targets(self, tmp_path: Path) -> None:
        write_json(tmp_path / "bbh" / "made_up_counting.json", {"examples": [
            {"input": "How many legs do two cats have?", "target": "8"}]})
        write_json(tmp_path / "bbh" / "made_up_choice.json", {"examples": [
            {"input": "Which is a fruit?\nOptions:\n(A) apple\n(B) brick", "target": "(A)"}]})
        choice, number = load_dataset("bbh", data_dir=tmp_path)
        assert (choice.answer_type, choice.gold, choice.meta["choices"]) == ("choice", "A", ["apple", "brick"])
        assert (number.id, number.answer_type, number.gold) == ("bbh-made_up_counting-0", "number", "8")


class TestBadFiles:
    def test_malformed_json_names_the_file_and_line(self, tmp_path: Path) -> None:
        path = tmp_path / "gsm8k" / "test.jsonl"
        write_jsonl(path, [{"question": "Fine?", "answer": "#### 1"}])
        with path.open("a") as handle:
            handle.write('{"question": "broken", \n')
        with pytest.raises(InputError, match=r"test\.jsonl:2: malformed JSON") as caught:
            load_dataset("gsm8k", data_dir=tmp_path)
        assert caught.value.line == 2

    def test_a_missing_field_is_named(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "Fine?", "answer": "#### 1"}, {"question": "x"}])
        with pytest.raises(InputError, match=r"test\.jsonl:2: field 'answer': missing"):
            load_dataset("gsm8k", data_dir=tmp_path)

    def test_a_gsm8k_answer_without_the_marker_is_refused(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "Fine?", "answer": "just 1"}])
        with pytest.raises(InputError, match=r"field 'answer': has no '####'"):
            load_dataset("gsm8k", data_dir=tmp_path)

    def test_a_competition_gold_that_is_no_number_is_refused(self, tmp_path: Path) -> None:
        write_json(tmp_path / "aime25" / "aime25.json", [{"question": "Find N.", "answer": "12"},
                                                         {"question": "Find M.", "answer": "x+1"}])
        with pytest.raises(InputError, match=r"aime25\.json: field '\[1\]\.answer': must be a number"):
            load_dataset("aime25", data_dir=tmp_path)

    def test_a_bbh_target_outside_the_options_names_the_item(self, tmp_path: Path) -> None:
        write_json(tmp_path / "bbh" / "snarks.json", {"examples": [
            {"input": "Which is sarcastic?\nOptions:\n(A) x\n(B) y", "target": "(C)"}]})
        with pytest.raises(InputError, match=r"snarks\.json: field 'examples\[0\]\.target'"):
            load_dataset("bbh", data_dir=tmp_path)

    def test_an_answer_key_outside_the_labels_is_refused(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "arc_challenge" / "arc_challenge_test.jsonl", [
            {"id": "Q1", "question": "Which?", "answer": "E",
             "options": [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]}])
        with pytest.raises(InputError, match=r":1: field 'answer': 'E' is none of the choice labels"):
            load_dataset("arc_challenge", data_dir=tmp_path)

    def test_strategyqa_scores_must_say_yes_or_no(self, tmp_path: Path) -> None:
        write_json(tmp_path / "strategyqa" / "task.json", {"examples": [
            {"input": "Is water wet?", "target_scores": {"Yes": 1, "No": 1}}]})
        with pytest.raises(InputError, match=r"field 'examples\[0\]\.target_scores'"):
            load_dataset("strategyqa", data_dir=tmp_path)

    def test_duplicate_ids_are_refused(self, tmp_path: Path) -> None:
        option = [{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]
        write_jsonl(tmp_path / "arc_challenge" / "arc_challenge_test.jsonl", [
            {"id": "Q1", "question": "Which?", "answer": "A", "options": option}] * 2)
        with pytest.raises(InputError, match="duplicate question id 'arc_challenge-Q1'"):
            load_dataset("arc_challenge", data_dir=tmp_path)


# --- Hugging Face datasets ----------------------------------------------------------------------------------------

class TestHuggingFace:
    @pytest.fixture
    def saved(self, tmp_path: Path) -> Path:
        datasets = pytest.importorskip("datasets")
        path = tmp_path / "toy"
        datasets.disable_progress_bars()
        datasets.Dataset.from_dict({
            "problem": ["What is 1,000 + 1?", "What is 2 * 3?", "Name a primary colour."],
            "solution": ["Add. #### 1,001", "Multiply. #### 6", "#### red"],
            "uid": ["p1", "p2", "p3"],
        }).save_to_disk(str(path))
        return path

    def test_a_saved_dataset_is_read_with_mapped_fields(self, saved: Path) -> None:
        questions = load_hf_dataset(str(saved), question_field="problem", answer_field="solution",
                                    answer_type="number", answer_after="####", id_field="uid", limit=2)
        assert [(q.id, q.text, q.gold, q.answer_type) for q in questions] == [
            ("hf-toy-p1", "What is 1,000 + 1?", "1001", "number"), ("hf-toy-p2", "What is 2 * 3?", "6", "number")]

    def test_the_hf_prefix_of_load_dataset_goes_to_the_same_loader(self, saved: Path) -> None:
        questions = load_dataset(f"hf:{saved}", question_field="problem", answer_field="solution")
        assert [q.id for q in questions] == ["hf-toy-0", "hf-toy-1", "hf-toy-2"]
        assert questions[2].gold == "#### red" and questions[2].meta["dataset"] == f"hf:{saved}"

    def test_choices_from_a_list_column_get_letters(self, tmp_path: Path) -> None:
        datasets = pytest.importorskip("datasets")
        datasets.disable_progress_bars()
        datasets.DatasetDict({"validation": datasets.Dataset.from_dict({
            "q": ["Which is a bird?", "Which is a fish?"], "options": [["cat", "crow"], ["trout", "fox"]],
            "label": ["b", "trout"], "index": [1, 0]})}).save_to_disk(str(tmp_path / "mc"))
        questions = load_hf_dataset(str(tmp_path / "mc"), question_field="q", answer_field="label",
                                    choices_field="options", split="validation")
        assert [(q.text, q.gold, q.answer_type) for q in questions] == [
            ("Which is a bird?\n\n(A) cat\n(B) crow", "B", "choice"),
            ("Which is a fish?\n\n(A) trout\n(B) fox", "A", "choice")]
        by_index = load_hf_dataset(str(tmp_path / "mc"), question_field="q", answer_field="index",
                                   choices_field="options", split="validation")
        assert [q.gold for q in by_index] == ["B", "A"]
        with pytest.raises(ConfigError, match="split 'test' not in .*validation"):
            load_hf_dataset(str(tmp_path / "mc"), question_field="q")

    def test_a_missing_column_lists_the_columns(self, saved: Path) -> None:
        with pytest.raises(InputError, match="field 'question': no such column; the dataset has problem, solution"):
            load_hf_dataset(str(saved))

    def test_without_the_package_the_error_gives_the_install_command(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(__import__("sys").modules, "datasets", None)
        with pytest.raises(ConfigError, match=r"pip install 'dynscaling\[hf\]'"):
            load_hf_dataset("openai/gsm8k")
