"""Operations both front ends call: the one implementation of every shared behaviour.

    from workbench import ops
    store = ops.open_store()
    ops.runs.delete(store, "echo-2025")        # the CLI prints the message, the TUI toasts it

UI-free: nothing here imports textual, typer or rich, and engines and pipelines are imported
inside the functions that need them, so `import workbench.ops` stays light. A mistake a user
can fix is an `OpError` whose message names the run, model, file or field and the fix; the
CLI prints it as `error: …` with exit code 2, the TUI shows it as a notification.
"""

from __future__ import annotations

from workbench.ops.errors import OpError
from workbench.ops.stores import open_store

__all__ = ["OpError", "open_store"]
