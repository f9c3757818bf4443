"""What `workbench doctor` reports: library versions, the device, the store's health.

for name, version in library_versions(): ...
device_summary()      # 'cuda ×1 (NVIDIA H200), torch 2.x' or 'cpu (no CUDA), …'
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

LIBS = ("gpt-workbench", "torch", "transformers", "tokenizers", "peft", "textual", "duckdb",
        "llama-index-core", "guidance", "llguidance", "pydantic", "typer")  # fmt: skip


def library_versions() -> list[tuple[str, str | None]]:
    """(distribution, version or None when it is not installed)."""
    out = []
    for lib in LIBS:
        try:
            out.append((lib, metadata.version(lib)))
        except metadata.PackageNotFoundError:
            out.append((lib, None))
    return out


def device_summary() -> str:
    import torch

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"cuda ×{torch.cuda.device_count()} ({', '.join(names)}), torch {torch.__version__}"
    return f"cpu (no CUDA), torch {torch.__version__}, {torch.get_num_threads()} threads"


def store_health(store: Any) -> dict[str, Any]:
    """The refreshed store's health (path, schema version, row counts)."""
    from workbench.ops.stores import refresh

    refresh(store)
    return store.health()
