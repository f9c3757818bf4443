"""Run a job under torchrun: every rank runs the pipeline; rank 0 alone writes the run.

    torchrun --nproc_per_node 2 -m workbench.cli run --preset pretrain-tiny

Rank 0 creates the run and broadcasts its id; the other ranks execute without an event log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.runner import Outcome, execute, prepare_run
from pipelines.spec import JobSpec
from store import Store


def run_distributed(
    job: JobSpec, parents: list[str], printer: Callable[[dict[str, Any]], None]
) -> Outcome:
    import torch.distributed as dist

    from engines.distributed import cleanup, init_distributed

    info = init_distributed()
    store = Store()
    box = [None]
    if info.is_main:
        store.refresh()
        box[0] = prepare_run(store, job, parents=parents)
    dist.broadcast_object_list(box, src=0)
    try:
        return execute(
            store,
            box[0],
            job,
            rank=info.rank,
            world_size=info.world_size,
            on_event=printer if info.is_main else (lambda e: None),
        )
    finally:
        cleanup()
