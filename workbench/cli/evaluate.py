"""`workbench eval diversity MODEL… --prompt P --n 50`: models side by side on one prompt."""

from __future__ import annotations

from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.cli.models import QUANTIZE_HELP
from workbench.cli.tables import print_rows
from workbench.ops import evaluate as eval_ops

app = typer.Typer(help="Evaluate models: diversity of answers.", no_args_is_help=True)


@app.command("diversity")
def diversity(
    models: Annotated[list[str], typer.Argument(help="models to compare (names, runs, folders)")],
    prompt: Annotated[str, typer.Option(help="the prompt every model answers")],
    n: Annotated[int, typer.Option(min=2, help="samples per model")] = 50,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 48,
    temperature: Annotated[float, typer.Option(min=0.0)] = 1.0,
    seed: int = 0,
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
    json_: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """distinct-1/2, mean token entropy and distinct answers, one row per model (stored)."""
    rows = eval_ops.diversity(
        refreshed_store(), models, prompt, n=n, max_new_tokens=max_new_tokens,
        temperature=temperature, seed=seed, quantize=quantize,
    )  # fmt: skip
    cols = ["model", *eval_ops.METRICS]
    table = [tuple(r["model"] if c == "model" else round(r[c], 3) for c in cols) for r in rows]
    print_rows(cols, table, style="json" if json_ else "table")
