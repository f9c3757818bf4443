"""Store methods for things people make outside runs: models, comparisons, votes, experiments.

Mixed into `store.catalog.Store`, which provides `connect()`.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb

from store import models
from store.db import rows_as_dicts, to_json
from store.errors import StoreError
from store.migrations import utc_now
from store.models import MODEL_FIELDS, MODEL_KINDS, MODEL_SOURCES

__all__ = ["MODEL_FIELDS", "MODEL_KINDS", "MODEL_SOURCES", "RecordsMixin"]
WINNERS = ("a", "b", "tie", "both_bad")


class RecordsMixin:
    """Models registry, ranked comparisons, arena votes and prompt experiments."""

    db_path: Path
    models_dir: Path

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        raise NotImplementedError

    # Models (versioned: see store/models.py)

    def register_model(
        self, name: str, kind: str, source: str, path: Path | str, **fields: Any
    ) -> dict[str, Any]:
        """Register a model; return its row (with `version`, `ref` = name@version, `latest`).

        The same name for a different path adds a version (the name then means the newest);
        the same name and path updates that version in place, keeping its created_at.
        """
        models.check_model(name, kind, source, fields)
        with self.connect() as conn:
            return models.register(conn, self.models_dir, name, kind, source, path, fields)

    def get_model(self, ref: str) -> dict[str, Any] | None:
        """The model `name` (its newest version) or `name@N`, or None."""
        with self.connect() as conn:
            return models.get(conn, ref)

    def list_models(
        self, kind: str | None = None, *, latest_only: bool = False
    ) -> list[dict[str, Any]]:
        """Every version of every model by name then version (`latest` marks the newest),
        optionally of one kind or only the newest version of each name."""
        with self.connect() as conn:
            return models.listing(conn, kind, latest_only)

    def remove_model(self, ref: str) -> bool:
        """Forget `name@N`, or every version of `name` (files stay); return whether any was."""
        with self.connect() as conn:
            return bool(models.remove(conn, ref))

    # Ranked comparisons (reward-model data)

    def add_comparison(
        self,
        prompt: str,
        completions: list[str],
        *,
        source: str = "manual",
        run_id: str | None = None,
        model: str | None = None,
    ) -> str:
        """Store completions of one prompt ranked best first (model: the one that sampled
        them, e.g. `sft [int8]`); return the new id."""
        if len(completions) < 2:
            raise StoreError(f"a comparison needs at least two completions, got {len(completions)}")
        return self._insert(
            "comparisons",
            prompt=prompt, completions=to_json(list(completions)), source=source, run_id=run_id,
            model=model,
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

    def leaderboard(self) -> list[dict[str, Any]]:
        """The `leaderboard` view: Elo (K = 32, from 1000, votes replayed in time order) and
        vote counts per model, best Elo first."""
        with self.connect() as conn:
            cur = conn.execute("SELECT * FROM leaderboard ORDER BY elo DESC NULLS LAST, model")
            return rows_as_dicts(cur)

    def vote_pairs(self) -> list[dict[str, Any]]:
        """The `vote_pairs` view: per pair of models, wins of each and ties (Bradley–Terry)."""
        with self.connect() as conn:
            return rows_as_dicts(conn.execute("SELECT * FROM vote_pairs ORDER BY ALL"))

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


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise StoreError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")
