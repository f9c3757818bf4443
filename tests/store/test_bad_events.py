"""Issue 10 #2: one out-of-range or mistyped value in an events.jsonl never bricks the store.

Each poisoned line becomes an error note naming the file and line; the lines around it are
stored; the offset moves past it; commands that read the store keep working.
"""

from __future__ import annotations

import json

import pytest

from store import Store, eventlog
from store import events as events_mod
from store.events import EventError, Metrics, Note, event_from_dict

from .conftest import new_run

RUN = "pretrain-20250101-000000-abcd"
POISON = [
    {"kind": "metrics", "step": 1e30, "values": {"loss": 1.0}},
    {"kind": "metrics", "step": 2, "values": {"loss": 1.0}, "t": 1e20},
    {"kind": "run_started", "pid": 2**40},
    {"kind": "note", "text": "big seq", "seq": 2**64},
    {"kind": "progress", "step": "ten", "total": 10},
    {"kind": "metrics", "step": 3, "values": {"loss": [1]}},
    {"kind": "sample", "step": 1, "prompt": 5},
    {"kind": "artifact", "type": "model", "path": "/m", "meta": "not a dict"},
    {"kind": "table", "name": "t", "rows": {"a": 1}},
    {"kind": "run_finished", "status": 7},
    {"kind": "metrics", "step": -(2**70), "values": {}},
    {"kind": "run_started", "world_size": 1.5},
]


def _write(path, records: list[dict]) -> None:
    with open(path, "a", encoding="utf-8", errors="surrogatepass") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


@pytest.mark.parametrize("bad", POISON, ids=lambda b: f"{b['kind']}-{max(b)}")
def test_a_poisoned_line_is_an_error_note_and_the_rest_is_stored(store: Store, bad: dict) -> None:
    with new_run(store, RUN) as log:
        log.append(Metrics(step=0, values={"loss": 2.0}))
    path = store.run_dir(RUN) / "events.jsonl"
    _write(path, [bad, {"kind": "metrics", "seq": 9, "t": 5.0, "step": 4, "values": {"loss": 0.5}}])
    assert store.ingest() == 3
    assert [m["step"] for m in store.metrics(RUN)] == [0, 4]
    (note,) = [n for n in store.notes(RUN) if n["level"] == "error"]
    assert str(path) in note["text"] and "line 2" in note["text"]
    size = path.stat().st_size
    assert store.sql("SELECT byte_offset FROM ingest_offsets")[1] == [(size,)]
    assert store.list_runs()[0]["run_id"] == RUN  # `runs ls` still works
    assert store.ingest() == 0


def test_lone_surrogates_are_replaced_not_fatal(store: Store) -> None:
    with new_run(store, RUN):
        pass
    path = store.run_dir(RUN) / "events.jsonl"
    line = '{"kind": "sample", "seq": 1, "t": 1.0, "step": 1, "prompt": "a\\ud800b", ' \
           '"completion": "\\udfff", "meta": {"k\\ud800": "v"}}\n'  # fmt: skip
    path.write_text(line)
    assert store.ingest() == 1
    (sample,) = store.samples(RUN)
    assert sample["prompt"] == "a\ufffdb" and sample["completion"] == "\ufffd"
    assert sample["meta"] == {"k\ufffd": "v"}


@pytest.mark.parametrize("chunk_bytes", [None, 512])
def test_a_batch_the_database_rejects_falls_back_to_single_events(
    store: Store, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int | None
) -> None:
    """A value that slips past the checks fails the whole insert: the chunk is split until
    the one bad line is found, and every other line is stored. With small chunks the bad
    one is in the middle of a lock hold's chunks: the hold is rolled back and its chunks
    stored one transaction each."""
    if chunk_bytes:
        monkeypatch.setattr(eventlog, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setitem(events_mod.Sample.CHECKS, "step", lambda name, v: v)
    events_mod._field_checks.cache_clear()
    monkeypatch.setattr(events_mod, "_field_checks", events_mod._field_checks.__wrapped__)
    with new_run(store, RUN) as log:
        for step in range(20):
            log.append(Metrics(step=step, values={"loss": 1.0}))
        log.append({"kind": "sample", "step": 1e30, "prompt": "p"})
        for step in range(20, 40):
            log.append(Metrics(step=step, values={"loss": 1.0}))
        log.append(Note(text="end"))
    store.ingest()
    assert [m["step"] for m in store.metrics(RUN)] == list(range(40))
    errors = [n["text"] for n in store.notes(RUN) if n["level"] == "error"]
    assert len(errors) == 1 and "line 21" in errors[0], errors
    assert store.notes(RUN)[-1]["text"] == "end"
    assert store.ingest() == 0


def test_event_from_dict_names_the_field() -> None:
    with pytest.raises(EventError, match="step"):
        event_from_dict({"kind": "metrics", "step": 1e30})
    assert event_from_dict({"kind": "something_new"}) is None
    event = event_from_dict({"kind": "metrics", "seq": 3, "t": 1.0, "step": 2.0,
                             "values": {"loss": "nan"}})  # fmt: skip
    match event:
        case Metrics(step=2, split="train"):
            assert event.seq == 3 and event.values["loss"] != event.values["loss"]
        case _:
            pytest.fail(f"not a Metrics: {event!r}")


def test_a_line_holding_two_values_does_not_shift_the_others(store: Store) -> None:
    with new_run(store, RUN):
        pass
    path = store.run_dir(RUN) / "events.jsonl"
    good = {"kind": "metrics", "seq": 2, "t": 1.0, "step": 7, "values": {"loss": 1.0}}
    path.write_text('{"kind": "note", "text": "a"}, {"kind": "note", "text": "b"}\n'
                    + json.dumps(good) + "\n")  # fmt: skip
    assert store.ingest() == 2
    assert [m["step"] for m in store.metrics(RUN)] == [7]
    assert "line 1" in store.notes(RUN)[0]["text"]
