"""Cheap checks a job passes before its run exists: data readable and big enough, the device
present, the model fitting in memory. Each failure is a SpecError (exit 2) that names the
field and the fix, raised before anything is written — no run folder, no failed run.

A stage module declares `preflight(spec, store)` built from these; `registry.preflight(job)`
calls it and `runner.prepare_run` calls that first.
"""

from __future__ import annotations

import glob as globlib
import itertools
import json
from pathlib import Path

from engines.memory import available_bytes, gpu_present, human_bytes, training_bytes
from pipelines.spec import SpecError

HEAD_LINES = 5  # JSONL lines read to check a file's shape


def check_device(device: str, field: str = "train.device") -> str:
    """The device a job will use ("cpu" | "cuda"); refuses "cuda" where no GPU is visible."""
    if device == "cpu":
        return "cpu"
    if not gpu_present():
        if device == "cuda":
            raise SpecError(
                f"field {field!r}: 'cuda' but this machine has no GPU — "
                'set train.device = "auto" (or "cpu")'
            )
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise SpecError(
            f"field {field!r}: 'cuda' but torch sees no usable GPU (a CPU build of torch, or "
            'the driver) — set train.device = "auto" (or "cpu")'
        )
    return "cpu"


def check_memory(device: str, *, params: int, trainable: int | None = None, **shape: int) -> None:
    """Refuse a job whose estimated training memory exceeds what `device` has free."""
    need = training_bytes(params=params, activation_bytes=2 if device == "cuda" else 4, **shape)
    if trainable is not None:  # frozen weights keep no gradient or optimizer state
        need -= (params - trainable) * 12
    have = available_bytes(device)
    if have is None or need <= have:
        return
    raise SpecError(
        f"this job needs about {human_bytes(need)} of {device} memory ({params:,} parameters: "
        f"weights, gradients and AdamW state; activations for batch {shape['batch']} × "
        f"{shape['seq_len']} tokens × {shape['n_layer']} layers × {shape['n_embd']} wide) "
        f"but {device} has {human_bytes(have)} available — make the model smaller "
        "(model.n_layer, model.n_embd) or the batch (train.batch_size, train.seq_len)"
    )


def check_nonempty(path: Path, field: str) -> int:
    """The size of a data file; an empty one is refused."""
    size = path.stat().st_size
    if size == 0:
        raise SpecError(f"field {field!r}: {path} is empty — point it at a file with data")
    return size


def jsonl_head(path: Path, field: str) -> list[tuple[int, object]]:
    """(line number, parsed record) for the first non-empty lines; bad JSON is refused."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise SpecError(f"{path}:{lineno}: not valid JSON ({e.msg}) — {field}") from None
            if len(out) >= HEAD_LINES:
                break
    if not out:
        raise SpecError(f"field {field!r}: {path} has no records (only blank lines)")
    return out


def check_text_field(path: Path, text_field: str, field: str) -> None:
    """The first records of a JSONL file carry `text_field` as a string."""
    for lineno, record in jsonl_head(path, field):
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            keys = ", ".join(sorted(record)) if isinstance(record, dict) else "not an object"
            raise SpecError(
                f"{path}:{lineno}: no string field {text_field!r} (found: {keys}) — set "
                f"{field.rsplit('.', 1)[0]}.text_field to the field that holds the text"
            )


def check_glob(pattern: str, field: str) -> None:
    if next(itertools.islice(globlib.iglob(pattern, recursive=True), 1), None) is None:
        raise SpecError(f"field {field!r}: the glob {pattern!r} matched no files")


def check_enough_tokens(max_tokens: int, window: int, label: str, field: str) -> None:
    """A source whose every byte became a token would still not fill one training window."""
    if max_tokens < window:
        raise SpecError(
            f"field {field!r}: source {label!r} holds at most {max_tokens} tokens (one per "
            f"byte) but one training sequence needs {window} (model.block_size or "
            "train.seq_len, plus one): add data or lower model.block_size / train.seq_len"
        )
