"""The pretraining job spec: data mixture, tokenizer, model size, training schedule.

Declared once: the CLI validates it, the TUI renders its launch form from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from engines.sources import KINDS, PATH_KINDS
from engines.vocab import MIN_VOCAB
from pipelines.spec import JobSpec, Section, SpecError, TrainSection

SourceKind = Literal[KINDS]  # type: ignore[valid-type]


class SourceSpec(Section):
    kind: SourceKind = Field(description="where documents come from")
    path: str | None = Field(None, description="file or folder (file, folder, jsonl, parquet)")
    glob: str | None = Field(None, description="a glob pattern (kind = glob)")
    text_field: str = Field("text", description="the text column (jsonl, parquet)")
    generator: str | None = Field(None, description="synthetic generator: tasks, stories, facts")
    max_docs: int | None = Field(None, ge=1, description="use at most this many documents")
    weight: float = Field(1.0, gt=0, description="mixture weight (normalised over sources)")
    name: str | None = Field(None, description="label in reports (default: derived)")

    @model_validator(mode="after")
    def _needs(self) -> SourceSpec:
        if self.kind in PATH_KINDS and not self.path:
            raise ValueError(f'a {self.kind} source needs path = "..."')
        if self.kind == "glob" and not self.glob:
            raise ValueError('a glob source needs glob = "data/**/*.txt"')
        if self.kind == "synthetic" and not self.generator:
            raise ValueError('a synthetic source needs generator = "stories" (or tasks, facts)')
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.kind == "synthetic":
            return f"synthetic-{self.generator}"
        if self.kind == "stdlib":
            return "stdlib"
        return Path(self.path or self.glob or self.kind).stem or self.kind


class DataSpec(Section):
    sources: list[SourceSpec] = Field(min_length=1, description="the data mixture")
    val_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="documents held out")
    workers: int = Field(1, ge=1, le=64, description="processes that tokenize")
    hash_content: bool = Field(
        False, description="key the data cache on file contents (sha256), not size and mtime"
    )


class TokenizerSpec(Section):
    vocab_size: int = Field(
        4096,
        ge=MIN_VOCAB,
        le=200_000,
        description=f"BPE vocabulary size (at least {MIN_VOCAB}: 256 bytes + special tokens)",
    )
    sample_bytes: int = Field(4_000_000, ge=10_000, description="bytes of the mixture to train on")
    from_model: str | None = Field(None, description="reuse this model's tokenizer instead")


class ModelSpec(Section):
    n_layer: int = Field(4, ge=1, le=128)
    n_head: int = Field(4, ge=1, le=128)
    n_embd: int = Field(128, ge=8, le=16384)
    block_size: int = Field(128, ge=8, le=131072, description="context length in tokens")
    n_kv_head: int | None = Field(None, ge=1)


class TrainSpec(TrainSection):
    sample_prompts: list[str] = Field(default_factory=lambda: ["def ", "The "])
    sample_tokens: int = Field(48, ge=1)
    peak_flops: float | None = Field(None, gt=0, description="for MFU; measured when unset")
    seq_len: int | None = Field(None, ge=8, description="tokens per sequence (T); ≤ block_size")


class OutputSpec(Section):
    model_name: str | None = Field(None, description="registry name (default: the run id)")


class Spec(JobSpec):
    pipeline: Literal["pretrain"] = "pretrain"
    data: DataSpec
    tokenizer: TokenizerSpec = TokenizerSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    output: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _shapes(self) -> Spec:
        if self.model.n_embd % self.model.n_head:
            raise ValueError(
                f"model.n_embd ({self.model.n_embd}) must be divisible by model.n_head "
                f"({self.model.n_head})"
            )
        if self.train.seq_len and self.train.seq_len > self.model.block_size:
            raise ValueError(
                f"train.seq_len ({self.train.seq_len}) is longer than the model's context "
                f"model.block_size ({self.model.block_size}): lower seq_len or raise block_size"
            )
        if self.train.min_lr > self.train.lr:
            raise ValueError(f"train.min_lr ({self.train.min_lr}) is above train.lr")
        return self

    def check_files(self, base_dir: Path, where: str) -> None:
        """Make data paths absolute (relative to the spec file) and check they exist."""
        for i, src in enumerate(self.data.sources):
            if src.path:
                p = Path(src.path).expanduser()
                p = p if p.is_absolute() else (base_dir / p)
                if not p.exists():
                    raise SpecError(
                        f"{where}: field 'data.sources.{i}.path': {p} does not exist "
                        "(paths are relative to the spec file)"
                    )
                src.path = str(p.resolve())
            if src.glob and not Path(src.glob).is_absolute():
                src.glob = str(base_dir.resolve() / src.glob)
