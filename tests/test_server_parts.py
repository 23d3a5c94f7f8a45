"""The server's pure parts, without HTTP: model names, votes on JSON and tool calls, secret masking."""

from __future__ import annotations

import pytest

from dynscaling.server import ServeConfig
from dynscaling.server.errors import ApiError, SecretMask
from dynscaling.server.validation import scaled_target
from dynscaling.server.voting import VOTE_PREFIX, ExactClusterer, json_vote, tool_calls_vote

CONFIG = ServeConfig(upstream_url="http://127.0.0.1:9/v1", upstream_model="base", default_budget=8, max_budget=64)


class TestModelNames:
    @pytest.mark.parametrize(("name", "expected"), [
        ("dynscaling/4/gpt-4o-mini", (4, "gpt-4o-mini")),
        ("dynscaling/4/meta-llama/Llama-3.1-8B", (4, "meta-llama/Llama-3.1-8B")),
        ("dynscaling/gpt-4o-mini", (8, "gpt-4o-mini")),
        ("dynscaling/16", (16, "base")),
        ("gpt-4o-mini", None),
    ])
    def test_names_that_scale_or_pass_through(self, name: str, expected: tuple[int, str] | None) -> None:
        assert scaled_target({"model": name}, None, CONFIG) == expected

    @pytest.mark.parametrize("name", ["dynscaling/3/", "dynscaling/", "dynscaling", "dynscaling/lots/x",
                                      "dynscaling/0/x", "dynscaling/65/x", "dynscaling/3//"])
    def test_malformed_scaled_names_are_400s_naming_the_model(self, name: str) -> None:
        with pytest.raises(ApiError) as caught:
            scaled_target({"model": name}, None, CONFIG)
        assert caught.value.status == 400 and caught.value.param == "model"

    def test_the_name_wins_over_the_body_and_the_body_over_the_header(self) -> None:
        assert scaled_target({"model": "dynscaling/2/m", "dynscaling": {"budget": 5}}, "7", CONFIG) == (2, "m")
        assert scaled_target({"model": "m", "dynscaling": {"budget": 5}}, "7", CONFIG) == (5, "m")
        assert scaled_target({"model": "m"}, " 7 ", CONFIG) == (7, "m")
        with pytest.raises(ApiError) as caught:
            scaled_target({"model": "m", "dynscaling": {"budget": True}}, None, CONFIG)
        assert caught.value.param == "dynscaling.budget"


class TestVotes:
    def test_json_votes_ignore_key_order_and_spacing_and_broken_json_abstains(self) -> None:
        assert json_vote('{"b": [1, 2], "a": "x"}') == json_vote('{ "a":"x","b":[1,2] }') == \
            VOTE_PREFIX + '{"a":"x","b":[1,2]}'
        assert json_vote('```json\n{"a": 1}\n```') == VOTE_PREFIX + '{"a":1}'
        assert json_vote("{'a': 1}") is None and json_vote("") is None and json_vote(None) is None
        assert json_vote('{"a": "A"}') != json_vote('{"a": "a"}')  # no text normalisation

    def test_tool_calls_vote_on_names_and_canonical_arguments_in_order(self) -> None:
        def call(name: str, args: str) -> dict:
            return {"id": "x", "type": "function", "function": {"name": name, "arguments": args}}

        assert tool_calls_vote([call("f", '{"a": 1, "b": 2}')]) == tool_calls_vote([call("f", '{"b":2,"a":1}')])
        assert tool_calls_vote([call("f", '{"a": 1}')]) != tool_calls_vote([call("g", '{"a": 1}')])
        assert tool_calls_vote([call("f", "{}"), call("g", "{}")]) != tool_calls_vote([call("g", "{}"),
                                                                                        call("f", "{}")])
        assert tool_calls_vote([call("f", "not json")]) == VOTE_PREFIX + '[["f","not json"]]'
        assert tool_calls_vote([]) is None and tool_calls_vote([{"function": {}}]) is None

    def test_the_exact_clusterer_counts_only_our_votes(self) -> None:
        clusterer = ExactClusterer()
        first = clusterer.assign(VOTE_PREFIX + '{"a":1}')
        assert clusterer.assign(VOTE_PREFIX + '{"a":1}') == first
        assert clusterer.assign(VOTE_PREFIX + '{"a":2}') != first
        assert clusterer.assign("18") is None  # an answer the engine extracted from the text abstains
        assert clusterer.representative(first) == '{"a":1}'


class TestSecretMask:
    def test_the_servers_secrets_and_key_shaped_tokens_are_masked(self) -> None:
        mask = SecretMask(["sk-upstream-12345", "client-key-abcdef", None, "ab"])
        text = mask.text("bad key sk-upstream-12345; client-key-abcdef; Bearer eyJhbGciOi.xyz; sk-other-987654321")
        assert "12345" not in text and "abcdef" not in text and "eyJhbG" not in text and "987654321" not in text
        assert text.count("***") == 4
        assert mask.text("about 'ab' and the budget") == "about 'ab' and the budget"  # short secrets are ignored
