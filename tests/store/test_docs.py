"""Issue 10 #13: every SQL query in docs/store.md runs against a store with real runs and
returns rows, and every column of its first row is filled (a wrong JSON path gives NULL)."""

from __future__ import annotations

import re

import pytest

from store import Store
from store.events import Artifact, Metrics, RunFinished, RunStarted

from .conftest import REPO, new_run

DOC = REPO / "docs" / "store.md"
PRETRAIN = "pretrain-20250101-120000-ab12"
SFT = "sft-20250101-130000-cd34"
SPEC = {"pipeline": "pretrain", "train": {"lr": 3e-4, "log_every": 1}}


def doc_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def _documented_store(store: Store) -> None:
    """A pretrain run (killed and resumed, a NaN, a model), an SFT child, a reward grandchild,
    votes and prompt experiments: what the documented queries look at."""
    model = store.run_dir(PRETRAIN) / "model"
    with new_run(store, PRETRAIN, spec=SPEC, name="tiny") as log:
        log.append(RunStarted(pid=1, host="elsewhere"))
        for step in range(1, 6):
            log.append(Metrics(step=step, values={"loss": 5.0 - step, "lr": 3e-4}))
        log.append(RunStarted(pid=2, host="elsewhere"))
        for step in range(4, 9):
            log.append(Metrics(step=step, values={"loss": 5.0 - step, "lr": 3e-4}))
        log.append(Metrics(step=8, values={"loss": 1.5}, split="val"))
        log.append(Metrics(step=9, values={"grad_norm": float("nan")}))
        model.mkdir()
        log.append(Artifact(type="model", path=str(model), meta={"name": "tiny"}))
        log.append(RunFinished(status="done"))
    with new_run(store, SFT, spec=SPEC, parents=[PRETRAIN]):
        pass
    with new_run(store, "reward-20250101-140000-ef56", spec=SPEC, parents=[SFT]):
        pass
    store.add_vote("hi", "tiny", "chat", "a", "b", "a")
    store.add_vote("hi", "tiny", "chat", "a", "b", "tie")
    store.add_prompt_experiment("tiny", "cot", "arith", 10, 0.7)
    store.add_prompt_experiment("tiny", "fewshot", "arith", 10, 0.5)
    store.refresh()


def test_the_docs_have_queries() -> None:
    assert len(doc_queries()) >= 8


@pytest.mark.parametrize("query", doc_queries(), ids=lambda q: q.split("\n")[0][:40])
def test_each_documented_query_returns_filled_rows(store: Store, query: str) -> None:
    _documented_store(store)
    columns, rows = store.sql(query)
    assert rows, f"no rows from:\n{query}"
    empty = [c for c, v in zip(columns, rows[0], strict=True) if v is None]
    assert not empty, f"NULL {empty} in the first row of:\n{query}"
