"""The messages a sampler builds, word for word: a client's own conversation, chains cut to the model's real
context, the token estimate, and the one-line errors for a bad prompts file or sampler parameter."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dynscaling import ConfigError, InputError, Question
from dynscaling.samplers import (
    Attempt,
    IntegratedSampler,
    Message,
    ParallelSampler,
    Prompts,
    SequentialSampler,
    estimate_tokens,
)

QUESTION = Question("q", "What is 6 x 7?", "number")


def characters(messages: list[Message]) -> int:
    """A stand-in tokenizer that counts characters: exact, so the limits below are easy to read."""
    return sum(len(m["content"]) for m in messages)


class TestAClientsOwnConversation:
    def test_a_question_carrying_messages_is_asked_verbatim_whatever_the_prompts(self) -> None:
        given = ({"role": "system", "content": "You are a calculator."}, {"role": "user", "content": "6*7?"})
        question = Question("q", "6*7?", "number", meta={"messages": given})
        sampler = ParallelSampler(Prompts(system="ignored", question="ignored: {question}"))
        messages = sampler.messages(question, [], random.Random(0))
        assert messages == [dict(m) for m in given]
        messages[0]["content"] = "changed"  # a copy: the question's own messages stay as the client sent them
        assert given[0]["content"] == "You are a calculator."

    def test_an_empty_message_list_falls_back_to_the_prompts(self) -> None:
        question = Question("q", "6*7?", "number", meta={"messages": []})
        assert ParallelSampler(Prompts(question="Q: {question}")).messages(question, [], random.Random(0)) == [
            {"role": "user", "content": "Q: 6*7?"}]


class TestChainsCutToTheRealContext:
    attempts = [Attempt("A" * 50, 0), Attempt("B" * 10, 1), Attempt("C" * 30, 2)]

    def sampler(self, limit: int) -> IntegratedSampler:
        prompts = Prompts(question="{question}", format_hints=(), reconsider="R", fresh_solution="F")
        sampler = IntegratedSampler(k0=1, m=3, prompts=prompts)
        sampler.fit_context(characters, limit)
        return sampler

    def shown(self, messages: list[Message]) -> list[str]:
        return sorted(m["content"] for m in messages if m["role"] == "assistant")

    def test_without_a_limit_problem_every_chosen_attempt_is_shown(self) -> None:
        messages = self.sampler(10_000).messages(QUESTION, self.attempts, random.Random(0))
        assert self.shown(messages) == ["A" * 50, "B" * 10, "C" * 30]
        assert characters(messages) == len(QUESTION.text) + 90 + 3  # two R turns and the closing F

    def test_the_longest_attempts_are_dropped_until_the_conversation_fits(self) -> None:
        # question (14) + 90 + 3 turns = 107 characters: 60 forces out the 50, 30 the 30 as well
        assert self.shown(self.sampler(60).messages(QUESTION, self.attempts, random.Random(0))) == ["B" * 10,
                                                                                                     "C" * 30]
        assert self.shown(self.sampler(30).messages(QUESTION, self.attempts, random.Random(0))) == ["B" * 10]

    def test_a_limit_exactly_met_keeps_everything(self) -> None:
        full = self.sampler(10_000).messages(QUESTION, self.attempts, random.Random(0))
        exact = self.sampler(characters(full)).messages(QUESTION, self.attempts, random.Random(0))
        assert exact == full

    def test_with_nothing_that_fits_the_sample_is_the_question_alone(self) -> None:
        messages = self.sampler(5).messages(QUESTION, self.attempts, random.Random(0))
        assert messages == [{"role": "user", "content": QUESTION.text}]

    def test_the_real_token_count_replaces_the_estimate_for_max_chain_tokens(self) -> None:
        sampler = IntegratedSampler(k0=1, m=3, max_chain_tokens=2)
        words = [Attempt("six times seven is 42", 0), Attempt("forty two", 1)]
        assert self.shown(sampler.messages(QUESTION, words, random.Random(0))) == []  # estimate: 8 + 4 tokens
        sampler.fit_context(characters, 10_000, count_tokens=lambda text: len(text.split()) // 2)
        assert self.shown(sampler.messages(QUESTION, words, random.Random(0))) == ["forty two"]

    def test_a_sampler_without_a_chain_limit_keeps_its_token_count(self) -> None:
        sampler = ParallelSampler()
        sampler.fit_context(characters, 100, count_tokens=len)
        assert not hasattr(sampler, "count_tokens")

    def test_sequential_revision_is_cut_to_the_context_too(self) -> None:
        sampler = SequentialSampler(prompts=Prompts(question="{question}", format_hints=(), revise="V"))
        last = [Attempt("x" * 40, 0)]
        assert len(sampler.messages(QUESTION, last, random.Random(0))) == 3
        sampler.fit_context(characters, 30)
        assert sampler.messages(QUESTION, last, random.Random(0)) == [{"role": "user", "content": QUESTION.text}]

    def test_sequential_revision_uses_its_own_token_count_for_its_limit(self) -> None:
        sampler = SequentialSampler(max_chain_tokens=5, count_tokens=lambda text: len(text.split()))
        assert len(sampler.messages(QUESTION, [Attempt("one two three four five", 0)], random.Random(0))) == 3
        assert len(sampler.messages(QUESTION, [Attempt("one two three four five six", 0)], random.Random(0))) == 1


class TestTheTokenEstimate:
    @pytest.mark.parametrize(("text", "tokens"), [("", 1), ("ab", 1), ("abc", 2), ("a" * 30, 11)])
    def test_three_characters_a_token_plus_one(self, text: str, tokens: int) -> None:
        assert estimate_tokens(text) == tokens

    def test_integrated_sampling_counts_with_the_estimate_by_default(self) -> None:
        sampler = IntegratedSampler(k0=1, m=1, max_chain_tokens=11)
        assert sampler.messages(QUESTION, [Attempt("a" * 30, 0)], random.Random(0))[-2]["content"] == "a" * 30
        assert len(sampler.messages(QUESTION, [Attempt("a" * 33, 0)], random.Random(0))) == 1


class TestSamplerParameters:
    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"k0": 0}, "k0 must be >= 1, got 0"),
        ({"m": 0}, "m must be >= 1, got 0"),
        ({"max_chain_tokens": -1}, "max_chain_tokens must be >= 0, got -1"),
    ])
    def test_a_bad_parameter_is_the_whole_message(self, kwargs: dict, message: str) -> None:
        with pytest.raises(ConfigError) as raised:
            IntegratedSampler(**kwargs)
        assert str(raised.value) == message

    def test_the_boundaries_are_allowed(self) -> None:
        sampler = IntegratedSampler(k0=1, m=1, max_chain_tokens=0)
        assert (sampler.k0, sampler.m, sampler.max_chain_tokens) == (1, 1, 0)

    def test_defaults(self) -> None:
        integrated, sequential = IntegratedSampler(), SequentialSampler()
        assert (integrated.k0, integrated.m, integrated.max_chain_tokens) == (2, 2, 6000)
        assert sequential.max_chain_tokens == 6000
        assert integrated.prompts == Prompts() and sequential.prompts == Prompts()


class TestQuestionTemplates:
    @pytest.mark.parametrize(("template", "message"), [
        ("Q: {nope}", "unknown placeholder {nope}; the template may use {question}, {format_hint} (write {{ and }} "
                      "for literal braces)"),
        ("Q: {}", "unknown placeholder {}; the template may use {question}, {format_hint} (write {{ and }} for "
                  "literal braces)"),
        ("Q: {question} {", "a lone brace (Single '{' encountered in format string); write {{ and }} for literal "
                            "braces"),
    ])
    def test_a_bad_template_is_one_message_saying_what_is_allowed(self, template: str, message: str) -> None:
        with pytest.raises(ConfigError) as raised:
            Prompts(question=template)
        assert str(raised.value) == f"Prompts.question: {message}"

    def test_the_format_hint_placeholder_is_allowed(self) -> None:
        prompts = Prompts(question="{format_hint}\n{question}")
        assert prompts.user_question(QUESTION).endswith("\nWhat is 6 x 7?")


class TestPromptsFile:
    def write(self, tmp_path: Path, content: str | bytes) -> str:
        path = tmp_path / "prompts.json"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def error(self, path: str) -> str:
        with pytest.raises(InputError) as raised:
            Prompts.from_file(path)
        return str(raised.value)

    def test_a_missing_file(self, tmp_path: Path) -> None:
        path = str(tmp_path / "none.json")
        assert self.error(path) == f"{path}: cannot read the file: No such file or directory"

    def test_malformed_json_names_the_line(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{\n"system": "x"\n"revise": "y"}')
        message = self.error(path)  # the parser's own words vary with the Python version
        assert message.startswith(f"{path}:3: malformed JSON (") and message.endswith(")")
        assert "\n" not in message

    def test_a_file_that_is_not_utf8_names_the_byte(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, b'{"system": "caf\xe9"}')
        assert self.error(path) == f"{path}: not UTF-8 (byte 0xe9 at offset 15)"

    def test_not_an_object(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '["system"]')
        assert self.error(path) == f"{path}: must be a JSON object of prompt fields"

    def test_an_unknown_field_lists_the_known_ones(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{"sistem": "x"}')
        assert self.error(path) == (f"{path}: field 'sistem': unknown prompt field; expected some of format_hints, "
                                    "fresh_solution, question, reconsider, revise, system")

    @pytest.mark.parametrize("hints", ['["x"]', '{"number": 3}', '"x"'])
    def test_format_hints_must_map_types_to_strings(self, tmp_path: Path, hints: str) -> None:
        path = self.write(tmp_path, '{"format_hints": ' + hints + "}")
        assert self.error(path) == f"{path}: field 'format_hints': must map answer types to strings"

    def test_a_text_field_must_be_a_string(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{"system": "ok", "revise": ["x"]}')
        assert self.error(path) == f"{path}: field 'revise': must be a string"

    def test_a_lone_surrogate_in_a_format_hint(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, '{"format_hints": {"number": "N \\udc00"}}')
        assert self.error(path) == f"{path}: field 'format_hints': holds a lone surrogate, which is not valid Unicode"

    def test_given_hints_are_merged_over_the_defaults_in_the_default_order(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, json.dumps({"format_hints": {"date": "D!", "code": "C!"}}))
        hints = Prompts.from_file(path).format_hints
        defaults = dict(Prompts().format_hints)
        assert hints == tuple({**defaults, "date": "D!", "code": "C!"}.items())

    def test_every_field_can_be_set_from_a_file(self, tmp_path: Path) -> None:
        fields = {"system": "S", "question": "Q {question}", "reconsider": "R", "fresh_solution": "F",
                  "revise": "V"}
        prompts = Prompts.from_file(self.write(tmp_path, json.dumps(fields)))
        assert {k: getattr(prompts, k) for k in fields} == fields
        assert prompts.format_hints == Prompts().format_hints

    def test_json_nested_too_deeply(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, "[" * 100_000 + "]" * 100_000)
        assert self.error(path) == f"{path}: JSON nested too deeply to read"

    def test_reading_a_prompts_file_never_depends_on_the_machines_locale(self, tmp_path: Path) -> None:
        # Python warns (here: fails) whenever a file is opened without an encoding, i.e. in the locale's one
        path = self.write(tmp_path, json.dumps({"system": "Réponds en français."}, ensure_ascii=False))
        code = ("import sys; from dynscaling.samplers import Prompts; "
                "print(Prompts.from_file(sys.argv[1]).system == 'Réponds en français.')")
        run = subprocess.run([sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning", "-c",
                              code, path], capture_output=True, text=True, encoding="utf-8", timeout=120)
        assert (run.returncode, run.stdout.strip()) == (0, "True"), run.stderr
