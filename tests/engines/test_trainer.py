"""Trainer core: learning, divergence, exact resume, stop handling, eval and samples."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from engines.checkpoint import latest_checkpoint
from engines.errors import UserError
from engines.trainer import TrainConfig, Trainer, WarmupCosine, causal_lm_loss
from pipelines.spec import TrainSection
from pipelines.train_events import train_config
from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

torch.set_num_threads(1)


def make(tmp_path, cfg, **kw) -> Trainer:
    kw.setdefault("train_batches", ToyBatches())
    kw.setdefault("loss_fn", causal_lm_loss)
    return Trainer(tiny_model(), cfg, ckpt_root=tmp_path / "ckpt", **kw)


def of(records, kind, split=None):
    return [r for r in records if r["type"] == kind and (split is None or r["split"] == split)]


def train_losses(records) -> list[float]:
    return [r["values"]["loss"] for r in of(records, "metrics", "train")]


def test_loss_decreases_on_tiny_overfit(tmp_path):
    cfg = tiny_config(max_steps=30, lr=1e-2, min_lr=1e-3, log_every=5, eval_every=15)
    records = list(make(tmp_path, cfg, train_batches=ToyBatches(fixed=True)).train())
    losses = train_losses(records)
    assert losses[-1] < 0.5 * losses[0], losses
    val = of(records, "metrics", "val")
    assert val == []  # no val_batches, no val metrics
    values = of(records, "metrics", "train")[-1]["values"]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "tokens"} <= set(values)
    assert values["tokens"] == 30 * 4 * 16 and values["tokens_per_s"] > 0 and values["mfu"] > 0
    assert of(records, "progress")[-1] == {"type": "progress", "step": 30, "total": 30}
    assert [r["step"] for r in of(records, "checkpoint")] == [30]


def test_eval_before_training_periodically_and_at_end(tmp_path):
    cfg = tiny_config(max_steps=5, eval_every=2, eval_batches=2)
    val = ToyBatches(seed=7)
    records = list(make(tmp_path, cfg, val_batches=val).train())
    val_records = of(records, "metrics", "val")
    assert [r["step"] for r in val_records] == [0, 2, 4, 5]
    assert all(math.isfinite(r["values"]["loss"]) for r in val_records)
    # every eval starts from the same val position, so the same weights give the same loss
    trainer = make(tmp_path / "again", cfg, val_batches=ToyBatches(seed=7))
    first = next(trainer.train())
    assert first["values"]["loss"] == val_records[0]["values"]["loss"]


def test_diverged_on_nan_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def poisoned_loss(model, batch):
        calls["n"] += 1
        loss, extra = causal_lm_loss(model, batch)
        return (loss * float("nan") if calls["n"] == 4 else loss), extra

    trainer = make(tmp_path, tiny_config(checkpoint_every=2), loss_fn=poisoned_loss)
    records = []
    for record in trainer.train():
        records.append(record)
        if record["type"] == "checkpoint":
            good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if record["type"] == "progress" and record["step"] == 3:
            before_bad_step = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert records[-1]["type"] == "diverged" and records[-1]["step"] == 4
    assert "non-finite" in records[-1]["reason"]
    assert trainer.step == 3
    after = trainer.model.state_dict()
    assert all(torch.equal(before_bad_step[k], after[k]) for k in after)  # no step taken
    assert latest_checkpoint(tmp_path / "ckpt").name == "step-2"
    assert not torch.equal(good["lm_head.weight"], after["lm_head.weight"])


def test_resume_is_bit_exact(tmp_path):
    cfg = tiny_config(max_steps=6, grad_accum=2, checkpoint_every=0)
    full = make(tmp_path / "a", cfg)
    full_records = list(full.train())

    first = make(tmp_path / "b", cfg)
    part = list(first.train(should_stop=lambda: first.step >= 3))
    assert part[-1] == {"type": "stopped", "step": 3}
    assert of(part, "checkpoint")[-1]["step"] == 3

    second = make(tmp_path / "b", cfg, train_batches=ToyBatches(seed=0))
    rest = list(second.train(resume=True))
    assert second.resumed["counters"]["step"] == 3
    assert train_losses(part) + train_losses(rest) == train_losses(full_records)
    assert (
        of(rest, "metrics", "train")[-1]["values"]["lr"]
        == of(full_records, "metrics", "train")[-1]["values"]["lr"]
    )
    a, b = full.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = full.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    trainer = make(tmp_path, tiny_config(max_steps=2))
    records = list(trainer.train(resume=True))
    assert trainer.resumed is None and records[-1]["type"] == "checkpoint"


def test_should_stop_checkpoints_and_reports_stopped(tmp_path):
    trainer = make(tmp_path, tiny_config(max_steps=50))
    records = list(trainer.train(should_stop=lambda: True))
    assert [r["type"] for r in records[-3:]] == ["metrics", "checkpoint", "stopped"]
    assert records[-1]["step"] == 1
    assert latest_checkpoint(tmp_path / "ckpt").name == "step-1"


def test_samples_yielded_every_sample_every(tmp_path):
    def sample_fn(model, step):
        assert not model.training
        torch.rand(3)  # sampling randomness must not leak into training
        return [{"prompt": "a", "completion": f"b{step}"}]

    cfg = tiny_config(max_steps=4, sample_every=2)
    records = list(make(tmp_path, cfg, sample_fn=sample_fn).train())
    samples = of(records, "sample")
    assert samples == [
        {"type": "sample", "step": 2, "prompt": "a", "completion": "b2"},
        {"type": "sample", "step": 4, "prompt": "a", "completion": "b4"},
    ]
    plain = list(make(tmp_path / "plain", cfg).train())
    assert train_losses(plain) == train_losses(records)


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    big = make(tmp_path / "big", tiny_config(max_steps=2), train_batches=ToyBatches(4))
    list(big.train())

    class Halves(ToyBatches):
        def next_batch(self):
            if not getattr(self, "pending", None):
                x, y = super().next_batch()
                self.pending = [(x[2:], y[2:]), (x[:2], y[:2])]
            return self.pending.pop()

    small = make(
        tmp_path / "small", tiny_config(max_steps=2, grad_accum=2), train_batches=Halves(4)
    )
    list(small.train())
    a, b = big.model.state_dict(), small.model.state_dict()
    # float rounding through two Adam steps reaches about 1.5e-6 here; a mis-scaled
    # accumulation moves weights by about the learning rate (3e-3)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_extra_metrics_are_averaged(tmp_path):
    def loss_with_extra(model, batch):
        loss, _ = causal_lm_loss(model, batch)
        return loss, {"accuracy": torch.tensor(0.25), "const": 2.0}

    cfg = tiny_config(max_steps=2, log_every=2, grad_accum=2)
    records = list(make(tmp_path, cfg, loss_fn=loss_with_extra).train())
    values = of(records, "metrics", "train")[0]["values"]
    assert values["accuracy"] == pytest.approx(0.25) and values["const"] == pytest.approx(2.0)


def test_warmup_cosine_schedule():
    f = WarmupCosine(warmup_steps=2, max_steps=10, min_ratio=0.1)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert (
        f(2) == pytest.approx(1.0) and f(6) == pytest.approx(0.55) and f(10) == pytest.approx(0.1)
    )
    assert f(50) == pytest.approx(0.1)


def test_train_config_is_the_spec_section_without_redeclaring_it():
    """Every TrainConfig field without a default is a TrainSection field (declared once)."""
    required = {f.name for f in dataclasses.fields(TrainConfig)
                if f.default is dataclasses.MISSING}  # fmt: skip
    assert required <= set(TrainSection.model_fields)
    cfg = train_config(TrainSection(eval_every=0), seed=3)
    assert cfg.eval_every == 0 and cfg.lr == TrainSection().lr and cfg.seed == 3


def test_data_state_fn_is_saved_and_world_size_must_match(tmp_path):
    trainer = make(tmp_path, tiny_config(max_steps=1), data_state_fn=lambda: {"data_key": "abc"})
    list(trainer.train())
    state = torch.load(latest_checkpoint(tmp_path / "ckpt") / "state.pt", weights_only=True)
    assert state["data_state"]["data_key"] == "abc" and "gen" in state["data_state"]["train"]
    assert state["extra"]["train_config"]["max_steps"] == 1

    from engines.checkpoint import save_checkpoint

    two = {"train": None, "train_per_rank": [None, None]}
    save_checkpoint(
        tmp_path / "ckpt", 2, model=trainer.model, optimizer=trainer.optimizer,
        scheduler=trainer.scheduler, data_state=two, counters={"step": 2},
    )  # fmt: skip
    with pytest.raises(UserError, match="2 processes and this job has 1: .* global batch"):
        list(make(tmp_path, tiny_config(max_steps=3)).train(resume=True))
