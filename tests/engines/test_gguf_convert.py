"""GGUF → HF folder conversion on a tiny GGUF written here with the `gguf` package."""

from __future__ import annotations

import pytest
import torch

from engines.errors import UserError
from engines.gguf_convert import convert_gguf, gguf_summary
from tests.engines.tinylm import tiny_llama, tiny_tokenizer, write_tiny_gguf

torch.set_num_threads(1)
TEXT = "The quick brown fox. Paris is the capital of France."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok), seed=3, initializer_range=0.2)
    folder = tmp_path_factory.mktemp("gguf")
    return model, tok, write_tiny_gguf(folder / "tiny.gguf", model, tok)


def test_converted_folder_matches_gguf_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok, gguf_path = tiny
    out = convert_gguf(gguf_path, tmp_path / "out")
    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    plain_tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    ref = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    assert getattr(plain.config, "quantization_config", None) is None
    assert plain.dtype == torch.float32
    ids = torch.tensor([plain_tok(TEXT).input_ids])
    assert ids[0].tolist() == tok(TEXT).input_ids
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, ref(ids).logits)
        # and close to the model the GGUF was written from (ffn_down went through Q8_0)
        assert (plain(ids).logits - model(ids).logits).abs().max() < 0.05
    assert plain_tok.chat_template and "<|im_start|>" in plain_tok.chat_template
    assert (out / "generation_config.json").is_file()


def test_gguf_without_chat_template_gives_none(tmp_path):
    tok = tiny_tokenizer()
    path = write_tiny_gguf(tmp_path / "base.gguf", tiny_llama(len(tok)), tok, chat_template=False)
    assert gguf_summary(path)["chat_template"] is False
    out = convert_gguf(path, tmp_path / "out")
    from transformers import AutoTokenizer

    assert not AutoTokenizer.from_pretrained(out, local_files_only=True).chat_template


def test_unsupported_architecture_is_a_user_error(tmp_path):
    import gguf

    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(str(path), "not-an-arch")
    w.add_tensor("token_embd.weight", torch.zeros(4, 4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UserError, match=r"odd\.gguf.*'not-an-arch'.*F32"):
        convert_gguf(path, tmp_path / "out")


def test_missing_or_garbage_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        convert_gguf(tmp_path / "nope.gguf", tmp_path / "out")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all")
    with pytest.raises(UserError, match="not a readable GGUF"):
        convert_gguf(junk, tmp_path / "out")
