"""Tiny model folders for the prompting tests: a chat model, a base model, an encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.engines.tinylm import save_tiny, tiny_llama, tiny_tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-chat") / "model", seed=3)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny model whose tokenizer has no chat template (a base model)."""
    folder = tmp_path_factory.mktemp("tiny-base") / "model"
    tok = tiny_tokenizer(chat_template=False)
    tiny_llama(len(tok), seed=4).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def docs(tmp_path_factory) -> Path:
    """The bundled fact sheet and town documents as .txt files."""
    from pipelines.prompting.rag import write_bundled_documents

    folder = tmp_path_factory.mktemp("docs")
    write_bundled_documents(folder)
    return folder
