"""Chains through `workbench`: SFT → reward model → PPO in one command, with lineage."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store
from tests.pipelines.rl_fixtures import SFT, make_base, pairs_file
from tests.pipelines.test_ppo import PPO, RM

CHAIN = """
pipeline = "chain"
name = "tchain"
[[stages]]
name = "sft"
spec = "sft.toml"
set = ["train.max_steps=4"]
[[stages]]
name = "rm"
spec = "rm.toml"
set = ["model.base=@sft", "train.max_steps=4"]
[[stages]]
name = "ppo"
spec = "ppo.toml"
set = ["model.policy=@sft", "model.reward=@{rm}"]
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_base(tmp_path_factory.mktemp("chain-base") / "tiny-base")


def write(tmp_path: Path, rm: str = "rm") -> Path:
    (tmp_path / "sft.toml").write_text(SFT.format(base="tiny-base", name="x"))
    (tmp_path / "rm.toml").write_text(RM.format(path=pairs_file(tmp_path / "pairs.jsonl")))
    (tmp_path / "ppo.toml").write_text(PPO.format(steps=4, reward="tiny-rm"))
    (tmp_path / "chain.toml").write_text(CHAIN.format(rm=rm))
    return tmp_path / "chain.toml"


def test_chain_runs_stages_in_order_with_lineage(wb, tmp_path, home, base):
    assert wb("models", "import", str(base), "--name", "tiny-base").returncode == 0
    p = wb("run", str(write(tmp_path)))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    store = Store(home)
    store.refresh()
    runs = {r["pipeline"]: r for r in store.list_runs()}
    assert all(runs[k]["status"] == "done" for k in ("chain", "sft", "reward", "ppo"))
    sft, rm, ppo = (store.get_model(f"tchain-{s}") for s in ("sft", "rm", "ppo"))
    assert sft["parent_model"] == "tiny-base" and sft["kind"] == "assistant"
    assert rm["parent_model"] == "tchain-sft" and rm["kind"] == "reward"
    assert ppo["parent_model"] == "tchain-sft" and ppo["kind"] == "assistant"
    assert runs["sft"]["run_id"] in runs["reward"]["parents"]
    assert {runs["sft"]["run_id"], runs["reward"]["run_id"]} <= set(runs["ppo"]["parents"])
    stages = store.table(runs["chain"]["run_id"], "stages")
    assert [s["stage"] for s in stages] == ["sft", "rm", "ppo"]


def test_chain_reference_to_a_later_stage_exits_2(wb, tmp_path, home, base):
    p = wb("run", str(write(tmp_path, rm="ppo")))
    assert p.returncode == 2 and "@ppo" in p.stderr, p.stderr
    assert Store(home).list_runs() == []
