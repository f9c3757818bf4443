"""Retrieval-augmented generation on llama-index-core with local embeddings in DuckDB.

    info = build_index(store.connect, "towns", Path("docs/"), encoder, "minilm-l6")
    hits = retrieve(store.connect, "towns", encoder, "minilm-l6", "Who founded Brindlewick?", 3)
    results = rag_answer(adapter, items, Options(retriever=lambda q, k: hits))

A folder's .txt/.md/.rst files are read by llama-index's SimpleDirectoryReader, split by its
SentenceSplitter (counted in the embedding model's own tokens), embedded by engines.embeddings
and stored through DuckDBArrayStore. Each chunk's `source` is its file name without the
extension, so a task's `sources` field names the files that answer it (hit rate, MRR).
An index remembers its embedding model; querying it with another one is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines.errors import UserError
from pipelines.prompting.adapter import Adapter, Params
from pipelines.prompting.core import Options, Result, question_text
from pipelines.prompting.tasksets import Item
from pipelines.prompting.vectorstore import DuckDBArrayStore, LocalEmbedding

EXTENSIONS = [".txt", ".md", ".rst"]
CHUNK_SIZE = 200
CHUNK_OVERLAP = 20


def read_folder(folder: Path) -> list[Any]:
    """llama-index Documents for the text files under `folder`; UserError when there are none."""
    from llama_index.core import SimpleDirectoryReader

    if not folder.is_dir():
        raise UserError(f"document folder {folder} does not exist")
    files = [p for p in sorted(folder.rglob("*")) if p.suffix in EXTENSIONS and p.is_file()]
    if not files:
        raise UserError(
            f"document folder {folder} has no {', '.join(EXTENSIONS)} files: put the documents "
            "to index there (one file per document)"
        )
    reader = SimpleDirectoryReader(input_files=[str(f) for f in files], filename_as_id=True)
    docs = reader.load_data(show_progress=False)
    for doc, path in zip(docs, files, strict=True):
        doc.metadata = {"source": path.stem, "file": str(path.relative_to(folder))}
    return [d for d in docs if d.text.strip()]


def _splitter(encoder: Any, chunk_size: int) -> Any:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(
        chunk_size=chunk_size, chunk_overlap=CHUNK_OVERLAP, tokenizer=encoder.tok.tokenize
    )


def build_index(
    connect: Callable[[], Any], name: str, folder: Path, encoder: Any, embed_model: str,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, Any]:  # fmt: skip
    """(Re)build index `name` from a folder; its record (documents, chunks, model, dim)."""
    from llama_index.core import StorageContext, VectorStoreIndex

    docs = read_folder(folder)
    vs = DuckDBArrayStore(connect, name, encoder.dim)
    with connect() as conn:
        conn.execute("DELETE FROM rag_chunks WHERE index_name = ?", [name])
        conn.execute("DELETE FROM rag_indexes WHERE name = ?", [name])
    VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=vs),
        embed_model=LocalEmbedding(encoder, embed_model),
        transformations=[_splitter(encoder, chunk_size)], show_progress=False,
    )  # fmt: skip
    record = {"name": name, "embed_model": embed_model, "dim": encoder.dim,
              "folder": str(folder), "n_documents": len(docs), "chunk_size": chunk_size}  # fmt: skip
    with connect() as conn:
        (chunks,) = conn.execute(
            "SELECT count(*) FROM rag_chunks WHERE index_name = ?", [name]
        ).fetchone()
        conn.execute(
            "INSERT INTO rag_indexes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [name, embed_model, encoder.dim, str(folder), len(docs), chunks, chunk_size,
             dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )  # fmt: skip
    return {**record, "n_chunks": chunks}


def index_info(connect: Callable[[], Any], name: str) -> dict[str, Any]:
    """The record of index `name`; UserError naming the existing ones otherwise."""
    with connect() as conn:
        cur = conn.execute("SELECT * FROM rag_indexes ORDER BY name")
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    found = [r for r in rows if r["name"] == name]
    if not found:
        known = ", ".join(r["name"] for r in rows) or "none yet"
        raise UserError(
            f"no RAG index {name!r} (indexes: {known}): build it with "
            f"`workbench rag index FOLDER --name {name}`"
        )
    return found[0]


def check_model(info: dict[str, Any], embed_model: str) -> None:
    if info["embed_model"] != embed_model:
        raise UserError(
            f"index {info['name']!r} was built with embedding model {info['embed_model']!r}, "
            f"not {embed_model!r}: query it with --embed-model {info['embed_model']} or reindex "
            f"with `workbench rag index {info['folder']} --name {info['name']} "
            f"--embed-model {embed_model}`"
        )


def retrieve(
    connect: Callable[[], Any], name: str, encoder: Any, embed_model: str, query: str, k: int
) -> list[dict[str, Any]]:
    """The top-k chunks for `query`: [{id, source, text, score}], best first."""
    from llama_index.core import VectorStoreIndex

    info = index_info(connect, name)
    check_model(info, embed_model)
    vs = DuckDBArrayStore(connect, name, int(info["dim"]))
    index = VectorStoreIndex.from_vector_store(vs, embed_model=LocalEmbedding(encoder, embed_model))
    hits = index.as_retriever(similarity_top_k=k).retrieve(query)
    return [
        {"id": h.node.node_id, "source": h.node.metadata.get("source", "?"),
         "text": h.node.get_content(), "score": float(h.score or 0.0)}
        for h in hits
    ]  # fmt: skip


def rag_prompt(adapter: Adapter, item: Item, hits: list[dict[str, Any]], opts: Options) -> str:
    sources = "\n\n".join(f"[{h['source']}] {h['text'].strip()}" for h in hits)
    text = (
        "Answer the question using only these sources, and cite the source in brackets.\n\n"
        f"{sources}\n\nQuestion: {question_text(item)}"
    )
    if adapter.has_chat_template:
        messages = [{"role": "user", "content": text}]
        if opts.system:
            messages.insert(0, {"role": "system", "content": opts.system})
        return adapter.chat_prompt(messages)
    return text + "\nAnswer:"


def rag_answer(adapter: Adapter, items: list[Item], opts: Options) -> list[Result]:
    """Retrieve top-k chunks per item, answer from them with citations (one batch)."""
    if opts.retriever is None:
        raise UserError("strategy 'rag' needs an index: pass --index NAME")
    all_hits = [opts.retriever(question_text(item), opts.top_k) for item in items]
    prompts = [rag_prompt(adapter, it, h, opts) for it, h in zip(items, all_hits, strict=True)]
    stop = () if adapter.has_chat_template else ("\nQuestion:", "\n\n")
    params = Params(opts.tokens(96), opts.temperature, opts.seed, stop)
    outs = adapter.generate(prompts, params, on_piece=opts.on_piece)
    results = []
    for i, (hits, out) in enumerate(zip(all_hits, outs, strict=True)):
        result = Result(out.text.strip())
        result.spend(out)
        for h in hits:
            result.steps.append(opts.emit(i, "retrieved", h["text"], source=h["source"],
                                          score=round(h["score"], 3)))  # fmt: skip
        result.steps.append(opts.emit(i, "answer", result.output))
        result.extra = {"retrieved": list(dict.fromkeys(h["source"] for h in hits))}
        results.append(result)
    return results


def retrieval_quality(
    retriever: Callable[[str, int], list[dict]], items: list[Item], k: int
) -> dict[str, float]:
    """Hit rate at k and MRR over the items that name their sources."""
    scored = [it for it in items if it.sources]
    if not scored:
        raise UserError("no task names its 'sources': hit rate needs the documents per question")
    ranks = []
    for item in scored:
        sources = list(dict.fromkeys(h["source"] for h in retriever(item.question, k)))
        hit = [r for r, s in enumerate(sources, 1) if s in item.sources]
        ranks.append(hit[0] if hit else None)
    return {"n": len(ranks), "k": k, "hit_rate": sum(r is not None for r in ranks) / len(ranks),
            "mrr": sum(1 / r for r in ranks if r) / len(ranks)}  # fmt: skip


def write_bundled_documents(folder: Path, which: str = "all") -> list[Path]:
    """Write the bundled fact sheet and/or town documents as one .txt file each."""
    from engines.tasks import fact_documents
    from pipelines.prompting.tasksets import factsheet_documents

    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    if which in ("all", "factsheet"):
        docs += factsheet_documents()
    if which in ("all", "facts"):
        docs += list(fact_documents())
    paths = []
    for doc in docs:
        path = folder / f"{doc['id']}.txt"
        path.write_text(f"{doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
        paths.append(path)
    return paths
