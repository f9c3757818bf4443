"""The quantize choice on every TUI screen that decodes, by keys: the chat pane, Compare, the
Arena's match and ranking, the Playground (plain and a strategy), and the Launch form of a
spec whose generator decodes (reward's `data.quantize`). Each checks that the quantized path
was taken — the loaded model's linear layers are Int8Linear — and that what is stored or shown
names the quantization (`tiny-a [int8]`)."""

from __future__ import annotations

import pytest
from textual.widgets import Select
from torch import nn

from engines.quantize import Int8Linear
from tests.tui.helpers import choose, click_into, open_chat, screen_text, wait_for, wait_loaded
from workbench.ops import chat as chat_ops
from workbench.ops import compare as compare_ops
from workbench.ops import prompting as lab
from workbench.tui.app import WorkbenchApp

pytestmark = pytest.mark.asyncio


def int8_only(model: nn.Module) -> bool:
    """Every linear layer of the model is an Int8Linear (none left in fp32)."""
    kinds = {type(m) for m in model.modules() if isinstance(m, nn.Linear | Int8Linear)}
    return kinds == {Int8Linear}


async def pick(pilot, select_id: str, kind: str) -> None:
    await choose(pilot, select_id, kind)
    select = pilot.app.screen.query_one(f"#{select_id}", Select)
    await wait_for(pilot, lambda: select.value == kind, 5, f"{kind} picked")


async def set_number(pilot, selector: str, value: str) -> None:
    await click_into(pilot, selector)
    await pilot.press("end", *["backspace"] * 6, *value)


async def test_chat_pane_decodes_with_int8_weights(home, two_models):

    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_chat(pilot)
        await pick(pilot, "chat-quantize", "int8")
        await set_number(pilot, "#chat-max", "6")
        await click_into(pilot, "#chat-input")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: len(pane.history) == 2, 120, "the answer")
    [((_, kind), (model, _))] = chat_ops._loaded.items()
    assert kind == "int8" and int8_only(model)


async def test_compare_answers_with_int8_weights_and_says_so(home, two_models):
    from tests.tui.test_compare import tick

    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await wait_loaded(pilot)
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.models) == 2, 10, "the models")
        await tick(pilot, "#compare-models", ["tiny-a", "tiny-b"])
        await set_number(pilot, "#compare-max", "6")
        await pilot.press("tab")  # from the max box to the quantize choice beside it
        assert app.focused is screen.query_one("#compare-quantize")
        await pilot.press("enter", "down", "enter")
        assert screen.query_one("#compare-quantize", Select).value == "int8"
        await click_into(pilot, "#compare-prompt")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: screen.columns and not screen.streaming, 90, "answers")
        assert "tiny-a [int8]" in screen_text(app)
    assert [c.model for c in screen.columns] == ["tiny-a [int8]", "tiny-b [int8]"]
    assert all(c.done and c.error is None and c.tokens == 6 for c in screen.columns)
    loaded = compare_ops._models
    assert {kind for _, kind in loaded} == {"int8"} and len(loaded) == 2
    assert all(int8_only(model) for model, _ in loaded.values())


async def test_arena_vote_and_ranking_name_the_quantization(home, two_models):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await wait_loaded(pilot)
        screen = app.screen
        await pick(pilot, "arena-quantize", "int8")
        await set_number(pilot, "#arena-max", "6")
        await click_into(pilot, "#arena-prompt")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: screen.pair and not screen.streaming, 60, "the answers")
        assert "[int8]" not in screen_text(app)  # blind until the vote
        await pilot.press("a")
        await wait_for(pilot, lambda: two_models.list_votes(), 20, "the vote")
        assert "tiny-a [int8]" in screen_text(app)
        (vote,) = two_models.list_votes()
        assert {vote["model_a"], vote["model_b"]} == {"tiny-a [int8]", "tiny-b [int8]"}
        assert f"A was {vote['model_a']}, B was {vote['model_b']}" in screen_text(app)
        assert {row["model"] for row in two_models.leaderboard()} == {
            "tiny-a [int8]", "tiny-b [int8]"}  # fmt: skip
        assert all(int8_only(model) for model, _ in compare_ops._models.values())
        compare_ops._models.clear()

        await pilot.press("escape", "k")
        await set_number(pilot, "#rank-k", "2")
        await pilot.press("tab")  # from K to the quantize choice beside it
        assert app.focused is screen.query_one("#rank-quantize")
        await pilot.press("enter", "down", "enter")
        await click_into(pilot, "#rank-prompt")
        await pilot.press(*"Tell a story.", "enter")
        await wait_for(pilot, lambda: screen.ranking, 60, "two completions")
        texts = screen.ranking[1]
        if texts[0] == texts[1]:
            pytest.skip("the tiny model sampled the same text twice: no strict ranking")
        await pilot.press(*"2 1", "enter")
        await wait_for(pilot, lambda: two_models.list_comparisons(), 20, "the ranking")
        model = str(screen.query_one("#rank-model", Select).value)
    (ranking,) = two_models.list_comparisons()
    assert ranking["model"] == f"{model} [int8]" and ranking["source"] == "arena"
    [((_, kind), (sampler, _))] = compare_ops._models.items()
    assert kind == "int8" and int8_only(sampler)


async def test_playground_plain_and_strategy_decode_int8_and_save_it(home, two_models):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("8")
        await wait_loaded(pilot)
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.strategies) > 5, 20, "the strategies")
        await pick(pilot, "play-quantize", "int8")
        await set_number(pilot, "#play-temp", "0")
        await set_number(pilot, "#play-max", "6")
        await click_into(pilot, "#play-prompt")
        await pilot.press(*"hello fox", "enter")
        await wait_for(pilot, lambda: screen.exchange, 60, "the plain answer")
        assert screen.exchange["request"]["quantize"] == "int8"
        [((_, kind), (model, _))] = chat_ops._loaded.items()
        assert kind == "int8" and int8_only(model)
        await pilot.press("escape", "s")
        await wait_for(pilot, lambda: two_models.list_prompt_experiments(), 20, "the save")
        await pick(pilot, "play-strategy", "zero-shot")
        await click_into(pilot, "#play-prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.exchange and not screen.busy, 60, "zero-shot")
        assert screen.exchange["request"]["strategy"] == "zero-shot"
        [((_, kind), adapter)] = lab._adapters.items()
        assert kind == "int8" and adapter.quantize == "int8" and int8_only(adapter.model)
        await pilot.press("escape", "7")  # Experiments: the saved exchange names its weights
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: "tiny-a [int8]" in screen_text(app), 10, "the label")
    (saved,) = two_models.list_prompt_experiments()
    assert (saved["model"], saved["task"]) == ("tiny-a", "playground")
    assert saved["transcripts"][0]["summary"]["quantize"] == "int8"


async def test_launch_form_offers_data_quantize_for_reward(home):
    app = WorkbenchApp(home=home)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.query("#f-model-n_layer"), 10, "the form")
        await choose(pilot, "pipeline", "reward")
        screen = app.screen
        await wait_for(pilot, lambda: screen.query("#f-data-quantize"), 10, "reward's form")
        select = screen.query_one("#f-data-quantize", Select)
        assert select.value == "none" and [str(o[0]) for o in select._options] == [
            "none", "int8", "int4"]  # fmt: skip
        select.focus()  # where Tab through the form lands; the form scrolls to it
        await pilot.pause()
        await pilot.press("enter", "down", "enter")
        assert select.value == "int8"
        await wait_for(pilot, lambda: screen.spec and screen.spec.data.quantize == "int8", 10,
                       "the validated spec")  # fmt: skip
