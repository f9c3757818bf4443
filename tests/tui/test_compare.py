"""Compare by keys: two tiny models answer one prompt side by side, both streaming; two runs'
curves overlay and their specs diff; the lineage of a chained run (pretrain → SFT → reward →
PPO) with held-out accuracy and diversity from the store."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, SelectionList

from store import Store
from tests.tui.fixtures import PRETRAIN, SFT, _run, register_tiny_pair
from tests.tui.helpers import click_into, screen_text, wait_for, wait_loaded
from workbench.ops import compare
from workbench.tui.app import WorkbenchApp
from workbench.tui.widgets.columns import ColumnsUpdated

REWARD = "reward-20250301-115000-beef"
PPO = "ppo-20250301-115900-cafe"


@pytest.fixture
def assistant_and_base(home, tmp_path):
    """tiny-a an assistant, tiny-b a base model: Compare shows both kinds."""
    return register_tiny_pair(home, tmp_path, b_kind="base", b_seed=4)


@pytest.fixture
def chained(filled_home):
    """fill_store's pretrain → SFT, then a reward run and a PPO run chained on, a model made
    by SFT with an accuracy experiment and a diversity experiment."""
    store = Store(filled_home)
    _run(store, REWARD, "reward", {"pipeline": "reward", "lr": 1e-4}, parents=[SFT], minute=50)
    _run(store, PPO, "ppo", {"pipeline": "ppo", "lr": 1e-5}, parents=[REWARD], minute=59)
    store.register_model("chat", "assistant", "trained", filled_home / "chat", run_id=SFT)
    store.add_prompt_experiment("chat", "cot", "arithmetic", 10, 0.6)
    store.add_prompt_experiment(
        "chat", "diversity", "Tell me a story.", 50, None, transcripts=[{"metrics":
                                                                         {"distinct_2": 0.42}}]
    )  # fmt: skip
    return store


async def tick(pilot, selector: str, values: list[str]) -> None:
    """Tick options of a SelectionList by keys: focus it, move down to each, space."""
    box = pilot.app.screen.query_one(selector, SelectionList)
    box.focus()
    await pilot.pause()
    for _ in range(box.option_count + 1):
        at = box.highlighted
        if at is not None and box.get_option_at_index(at).value in values:
            await pilot.press("space")
        await pilot.press("down")
    assert set(box.selected) == set(values)


@pytest.mark.asyncio
async def test_two_models_stream_side_by_side(home, assistant_and_base, monkeypatch):
    posted: list[list[tuple[str, bool]]] = []  # (text, done) of each column, every update
    original = ColumnsUpdated.__init__

    def spy(self, columns, *args, **kwargs):
        posted.append([(c.text, c.done) for c in columns])
        original(self, columns, *args, **kwargs)

    monkeypatch.setattr(ColumnsUpdated, "__init__", spy)
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await wait_loaded(pilot)
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.models) == 2, 10, "the models")
        await tick(pilot, "#compare-models", ["tiny-a", "tiny-b"])
        await click_into(pilot, "#compare-max")
        await pilot.press("end", "backspace", "backspace", "backspace", "1", "0")
        await click_into(pilot, "#compare-prompt")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: screen.columns and not screen.streaming, 90, "answers")
        text = screen_text(app)
        assert "tiny-a" in text and "tiny-b" in text and "tok/s" in text and "logp" in text
    final = screen.columns
    assert [c.model for c in final] == ["tiny-a", "tiny-b"]
    assert all(c.done and c.error is None and c.tokens == 10 for c in final)
    assert all(c.mean_logprob < 0 and c.tokens_per_s > 0 for c in final)
    # both streamed: each column's text grew over several updates before it was done, and
    # some update shows both with text while one is still answering (at once, not in turn)
    for col in (0, 1):
        partial = {p[col][0] for p in posted if p[col][0] and not p[col][1]}
        assert len(partial) >= 2, f"column {col} did not stream"
    assert any(all(t for t, _ in p) and not all(d for _, d in p) for p in posted)


@pytest.mark.asyncio
async def test_lineage_of_a_chained_run(chained, fixed_app):
    app = fixed_app
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_loaded(pilot)
        await pilot.press("escape", "c")
        await tick(pilot, "#compare-runs", [PPO])
        await pilot.press("i")
        table = app.screen.query_one("#lineage-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, 20, "the lineage")
        stages = [table.get_row_at(i)[0] for i in range(4)]
        assert stages == ["pretrain", "sft", "reward", "ppo"]
        sft = dict(zip(compare.LINEAGE_COLUMNS, table.get_row_at(1), strict=True))
        assert sft["model"] == "chat" and sft["accuracy"] == "0.6" and sft["distinct_2"] == "0.42"
        assert "ppo-cafe" in screen_text(app)


@pytest.mark.asyncio
async def test_curves_overlay_and_spec_diff(fixed_app):
    app = fixed_app
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await wait_loaded(pilot)
        await pilot.press("escape", "c")
        await tick(pilot, "#compare-runs", [PRETRAIN, SFT])
        chart = app.screen.query_one("#compare-chart")
        await wait_for(pilot, lambda: len(chart.series) == 4, 20, "the overlay")
        runs, splits = {k.split()[0] for k in chart.series}, {k.split()[1] for k in chart.series}
        assert runs == {"pretrain-a1b2", "sft-c3d4"} and splits == {"train", "val"}
        await pilot.press("d")
        table = app.screen.query_one("#diff-table", DataTable)
        await wait_for(pilot, lambda: table.row_count > 3, 20, "the diff")
        fields = {
            table.get_row_at(i)[0]: tuple(table.get_row_at(i)[1:]) for i in range(table.row_count)
        }
        assert fields["pipeline"] == ('"pretrain"', '"sft"')
        assert fields["base"] == ("—", f'"{PRETRAIN}"')


def test_spec_diff_and_lineage_in_ops(chained):
    rows = compare.spec_diff(chained, REWARD, PPO)
    assert ("lr", "0.0001", "1e-05") in rows and ("pipeline", '"reward"', '"ppo"') in rows
    chain = compare.lineage(chained, SFT)  # from the middle: ancestors and descendants
    assert [r["stage"] for r in chain] == ["pretrain", "sft", "reward", "ppo"]
    assert chain[0]["model"] == "tiny" and chain[0]["loss"] is not None


@pytest.mark.asyncio
async def test_experiments_table_and_transcripts(filled_home):
    store = Store(filled_home)
    store.add_prompt_experiment("tiny", "cot", "arithmetic", 4, 0.5, tokens=400, latency_s=2.0,
                                transcripts=[{"summary": {"seed": 0}},
                                             {"question": "What is 2+3?", "answer": "5",
                                              "correct": True}])  # fmt: skip
    store.add_prompt_experiment("tiny", "few-shot", "arithmetic", 4, 0.25)
    app = WorkbenchApp(home=filled_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await wait_loaded(pilot)
        table = app.screen.query_one("#experiments-table", DataTable)
        assert table.row_count == 2
        assert table.get_row_at(0)[:5] == ["arithmetic", "few-shot", "tiny", "4", "0.25"]
        await pilot.press("down")
        await wait_for(pilot, lambda: "What is 2+3?" in screen_text(app), 5, "the transcript")
        row = table.get_row_at(1)
        assert row[4:7] == ["0.5", "100", "0.5"]  # accuracy, tokens/q, s/q
        await pilot.press("enter")
        assert app.focused.id == "experiment-transcripts"
