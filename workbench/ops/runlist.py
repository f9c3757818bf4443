"""The Runs list as both front ends show it: phase, ETA, best metric, hyperparameters, tags.

    rows = run_rows(store, hp=["train.lr"], include_all=False)     # one store transaction
    rows = sort_rows(filter_rows(rows, ["status=done", "loss<2"]), "loss")
    tag(store, "pretrain-tiny", "baseline"); note(store, "pretrain-tiny", "lr too high?")

Tags and notes a user adds live in the run folder (`user.json`), beside run.json: they need
no write to the store, work on a running job, and survive `workbench store rebuild`.
`data-inspect` runs are hidden unless `include_all`.
"""

from __future__ import annotations

import json
import operator
import time
from pathlib import Path
from typing import Any

from workbench.ops.errors import OpError, user_errors
from workbench.ops.fmt import utc_now
from workbench.ops.refs import find_run, run_folder
from workbench.ops.stores import reading

HIDDEN = ("data-inspect",)
FINAL = ("done", "failed", "cancelled", "diverged", "crashed")
USER_FILE = "user.json"
_OPS = {"<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq,
        "<": operator.lt, ">": operator.gt}  # fmt: skip
_seen: dict[tuple[str, str], tuple[float, int]] = {}  # (run, phase) -> first (time, step)


def run_rows(
    store: Any, *, hp: list[str] | None = None, include_all: bool = False, **filters: Any
) -> list[dict[str, Any]]:
    """Runs newest first with `phase`, `eta_s`, `best_val_loss`, `tags` and each `hp` field."""
    with user_errors(), reading(store):
        runs = store.list_runs(**filters)
        best = _best(store)
        rates = _train_rates(store, [r["run_id"] for r in runs if r["status"] == "running"])
    runs = [r for r in runs if include_all or r["pipeline"] not in HIDDEN]
    for r in runs:
        live = r["status"] not in ("done", "cancelled")
        r["phase"] = (r.get("progress_phase") or r["status"]) if live else "-"
        r["eta_s"] = eta_seconds(r, rates.get(r["run_id"]))
        r["best_val_loss"] = best.get(r["run_id"])
        user = user_data(store, r)
        r["tags"], r["notes"] = user["tags"], user["notes"]
        for key in hp or []:
            r[key] = spec_value(r.get("spec"), key)
    return runs


def _best(store: Any) -> dict[str, float]:
    _, rows = store.sql(
        "SELECT run_id, min(value) FROM metrics WHERE NOT nonfinite AND "
        "(name = 'val_loss' OR (name = 'loss' AND split IN ('val', 'eval'))) GROUP BY run_id"
    )
    return dict(rows)


def _train_rates(store: Any, run_ids: list[str]) -> dict[str, tuple[int, float]]:
    """Each live run's first train metric: (step, unix time), to measure its rate from."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    _, rows = store.sql(
        "SELECT run_id, min(step), epoch(min(t)) FROM metrics "
        f"WHERE split = 'train' AND NOT superseded AND run_id IN ({marks}) GROUP BY run_id",
        run_ids,
    )
    return {rid: (int(step), float(t)) for rid, step, t in rows if t is not None}


def eta_seconds(run: dict[str, Any], first_train: tuple[int, float] | None = None) -> float | None:
    """Seconds left in the run's current phase, from its progress rate (None if unknown).

    Training's rate runs from its first train metric (step, unix time) to now; any phase's
    rate also from what this process saw of it before (the TUI and `runs ls --watch`).
    """
    step, total = run.get("progress_step") or 0, run.get("progress_total")
    if run["status"] != "running" or not total or step >= total:
        return None
    key, now = (run["run_id"], run.get("progress_phase") or ""), time.monotonic()
    first = _seen.setdefault(key, (now, step))
    rate = None
    if key[1] in ("train", "") and first_train and step > first_train[0]:
        rate = (step - first_train[0]) / max(1e-3, time.time() - first_train[1])
    if rate is None and now > first[0] and step > first[1]:
        rate = (step - first[1]) / (now - first[0])
    return (total - step) / rate if rate else None


def run_eta(store: Any, run: dict[str, Any]) -> float | None:
    """`eta_seconds` of one run, its training rate read from the store."""
    with user_errors(), reading(store):
        first = _train_rates(store, [run["run_id"]]) if run["status"] == "running" else {}
    return eta_seconds(run, first.get(run["run_id"]))


def spec_value(spec: Any, key: str) -> Any:
    """A dotted field of a run's spec (`train.lr`), or None."""
    node = spec
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def filter_rows(rows: list[dict[str, Any]], filters: list[str]) -> list[dict[str, Any]]:
    """Rows matching every `COLUMN OP VALUE` (=, !=, <, <=, >, >=; `tag=x` matches a tag)."""
    for text in filters:
        key, op, want = _parse_filter(text)
        rows = [r for r in rows if _matches(r, key, op, want)]
    return rows


