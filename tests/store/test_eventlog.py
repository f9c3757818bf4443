"""events.jsonl: seq numbering, reopen, threads, half-written and corrupt lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from store import EventLog, read_events
from store.events import Metrics, Note


def test_append_adds_seq_and_t_and_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.jsonl"
    with EventLog(path) as log:
        first = log.append(Note(text="hello"))
        log.append({"kind": "note", "text": "dict", "seq": 99})
    assert first["seq"] == 1 and first["t"] > 0
    with EventLog(path) as log:
        assert log.append(Metrics(step=3, values={"loss": 1.5}))["seq"] == 3
    events, offset = read_events(path)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert offset == path.stat().st_size
    assert events[2]["values"] == {"loss": 1.5}


def test_nonfinite_floats_in_dicts_are_written_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.append({"kind": "metrics", "step": 1, "values": {"loss": float("nan")}})
        log.append(Metrics(step=2, values={"loss": float("inf")}))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["values"]["loss"] for x in lines] == ["nan", "inf"]


def test_threads_get_unique_seqs_and_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)

    def work() -> None:
        for i in range(200):
            log.append(Note(text="x" * (i % 50)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    events, _ = read_events(path)
    assert sorted(e["seq"] for e in events) == list(range(1, 801))


def test_half_written_last_line_is_left_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    whole = json.dumps({"seq": 1, "t": 1.0, "kind": "note", "text": "a"}) + "\n"
    second = json.dumps({"seq": 2, "t": 2.0, "kind": "note", "text": "b"}) + "\n"
    path.write_text(whole + second[:10])
    events, offset = read_events(path)
    assert [e["seq"] for e in events] == [1] and offset == len(whole)
    with open(path, "a") as f:
        f.write(second[10:])
    events, offset = read_events(path, offset)
    assert [e["seq"] for e in events] == [2] and offset == len(whole + second)
    assert read_events(path, offset) == ([], offset)


def test_corrupt_line_becomes_an_error_note(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = json.dumps({"seq": 2, "t": 2.0, "kind": "note", "text": "ok"})
    path.write_text('{"seq": 1, "kind": \n[1, 2]\n' + good + "\n")
    events, _ = read_events(path)
    assert [e["kind"] for e in events] == ["note", "note", "note"]
    assert events[0]["level"] == "error" and "byte 0" in events[0]["text"]
    assert events[1]["level"] == "error" and "'kind'" in events[1]["text"]
    assert events[2] == {"seq": 2, "t": 2.0, "kind": "note", "text": "ok"}


def test_reopen_after_a_torn_last_line_continues_from_the_last_whole_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        for _ in range(5):
            log.append(Note(text="n"))
    with open(path, "a") as f:
        f.write('{"seq": 6, "kind": "no')
    with EventLog(path) as log:
        assert log.seq == 5
        log.append(Note(text="after"))
    events, _ = read_events(path)
    assert [e.get("seq") for e in events] == [1, 2, 3, 4, 5, None, 6]
    assert events[5]["level"] == "error" and events[6]["text"] == "after"


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_events(tmp_path / "nope.jsonl", 7) == ([], 7)
