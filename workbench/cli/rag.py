"""`workbench rag …`: build a RAG index from a folder, query it, measure it.

workbench rag samples ./docs                    # the bundled fact sheet + town documents
workbench rag index ./docs --name towns         # embed with minilm-l6 into the store
workbench rag query towns "Who founded Brindlewick?" [--model smollm2-135m-instruct [--quantize int8]]
workbench rag eval towns --tasks factsheet      # hit rate and MRR at k
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from workbench.cli.common import refreshed_store
from workbench.cli.models import QUANTIZE_HELP
from workbench.ops import prompting as prompting_ops
from workbench.ops import rag as rag_ops

app = typer.Typer(help="RAG indexes: documents embedded into the store.", no_args_is_help=True)
K = Annotated[int, typer.Option("--k", "-k", min=1, help="chunks to retrieve")]
EmbedModel = Annotated[str | None, typer.Option(help="embedding model (default: the index's)")]


@app.command()
def index(
    folder: Path,
    name: Annotated[str, typer.Option(help="the index name")],
    embed_model: Annotated[str, typer.Option(help="embedding model")] = rag_ops.EMBED_MODEL,
    chunk_size: Annotated[int, typer.Option(min=32, help="tokens per chunk")] = 200,
) -> None:
    """Read, chunk and embed the .txt/.md/.rst files of FOLDER into index NAME."""
    info = rag_ops.index_folder(refreshed_store(), folder, name, embed_model, chunk_size)
    typer.echo(
        f"index {info['name']}: {info['n_documents']} documents, {info['n_chunks']} chunks, "
        f"{info['embed_model']} ({info['dim']} dims)"
    )


@app.command()
def query(
    name: str,
    question: str,
    k: K = 3,
    model: Annotated[str | None, typer.Option(help="answer with this model")] = None,
    embed_model: EmbedModel = None,
    quantize: Annotated[str, typer.Option(help="--model: " + QUANTIZE_HELP)] = "none",
) -> None:
    """The top-k chunks for QUESTION with their sources; with --model, an answer citing them."""
    from workbench.ops.chat import check_quantize

    check_quantize(quantize)  # before anything loads
    store = refreshed_store()
    hits = rag_ops.query(store, name, question, k, embed_model)
    for rank, hit in enumerate(hits, 1):
        text = " ".join(hit["text"].split())
        typer.echo(f"{rank}. [{hit['source']}] ({hit['score']:.3f}) {text[:200]}")
    if model is None:
        return
    typer.echo("")

    def piece(_row: int, chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    result = prompting_ops.rag_answer(store, name, question, model, k, on_piece=piece,
                                      quantize=quantize)  # fmt: skip
    typer.echo("")
    typer.echo("sources: " + ", ".join(result.extra.get("retrieved", [])))


@app.command("eval")
def eval_(
    name: str,
    tasks: Annotated[str, typer.Option(help="a task set whose items name their sources")],
    k: K = 3,
) -> None:
    """Hit rate at k and MRR of index NAME on a task set."""
    q = rag_ops.quality(refreshed_store(), name, tasks, k)
    typer.echo(f"{q['n']} questions, k={q['k']}: hit rate {q['hit_rate']:.3f}, MRR {q['mrr']:.3f}")


@app.command()
def samples(
    folder: Path,
    which: Annotated[str, typer.Option(help="all | factsheet | facts")] = "all",
) -> None:
    """Write the bundled documents (US state fact sheet, fictional town) as .txt files."""
    paths = rag_ops.write_samples(folder, which)
    typer.echo(f"wrote {len(paths)} documents to {folder}")