def _parse_filter(text: str) -> tuple[str, str, str]:
    for op in _OPS:
        key, found, want = text.partition(op)
        if found and key.strip():
            return key.strip(), op, want.strip()
    raise OpError(f"--filter {text!r}: expected COLUMN=VALUE, COLUMN<VALUE, … e.g. status=done")


def _matches(row: dict[str, Any], key: str, op: str, want: str) -> bool:
    if key in ("tag", "tags"):
        return (want in row.get("tags", [])) == (op == "=")
    have = row[key] if key in row else spec_value(row.get("spec"), key)
    if have is None:
        return False
    try:
        return _OPS[op](float(have), float(want))
    except (TypeError, ValueError):
        return _OPS[op](str(have), want)


def sort_rows(rows: list[dict[str, Any]], column: str | None) -> list[dict[str, Any]]:
    """Rows by `column` (`-column`: descending); missing values last."""
    if not column:
        return rows
    key, reverse = column.lstrip("-"), column.startswith("-")
    if rows and key not in rows[0] and spec_value(rows[0].get("spec"), key) is None:
        known = ", ".join(k for k in rows[0] if k not in ("spec", "meta"))
        raise OpError(f"--sort {column!r}: no such column; one of: {known}, or a spec field")
    have = [r for r in rows if _value(r, key) is not None]
    have.sort(key=lambda r: _sortable(_value(r, key)), reverse=reverse)
    return have + [r for r in rows if _value(r, key) is None]


def _value(row: dict[str, Any], key: str) -> Any:
    return row[key] if key in row else spec_value(row.get("spec"), key)


def _sortable(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, int | float) else (1, 0, str(v))


def user_data(store: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The tags and notes a user gave a run ({"tags": [], "notes": []} when none)."""
    path = run_folder(store, run) / USER_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    return {"tags": list(data.get("tags", [])), "notes": list(data.get("notes", []))}


def tag(store: Any, ref: str, name: str, *, remove: bool = False) -> str:
    """Add (or remove) a tag on a run; say what the run's tags are now."""
    if not name.strip() or any(c.isspace() for c in name):
        raise OpError(f"tag {name!r}: one word, no spaces (e.g. baseline)")
    run = find_run(store, ref)
    data = user_data(store, run)
    tags = [t for t in data["tags"] if t != name] + ([] if remove else [name])
    _write_user(store, run, {**data, "tags": tags})
    return f"{run['run_id']}: tags {', '.join(tags) or '(none)'}"


def note(store: Any, ref: str, text: str) -> str:
    """Add a dated note to a run."""
    if not text.strip():
        raise OpError("a note needs some text")
    run = find_run(store, ref)
    data = user_data(store, run)
    notes = [*data["notes"], {"t": utc_now().isoformat(timespec="seconds"), "text": text}]
    _write_user(store, run, {**data, "notes": notes})
    return f"{run['run_id']}: {len(notes)} note(s)"


def _write_user(store: Any, run: dict[str, Any], data: dict[str, Any]) -> None:
    folder = run_folder(store, run)
    if not folder.is_dir():
        raise OpError(f"run {run['run_id']}: its folder {folder} is gone")
    tmp = Path(folder / f".{USER_FILE}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(folder / USER_FILE)


def finished_since(before: dict[str, str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs that were live in `before` (run_id -> status) and are final in `rows`."""
    return [r for r in rows
            if before.get(r["run_id"]) in ("running", "queued") and r["status"] in FINAL]  # fmt: skip
