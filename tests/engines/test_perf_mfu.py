"""Honest MFU: a low cached or busy-machine peak never yields an MFU above 100%."""

from __future__ import annotations

import dataclasses
import json

import torch

from engines import perf
from engines.trainer import Trainer, causal_lm_loss
from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

torch.set_num_threads(1)


def test_peak_is_the_best_of_several_trials(monkeypatch):
    rates = iter([1.0, 5.0, 2.0, 3.0, 4.0, 9.0])
    monkeypatch.setattr(perf, "matmul_flops", lambda *a, **k: next(rates))
    monkeypatch.setattr(perf, "_PEAK_CACHE", {})
    assert perf.measure_peak_flops("cpu") == 5.0  # TRIALS = 5 timings, the best counts


def test_mfu_is_clamped_and_printed_as_a_percentage():
    assert perf.mfu(1.0, 3.0, 2.0) == 1.0
    assert perf.mfu(1.0, 1.0, 0.0) == 0.0
    assert perf.format_mfu(0.6342) == "63.4%"
    assert perf.format_mfu(1.3) == "100.0%"


def test_an_achieved_rate_above_the_peak_raises_the_cached_peak(tmp_path):
    cache = tmp_path / "cache" / "peak_flops.json"
    assert perf.raise_peak("cpu", cache, achieved=5.0, peak=10.0) == 10.0
    assert not cache.exists()
    assert perf.raise_peak("cpu", cache, achieved=50.0, peak=10.0) == 50.0
    assert json.loads(cache.read_text()) == {f"cpu:{torch.get_num_threads()}": 50.0}


def test_trainer_with_a_faked_low_cached_peak_never_reports_mfu_above_one(tmp_path, monkeypatch):
    """A fresh home whose first peak was measured on a busy machine (1 kFLOP/s)."""
    cache = tmp_path / "home" / "cache" / "peak_flops.json"
    key = f"cpu:{torch.get_num_threads()}"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({key: 1e3}))
    monkeypatch.setattr(perf, "matmul_flops", lambda *a, **k: 1e3)  # still busy now
    monkeypatch.setattr(perf, "_PEAK_CACHE", {})
    cfg = dataclasses.replace(
        tiny_config(max_steps=6, log_every=2), peak_flops=None, peak_cache=str(cache)
    )
    trainer = Trainer(
        tiny_model(), cfg, train_batches=ToyBatches(), loss_fn=causal_lm_loss,
        ckpt_root=tmp_path / "ckpt",
    )  # fmt: skip
    records = [r for r in trainer.train() if r["type"] == "metrics" and r["split"] == "train"]
    mfus = [r["values"]["mfu"] for r in records]
    assert mfus and all(0 < m <= 1.0 for m in mfus), mfus
    raised = json.loads(cache.read_text())[key]
    assert raised > 1e6  # the achieved FLOP/s of the tiny model replaced the 1 kFLOP/s peak
