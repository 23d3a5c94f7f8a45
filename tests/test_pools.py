"""Replay pools: loading gzip or plain JSON lines, and bad input reported by file, line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dynscaling import Budget, InputError, bundled_pools, load_pool, replay


def record(qid: str = "1", **overrides: object) -> dict:
    base: dict = {"id": qid, "question": "What is 9 * 2?", "gold": "18", "answer_type": "number",
                  "samples": [{"text": "9 * 2 = 18. The answer is 18.", "answer": "18.0"},
                              {"text": "The answer is 20.", "answer": None},
                              {"text": None, "answer": None}],
                  "meta": {"source": "test"}}
    base.update(overrides)
    return base


def write_lines(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_records(path: Path, records: list[dict], gz: bool = False) -> Path:
    return write_lines(path, [json.dumps(r) for r in records], gz)


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as raised:
        load_pool(path)
    return raised.value


class TestLoading:
    @pytest.mark.parametrize("gz", [False, True])
    def test_a_pool_loads_with_answers_classes_and_usage(self, tmp_path: Path, gz: bool) -> None:
        path = write_records(tmp_path / ("pool.jsonl.gz" if gz else "pool.jsonl"),
                             [record("1"), record("2", gold="20")], gz=gz)
        pool = load_pool(path)
        assert pool.name == "pool"
        assert pool.path == str(path)
        assert [e.question.id for e in pool.entries] == ["1", "2"]
        entry = pool.entries[0]
        assert entry.question.gold == "18" and entry.question.answer_type == "number"
        assert entry.question.meta == {"source": "test"}
        assert entry.answers == ("18.0", "20", None)  # "20" extracted from the text
        assert entry.classes == (0, 1, None)
        assert entry.clusterer.assign("18") == 0  # 18.0 and 18 are one answer
        assert entry.usages[0].completion_tokens == len("9 * 2 = 18. The answer is 18.") // 4 + 1
        assert entry.usages[2].completion_tokens == 0  # no text: nothing generated that we know of
        assert pool.samples_per_question == 3
        assert pool.max_samples == 3

    def test_gzip_and_plain_files_of_the_same_lines_load_the_same_pool(self, tmp_path: Path) -> None:
        records = [record(str(i), gold=str(18 + i)) for i in range(4)]
        plain = load_pool(write_records(tmp_path / "same.jsonl", records))
        zipped = load_pool(write_records(tmp_path / "same.jsonl.gz", records, gz=True))
        assert plain.name == zipped.name == "same"
        for a, b in zip(plain.entries, zipped.entries, strict=True):
            assert (a.question, a.texts, a.answers, a.classes, a.usages) == (
                b.question, b.texts, b.answers, b.classes, b.usages)

    def test_a_gzip_file_is_recognised_by_its_content_not_its_name(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "misnamed.jsonl", [record()], gz=True)
        assert load_pool(path).entries[0].answers == ("18.0", "20", None)

    def test_blank_lines_are_skipped_and_line_numbers_still_count_them(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "gaps.jsonl", [json.dumps(record("1")), "", "  ",
                                                     json.dumps(record("2", samples="x"))])
        error = load_error(path)
        assert error.line == 4

    def test_answers_that_are_numbers_in_the_json_are_read_as_text(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "numeric.jsonl", [record(gold=18, samples=[{"text": None, "answer": 18}])])
        pool = load_pool(path)
        assert pool.entries[0].question.gold == "18"
        assert pool.entries[0].answers == ("18",)

    def test_the_bundled_pools_load(self) -> None:
        paths = bundled_pools()
        assert len(paths) >= 3
        for path in paths:
            pool = load_pool(path)
            assert len(pool.entries) >= 100
            assert all(e.question.gold is not None for e in pool.entries)
            parsed = sum(c is not None for e in pool.entries for c in e.classes)
            assert parsed / sum(len(e.classes) for e in pool.entries) > 0.8

    def test_the_bundled_pools_are_the_shared_pools_of_the_same_name(self, shared_data: Path) -> None:
        for path in bundled_pools():
            shared = shared_data / "pools" / path.name
            assert shared.exists(), path.name
            assert gzip.decompress(shared.read_bytes()) == gzip.decompress(path.read_bytes())


class TestUpstreamAnswers:
    SENTENCES = [record("1", gold="05/01/2021", answer_type="date", samples=[
        {"text": "...", "answer": "The date cannot be determined."},
        {"text": "...", "answer": "The date cannot be determined."},
        {"text": "...", "answer": "05/01/2021"},
    ])]

    def test_upstream_mode_lets_an_unparsed_sentence_vote_verbatim(self, tmp_path: Path) -> None:
        pool = load_pool(write_records(tmp_path / "s.jsonl", self.SENTENCES), answers="upstream")
        entry = pool.entries[0]
        assert pool.answer_source == "upstream"
        assert entry.classes == (0, 0, 1)
        result = replay(pool, "sc", Budget(samples=3))
        assert result.results[0].answer == "The date cannot be determined."
        assert result.results[0].correct is False

    def test_extract_mode_makes_the_same_sentence_abstain(self, tmp_path: Path) -> None:
        pool = load_pool(write_records(tmp_path / "s.jsonl", self.SENTENCES))
        entry = pool.entries[0]
        assert entry.classes == (None, None, 0)
        result = replay(pool, "sc", Budget(samples=3))
        assert result.results[0].answer == "05/01/2021"
        assert result.results[0].correct is True
        assert result.results[0].abstentions == 2

    def test_an_unknown_answer_mode_is_refused(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "s.jsonl", self.SENTENCES)
        with pytest.raises(InputError, match="answers must be 'extract' or 'upstream', got 'raw'"):
            load_pool(path, answers="raw")  # type: ignore[arg-type]


class TestBadInput:
    def test_a_malformed_json_line_names_the_file_and_line(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "bad.jsonl", [json.dumps(record("1")), '{"id": "2", "question": '])
        error = load_error(path)
        assert (error.path, error.line) == (str(path), 2)
        assert str(error).startswith(f"{path}:2: malformed JSON")

    @pytest.mark.parametrize("field", ["samples", "gold", "question", "id"])
    def test_a_missing_field_is_named_with_file_and_line(self, tmp_path: Path, field: str) -> None:
        broken = record("2")
        del broken[field]
        path = write_records(tmp_path / "missing.jsonl", [record("1"), broken])
        error = load_error(path)
        assert (error.path, error.line, error.field) == (str(path), 2, field)
        assert str(error) == f"{path}:2: field '{field}': missing"

    def test_an_unknown_answer_type_names_the_allowed_ones(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "type.jsonl", [record(answer_type="essay")])
        error = load_error(path)
        assert (error.line, error.field) == (1, "answer_type")
        assert str(error).startswith(f"{path}:1: field 'answer_type': unknown answer type 'essay'")
        for allowed in ("number", "date", "latex", "choice", "text"):
            assert allowed in str(error)

    @pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
    def test_an_empty_file_is_named(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "empty.jsonl"
        path.write_bytes(content)
        error = load_error(path)
        assert str(error) == f"{path}: empty file: no questions"

    def test_an_empty_gzip_file_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.jsonl.gz"
        path.write_bytes(gzip.compress(b""))
        assert str(load_error(path)) == f"{path}: empty file: no questions"

    def test_a_path_that_does_not_exist_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "nowhere.jsonl.gz"
        assert str(load_error(path)) == f"{path}: no such file"

    def test_a_directory_is_not_a_pool(self, tmp_path: Path) -> None:
        assert str(load_error(tmp_path)) == f"{tmp_path}: is a directory, not a pool file"

    def test_a_corrupt_gzip_file_is_reported_not_raised_raw(self, tmp_path: Path) -> None:
        path = tmp_path / "corrupt.jsonl.gz"
        path.write_bytes(gzip.compress(json.dumps(record()).encode())[:25])
        error = load_error(path)
        assert str(error).startswith(f"{path}: cannot read the file")

    @pytest.mark.parametrize("samples", ["18", {"text": "x"}, None])
    def test_samples_that_are_not_a_list_are_refused(self, tmp_path: Path, samples: object) -> None:
        path = write_records(tmp_path / "samples.jsonl", [record(samples=samples)])
        error = load_error(path)
        assert str(error) == f"{path}:1: field 'samples': must be a list of samples"

    def test_a_pool_where_no_question_has_a_sample_is_refused(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "empty.jsonl", [record(samples=[])])
        assert str(load_error(path)) == f"{path}: field 'samples': no question has any recorded sample"

    def test_deep_nesting_is_one_line_naming_file_and_line(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "deep.jsonl", [json.dumps(record()), "[" * 200_000 + "]" * 200_000])
        assert str(load_error(path)) == f"{path}:2: JSON nested too deeply to read"

    def test_a_lone_surrogate_is_named_by_its_field(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "surrogate.jsonl", [json.dumps(record(question="What is \ud800?"))])
        error = load_error(path)
        assert (error.line, error.field) == (1, "question") and "lone surrogate" in str(error)


class TestNothingIsDroppedSilently:
    def test_a_question_with_no_samples_loads_with_a_warning_and_counts_as_unanswered(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        one = [{"text": "The answer is 18.", "answer": "18"}]
        path = write_records(tmp_path / "gap.jsonl", [record("1", samples=one), record("2", samples=[]),
                                                      record("3", samples=one)])
        with caplog.at_level("WARNING", logger="dynscaling.pools"):
            pool = load_pool(path)
        expected = f"{path}:2: field 'samples': empty list; question '2' is kept and counts as unanswered"
        assert pool.warnings == (expected,) and expected in caplog.messages
        assert [len(e.classes) for e in pool.entries] == [1, 0, 1]
        result = replay(pool, "sc", Budget(samples=6))
        by_id = {r.question_id: r for r in result.results}
        assert by_id["2"].answer is None and by_id["2"].samples == 0
        assert by_id["1"].answer == "18" and result.accuracy == pytest.approx(2 / 3)

    def test_a_byte_order_mark_is_no_part_of_the_first_question(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(record("1")) + "\n" + json.dumps(record("2"))).encode())
        assert [e.question.id for e in load_pool(path).entries] == ["1", "2"]

    def test_a_question_with_a_line_separator_is_one_question(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "u2028.jsonl", [record("1", question="Line one\u2028line two?"), record("2")],
                             gz=True)
        pool = load_pool(path)
        assert [e.question.text for e in pool.entries][0] == "Line one\u2028line two?"
        assert len(pool.entries) == 2

    def test_a_sample_that_is_not_an_object_is_named_by_its_index(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "sample.jsonl", [record(samples=[{"text": "a", "answer": "1"}, "oops"])])
        error = load_error(path)
        assert (error.line, error.field) == (1, "samples[1]")

    def test_a_sample_text_of_the_wrong_type_is_named_by_its_path(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "text.jsonl", [record(samples=[{"text": ["a"], "answer": "1"}])])
        error = load_error(path)
        assert str(error) == f"{path}:1: field 'samples[0].text': text must be a string or null, got list"

    def test_a_duplicate_id_names_both_lines(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "dup.jsonl", [record("7"), record("8"), record("7")])
        error = load_error(path)
        assert (error.line, error.field) == (3, "id")
        assert str(error) == f"{path}:3: field 'id': duplicate id '7' (first on line 1)"

    def test_a_null_gold_answer_is_refused_in_a_replay_pool(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "gold.jsonl", [record(gold=None)])
        assert str(load_error(path)) == f"{path}:1: field 'gold': must not be null in a replay pool"

    def test_an_empty_question_is_refused(self, tmp_path: Path) -> None:
        path = write_records(tmp_path / "question.jsonl", [record(question="  ")])
        assert str(load_error(path)) == f"{path}:1: field 'question': must be a non-empty string"

    def test_a_line_that_is_not_an_object_is_refused(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "list.jsonl", ["[1, 2, 3]"])
        assert str(load_error(path)) == f"{path}:1: expected a JSON object, got list"
