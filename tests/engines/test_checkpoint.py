"""engines.checkpoint: atomic folders, hash verification, pruning and full restore."""

from __future__ import annotations

import json
import random

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from engines.checkpoint import (
    COMPLETE,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tests.engines.trainer_fixtures import tiny_model

torch.set_num_threads(1)


def trained(seed: int = 0):
    model = tiny_model(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    model(torch.randint(0, 64, (2, 8))).logits.sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def save(root, step, model, opt=None, sched=None, keep=2):
    return save_checkpoint(
        root, step, model=model, optimizer=opt, scheduler=sched, keep=keep,
        data_state={"rng": np.random.default_rng(1).bit_generator.state},
        counters={"tokens": 10 * step}, extra={"note": "x"},
    )  # fmt: skip


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched = trained()
    path = save(tmp_path, 1, model, opt, sched)
    assert sorted(p.name for p in path.iterdir()) == [
        COMPLETE, "config.json", "model.safetensors", "optimizer.pt", "rng.pt", "scheduler.pt",
        "state.pt",
    ]  # fmt: skip
    expected = (random.random(), np.random.rand(), torch.rand(2))
    model2, opt2, sched2 = trained(seed=1)
    state = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(2), expected[2])
    assert state["step"] == 1 and state["counters"] == {"tokens": 10}
    assert state["extra"] == {"note": "x"}
    assert state["data_state"]["rng"] == np.random.default_rng(1).bit_generator.state
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model2.lm_head.weight is model2.model.embed_tokens.weight  # still tied
    assert torch.equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )
    assert sched2.last_epoch == sched.last_epoch == 1


def test_checkpoint_folder_loads_with_from_pretrained(tmp_path):
    model, _, _ = trained()
    path = save(tmp_path, 1, model)
    loaded = AutoModelForCausalLM.from_pretrained(path)
    x = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model.eval()(x).logits)


def test_keep_prunes_older_complete_ones(tmp_path):
    model = tiny_model()
    for step in (1, 2, 3, 4):
        save(tmp_path, step, model, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-3", "step-4"]
    save(tmp_path, 5, model, keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["step-5"]


def test_tmp_folder_is_ignored_and_cleaned(tmp_path):
    model = tiny_model()
    save(tmp_path, 1, model)
    half = tmp_path / "step-2.tmp"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "step-1"
    save(tmp_path, 3, model)
    assert not half.exists()


def test_wrong_hash_or_missing_marker_is_ignored(tmp_path):
    model = tiny_model()
    save(tmp_path, 1, model)
    save(tmp_path, 2, model)
    marker = tmp_path / "step-2" / COMPLETE
    data = json.loads(marker.read_text())
    data["files"]["model.safetensors"] = "0" * 64
    marker.write_text(json.dumps(data))
    assert latest_checkpoint(tmp_path).name == "step-1"
    marker.unlink()
    assert latest_checkpoint(tmp_path).name == "step-1"
    (tmp_path / "step-1" / "state.pt").write_bytes(b"corrupt")  # COMPLETE no longer verifies
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None


def test_newest_by_step_number_not_name(tmp_path):
    model = tiny_model()
    save(tmp_path, 9, model, keep=5)
    save(tmp_path, 10, model, keep=5)
    assert latest_checkpoint(tmp_path).name == "step-10"


def test_same_step_written_twice_is_replaced(tmp_path):
    model = tiny_model()
    save(tmp_path, 1, model)
    path = save(tmp_path, 1, tiny_model(seed=2))
    assert latest_checkpoint(tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1"]


def test_plain_module_without_config(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    path = save_checkpoint(tmp_path, 7, model=net)
    assert not (path / "config.json").exists()
    other = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    state = load_checkpoint(latest_checkpoint(tmp_path), model=other)
    assert state["step"] == 7 and torch.equal(other[0].weight, net[0].weight)
