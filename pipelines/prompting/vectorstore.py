"""A llama-index vector store over the workbench's DuckDB file, on built-in array functions.

    vs = DuckDBArrayStore(connect=store.connect, index_name="docs", dim=384)
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(
        vector_store=vs), embed_model=LocalEmbedding(encoder=enc, model_name="minilm-l6"))

Chunks live in `rag_chunks` (one row per node: index name, node id, document id, source,
text, metadata, embedding as FLOAT[]) and indexes in `rag_indexes`; a query ranks by
`array_cosine_similarity(embedding::FLOAT[dim], query::FLOAT[dim])`. No extension is installed
or loaded. `connect` is a context manager factory yielding one DuckDB transaction (the store's
`Store.connect`, which holds the cross-process lock); the store's migrations make the tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr


class DuckDBArrayStore(BasePydanticVectorStore):
    """llama-index nodes with embeddings in DuckDB; cosine top-k with array functions."""

    stores_text: bool = True
    is_embedding_query: bool = True
    index_name: str
    dim: int
    _connect: Callable[[], Any] = PrivateAttr()

    def __init__(self, connect: Callable[[], Any], index_name: str, dim: int) -> None:
        super().__init__(index_name=index_name, dim=dim)
        self._connect = connect

    @property
    def client(self) -> Any:
        return None

    def add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        import pyarrow as pa

        table = pa.table({
            "index_name": [self.index_name] * len(nodes),
            "node_id": [n.node_id for n in nodes],
            "doc_id": [n.ref_doc_id for n in nodes],
            "source": [n.metadata.get("source") for n in nodes],
            "text": [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            "metadata": [json.dumps(n.metadata, default=str) for n in nodes],
            "embedding": pa.array([n.get_embedding() for n in nodes], pa.list_(pa.float32())),
        })  # fmt: skip
        with self._connect() as conn:
            conn.register("new_rag_chunks", table)
            conn.execute("INSERT INTO rag_chunks SELECT * FROM new_rag_chunks")
            conn.unregister("new_rag_chunks")
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **kwargs: Any) -> None:
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM rag_chunks WHERE index_name = ? AND doc_id = ?",
                [self.index_name, ref_doc_id],
            )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        assert query.query_embedding is not None, "DuckDBArrayStore answers embedding queries"
        sql = (
            f"SELECT node_id, text, metadata, array_cosine_similarity("
            f"embedding::FLOAT[{self.dim}], ?::FLOAT[{self.dim}]) AS score "
            "FROM rag_chunks WHERE index_name = ? ORDER BY score DESC, node_id LIMIT ?"
        )
        with self._connect() as conn:
            rows = conn.execute(
                sql, [list(query.query_embedding), self.index_name, query.similarity_top_k]
            ).fetchall()
        nodes = [TextNode(id_=i, text=t, metadata=json.loads(m or "{}")) for i, t, m, _ in rows]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[float(r[3]) for r in rows], ids=[r[0] for r in rows]
        )


class LocalEmbedding(BaseEmbedding):
    """llama-index's embedding interface over engines.embeddings.Encoder."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Any, model_name: str) -> None:
        super().__init__(model_name=model_name, embed_batch_size=32)
        self._encoder = encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.embed(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
