"""The TUI's pure parts: braille plotting, TOML writing, the form's field kinds, chart groups."""

from __future__ import annotations

import tomllib
from typing import Literal

import pytest
from pydantic import BaseModel

from workbench.ops.fmt import fmt_num
from workbench.ops.views import chart_groups, series_label
from workbench.tui.screens.runs import matches, sort_runs
from workbench.tui.tomlfmt import dumps
from workbench.tui.widgets.chart import bounds, plot
from workbench.tui.widgets.specform import field_kind, parse_number


def test_plot_draws_a_diagonal_in_braille():
    grid = plot({"a": [(0, 0), (1, 1)]}, cols=2, rows=1)
    # 4 dots wide, 4 high: the line runs from bottom-left to top-right.
    assert [ch for ch, _ in grid[0]] == ["⡠", "⠊"]
    assert {owner for _, owner in grid[0]} == {0}


def test_plot_overlays_series_and_skips_non_finite():
    grid = plot({"a": [(0, 0.0), (1, 0.0)], "b": [(0, 1.0), (1, float("nan"))]}, 3, 2)
    owners = {o for row in grid for _, o in row if o >= 0}
    assert owners == {0, 1}
    assert bounds({"a": [(0, float("nan"))]}) is None
    assert plot({}, 3, 2) == [[(" ", -1)] * 3] * 2


def test_number_labels():
    assert [fmt_num(v) for v in (9123.0, 2.5e6, 0.0003, 1.234567, 0)] == [
        "9.12k",
        "2.5M",
        "3.0e-04",
        "1.23",
        "0",
    ]


def test_toml_round_trips_a_spec():
    spec = {
        "pipeline": "pretrain",
        "name": None,
        "seed": 1,
        "lr": 3e-4,
        "flag": True,
        "data": {
            "sources": [{"kind": "stdlib", "weight": 0.5}, {"kind": "file", "path": "a b"}],
            "val_fraction": 0.05,
        },
        "train": {"prompts": ["def ", 'say "hi"\n'], "inner": {"x": 1}},
    }
    back = tomllib.loads(dumps(spec))
    del spec["name"]
    assert back == spec


class Inner(BaseModel):
    x: int = 1


@pytest.mark.parametrize(
    ("annotation", "kind", "optional"),
    [
        (bool, "bool", False),
        (int, "number", False),
        (float | None, "number", True),
        (str | None, "text", True),
        (Literal["a", "b"], "literal", False),
        (list[str], "list", False),
        (list[Inner], "list", False),
        (Inner, "section", False),
    ],
)
def test_field_kinds(annotation, kind, optional):
    found = field_kind(annotation)
    assert (found.kind, found.optional) == (kind, optional)


def test_parse_number_and_chart_groups():
    assert parse_number("3e-4") == 3e-4 and parse_number("1_000") == 1000
    assert parse_number("abc") == "abc"
    rows = [("val_loss", "eval"), ("loss", "train"), ("mfu", "train"), ("lr", None),
            ("zeta", "train"), ("tokens_per_s", "train"), ("acc", "val")]  # fmt: skip
    charts = {label: chart for chart, label in (series_label(n, s) for n, s in rows)}
    groups = chart_groups(charts)
    assert groups[0] == ("loss", ["loss", "val_loss"])
    assert ("acc", ["val_acc"]) in groups  # a validation metric named by its split
    assert [g for g, _ in groups] == ["loss", "lr", "tokens_per_s", "mfu", "acc", "zeta"]


def test_runs_filter_and_sort():
    runs = [
        {"run_id": "echo-1", "pipeline": "echo", "status": "done", "loss": 2.0},
        {"run_id": "pretrain-2", "pipeline": "pretrain", "status": "running", "loss": None},
        {"run_id": "echo-3", "pipeline": "echo", "status": "failed", "loss": 1.0},
    ]
    assert [r["run_id"] for r in runs if matches(r, "echo DONE")] == ["echo-1"]
    assert [r["run_id"] for r in sort_runs(runs, "loss", False)] == [
        "echo-3",
        "echo-1",
        "pretrain-2",
    ]
