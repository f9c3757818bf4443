"""The SFT job spec: a base model, conversations (JSONL or built-in tasks), LoRA, schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.spec import JobSpec, Section, SpecError, TrainSection, redefault
from pipelines.stage import Output, StageSpec


def _check_tasks(names: list[str]) -> list[str]:
    from engines.tasks import TASKS  # no torch: plain generators

    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; built-in tasks: {', '.join(TASKS)}")
    return names


class BaseModelRef(Section):
    base: str = Field(description="registry name, run id or folder of the model to fine-tune")


class SFTData(Section):
    path: str | None = Field(None, description="JSONL: {messages: [...]} or {prompt, completion}")
    tasks: list[str] = Field(default_factory=list, description="built-in task sets to train on")
    n_per_task: int = Field(400, ge=1, description="training examples per built-in task")
    max_len: int = Field(256, ge=8, description="tokens per example (longer ones are cut)")
    eval_tasks: list[str] | None = Field(None, description="held-out tasks (default: tasks)")
    eval_n: int = Field(40, ge=1, description="held-out examples per eval task")
    eval_max_new_tokens: int = Field(32, ge=1)
    system: str | None = Field(None, description="a system prompt added to every conversation")

    _tasks = field_validator("tasks")(lambda cls, v: _check_tasks(v))

    @field_validator("eval_tasks")
    @classmethod
    def _eval_tasks(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_tasks(v)

    @model_validator(mode="after")
    def _some_data(self) -> SFTData:
        if not self.path and not self.tasks:
            raise ValueError('give data.path = "file.jsonl" or data.tasks = ["arithmetic", ...]')
        return self


class LoraSpec(Section):
    enabled: bool = False
    r: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    quantize_base: Literal["none", "nf4"] = Field(
        "none",
        description="nf4: QLoRA, the frozen base's linear layers in 4 bits (CUDA, bitsandbytes)",
    )

    @model_validator(mode="after")
    def _qlora_needs_lora(self) -> LoraSpec:
        if self.quantize_base != "none" and not self.enabled:
            raise ValueError(
                f'quantize_base = "{self.quantize_base}" freezes the base under LoRA adapters: '
                "set lora.enabled = true (or drop lora.quantize_base)"
            )
        return self


def check_qlora(job: JobSpec) -> None:
    """Preflight of a job with a `[lora]` section whose base is quantized (QLoRA): a CUDA
    device, bitsandbytes installed, no FSDP. SpecError (exit 2) before the run exists."""
    lora = getattr(job, "lora", None)
    if lora is None or lora.quantize_base == "none":
        return
    from engines.lora import qlora_refusal
    from pipelines.preflight import check_device

    if job.train.parallel == "fsdp":
        raise SpecError(
            "field 'lora.quantize_base': a 4-bit base does not shard with FSDP; "
            'set train.parallel = "ddp" (or drop lora.quantize_base)'
        )
    refusal = qlora_refusal(check_device(job.train.device))
    if refusal:
        raise SpecError(refusal)


class SFTTrain(TrainSection):
    """The trainer settings with SFT's own defaults (ranges come from TrainSection)."""

    max_steps: int = redefault(TrainSection, "max_steps", 300)
    lr: float = redefault(TrainSection, "lr", 1e-3)
    min_lr: float = redefault(TrainSection, "min_lr", 1e-4)
    warmup_steps: int = redefault(TrainSection, "warmup_steps", 20)
    weight_decay: float = redefault(TrainSection, "weight_decay", 0.0)
    eval_batches: int = redefault(TrainSection, "eval_batches", 4)
    sample_every: int = redefault(
        TrainSection, "sample_every", 100, description="held-out accuracy every N steps (0: never)"
    )


class Spec(StageSpec):
    pipeline: Literal["sft"] = "sft"
    model: BaseModelRef
    data: SFTData
    lora: LoraSpec = LoraSpec()
    train: SFTTrain = SFTTrain()
    output: Output = Output()

    def check_files(self, base_dir: Path, where: str) -> None:
        if self.data.path:
            p = Path(self.data.path).expanduser()
            p = p if p.is_absolute() else base_dir / p
            if not p.exists():
                raise SpecError(
                    f"{where}: field 'data.path': {p} does not exist "
                    "(paths are relative to the spec file)"
                )
            self.data.path = str(p.resolve())
