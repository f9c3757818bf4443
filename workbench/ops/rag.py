"""RAG indexes for both front ends: build, query, measure retrieval, and the lab's retriever.

    info = index_folder(store, Path("docs"), "towns")            # embeds with minilm-l6
    hits = query(store, "towns", "Who founded Brindlewick?", k=3)
    answer = answer(store, "towns", "Who founded Brindlewick?", model="smollm2-135m-instruct")
    quality(store, "towns", "factsheet", k=3)                    # hit rate, MRR

Vectors live in the workbench's DuckDB file (tables rag_indexes / rag_chunks, written in one
locked transaction each through `store.connect()`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.ops.errors import user_errors
from workbench.ops.refs import model_folder

EMBED_MODEL = "minilm-l6"
_encoders: dict[Path, Any] = {}


def encoder_for(store: Any, ref: str) -> Any:
    from engines.embeddings import Encoder

    folder = model_folder(store, ref)
    if folder not in _encoders:
        with user_errors():
            _encoders[folder] = Encoder.load(folder)
    return _encoders[folder]


def index_folder(
    store: Any, folder: Path, name: str, embed_model: str = EMBED_MODEL, chunk_size: int = 200
) -> dict[str, Any]:
    """Build (or rebuild) index `name` from the text files in `folder`."""
    from pipelines.prompting.rag import build_index, read_folder

    with user_errors():
        read_folder(Path(folder))  # refuse an empty folder before loading a model
        encoder = encoder_for(store, embed_model)
        return build_index(store.connect, name, Path(folder), encoder, embed_model, chunk_size)


def _model_of(store: Any, name: str, embed_model: str | None) -> str:
    from pipelines.prompting.rag import check_model, index_info

    with user_errors():
        info = index_info(store.connect, name)
        if embed_model is not None:
            check_model(info, embed_model)
    return info["embed_model"]


def retriever(store: Any, name: str, embed_model: str | None = None) -> Callable:
    """(query, k) -> hits over index `name`, embedding with the index's own model."""
    from pipelines.prompting.rag import retrieve

    model = _model_of(store, name, embed_model)
    encoder = encoder_for(store, model)

    def search(text: str, k: int) -> list[dict[str, Any]]:
        with user_errors():
            return retrieve(store.connect, name, encoder, model, text, k)

    return search


def query(
    store: Any, name: str, question: str, k: int = 3, embed_model: str | None = None
) -> list[dict[str, Any]]:
    return retriever(store, name, embed_model)(question, k)


def quality(store: Any, name: str, tasks: str, k: int = 3) -> dict[str, float]:
    """Hit rate at k and MRR of index `name` on a task set whose items name their sources."""
    from pipelines.prompting.rag import retrieval_quality
    from pipelines.prompting.tasksets import load_taskset

    with user_errors():
        items = load_taskset(tasks).items
        return retrieval_quality(retriever(store, name), items, k)


def write_samples(folder: Path, which: str = "all") -> list[Path]:
    from pipelines.prompting.rag import write_bundled_documents

    with user_errors():
        return write_bundled_documents(Path(folder), which)
