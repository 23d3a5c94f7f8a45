"""Reading question files for `dynscaling solve`: good lines are kept, each bad line is reported by file, line
and field, and never stops the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynscaling import InputError
from dynscaling.inputs import read_questions


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


class TestGoodLines:
    def test_ids_answer_types_and_gold_answers_are_read(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "in.jsonl", [
            json.dumps({"id": "a", "question": "1+1?", "answer_type": "number", "gold": 2}),
            json.dumps({"id": 7, "question": "Which letter?", "answer_type": "choice"}),
        ])
        read = read_questions(path)
        assert read.errors == []
        assert [(q.id, q.answer_type, q.gold) for q in read.questions] == [("a", "number", "2"), ("7", "choice", None)]

    def test_missing_ids_default_to_the_line_number(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "in.jsonl", ['{"question": "x?"}', "", '{"question": "y?"}'])
        assert [q.id for q in read_questions(path).questions] == ["line-1", "line-3"]

    def test_field_names_can_be_mapped(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "in.jsonl", [json.dumps({"uid": "u1", "problem": "2*3?", "answer": "6"})])
        read = read_questions(path, fields={"id": "uid", "question": "problem", "gold": "answer"},
                              answer_type="number")
        assert [(q.id, q.text, q.gold, q.answer_type) for q in read.questions] == [("u1", "2*3?", "6", "number")]


class TestBadLines:
    @pytest.mark.parametrize(("line", "expected"), [
        ('{"question": "ok?"', ":1: malformed JSON"),
        ('{"id": "x"}', ":1: field 'question': missing"),
        ('{"question": ""}', ":1: field 'question': must be a non-empty string"),
        ('{"question": "q?", "answer_type": "essay"}', ":1: field 'answer_type': unknown answer type 'essay'"),
        ('{"question": "q?", "id": [1]}', ":1: field 'id': must be a non-empty string or an integer"),
        ('["question"]', ":1: expected a JSON object"),
    ])
    def test_a_bad_line_is_reported_with_file_line_and_field(self, tmp_path: Path, line: str, expected: str) -> None:
        path = write_lines(tmp_path / "in.jsonl", [line, '{"id": "good", "question": "fine?"}'])
        read = read_questions(path)
        assert [q.id for q in read.questions] == ["good"]
        assert len(read.errors) == 1
        message = str(read.errors[0])
        assert message.startswith(str(path)) and expected in message
        assert "\n" not in message

    def test_a_duplicate_id_keeps_the_first(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "in.jsonl", ['{"id": 1, "question": "a?"}', '{"id": 1, "question": "b?"}'])
        read = read_questions(path)
        assert [q.text for q in read.questions] == ["a?"]
        assert "in.jsonl:2: field 'id': duplicate id '1' (first on line 1)" in str(read.errors[0])

    def test_a_missing_file_is_one_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="nope.jsonl: no such file"):
            read_questions(tmp_path / "nope.jsonl")


class TestNothingIsDroppedSilently:
    def test_a_line_separator_inside_a_question_keeps_it_one_line(self, tmp_path: Path) -> None:
        text = "First part\u2028second part\u2029third\x0cfourth\x85fifth?"
        path = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "a", "question": text}, ensure_ascii=False),
                                                   '{"id": "b", "question": "next?"}'])
        read = read_questions(path)
        assert read.errors == []
        assert [(q.id, q.text) for q in read.questions] == [("a", text), ("b", "next?")]

    def test_a_byte_order_mark_does_not_cost_the_first_question(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "question": "one?"}\r\n{"id": "b", "question": "two?"}\r\n')
        read = read_questions(path)
        assert read.errors == [] and [q.id for q in read.questions] == ["a", "b"]

    def test_a_line_of_bad_bytes_loses_only_itself(self, tmp_path: Path) -> None:
        path = tmp_path / "bytes.jsonl"
        path.write_bytes(b'{"id": "a", "question": "one?"}\n{"id": "b", "question": "t\xffo?"}\n'
                         b'{"id": "c", "question": "three?"}\n')
        read = read_questions(path)
        assert [q.id for q in read.questions] == ["a", "c"]
        assert [str(e) for e in read.errors] == [f"{path}:2: not UTF-8 (byte 0xff at column 27)"]

    def test_deep_nesting_is_one_error_for_its_line(self, tmp_path: Path) -> None:
        deep = '{"question": ' + "[" * 200_000 + "]" * 200_000 + "}"
        path = write_lines(tmp_path / "deep.jsonl", ['{"id": "a", "question": "one?"}', deep])
        read = read_questions(path)
        assert [q.id for q in read.questions] == ["a"]
        assert [str(e) for e in read.errors] == [f"{path}:2: JSON nested too deeply to read"]

    @pytest.mark.parametrize(("line", "field"), [
        ('{"id": "a", "question": "what is \\ud800?"}', "question"),
        ('{"id": "a", "question": "ok?", "gold": "\\udfff"}', "gold"),
        ('{"id": "a", "question": "ok?", "meta": {"note": ["x", "\\ud83d"]}}', "meta.note[1]"),
    ])
    def test_a_lone_surrogate_names_its_field(self, tmp_path: Path, line: str, field: str) -> None:
        path = write_lines(tmp_path / "s.jsonl", [line, '{"id": "b", "question": "fine?"}'])
        read = read_questions(path)
        assert [q.id for q in read.questions] == ["b"]
        (error,) = read.errors
        assert (error.line, error.field) == (1, field) and "lone surrogate" in str(error)

    def test_a_surrogate_pair_is_a_character_not_an_error(self, tmp_path: Path) -> None:
        path = write_lines(tmp_path / "pair.jsonl", ['{"id": "a", "question": "smile \\ud83d\\ude00?"}'])
        assert read_questions(path).questions[0].text == "smile \U0001F600?"
