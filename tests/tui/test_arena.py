"""Arena by keys: five blind votes move the leaderboard; four ranked completions become a
comparison the reward pipeline's store reader accepts. Two tiny random Llamas answer."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from pipelines.comparisons import pairs, store_rankings
from tests.tui.helpers import click_into, screen_text, wait_for, wait_loaded
from workbench.ops import OpError, arena
from workbench.tui.app import WorkbenchApp


def board_votes(app) -> dict[str, int]:
    table = app.screen.query_one("#arena-board", DataTable)
    return {
        str(table.get_row_at(i)[0]): int(table.get_row_at(i)[3]) for i in range(table.row_count)
    }


@pytest.mark.asyncio
async def test_five_votes_change_the_leaderboard(home, two_models):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await wait_loaded(pilot)
        screen = app.screen
        assert type(screen).__name__ == "ArenaScreen"
        await click_into(pilot, "#arena-max")
        await pilot.press("end", "backspace", "backspace", "backspace", "6")
        await click_into(pilot, "#arena-prompt")
        await pilot.press(*"hello fox", "enter")
        boards = []
        for i, vote in enumerate(["a", "b", "equals_sign", "x", "a"], 1):
            if i > 1:
                await pilot.press("n")
            await wait_for(pilot, lambda: screen.pair and not screen.streaming, 60, "the answers")
            text = screen_text(app)
            assert "Model A" in text and "Model B" in text and "tiny-a" not in text  # blind
            await pilot.press(vote)
            await wait_for(pilot, lambda i=i: len(two_models.list_votes()) == i, 20, "the vote")
            assert "tiny-a" in screen_text(app)  # names revealed after the vote
            await wait_for(pilot, lambda i=i: sum(board_votes(app).values()) == 2 * i, 20, "board")
            boards.append(two_models.leaderboard())
        await pilot.press("l")
        await pilot.pause()
        text = screen_text(app)
        assert "tiny-a" in text and "tiny-b" in text and "5 votes" in text
    winners = [v["winner"] for v in two_models.list_votes()]
    assert winners == ["a", "b", "tie", "both_bad", "a"]
    elos = [tuple(round(r["elo"], 6) for r in b) for b in boards]
    assert len(set(elos)) == 5  # every vote moved the ratings
    assert all(v["completion_a"] is not None for v in two_models.list_votes())


@pytest.mark.asyncio
async def test_four_ranked_completions_feed_the_reward_pipeline(home, two_models):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await wait_loaded(pilot)
        screen = app.screen
        await pilot.press("escape", "k")
        await pilot.press(*"Tell a story.", "enter")
        await wait_for(pilot, lambda: screen.ranking, 60, "four completions")
        _, texts = screen.ranking
        assert len(texts) == 4 and "1. " in screen_text(app)
        await pilot.press(*"2 4 1 3", "enter")
        await wait_for(pilot, lambda: two_models.list_comparisons(source="arena"), 20, "stored")
    (stored,) = two_models.list_comparisons(source="arena")
    assert stored["prompt"] == "Tell a story."
    assert stored["completions"] == [texts[1], texts[3], texts[0], texts[2]]
    rankings, skipped = store_rankings(two_models)
    assert skipped == 0 and rankings[0].completions == stored["completions"]
    assert len(pairs(rankings)) == 6  # 4 choose 2 (better, worse) pairs for the reward model


def test_votes_and_rankings_refuse_mistakes():
    with pytest.raises(OpError, match="two different models"):
        arena.blind_pair(["only"])
    with pytest.raises(OpError, match="each of the 3"):
        arena.parse_order("1 1 2", 3)
    assert arena.parse_order("3, 1 2", 3) == [2, 0, 1]


def test_bradley_terry_orders_by_strength():
    pairs_ = [{"model_1": "x", "model_2": "y", "wins_1": 8, "wins_2": 2, "ties": 0, "votes": 10},
              {"model_1": "y", "model_2": "z", "wins_1": 6, "wins_2": 4, "ties": 2, "votes": 12}]  # fmt: skip
    scores = arena.bradley_terry(pairs_)
    assert scores["x"] > scores["y"] > scores["z"]
    assert sum(scores.values()) / 3 == pytest.approx(1000)
    assert arena.bradley_terry([]) == {}
