"""The leaderboard view: Elo replayed in SQL matches a hand computation; counts and pairs."""

from __future__ import annotations

import math

import duckdb
import pytest

from store import Store

# (model_a, model_b, winner) in time order
VOTES = [
    ("x", "y", "a"),
    ("x", "y", "a"),
    ("y", "z", "tie"),
    ("x", "z", "b"),
    ("y", "x", "both_bad"),
]


def _cast(store: Store) -> None:
    for a, b, w in VOTES:
        store.add_vote("p", a, b, f"{a} says", f"{b} says", w)


def _hand_elo() -> dict[str, float]:
    """Elo by hand: E = 1 / (1 + 10^((Rb - Ra) / 400)), R += 32 (S - E), from 1000."""
    x = y = z = 1000.0
    # 1. x beats y: equal ratings, E = 0.5
    x, y = x + 16, y - 16  # 1016, 984
    # 2. x beats y again
    e = 1 / (1 + 10 ** ((984 - 1016) / 400))
    x, y = x + 32 * (1 - e), y - 32 * (1 - e)
    # 3. y ties z
    e = 1 / (1 + 10 ** ((z - y) / 400))
    y, z = y + 32 * (0.5 - e), z - 32 * (0.5 - e)
    # 4. z (model_b) beats x
    e = 1 / (1 + 10 ** ((z - x) / 400))
    x, z = x + 32 * (0 - e), z - 32 * (0 - e)
    # 5. both bad counts as a tie between y and x
    e = 1 / (1 + 10 ** ((x - y) / 400))
    y, x = y + 32 * (0.5 - e), x - 32 * (0.5 - e)
    return {"x": x, "y": y, "z": z}


def test_elo_in_the_view_matches_the_hand_computed_value(store: Store) -> None:
    _cast(store)
    board = {r["model"]: r for r in store.leaderboard()}
    hand = _hand_elo()
    assert round(hand["x"], 6) == 1011.130536  # the figure written down once, by hand
    for model, elo in hand.items():
        assert board[model]["elo"] == pytest.approx(elo, abs=1e-9)
    assert [r["model"] for r in store.leaderboard()] == ["z", "x", "y"]


def test_counts_per_model(store: Store) -> None:
    _cast(store)
    board = {r["model"]: r for r in store.leaderboard()}
    x = board["x"]
    assert (x["votes"], x["wins"], x["losses"], x["ties"], x["both_bad"]) == (4, 2, 1, 0, 1)
    y = board["y"]
    assert (y["votes"], y["wins"], y["losses"], y["ties"], y["both_bad"]) == (4, 0, 2, 1, 1)
    assert board["z"]["wins"] == 1 and board["z"]["ties"] == 1


def test_pairs_count_wins_of_each_side(store: Store) -> None:
    _cast(store)
    pairs = {(p["model_1"], p["model_2"]): p for p in store.vote_pairs()}
    xy = pairs[("x", "y")]
    assert (xy["wins_1"], xy["wins_2"], xy["ties"], xy["votes"]) == (2, 0, 1, 3)
    xz = pairs[("x", "z")]
    assert (xz["wins_1"], xz["wins_2"], xz["ties"]) == (0, 1, 0)


def test_empty_votes_give_an_empty_board(store: Store) -> None:
    assert store.leaderboard() == [] and store.vote_pairs() == []


def test_a_user_can_query_the_view_with_plain_duckdb(store: Store) -> None:
    _cast(store)
    store.list_runs()
    with duckdb.connect(str(store.db_path), read_only=True) as conn:
        rows = conn.execute("SELECT model, elo FROM leaderboard ORDER BY elo DESC").fetchall()
    assert rows[0][0] == "z" and math.isclose(rows[0][1], _hand_elo()["z"])
