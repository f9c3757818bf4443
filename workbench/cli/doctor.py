"""`workbench doctor`: what is installed, which device jobs will use, where things live."""

from __future__ import annotations

import os
import platform
import shutil

from workbench.ops import system
from workbench.ops.stores import open_store


def report() -> int:
    """Print the report; returns the exit code (1 when the store cannot be opened)."""
    cores = f"({platform.machine()}, {os.cpu_count()} cores)"
    print(f"{'python':<18}{platform.python_version()} {cores}")
    for lib, version in system.library_versions():
        print(f"{lib:<18}{version or 'MISSING — run `make setup` (or pip install -e .)'}")
    print(f"{'device':<18}{system.device_summary()}")
    store = open_store()
    try:
        health = system.store_health(store)
    except Exception as e:  # noqa: BLE001 - report whatever is wrong with the store
        print(f"{'store':<18}{store.db_path}: cannot open ({e})")
        return 1
    print(f"{'home':<18}{store.home}  (set WORKBENCH_HOME to move it)")
    print(f"{'store':<18}{store.db_path}  schema v{health.get('schema_version')}")
    for table, n in (health.get("counts") or {}).items():
        print(f"  {table:<20}{n}")
    print(f"{'disk free':<18}{shutil.disk_usage(store.home).free / 2**30:.1f} GiB")
    return 0
