"""The ingest speed-up (store/ingest_fast.py: a chunk's metrics lines parsed and checked as
Arrow columns) stores exactly what the per-line path stores: the same metric rows, attempts,
superseded marks, error notes, run columns and offsets, for logs mixing every event kind,
resumes and lines the columns must leave to the per-line checks."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path

import pytest

from store import Store, db, eventlog, ingest_fast
from store import ingest as ingest_mod
from store.db import forget_migrated

RUN = "pretrain-20250101-000000-abcd"

ODD_LINES = [  # each sends its chunk's metrics lines down the per-line path
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": "nan"}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": null}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": 1, "loss": 2}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3.0, "values": {"loss": 1e400}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"lo\\ud800ss": 1.5}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": true}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": [1]}}',
    '{"seq": %d, "t": 1e20, "kind": "metrics", "step": 3, "values": {"loss": 1.0}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 1e30, "values": {"loss": 1.0}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": 1.0}, "split": 7}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"x\tname": 1.0}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "values": {"a": 1}}, {"kind": "metrics"}',
    '{"seq": -%d, "t": 5.0, "kind": "metrics", "step": 3, "values": {"loss": 1.0}}',
    '{"seq": %d, "t": 5.0, "kind": "metrics", "step": 3, "values": 5}',
    '{"seq": %d, "t": 5, "kind": "metrics", "step": 4, "values": {"loss": 2}, "extra": [1]}',
    '{"seq": %d, "kind": "metrics", "step": 3, "values": {"loss": 1.0}}',
    '{"seq": %d, "t": 5.0, "kind": "metricz", "x": "\\"kind\\": \\"metrics\\""}',
    '{"seq": %d, "t": 5.0, "kind": "note", "text": "a", "meta": {"kind": "metrics"}}',
    "not json at all %d",
    "",
]


def write_log(path: Path, rng: random.Random, lines: int) -> None:
    """A run's log: metrics of several shapes among progress, notes, samples, artifacts, a
    resume that logs steps again, and now and then a line only the per-line checks handle."""
    seq, step, out = 0, 0, []

    def add(record: dict) -> None:
        nonlocal seq
        seq += 1
        out.append(json.dumps({"seq": seq, "t": 1.7e9 + seq * 0.25, **record}))

    add({"kind": "run_started", "pid": 1, "host": "elsewhere"})
    while len(out) < lines:
        step += 1
        r = rng.random()
        if r < 0.55:
            values = {"loss": rng.random() * 4, "lr": 3e-4 * rng.random(), "tokens": step * 512}
            add({"kind": "metrics", "step": step, "values": values})
        elif r < 0.62:
            add({"kind": "metrics", "step": step, "split": "val", "values": {"val_loss": 2.5}})
        elif r < 0.66:
            add({"kind": "metrics", "values": {"acc": 0.5, "val_x": 1}, "split": "eval"})
        elif r < 0.80:
            add({"kind": "progress", "step": step, "total": 10**6})
        elif r < 0.84:
            add({"kind": "note", "text": f"note {step}", "level": "info"})
        elif r < 0.86:
            add({"kind": "sample", "step": step, "prompt": "p", "completion": "c"})
        elif r < 0.88:
            add({"kind": "artifact", "type": "checkpoint", "path": f"/c/{step}", "step": None})
        elif r < 0.89:
            add({"kind": "run_started", "pid": 2, "host": "elsewhere"})  # a resume
            step = max(0, step - rng.randint(1, 20))
        elif r < 0.91:
            seq += 1
            out.append(rng.choice(ODD_LINES).replace("%d", str(seq)))
        else:
            add({"kind": "metrics", "step": step, "values": {"loss": 1.0, "mfu": 0.4}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8", errors="surrogatepass")


def ingest(home: Path, log: Path, columns: bool, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Ingest `log` into a fresh store at `home`; return every stored row worth comparing."""
    forget_migrated()
    store = Store(home)
    store.create_run(RUN, "pretrain", {"train": {"log_every": 2}})
    store.run_dir(RUN).mkdir(parents=True)
    (store.run_dir(RUN) / "events.jsonl").write_bytes(log.read_bytes())
    used = []
    real = ingest_fast.parse_metrics

    def spy(*args):
        rows = real(*args)
        used.append(rows is not None)
        return rows

    with monkeypatch.context() as m:
        m.setattr(ingest_mod, "parse_metrics", spy)
        if not columns:
            m.setattr(ingest_mod, "COLUMNS", False)
        stored = store.ingest()

    def rows(sql: str) -> list:
        return store.sql(sql)[1]

    where = str(store.run_dir(RUN))
    now = datetime(2025, 1, 1)  # the log's times are in 2023; a line without one gets now

    def metric(row: tuple) -> tuple:
        return (*row[:5], "now" if row[5] > now else row[5], *row[6:])

    return {
        "stored": stored,
        "columns_used": sum(used),
        "metrics": [metric(r) for r in rows("SELECT step, name, value, nonfinite, split, t, seq, attempt, "
                        "superseded FROM metrics ORDER BY seq, name, split")],
        "notes": [(lvl, text.replace(where, "RUN"), "now" if t > now else t, seq) for lvl, text, t, seq in
                  rows("SELECT level, text, t, seq FROM notes ORDER BY seq, text")],
        "samples": rows("SELECT step, prompt, completion, seq FROM samples ORDER BY seq"),
        "artifacts": rows("SELECT type, path, step, seq FROM artifacts ORDER BY seq"),
        "run": rows("SELECT status, pid, progress_step, progress_total, attempts, loss, "
                    "val_loss FROM run_summary"),
        "offsets": rows("SELECT byte_offset, last_seq, attempt, line_no FROM ingest_offsets"),
    }  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_columns_store_what_lines_store(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 8 * 1024)  # many chunks of mixed content
    log = tmp_path / "events.jsonl"
    write_log(log, random.Random(seed), 1000)
    fast = ingest(tmp_path / "columns", log, True, monkeypatch)
    slow = ingest(tmp_path / "lines", log, False, monkeypatch)
    assert fast["columns_used"] >= 5, "the column path should take most chunks"
    assert slow["columns_used"] == 0
    for key in ("stored", "metrics", "notes", "samples", "artifacts", "run", "offsets"):
        assert fast[key] == slow[key], key
    assert len(fast["metrics"]) > 1000 and any(n[0] == "error" for n in fast["notes"])
    assert any(m[7] == 2 for m in fast["metrics"]) and any(m[8] for m in fast["metrics"])


