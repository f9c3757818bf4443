"""`workbench doctor`: what is installed, which device jobs will use, where things live, and
whether the store is sound; `workbench store rebuild` for when it is not."""

from __future__ import annotations

import os
import platform
import shutil
from typing import Annotated

import typer

from workbench.ops import system
from workbench.ops.stores import open_store

store_app = typer.Typer(help="Check or rebuild the store file.", no_args_is_help=True)


def report() -> int:
    """Print the report; returns the exit code (1 when the store is damaged or unreadable)."""
    cores = f"({platform.machine()}, {os.cpu_count()} cores)"
    print(f"{'python':<18}{platform.python_version()} {cores}")
    for lib, version in system.library_versions():
        print(f"{lib:<18}{version or 'MISSING — run `make setup` (or pip install -e .)'}")
    print(f"{'device':<18}{system.device_summary()}")
    print(f"{'cpu kernel':<18}{system.kernel_summary()}")
    print(f"{'compile':<18}{system.compile_summary()}")
    store = open_store()
    health = system.store_health(store)
    print(f"{'home':<18}{store.home}  (set WORKBENCH_HOME to move it)")
    print(f"{'store':<18}{store.db_path}  schema v{health.get('schema_version', '?')}")
    for table, n in (health.get("counts") or {}).items():
        print(f"  {table:<20}{n}")
    print(f"{'disk free':<18}{shutil.disk_usage(store.home).free / 2**30:.1f} GiB")
    wrong = system.problems(health)
    for line in wrong:
        print(f"{'problem':<18}{line}")
    if not wrong:
        print(f"{'store check':<18}ok (every table read back, schema as expected)")
    return 1 if not health.get("ok", True) else 0


@store_app.command()
def check() -> None:
    """Read every table back and compare the schema with what this code expects."""
    health = system.store_health(open_store())
    for line in system.problems(health) or ["store ok"]:
        typer.echo(line)
    raise typer.Exit(0 if health.get("ok", True) else 1)


@store_app.command()
def rebuild(yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False) -> None:
    """Move the store file aside (kept) and rebuild it from the run and model folders.

    Runs, metrics, samples and models come back; votes, comparisons and prompt experiments
    live only in the store file and stay in the moved copy.
    """
    store = open_store()
    if not yes and not typer.confirm(f"move {store.db_path} aside and rebuild it?"):
        raise typer.Exit(1)
    typer.echo(system.rebuild(store))
