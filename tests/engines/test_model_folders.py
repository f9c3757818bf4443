"""Loading and describing local model folders."""

from __future__ import annotations

import shutil

import pytest
import torch

from engines.errors import UserError
from engines.model_folders import describe_model, load_causal_lm
from tests.engines.tinylm import save_tiny, tiny_llama, tiny_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


def test_load_causal_lm_fp32_on_cpu(folder):
    model, tok = load_causal_lm(folder, device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert tok("Paris").input_ids == tiny_tokenizer()("Paris").input_ids


def test_describe_reads_headers_only(folder):
    info = describe_model(folder)
    expected = sum(p.numel() for p in tiny_llama(len(tiny_tokenizer())).parameters())
    assert info["architecture"] == "LlamaForCausalLM"
    assert info["params"] == expected
    assert info["vocab"] == 320 and info["context"] == 256
    assert info["chat_template"] is True and info["kind"] == "assistant"


def test_folder_without_tokenizer_is_a_user_error(folder, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, bare / name)
    with pytest.raises(UserError, match="has no tokenizer .* import with --tokenizer"):
        load_causal_lm(bare)
    assert describe_model(bare)["kind"] == "base"


def test_not_a_model_folder(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        describe_model(tmp_path)


def test_guessed_kinds_are_registry_kinds(tmp_path):
    """engines cannot import the store; this keeps its guesses inside the registry's kinds."""
    from engines.model_folders import guess_kind
    from store.records import MODEL_KINDS

    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "modules.json").write_text("[]")
    cases = [("LlamaForCausalLM", True, tmp_path), ("LlamaForCausalLM", False, tmp_path),
             ("BertModel", False, tmp_path), ("X", False, tmp_path / "st"),
             ("LlamaForSequenceClassification", False, tmp_path), ("Odd", False, tmp_path)]  # fmt: skip
    assert {guess_kind(*c) for c in cases} <= {*MODEL_KINDS, "other"}
