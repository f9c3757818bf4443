"""Spec validation and the preflight: what can be checked is refused (SpecError, exit 2)
before the run exists — no run folder, no store row, no failed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.memory import training_bytes
from engines.model_size import ModelSize
from engines.vocab import MIN_VOCAB
from pipelines.registry import spec_from_dict
from pipelines.runner import prepare_run
from pipelines.spec import SpecError
from store import Store


def pretrain(tmp_path: Path, source: dict, **sections) -> dict:
    data = {
        "pipeline": "pretrain",
        "data": {"sources": [source]},
        "tokenizer": {"vocab_size": 300, "sample_bytes": 10_000},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32},
        "train": {"device": "cpu", "batch_size": 2},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def refused(home: Path, data: dict, where: Path) -> str:
    """The SpecError text prepare_run gives, after checking it wrote nothing."""
    store = Store(home)
    with pytest.raises(SpecError) as err:
        spec = spec_from_dict(data, where="job.toml", base_dir=where)
        prepare_run(store, spec)
    assert store.list_runs() == []
    assert not store.runs_dir.exists() or not any(store.runs_dir.iterdir())
    return str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weight_decay", float("inf"), "finite number"),
        ("grad_clip", float("inf"), "finite number"),
        ("lr", float("nan"), "finite number"),
    ],
)
def test_non_finite_train_values_are_refused(field, value, message):
    data = pretrain(Path("."), {"kind": "stdlib"}, train={field: value})
    with pytest.raises(SpecError, match=rf"train\.{field}.*{message}"):
        spec_from_dict(data, where="job.toml")


def test_vocab_size_names_the_true_minimum():
    data = pretrain(Path("."), {"kind": "stdlib"}, tokenizer={"vocab_size": 1})
    with pytest.raises(SpecError, match=rf"tokenizer\.vocab_size.*{MIN_VOCAB}"):
        spec_from_dict(data, where="job.toml")
    assert MIN_VOCAB == 263


def test_sft_redeclares_defaults_but_keeps_the_ranges():
    from pipelines.sft_spec import SFTTrain
    from pipelines.spec import TrainSection

    assert SFTTrain().lr != TrainSection().lr
    for name in ("lr", "max_steps", "sample_every"):
        assert SFTTrain.model_fields[name].metadata == TrainSection.model_fields[name].metadata
    assert TrainSection(eval_every=0).eval_every == 0  # the trainer's "only at start and end"


def test_empty_file_is_refused_before_the_run(tmp_path, home):
    (tmp_path / "empty.txt").write_text("")
    msg = refused(home, pretrain(tmp_path, {"kind": "file", "path": "empty.txt"}), tmp_path)
    assert "data.sources.0.path" in msg and "is empty" in msg


def test_too_little_data_for_one_window_is_refused(tmp_path, home):
    (tmp_path / "tiny.txt").write_text("just a few words")
    msg = refused(home, pretrain(tmp_path, {"kind": "file", "path": "tiny.txt"}), tmp_path)
    assert "holds at most 17 tokens" in msg and "needs 33" in msg and "block_size" in msg


def test_block_size_larger_than_the_data_is_refused(tmp_path, home):
    (tmp_path / "some.txt").write_text("word " * 100)
    data = pretrain(
        tmp_path,
        {"kind": "file", "path": "some.txt"},
        model={"block_size": 1024, "n_layer": 1, "n_head": 2, "n_embd": 16},
    )
    assert "needs 1025" in refused(home, data, tmp_path)


def test_jsonl_without_the_text_field_is_refused(tmp_path, home):
    rows = [{"content": "hello " * 50}] * 3
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    msg = refused(home, pretrain(tmp_path, {"kind": "jsonl", "path": "d.jsonl"}), tmp_path)
    assert "d.jsonl:1: no string field 'text' (found: content)" in msg
    assert "data.sources.0.text_field" in msg


def test_glob_matching_nothing_is_refused(tmp_path, home):
    data = pretrain(tmp_path, {"kind": "glob", "glob": "*.nothing"})
    assert "matched no files" in refused(home, data, tmp_path)


def test_cuda_without_a_gpu_is_refused(tmp_path, home):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = pretrain(tmp_path, {"kind": "stdlib"}, train={"device": "cuda"})
    assert "'train.device': 'cuda' but" in refused(home, data, tmp_path)


def test_compile_without_a_cxx_compiler_is_refused(tmp_path, home, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++")
    data = pretrain(tmp_path, {"kind": "stdlib"}, train={"compile": True})
    msg = refused(home, data, tmp_path)
    assert "'train.compile': true, but torch.compile on the CPU needs a C++ compiler" in msg
    assert "'no-such-c++' is not on the PATH" in msg and "train.compile = false" in msg
    data = pretrain(tmp_path, {"kind": "stdlib"}, train={"compile": False})
    spec = spec_from_dict(data, where="job.toml", base_dir=tmp_path)
    assert prepare_run(Store(home), spec)  # the same spec without compile is fine


def test_a_model_too_big_for_memory_is_refused_with_the_estimate(tmp_path, home):
    model = {"n_layer": 50, "n_head": 64, "n_embd": 8192, "block_size": 128}
    msg = refused(home, pretrain(tmp_path, {"kind": "stdlib"}, model=model), tmp_path)
    assert "this job needs about" in msg and "GB of cpu memory" in msg and "available" in msg


def test_memory_estimate_counts_the_parameters_it_builds():
    from engines.model import build_model, count_params

    size = ModelSize(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=300, n_kv_head=1)
    assert size.params == count_params(build_model(size, seed=0, eos_id=0))
    need = training_bytes(params=size.params, batch=1, seq_len=1, n_layer=1, n_embd=1,
                          vocab_size=1)  # fmt: skip
    assert need >= 16 * size.params


def test_a_valid_spec_passes_and_creates_the_run(tmp_path, home):
    (tmp_path / "ok.txt").write_text("plenty of words here " * 50)
    spec = spec_from_dict(
        pretrain(tmp_path, {"kind": "file", "path": "ok.txt"}), where="job.toml", base_dir=tmp_path
    )
    store = Store(home)
    run_id = prepare_run(store, spec)
    assert store.get_run(run_id)["status"] == "queued"


def test_dump_toml_round_trips_a_spec():
    import tomllib

    from pipelines.spec import dump_toml

    spec = spec_from_dict(pretrain(Path("."), {"kind": "stdlib"}), where="job.toml")
    data = spec.model_dump(mode="json")
    again = spec_from_dict(tomllib.loads(dump_toml(data)), where="dumped.toml")
    assert again == spec
