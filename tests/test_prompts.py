"""Prompt wording lives in one place (dynscaling.Prompts) and can be replaced from Python or a JSON file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dynscaling import Budget, Engine, InputError, Prompts, Question


def test_an_engine_asks_with_the_prompts_it_is_given() -> None:
    prompts = Prompts(system="Be brief.", question="Q: {question}\n{format_hint}",
                      format_hints=(("number", "Answer with a number."),))
    engine = Engine([Question("a", "2+2?", "number")], "sc", Budget(samples=1), prompts=prompts)
    request = engine.next_request()
    assert request is not None
    assert request.messages == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Q: 2+2?\nAnswer with a number."}]


def test_a_chain_uses_the_overridden_reconsider_and_fresh_solution_turns() -> None:
    from dynscaling.samplers import Attempt, IntegratedSampler

    prompts = Prompts(reconsider="Again.", fresh_solution="Fresh now.")
    sampler = IntegratedSampler(k0=2, m=2, prompts=prompts)
    import random

    messages = sampler.messages(Question("a", "2+2?", "number"), [Attempt("It is 4.", 0), Attempt("It is 5.", 1)],
                                random.Random(0))
    assert [m["content"] for m in messages if m["role"] == "user"][1:] == ["Again.", "Fresh now."]


class TestFromFile:
    def test_a_json_file_overrides_some_fields_and_keeps_the_rest(self, tmp_path: Path) -> None:
        path = tmp_path / "p.json"
        path.write_text(json.dumps({"system": "S", "format_hints": {"number": "N please."}}))
        prompts = Prompts.from_file(str(path))
        assert prompts.system == "S"
        assert dict(prompts.format_hints)["number"] == "N please."
        assert dict(prompts.format_hints)["date"] == dict(Prompts().format_hints)["date"]
        assert prompts.reconsider == Prompts().reconsider

    @pytest.mark.parametrize(("content", "message"), [
        ('{"sistem": "x"}', "field 'sistem': unknown prompt field"),
        ('{"system": 3}', "field 'system': must be a string"),
        ("[1]", "must be a JSON object"),
        ("{oops", "malformed JSON"),
    ])
    def test_a_bad_file_is_one_clear_error(self, tmp_path: Path, content: str, message: str) -> None:
        path = tmp_path / "p.json"
        path.write_text(content)
        with pytest.raises(InputError, match=message):
            Prompts.from_file(str(path))


class TestTemplatesAreCheckedWhenBuilt:
    @pytest.mark.parametrize(("template", "message"), [
        ("Q: {nope}", "unknown placeholder {nope}"),
        ("Q: {question} and {", "a lone brace"),
        ("Q: {question} }", "a lone brace"),
        ("Q: {0}", "unknown placeholder {0}"),
        ("Q: {question.upper}", "unknown placeholder {question.upper}"),
    ])
    def test_a_bad_question_template_is_refused_naming_the_placeholder(self, template: str, message: str) -> None:
        from dynscaling import ConfigError

        with pytest.raises(ConfigError, match="Prompts.question: " + re.escape(message)):
            Prompts(question=template)

    def test_literal_braces_are_fine(self) -> None:
        prompts = Prompts(question="Return JSON like {{\"a\": 1}}: {question}")
        assert prompts.user_question(Question("a", "2+2?", "number")) == 'Return JSON like {"a": 1}: 2+2?'

    def test_a_file_with_a_bad_template_names_the_file_and_field(self, tmp_path: Path) -> None:
        path = tmp_path / "prompts.json"
        path.write_text(json.dumps({"question": "{nope} {question}"}))
        with pytest.raises(InputError) as raised:
            Prompts.from_file(str(path))
        assert str(raised.value).startswith(f"{path}: field 'question': unknown placeholder {{nope}}")

    @pytest.mark.parametrize(("content", "message"), [
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
        ('{"system": "hi \\ud800"}', "field 'system': holds a lone surrogate"),
    ])
    def test_a_file_that_json_cannot_hold_is_one_error(self, tmp_path: Path, content: str, message: str) -> None:
        path = tmp_path / "prompts.json"
        path.write_text(content)
        with pytest.raises(InputError, match=re.escape(message)):
            Prompts.from_file(str(path))
