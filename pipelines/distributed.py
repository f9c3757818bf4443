"""Run a job under torchrun: every rank runs the pipeline; rank 0 alone writes the run.

    torchrun --nproc_per_node 2 -m workbench.cli run --preset pretrain-tiny

Rank 0 creates the run and broadcasts its id; the other ranks execute without an event log.

A spec with a `[launch]` section (`nproc_per_node = 2`) is started detached by
`workbench run --detach`, `runs resume` and the TUI's Launch as

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m pipelines.distributed RUN_ID [--resume]

(`torchrun_command`): the run already exists (prepared by the front end), every rank loads
its recorded spec and rank 0 writes it, as above.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from engines.errors import UserError
from pipelines.registry import pipeline_module
from pipelines.runner import Outcome, execute, load_run_spec, prepare_run
from pipelines.spec import JobSpec
from store import Store


def run_distributed(
    job: JobSpec, parents: list[str], printer: Callable[[dict[str, Any]], None]
) -> NoReturn:
    """This process is one rank of a torchrun job started by hand: run `job` (rank 0 creates
    the run and broadcasts its id), then end the process with the run's exit code."""

    def rank_job() -> Outcome:
        import torch.distributed as dist

        from engines.distributed import init_distributed

        info = init_distributed()
        store = Store()
        box = [None]
        if info.is_main:
            store.refresh()
            box[0] = prepare_run(store, job, parents=parents)
        dist.broadcast_object_list(box, src=0)
        return execute(
            store,
            box[0],
            job,
            rank=info.rank,
            world_size=info.world_size,
            on_event=printer if info.is_main else (lambda e: None),
            run_fn=naming_lost_ranks,
        )

    end_rank(rank_job)


def end_rank(rank_job: Callable[[], Outcome]) -> NoReturn:
    """Run one rank's part of a job and end the process with its exit code, the process
    group left as it is (engines.distributed.leave says why): 2 for a user's error, whose
    message goes to stderr as the CLI prints it; 1 with the traceback for anything else."""
    from engines.distributed import leave

    try:
        code = rank_job().exit_code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except BaseException:  # noqa: BLE001 - whatever happened, the rank ends by leave()
        traceback.print_exc()
        code = 1
    leave(code)


class RankLost(RuntimeError):
    """Another process of the job died: this one's collective failed (or torchrun stopped it)."""


def naming_lost_ranks(spec: JobSpec, ctx: Any) -> Iterator[Any]:
    """The pipeline's run; when it fails because a peer process died (a broken gloo/NCCL
    connection, a timed-out collective), the error says which rank was lost."""
    from engines.distributed import lost_ranks

    try:
        yield from pipeline_module(spec.pipeline).run(spec, ctx)
    except UserError:
        raise
    except Exception as e:
        lost = lost_ranks()
        if not lost:
            raise
        raise RankLost(_lost_message(lost, ctx.world_size, f"{type(e).__name__}: {e}")) from e


def _lost_message(lost: list[int], world_size: int, cause: str) -> str:
    ranks = ", ".join(map(str, lost))
    return (
        f"lost rank {ranks} of {world_size}: its process exited (killed, or crashed: its "
        f"traceback is in the run's stdout.log), so this rank's collective failed: {cause[:300]}"
    )


def wants_torchrun(job: JobSpec) -> bool:
    """A spec whose `[launch]` asks for more than one process."""
    launch = getattr(job, "launch", None)
    return launch is not None and launch.processes > 1


def torchrun_command(job: JobSpec, run_id: str, resume: bool = False) -> list[str]:
    """The command that runs prepared run `run_id` under torchrun, as its `[launch]` says."""
    launch = job.launch
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if launch.nnodes == 1 and not launch.rdzv_endpoint:
        cmd.append("--standalone")  # a free port on this host, no rendezvous server to name
    else:
        cmd += ["--nnodes", str(launch.nnodes), "--rdzv-backend", "c10d"]
        cmd += ["--rdzv-endpoint", launch.rdzv_endpoint, "--rdzv-id", run_id]
    cmd += ["--nproc_per_node", str(launch.nproc_per_node)]
    cmd += ["-m", "pipelines.distributed", run_id] + (["--resume"] if resume else [])
    return cmd


def run_prepared(run_id: str, resume: bool = False) -> NoReturn:
    """Every rank of a torchrun job started by `torchrun_command`: run the prepared run, then
    end the process with its exit code."""

    def rank_job() -> Outcome:
        from engines.distributed import init_distributed

        info = init_distributed()
        store = Store()
        job = load_run_spec(store, run_id)

        def printer(event: dict[str, Any]) -> None:
            print(json.dumps(event, default=str), flush=True)

        return execute(
            store,
            run_id,
            job,
            resume=resume,
            rank=info.rank,
            world_size=info.world_size,
            on_event=printer if info.is_main else (lambda e: None),
            run_fn=naming_lost_ranks,
        )

    end_rank(rank_job)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python -m pipelines.distributed RUN_ID [--resume]", file=sys.stderr)
        return 2
    run_prepared(argv[0], resume="--resume" in argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
