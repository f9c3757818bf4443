"""Job specs: TOML files validated by one pydantic model per pipeline.

A spec names its pipeline at the top (`pipeline = "pretrain"`) and the pipeline's `Spec`
validates the rest with `extra="forbid"`. Everything that can go wrong with a spec (no file,
not TOML, unknown key, wrong type, out-of-range value, a data file that does not exist) is a
`SpecError` whose message names the file, the field path and the fix. The CLI turns it into
one line and exit code 2, before any heavy import.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engines.errors import UserError

PRESETS_DIR = Path(__file__).parent / "presets"


class SpecError(UserError):
    """A job spec a user wrote is wrong; the message says where and how to fix it."""


class Section(BaseModel):
    """Base for every spec section: unknown keys are errors, not silently ignored, and every
    float must be a finite number (`lr = nan`, `grad_clip = inf` are refused)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# The stages whose trainer shards with train.parallel = "fsdp": every stage that trains.
# GRPO and PPO sample their batches (rollouts) between steps, and a sharded model's forward is
# a collective every rank makes alike: every rank samples the step's whole global batch of
# rollouts alike and keeps its rows (pipelines.train_events.StepRows).
FSDP_PIPELINES = ("pretrain", "sft", "reward", "dpo", "grpo", "ppo")


class TrainSection(Section):
    """The trainer core's settings, declared here once: defaults, ranges and descriptions.

    `engines.trainer.TrainConfig` has the same fields without defaults; `train_events.
    train_config` builds it from this section. A stage subclasses it to add fields or to
    redeclare a field's default (`redefault`).
    """

    batch_size: int = Field(16, ge=1, description="sequences per step per device (B)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_steps: int = Field(500, ge=1, description="optimizer steps")
    lr: float = Field(3e-3, gt=0, le=1.0, description="peak learning rate")
    min_lr: float = Field(3e-4, ge=0, description="learning rate at the end of the cosine")
    warmup_steps: int = Field(50, ge=0, description="linear warmup steps")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay on ≥2-D weights")
    grad_clip: float = Field(1.0, ge=0, description="clip the gradient norm (0: no clipping)")
    eval_every: int = Field(
        100, ge=0, description="validation loss every N steps (0: only at start and end)"
    )
    eval_batches: int = Field(8, ge=1, description="batches per validation")
    sample_every: int = Field(100, ge=0, description="samples every N steps (0: never)")
    checkpoint_every: int = Field(
        100, ge=0, description="checkpoint every N steps (0: only when stopped and at the end)"
    )
    keep_checkpoints: int = Field(2, ge=2, description="complete checkpoints kept")
    log_every: int = Field(10, ge=1, description="training metrics every N steps")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when present")
    compile: bool = Field(False, description="torch.compile the model")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="several processes (torchrun): ddp copies the model to each, fsdp splits "
        f"its weights, gradients and AdamW state over them ({', '.join(FSDP_PIPELINES)})",
    )


class LaunchSection(Section):
    """How `workbench run` (detached) and Launch start the job: `nproc_per_node` > 1 (or
    `nnodes` > 1) starts it under torchrun, rank 0 recording the one run. Left out: one process."""

    nproc_per_node: int = Field(1, ge=1, le=1024, description="processes on this node (torchrun)")
    nnodes: int = Field(1, ge=1, le=4096, description="nodes (torchrun --nnodes)")
    rdzv_endpoint: str | None = Field(
        None, description="host:port every node meets at (torchrun --rdzv-endpoint); nnodes > 1"
    )

    @model_validator(mode="after")
    def _endpoint_for_nodes(self) -> LaunchSection:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(
                f'nnodes = {self.nnodes} needs launch.rdzv_endpoint = "HOST:PORT" (where the '
                "nodes meet); start the same spec on every node"
            )
        return self

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nnodes


def redefault(section: type[BaseModel], name: str, default: Any, **extra: Any) -> Any:
    """`name`'s Field in `section` with another default (same range and description)."""
    info = section.model_fields[name]
    kwargs = {"description": info.description, **extra}
    metadata = {k: getattr(m, k) for m in info.metadata for k in _CONSTRAINTS if hasattr(m, k)}
    return Field(default, **metadata, **kwargs)


_CONSTRAINTS = ("gt", "ge", "lt", "le", "min_length", "max_length")


class JobSpec(Section):
    """Fields every job has. Pipelines subclass this and add their own sections."""

    pipeline: str
    name: str | None = None
    seed: int = 0
    description: str | None = None
    launch: LaunchSection | None = None  # [launch]: start under torchrun (pipelines.distributed)

    @model_validator(mode="after")
    def _parallel_supported(self) -> JobSpec:
        train = getattr(self, "train", None)
        if getattr(train, "parallel", "ddp") == "fsdp" and self.pipeline not in FSDP_PIPELINES:
            raise ValueError(
                f"field 'train.parallel': \"fsdp\" shards {', '.join(FSDP_PIPELINES)} only; "
                f'set train.parallel = "ddp" for {self.pipeline}'
            )
        return self


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a SpecError naming the file."""
    if not path.exists():
        raise SpecError(f"{path}: no such spec file (check the path, or use --preset NAME)")
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a spec file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read ({e})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=3e-4` -> (["train", "lr"], 0.0003). Values are TOML, else plain strings."""
    if "=" not in item:
        raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_steps=100")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"--set {item!r}: {part!r} is not a section")
        node[path[-1]] = value
    return data


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid field names of the (nested) section that `loc` points into."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return list(model.model_fields)
        ann = field.annotation
        for candidate in getattr(ann, "__args__", (ann,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
        else:
            args = getattr(ann, "__args__", ())
            inner = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not inner:
                return []
            model = inner[0]
    return list(model.model_fields)


def describe_error(where: str, model: type[BaseModel], err: dict[str, Any]) -> str:
    """One line for one pydantic error: file, field path, what was wrong, the fix."""
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        valid = _fields_at(model, loc)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"valid fields: {', '.join(valid)}"
        return f"{where}: unknown field {path!r} — {hint}"
    if err["type"] == "missing":
        return f"{where}: missing required field {path!r}"
    if err["type"] == "value_error":
        msg = err["msg"].removeprefix("Value error, ")
        return f"{where}: {msg}" if not loc else f"{where}: field {path!r}: {msg}"
    got = err.get("input")
    got_s = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{where}: field {path!r}: {err['msg']}{got_s}"


def validate(spec_cls: type[JobSpec], data: dict[str, Any], where: str) -> JobSpec:
    try:
        return spec_cls.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = describe_error(where, spec_cls, errors[0])
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise SpecError(first + more) from None


def dump_toml(data: dict[str, Any]) -> str:
    """A spec (or any nested dict) as TOML text; None values are left out (TOML has no null)."""
    import tomli_w

    return tomli_w.dumps(_drop_none(data))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.exists():
        names = list_presets()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `workbench presets`"
        raise SpecError(f"no preset named {name!r} — {hint}")
    return path


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_summary(name: str) -> tuple[str, str]:
    """(pipeline, description) of a preset, read without validating it."""
    data = tomllib.loads(preset_path(name).read_text(encoding="utf-8"))
    return data.get("pipeline", "?"), data.get("description", "")
