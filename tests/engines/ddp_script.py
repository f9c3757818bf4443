"""Tiny data-parallel training run for test_distributed.py.

    python -m torch.distributed.run --nproc_per_node 2 tests/engines/ddp_script.py OUT_DIR

Each rank trains the tiny Llama on its rows of one global batch for 3 steps (2 micro-batches
per step, so `no_sync` is exercised) and writes the records it saw to OUT_DIR/rank{r}.json;
rank 0 also writes the final parameters to OUT_DIR/params.pt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines import distributed as D
from engines.trainer import Trainer, causal_lm_loss
from tests.engines.trainer_fixtures import ToyBatches, tiny_config, tiny_model

GLOBAL_BATCH = 4


def run(out_dir: Path) -> Trainer:
    """Train 3 steps in this process's place in the job; returns the trainer."""
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = D.init_distributed("cpu")
    batches = ToyBatches(GLOBAL_BATCH, seed=0, rank=info.rank, world=info.world_size)
    cfg = tiny_config(max_steps=3, grad_accum=2, checkpoint_every=1, log_every=1)
    trainer = Trainer(
        tiny_model(), cfg, train_batches=batches, loss_fn=causal_lm_loss,
        ckpt_root=out_dir / "ckpt",
    )  # fmt: skip
    records = list(trainer.train())
    (out_dir / f"rank{info.rank}.json").write_text(json.dumps(records))
    if info.is_main:
        torch.save(trainer.model.state_dict(), out_dir / "params.pt")
    return trainer


if __name__ == "__main__":
    run(Path(sys.argv[1]))
    D.leave()  # not destroy_process_group: engines.distributed.leave says why
