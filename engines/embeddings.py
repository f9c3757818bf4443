"""Sentence embeddings from a local encoder folder (all-MiniLM-L6-v2 and the like).

    enc = Encoder.load("~/.workbench/models/minilm-l6")
    vectors = enc.embed(["a sentence", "another"])   # (N, 384) float32, unit length

Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers does
for all-MiniLM-L6-v2; plain transformers and torch, nothing downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import UserError

MAX_TOKENS = 256


@dataclass
class Encoder:
    """A transformers encoder and its tokenizer; `dim` is the embedding width."""

    model: Any
    tok: Any
    dim: int
    batch_size: int = 32

    @classmethod
    def load(cls, folder: str | Path) -> Encoder:
        from transformers import AutoModel, AutoTokenizer

        path = Path(folder).expanduser()
        if not (path / "config.json").is_file():
            raise UserError(f"embedding model folder {path} has no config.json: pull minilm-l6")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        return cls(model, tok, int(model.config.hidden_size))

    def embed(self, texts: list[str]) -> Any:
        """(N, dim) float32 numpy array of unit vectors."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)

    def _batch(self, texts: list[str]) -> Any:
        import torch

        enc = self.tok(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state  # (B, T, D)
        mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()
