"""The model registry: versioned names, and a record file beside each model for rebuilds.

A name registered again for a different model folder gets a new version: `tiny` is the
newest, `tiny@1`, `tiny@2` stay reachable. Registering the same folder again updates that
version in place (so the job's end and an ingest of its `model` artifact can both register
it). Each registration writes `workbench-model.json` into the model's folder when it lies
under the workbench home (else, or when that fails, `models/records/<name>@<version>.json`),
from which `Store.rebuild()` restores the registry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

from store.db import rows_as_dicts, to_json
from store.errors import StoreError
from store.migrations import utc_now

MODEL_KINDS = ("base", "assistant", "reward", "embedding", "adapter")
MODEL_SOURCES = ("trained", "pulled", "imported")
MODEL_FIELDS = ("params", "architecture", "tokenizer", "chat_template", "run_id",
                "parent_model", "meta")  # fmt: skip
RECORD_FILE = "workbench-model.json"
RECORDS_DIR = "records"
_REF = re.compile(r"^(?P<name>.+)@(?P<version>\d+)$")
_SELECT = (
    "SELECT *, name || '@' || version AS ref, "
    "version = max(version) OVER (PARTITION BY name) AS latest FROM models"
)


def split_ref(ref: str) -> tuple[str, int | None]:
    """`name@3` -> ("name", 3); `name` -> ("name", None) (the newest version)."""
    m = _REF.match(ref)
    return (m["name"], int(m["version"])) if m else (ref, None)


def register(
    conn: duckdb.DuckDBPyConnection,
    models_dir: Path,
    name: str,
    kind: str,
    source: str,
    path: Path | str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """Insert a new version of `name`, or update the version that has this path; return it."""
    check_model(name, kind, source, fields)
    values = {f: fields.get(f) for f in MODEL_FIELDS}
    values["meta"] = to_json(values["meta"] or {})
    version = _version_for(conn, name, str(path))
    cols = ["name", "version", "kind", "source", "path", *MODEL_FIELDS, "created_at"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[2:-1])
    conn.execute(
        f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT (name, version) DO UPDATE SET {updates}",
        [name, version, kind, source, str(path), *values.values(), utc_now()],
    )
    row = get(conn, f"{name}@{version}")
    assert row is not None, f"model {name}@{version} vanished after its insert"
    write_record(models_dir, row)
    return row


def check_model(name: str, kind: str, source: str, fields: dict[str, Any]) -> None:
    _check_choice("model kind", kind, MODEL_KINDS)
    _check_choice("model source", source, MODEL_SOURCES)
    unknown = set(fields) - set(MODEL_FIELDS)
    if unknown:
        raise StoreError(f"unknown model fields {sorted(unknown)}: use {MODEL_FIELDS}")
    if not name or _REF.match(name):
        raise StoreError(f"model name {name!r} must be non-empty and not end in @<number>")


def _version_for(conn: duckdb.DuckDBPyConnection, name: str, path: str) -> int:
    same = conn.execute(
        "SELECT max(version) FROM models WHERE name = ? AND path = ?", [name, path]
    ).fetchone()[0]
    if same is not None:
        return int(same)
    newest = conn.execute("SELECT max(version) FROM models WHERE name = ?", [name]).fetchone()[0]
    return int(newest or 0) + 1


def get(conn: duckdb.DuckDBPyConnection, ref: str) -> dict[str, Any] | None:
    """The model `name` (newest version) or `name@N`, with `ref` and `latest`; or None."""
    name, version = split_ref(ref)
    query = f"SELECT * FROM ({_SELECT}) WHERE name = ?"
    params: list[Any] = [name]
    if version is None:
        query += " ORDER BY version DESC LIMIT 1"
    else:
        query, params = query + " AND version = ?", [name, version]
    rows = rows_as_dicts(conn.execute(query, params), ("meta",))
    return rows[0] if rows else None


def listing(
    conn: duckdb.DuckDBPyConnection, kind: str | None, latest_only: bool
) -> list[dict[str, Any]]:
    query, params = f"SELECT * FROM ({_SELECT}) WHERE 1=1", []
    if kind is not None:
        query, params = query + " AND kind = ?", [kind]
    if latest_only:
        query += " AND latest"
    cur = conn.execute(query + " ORDER BY name, version", params)
    return rows_as_dicts(cur, ("meta",))


def remove(conn: duckdb.DuckDBPyConnection, ref: str) -> list[str]:
    """Forget `name@N`, or every version of `name`; return the refs removed (files stay)."""
    name, version = split_ref(ref)
    where, params = "name = ?", [name]
    if version is not None:
        where, params = where + " AND version = ?", [name, version]
    refs = [r for (r,) in conn.execute(
        f"SELECT name || '@' || version FROM models WHERE {where} ORDER BY version", params
    ).fetchall()]  # fmt: skip
    conn.execute(f"DELETE FROM models WHERE {where}", params)
    return refs


def inside(conn: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """Refs of every model whose path is `folder` or lies under it."""
    base = str(folder).rstrip("/")
    rows = conn.execute(
        "SELECT name || '@' || version FROM models WHERE path = ? OR starts_with(path, ?) "
        "ORDER BY name, version",
        [base, base + "/"],
    ).fetchall()
    return [r for (r,) in rows]


def record_path(models_dir: Path, row: dict[str, Any]) -> Path:
    """Where a model's registry record lives: in its folder when that is under the workbench
    home (runs/, models/), else under models/records/ (never inside a user's own folder)."""
    folder = Path(row["path"])
    if folder.is_dir() and folder.resolve().is_relative_to(models_dir.parent.resolve()):
        return folder / RECORD_FILE
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["name"])
    return models_dir / RECORDS_DIR / f"{safe}@{row['version']}.json"


def write_record(models_dir: Path, row: dict[str, Any]) -> Path | None:
    """Write the registry record (best effort: a read-only folder falls back, then skips)."""
    body = json.dumps({k: v for k, v in row.items() if k not in ("ref", "latest")},
                      default=str, indent=2)  # fmt: skip
    for path in _record_places(models_dir, row):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(body)
            tmp.replace(path)
            return path
        except OSError:
            continue
    return None


def _record_places(models_dir: Path, row: dict[str, Any]) -> list[Path]:
    first = record_path(models_dir, row)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", row["name"])
    fallback = models_dir / RECORDS_DIR / f"{safe}@{row['version']}.json"
    return [first] if first == fallback else [first, fallback]


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StoreError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")
