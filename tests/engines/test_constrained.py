"""Constrained output through llguidance on a tiny random model: the grammar always holds."""

from __future__ import annotations

import json
import re

import pytest
import torch

from engines.constrained import (
    choice_processor,
    grammar_processor,
    json_schema_processor,
    regex_processor,
)
from engines.errors import UserError
from engines.generate import SamplingParams, generate
from tests.engines.tinylm import tiny_llama, tiny_tokenizer

torch.set_num_threads(1)
PROMPTS = ["Hello", "The quick brown", "x"]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(len(tok), seed=2, initializer_range=1.0)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_json_schema_output_parses_and_validates(model, tok, temperature):
    proc = json_schema_processor(tok, SCHEMA)
    params = SamplingParams(max_new_tokens=80, temperature=temperature, seed=5)
    for g in generate(model, tok, PROMPTS, params, logits_processor=proc):
        assert g.finish_reason == "eos", g.text
        value = json.loads(g.text)
        assert set(value) == {"name", "age", "ok"}
        assert isinstance(value["age"], int) and 0 <= value["age"] <= 99
        assert isinstance(value["ok"], bool) and len(value["name"]) <= 6


def test_processor_serves_a_second_run(model, tok):
    proc = regex_processor(tok, r"[0-9]{3}-[a-z]{2}")
    params = SamplingParams(max_new_tokens=20, temperature=1.0, seed=1)
    for _ in range(2):
        for g in generate(model, tok, PROMPTS, params, logits_processor=proc):
            assert re.fullmatch(r"[0-9]{3}-[a-z]{2}", g.text), g.text


def test_choice_output_is_one_option(model, tok):
    options = ["yes", "no", 'maybe "so"']
    proc = choice_processor(tok, options)
    params = SamplingParams(max_new_tokens=20, temperature=1.0, seed=3)
    outs = generate(model, tok, PROMPTS * 2, params, logits_processor=proc)
    assert all(g.text in options for g in outs)


def test_guidance_grammar_node(model, tok):
    import guidance

    proc = grammar_processor(tok, guidance.select(["alpha", "beta"]))
    g = generate(model, tok, ["Hello"], SamplingParams(temperature=0), logits_processor=proc)[0]
    assert g.text in ("alpha", "beta")


def test_bad_grammars_are_user_errors(tok):
    with pytest.raises(UserError, match="regex"):
        regex_processor(tok, "[unclosed")
    with pytest.raises(UserError, match="choice"):
        choice_processor(tok, [])