def test_a_tail_of_metrics_goes_through_columns(tmp_path, monkeypatch):
    log = tmp_path / "events.jsonl"
    head = {"seq": 1, "t": 5.0, "kind": "run_started", "pid": 1, "host": "elsewhere"}
    tail = [{"seq": i + 2, "t": 6.0 + i, "kind": "metrics", "step": i, "values": {"loss": 1 / (i + 1)}}
            for i in range(3000)]  # fmt: skip
    log.write_text("\n".join(json.dumps(r) for r in [head, *tail]) + "\n")
    fast = ingest(tmp_path / "columns", log, True, monkeypatch)
    slow = ingest(tmp_path / "lines", log, False, monkeypatch)
    assert fast["columns_used"] == 1 and fast["stored"] == 3001
    assert fast["metrics"] == slow["metrics"] and fast["offsets"] == slow["offsets"]


@pytest.mark.parametrize("seed", [0, 1])
def test_holds_store_what_a_transaction_per_chunk_stores(tmp_path, monkeypatch, seed):
    """Many chunks stored under one lock hold, in one transaction, store what one
    transaction per chunk stores (the path inside `Store.read()` and after a refusal)."""
    monkeypatch.setattr(eventlog, "CHUNK_BYTES", 8 * 1024)
    monkeypatch.setattr(ingest_mod, "HOLD_S", 30.0)  # however slow the machine, long holds
    log = tmp_path / "events.jsonl"
    write_log(log, random.Random(seed), 1000)
    before = db.connections_opened()
    held = ingest(tmp_path / "held", log, True, monkeypatch)
    held_opens = db.connections_opened() - before

    def one_a_transaction(connect, runs_dir, cur):
        return ingest_mod._ingest_chunks(connect, runs_dir, cur, None, True)

    monkeypatch.setattr(ingest_mod, "_ingest_held", one_a_transaction)
    before = db.connections_opened()
    chunked = ingest(tmp_path / "chunks", log, True, monkeypatch)
    assert db.connections_opened() - before > held_opens + 5  # the holds took many chunks
    for key in ("stored", "metrics", "notes", "samples", "artifacts", "run", "offsets"):
        assert held[key] == chunked[key], key
