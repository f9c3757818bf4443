"""Store methods for things people make outside runs: models, comparisons, votes, experiments.

Mixed into `store.catalog.Store`, which provides `connect()`.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
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
WINNERS = ("a", "b", "tie", "both_bad")


class RecordsMixin:
    """Models registry, ranked comparisons, arena votes and prompt experiments."""

    db_path: Path

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        raise NotImplementedError

    # Models

    def register_model(
        self, name: str, kind: str, source: str, path: Path | str, **fields: Any
    ) -> dict[str, Any]:
        """Add or replace a model (keeping its first created_at); return its row."""
        _check_choice("model kind", kind, MODEL_KINDS)
        _check_choice("model source", source, MODEL_SOURCES)
        unknown = set(fields) - set(MODEL_FIELDS)
        if unknown:
            raise StoreError(f"unknown model fields {sorted(unknown)}: use {MODEL_FIELDS}")
        values = {f: fields.get(f) for f in MODEL_FIELDS}
        values["meta"] = to_json(values["meta"] or {})
        cols = ["name", "kind", "source", "path", *MODEL_FIELDS, "created_at"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:-1])
        with self.connect() as conn:
            conn.execute(
                f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT (name) DO UPDATE SET {updates}",
                [name, kind, source, str(path), *values.values(), utc_now()],
            )
            return _one(conn.execute("SELECT * FROM models WHERE name = ?", [name]))

    def get_model(self, name: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            return _one(conn.execute("SELECT * FROM models WHERE name = ?", [name]))

    def list_models(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Models by name, optionally of one kind."""
        query, params = "SELECT * FROM models", []
        if kind is not None:
            query, params = query + " WHERE kind = ?", [kind]
        with self.connect() as conn:
            return rows_as_dicts(conn.execute(query + " ORDER BY name", params), ("meta",))

    def remove_model(self, name: str) -> bool:
        """Forget a model (its files stay); return whether it was there."""
        with self.connect() as conn:
            found = conn.execute("SELECT 1 FROM models WHERE name = ?", [name]).fetchone()
            conn.execute("DELETE FROM models WHERE name = ?", [name])
        return found is not None

    # Ranked comparisons (reward-model data)

    def add_comparison(
        self,
        prompt: str,
        completions: list[str],
        *,
        source: str = "manual",
        run_id: str | None = None,
    ) -> str:
        """Store completions of one prompt ranked best first; return the new id."""
        if len(completions) < 2:
            raise StoreError(f"a comparison needs at least two completions, got {len(completions)}")
        return self._insert(
            "comparisons",
            prompt=prompt, completions=to_json(list(completions)), source=source, run_id=run_id,
        )  # fmt: skip

    def list_comparisons(self, source: str | None = None) -> list[dict[str, Any]]:
        return self._list("comparisons", ("completions",), source=source)

    # Arena votes

    def add_vote(
        self,
        prompt: str,
        model_a: str,
        model_b: str,
        completion_a: str,
        completion_b: str,
        winner: str,
        voter: str | None = None,
    ) -> str:
        """Store one blind A/B vote (winner: a, b, tie or both_bad); return the new id."""
        _check_choice("winner", winner, WINNERS)
        return self._insert(
            "votes",
            prompt=prompt, model_a=model_a, model_b=model_b, completion_a=completion_a,
            completion_b=completion_b, winner=winner, voter=voter,
        )  # fmt: skip

    def list_votes(self) -> list[dict[str, Any]]:
        """Every vote, oldest first (the order Elo replays them in)."""
        return self._list("votes")

    # Prompt-strategy experiments

    def add_prompt_experiment(
        self,
        model: str,
        strategy: str,
        task: str,
        n: int,
        accuracy: float,
        *,
        tokens: int | None = None,
        latency_s: float | None = None,
        transcripts: list[Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Store one strategy × model × task result; return the new id."""
        return self._insert(
            "prompt_experiments",
            run_id=run_id, model=model, strategy=strategy, task=task, n=n, accuracy=accuracy,
            tokens=tokens, latency_s=latency_s, transcripts=to_json(transcripts or []),
        )  # fmt: skip

    def list_prompt_experiments(
        self, model: str | None = None, task: str | None = None
    ) -> list[dict[str, Any]]:
        return self._list("prompt_experiments", ("transcripts",), model=model, task=task)

    # Helpers

    def _insert(self, table: str, **values: Any) -> str:
        new_id = uuid.uuid4().hex
        cols = ["id", *values, "created_at"]
        with self.connect() as conn:
            conn.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [new_id, *values.values(), utc_now()],
            )
        return new_id

    def _list(
        self, table: str, json_columns: tuple[str, ...] = (), **equal: Any
    ) -> list[dict[str, Any]]:
        where = [(col, v) for col, v in equal.items() if v is not None]
        query = f"SELECT * FROM {table}"
        if where:
            query += " WHERE " + " AND ".join(f"{col} = ?" for col, _ in where)
        with self.connect() as conn:
            cur = conn.execute(query + " ORDER BY created_at, id", [v for _, v in where])
            return rows_as_dicts(cur, json_columns)


def _one(cur: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    rows = rows_as_dicts(cur, ("meta",))
    return rows[0] if rows else None


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StoreError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")
