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


def kernel_summary() -> str:
    """Whether CPU decode and training take engines/csrc (built here on first use), or why not."""
    from engines import cpu_kernels

    if cpu_kernels.available():
        return (
            "decode matmuls at memory bandwidth, training attention and loss in one pass "
            f"(built in {cpu_kernels.cache_dir()})"
        )
    return f"not in use, torch does all the work: {cpu_kernels.why_not}"


def compile_summary() -> str:
    """Whether `train.compile = true` can build its CPU kernels here (a C++ compiler)."""
    from pipelines import preflight

    cxx = preflight.cxx_compiler()
    if cxx:
        return f"train.compile can build on the CPU ({cxx})"
    return f"train.compile needs a C++ compiler on the CPU: {preflight.cxx_name()!r} not found"


def store_health(store: Any) -> dict[str, Any]:
    """The store's health: path, schema version, row counts, `ok`, and what is wrong
    (`error` when the file does not open, `integrity`, `schema_problems`, `missing_runs`).

    The store is refreshed first when it opens; a damaged one is reported, not raised.
    """
    from workbench.ops.errors import OpError
    from workbench.ops.stores import refresh

    try:
        refresh(store)
    except OpError:
        pass  # health() says what is wrong with it
    return store.health()


def problems(health: dict[str, Any]) -> list[str]:
    """What is wrong with the store, one line each, with the fix ([] when healthy)."""
    fix = "run `workbench store rebuild` (the damaged file is moved aside, not deleted)"
    out = []
    if health.get("error"):
        out.append(f"{health['error']} — {fix}")
    if health.get("integrity") not in (None, "ok"):
        out.append(f"integrity: {health['integrity']} — {fix}")
    out += [f"schema: {p} — {fix}" for p in health.get("schema_problems") or []]
    missing = health.get("missing_runs") or []
    if missing:
        out.append(f"{len(missing)} run(s) whose folder is gone: {', '.join(missing[:5])} — "
                   "delete them with `workbench runs rm ID`")  # fmt: skip
    return out


def rebuild(store: Any) -> str:
    """Move the store file aside and rebuild the catalog from the run and model folders."""
    from workbench.ops.errors import user_errors

    with user_errors():
        done = store.rebuild()
    kept = f"; the old file is kept at {done['moved_to']}" if done.get("moved_to") else ""
    return (f"rebuilt {store.db_path}: {done['runs']} runs, {done['events']} events, "
            f"{done['models']} models{kept}")  # fmt: skip
