"""`workbench reward score MODEL --prompt P --completion C`: print a reward model's score."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.ops import reward as reward_ops

app = typer.Typer(help="Reward models: score completions.", no_args_is_help=True)


@app.command("score")
def score(
    model: Annotated[str, typer.Argument(help="a reward model: registry name, run id or folder")],
    prompt: Annotated[str, typer.Option(help="the user's prompt")],
    completion: Annotated[str, typer.Option(help="the answer to score")],
) -> None:
    """Print the reward of one completion (higher is better)."""
    store = refreshed_store()
    reward_ops.check_reward_model(store, model)
    typer.echo(f"{reward_ops.score(store, model, prompt, completion):.4f}")
