"""A store filled with fixed runs, metrics, samples, tables and models (for snapshots).

Every timestamp is fixed, so a TUI opened with `now=FIXED_NOW` shows the same ages each
time. The one running run has a fresh heartbeat and no local pid, so it stays running for
the half minute a test takes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from store import EventLog, Store

FIXED_NOW = dt.datetime(2025, 3, 1, 12, 0, 0)
T0 = dt.datetime(2025, 3, 1, 11, 0, 0, tzinfo=dt.UTC).timestamp()

PRETRAIN = "pretrain-20250301-110000-a1b2"
SFT = "sft-20250301-114500-c3d4"
ECHO_FAILED = "echo-20250301-115500-e5f6"
ECHO_CANCELLED = "echo-20250301-115800-0a0b"

PRETRAIN_SPEC = {
    "pipeline": "pretrain",
    "name": "tiny",
    "seed": 1337,
    "description": None,
    "data": {
        "sources": [
            {"kind": "stdlib", "max_docs": 600, "weight": 0.6},
            {"kind": "synthetic", "generator": "stories", "weight": 0.4},
        ],
        "val_fraction": 0.05,
        "workers": 1,
    },
    "tokenizer": {"vocab_size": 2048, "sample_bytes": 1500000, "from_model": None},
    "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "n_kv_head": None},
    "train": {"batch_size": 16, "max_steps": 200, "lr": 0.003},
}


def _log(store: Store, run_id: str, events: list[dict]) -> None:
    log = EventLog(store.runs_dir / run_id / "events.jsonl")
    for i, e in enumerate(events):
        log.append({"t": T0 + i, **e})
    log.close()


def _train_events(steps: int, total: int, every: int = 10) -> list[dict]:
    out = []
    for step in range(every, steps + 1, every):
        loss = 2.0 + 5.0 * math.exp(-step / 40)
        values = {
            "loss": loss,
            "lr": 3e-3 * min(1, step / 40) * (0.5 + 0.5 * math.cos(step / total * math.pi)),
            "tokens_per_s": 9000 + 400 * math.sin(step / 7),
            "mfu": 0.02 + 0.002 * math.cos(step / 9),
            "grad_norm": 1.5 * math.exp(-step / 80) + 0.3,
        }
        out.append({"kind": "metrics", "step": step, "values": values, "split": "train"})
        if step % 50 == 0:
            out.append(
                {
                    "kind": "metrics",
                    "step": step,
                    "values": {"loss": loss + 0.15},
                    "split": "val",
                }
            )
            out.append(
                {
                    "kind": "sample",
                    "step": step,
                    "prompt": "The little ",
                    "completion": f"fox ran home at step {step}.",
                }
            )
        out.append({"kind": "progress", "step": step, "total": total, "phase": "train"})
    return out


def _run(store: Store, run_id: str, pipeline: str, spec: dict, parents=(), minute: int = 0):
    store.create_run(run_id, pipeline, spec, name=spec.get("name"), parents=list(parents))
    folder = store.runs_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    record = {"run_id": run_id, "spec": spec, "meta": {}, "parents": list(parents)}
    (folder / "run.json").write_text(json.dumps(record, indent=2))
    created = FIXED_NOW - dt.timedelta(minutes=60 - minute)
    store.sql("UPDATE runs SET created_at = ? WHERE run_id = ?", [created, run_id], write=True)
    return folder


def fill_store(home: Path) -> Store:
    store = Store(home)
    started = {
        "kind": "run_started",
        "pid": 0,
        "device": "cpu (2 cores)",
        "world_size": 1,
        "host": "elsewhere",
    }
    folder = _run(store, PRETRAIN, "pretrain", PRETRAIN_SPEC)
    model_dir = folder / "model"
    sources = [
        {
            "source": "stdlib",
            "docs": 600,
            "bytes": 5200000,
            "tokens": 1400000,
            "weight": 0.6,
            "drawn_share": 0.61,
            "epochs": 1.2,
        },
        {
            "source": "synthetic-stories",
            "docs": 3000,
            "bytes": 1900000,
            "tokens": 520000,
            "weight": 0.4,
            "drawn_share": 0.39,
            "epochs": 2.1,
        },
    ]
    _log(
        store,
        PRETRAIN,
        [
            started,
            {"kind": "table", "name": "sources", "rows": sources},
            *_train_events(200, 200),
            {"kind": "table", "name": "mixture", "rows": sources},
            {
                "kind": "artifact",
                "type": "model",
                "path": str(model_dir),
                "step": 200,
                "meta": {"name": "tiny", "params": 1_050_000, "architecture": "LlamaForCausalLM"},
            },
            {"kind": "run_finished", "status": "done", "reason": None},
        ],
    )
    (folder / "stdout.log").write_text(
        "".join(
            f"step {s:>4}/200  loss {2 + 5 * math.exp(-s / 40):.3f}\n" for s in range(10, 201, 10)
        )
    )
    sft_spec = {"pipeline": "sft", "name": "chat", "seed": 0, "base": PRETRAIN}
    _run(store, SFT, "sft", sft_spec, parents=[PRETRAIN], minute=45)
    _log(store, SFT, [started, *_train_events(60, 150)])
    (store.runs_dir / SFT / "heartbeat").touch()
    echo = {"pipeline": "echo", "name": None, "seed": 0, "steps": 20, "interval_s": 0.1}
    _run(store, ECHO_FAILED, "echo", {**echo, "fail_at": 3}, minute=55)
    _log(
        store,
        ECHO_FAILED,
        [
            started,
            *_train_events(20, 20)[:4],
            {"kind": "run_finished", "status": "failed", "reason": "RuntimeError: asked to fail"},
        ],
    )
    _run(store, ECHO_CANCELLED, "echo", echo, minute=58)
    _log(
        store,
        ECHO_CANCELLED,
        [
            started,
            *_train_events(10, 20),
            {"kind": "run_finished", "status": "cancelled", "reason": "stopped by signal"},
        ],
    )
    store.refresh()
    store.register_model(
        "tiny",
        "base",
        "trained",
        model_dir,
        params=1_050_000,
        architecture="LlamaForCausalLM",
        chat_template=False,
        run_id=PRETRAIN,
    )
    store.register_model(
        "smollm2-135m-instruct",
        "assistant",
        "pulled",
        home / "models" / "smollm2-135m-instruct",
        params=134_515_008,
        architecture="LlamaForCausalLM",
        chat_template=True,
    )
    store.sql("UPDATE models SET created_at = ?", [FIXED_NOW - dt.timedelta(hours=2)], write=True)
    return store


DOCS = [
    "def add(a, b):\n    return a + b\n",
    "The little fox ran home.",
    "Q: What is 12 + 7?\nA: 19",
    "import os\nprint(os.getcwd())\n",
] * 30


def write_shards(home: Path, spec: dict = PRETRAIN_SPEC) -> Path:
    """The cached data folder a pretrain run with `spec` would have made: tokenizer + shards."""
    import numpy as np

    from engines.tokenizer import train_bpe
    from workbench.ops.data import data_folder

    root = data_folder(home, spec)
    root.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(DOCS, vocab_size=300)
    tok.save_pretrained(root / "tokenizer")
    sources = []
    for name, docs in (("stdlib", DOCS[::2]), ("synthetic-stories", DOCS[1::2])):
        ids = [
            i
            for d in docs
            for i in [*tok(d, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        ]
        np.array(ids, dtype=np.uint16).tofile(root / f"{name}.train.bin")
        sources.append({"source": name, "weight": 0.5, "docs": len(docs), "tokens_train": len(ids)})
    (root / "manifest.json").write_text(json.dumps({"dtype": "uint16", "sources": sources}))
    return root


def register_tiny_pair(home, tmp_path, b_kind: str = "assistant", b_seed: int = 5):
    """tiny-a (an assistant) and tiny-b (`b_kind`) registered in `home`; the store."""
    from store import Store
    from tests.engines.tinylm import save_tiny

    store = Store(home)
    store.register_model("tiny-a", "assistant", "imported", save_tiny(tmp_path / "a", seed=3))
    store.register_model("tiny-b", b_kind, "imported", save_tiny(tmp_path / "b", seed=b_seed))
    return store
