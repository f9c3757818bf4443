"""`workbench doctor`: what is installed, which device jobs will use, where things live."""

from __future__ import annotations

import os
import platform
import shutil
from importlib import metadata

LIBS = (
    "gpt-workbench",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "textual",
    "duckdb",
    "llama-index-core",
    "guidance",
    "llguidance",
    "pydantic",
    "typer",
)


def report() -> int:
    """Print the report; returns the exit code (1 when the store cannot be opened)."""
    print(
        f"python            {platform.python_version()} ({platform.machine()}, {os.cpu_count()} cores)"
    )
    for lib in LIBS:
        try:
            print(f"{lib:<18}{metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            print(f"{lib:<18}MISSING — run `make setup` (or pip install -e .)")
    print(f"device            {_device()}")
    from store import Store

    try:
        store = Store()
        store.refresh()
        health = store.health()
    except Exception as e:  # noqa: BLE001 - report whatever is wrong with the store
        print(f"store             {Store().db_path}: cannot open ({e})")
        return 1
    print(f"home              {store.home}  (set WORKBENCH_HOME to move it)")
    print(f"store             {store.db_path}  schema v{health.get('schema_version')}")
    for table, n in (health.get("counts") or {}).items():
        print(f"  {table:<20}{n}")
    free = shutil.disk_usage(store.home).free / 2**30
    print(f"disk free         {free:.1f} GiB")
    return 0


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"cuda ×{torch.cuda.device_count()} ({', '.join(names)}), torch {torch.__version__}"
    return f"cpu (no CUDA), torch {torch.__version__}, {torch.get_num_threads()} threads"
