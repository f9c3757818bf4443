"""Generation loop on a tiny random Llama: parity with HF generate, seeds, stops, log-probs."""

from __future__ import annotations

import pytest
import torch

from engines.decoding import IncrementalDecoder, StopMatcher, sample_next
from engines.errors import UserError
from engines.generate import SamplingParams, chat_prompt, generate, stream
from tests.engines.tinylm import tiny_llama, tiny_tokenizer

torch.set_num_threads(1)
PROMPTS = ["The quick brown fox jumps", "Paris", "def add(a, b):\n    return a"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(len(tok), seed=1, initializer_range=1.0)


def hf_greedy(model, tok, prompts, n, eos):
    enc = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    out = model.generate(
        **enc, max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id
    )
    return out[:, enc.input_ids.shape[1] :].tolist()


def test_greedy_matches_transformers_generate(model, tok):
    ours = generate(model, tok, PROMPTS, SamplingParams(max_new_tokens=10, temperature=0))
    assert [g.token_ids for g in ours] == hf_greedy(model, tok, PROMPTS, 10, eos=None)
    assert all(g.finish_reason == "length" for g in ours)


def test_rows_stop_on_their_own_eos(model, tok):
    free = generate(model, tok, PROMPTS, SamplingParams(max_new_tokens=10, temperature=0))
    eos = free[1].token_ids[3]  # row 1 ends after 4 tokens when this token is end-of-sequence
    model.generation_config.eos_token_id = eos
    try:
        ours = generate(model, tok, PROMPTS, SamplingParams(max_new_tokens=10, temperature=0))
        ref = hf_greedy(model, tok, PROMPTS, 10, eos=eos)
    finally:
        model.generation_config.eos_token_id = model.config.eos_token_id
    assert ours[1].finish_reason == "eos" and ours[1].token_ids[-1] == eos
    for g, r in zip(ours, ref, strict=True):
        assert g.token_ids == r[: len(g.token_ids)]
        assert all(t == tok.pad_token_id for t in r[len(g.token_ids) :])
    assert ours[1].text == tok.decode(ours[1].token_ids[:-1])


def test_seed_reproduces_and_differs(model, tok):
    def run(seed):
        p = SamplingParams(max_new_tokens=12, temperature=1.0, top_k=50, top_p=0.9, seed=seed)
        return [g.token_ids for g in generate(model, tok, PROMPTS, p)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_stop_string_cuts_text_and_stream_agrees(model, tok):
    full = generate(model, tok, ["Paris"], SamplingParams(max_new_tokens=16, temperature=0))[0]
    stop = full.text[5:8]
    params = SamplingParams(max_new_tokens=16, temperature=0, stop=[stop])
    cut = generate(model, tok, ["Paris"], params)[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert stop not in cut.text
    assert "".join(stream(model, tok, "Paris", params)) == cut.text


def test_logprobs_sum_to_scored_log_likelihood(model, tok):
    g = generate(model, tok, ["The quick"], SamplingParams(max_new_tokens=8, seed=3))[0]
    prompt = tok("The quick").input_ids
    ids = torch.tensor([prompt + g.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    scored = logp[len(prompt) - 1 :].gather(-1, torch.tensor(g.token_ids)[:, None]).sum()
    assert sum(g.logprobs) == pytest.approx(scored.item(), abs=1e-4)
    assert len(g.entropies) == len(g.token_ids) and all(h >= 0 for h in g.entropies)


def byte_tokens(tok, text):
    """One token per UTF-8 byte (the byte-level alphabet), so characters split across tokens."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spell = bytes_to_unicode()
    return tok.convert_tokens_to_ids([spell[b] for b in text.encode("utf-8")])


def forcing(token_ids):
    """A logits processor that makes every row write `token_ids`."""

    def force(rows, generated, logits):
        for i, g in enumerate(generated):
            logits[i] = float("-inf")
            logits[i, token_ids[min(len(g), len(token_ids) - 1)]] = 0.0
        return logits

    return force


def test_stream_yields_whole_characters(model, tok):
    forced = byte_tokens(tok, "東京 ✓ Café")
    params = SamplingParams(max_new_tokens=len(forced), seed=0)
    pieces = []
    for piece in stream(model, tok, "Paris", params, logits_processor=forcing(forced)):
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        pieces.append(piece)
    assert "".join(pieces) == "東京 ✓ Café"
    assert all("\ufffd" not in p for p in pieces)
    assert len(pieces) < len(forced)  # bytes of one character came out together


def test_incremental_decoder_holds_partial_characters(tok):
    ids = tok("Café 東京 ✓", add_special_tokens=False).input_ids
    dec = IncrementalDecoder(tok)
    text = "".join(dec.push(t) for t in ids) + dec.flush()
    assert text == "Café 東京 ✓"


def test_sample_next_by_hand():
    logits = torch.tensor([[0.0, 3.0, 2.0, -1.0]])
    assert sample_next(logits, 0.0, 0, 1.0, None).tolist() == [1]
    gen = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, 1.0, 2, 1.0, gen).item() for _ in range(50)}
    assert picks == {1, 2}  # top-2 keeps only tokens 1 and 2
    # top_p 0.5: token 1 alone holds ~0.67 of the mass
    assert {sample_next(logits, 1.0, 0, 0.5, gen).item() for _ in range(20)} == {1}


def test_stop_matcher_by_hand():
    m = StopMatcher(["\n\n", "END"])
    assert m.find("a\n\nb END") == 1
    assert m.find("abc") is None
    assert m.safe_length("hello EN") == 6
    assert m.safe_length("hello\n") == 5
    assert m.safe_length("hello") == 5


def test_chat_prompt_template_and_fallback(tok):
    msgs = [{"role": "user", "content": "hi"}]
    assert chat_prompt(tok, msgs).endswith("<|im_start|>assistant\n")
    base = tiny_tokenizer(chat_template=False)
    with pytest.raises(UserError, match="no chat template"):
        chat_prompt(base, msgs)
    assert chat_prompt(base, msgs, fallback=True) == "User: hi\nAssistant:"


def test_bad_params_are_user_errors(model, tok):
    with pytest.raises(UserError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(UserError, match="list of prompts"):
        generate(model, tok, "Paris", SamplingParams())
