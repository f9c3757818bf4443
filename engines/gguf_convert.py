"""Convert a GGUF file, once, into a plain Hugging Face folder (fp32 safetensors).

transformers reads GGUF files (weights dequantised on load, tokenizer rebuilt from the GGUF
metadata), but a model loaded that way stays marked as GGUF-quantised and `save_pretrained`
refuses it. So we rebuild a plain model from its config and state dict and save that; from then
on the folder loads with `AutoModelForCausalLM.from_pretrained` and needs neither gguf nor us.

    from engines.gguf_convert import convert_gguf
    convert_gguf(Path("SmolLM2-135M-Instruct.Q4_1.gguf"), Path("models/smollm2"))
"""

from __future__ import annotations

import copy
from pathlib import Path

from engines.errors import UserError


def gguf_summary(gguf_path: Path) -> dict:
    """Architecture, name, tensor types and whether a chat template is present, from the header."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(gguf_path))
    except Exception as exc:  # the gguf reader raises bare ValueError/struct errors
        raise UserError(f"{gguf_path} is not a readable GGUF file ({exc}): check the file") from exc
    return {
        "architecture": _field_str(reader, "general.architecture"),
        "name": _field_str(reader, "general.name"),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
        "chat_template": "tokenizer.chat_template" in reader.fields,
    }


def _field_str(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def _check_supported(gguf_path: Path, summary: dict) -> None:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    arch = summary["architecture"]
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"{gguf_path}: transformers cannot read GGUF architecture {arch!r} "
            f"(tensor types {', '.join(summary['tensor_types'])}); supported architectures are "
            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}. Import the model as a Hugging "
            "Face folder instead"
        )


def _load(gguf_path: Path, summary: dict):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, local_files_only=True
        )
    except (ValueError, NotImplementedError, KeyError, TypeError) as exc:
        raise UserError(
            f"{gguf_path}: transformers could not load this GGUF (architecture "
            f"{summary['architecture']!r}, tensor types {', '.join(summary['tensor_types'])}): "
            f"{exc}. Re-quantise it to a type transformers reads (F16, Q8_0, Q4_K_M) or import "
            "the original Hugging Face folder"
        ) from exc
    return model, tok


def _plain_copy(model):
    """The same weights in a fresh, unquantised model of the same class (fp32)."""
    import torch

    state = model.state_dict()
    packed = sorted(k for k, v in state.items() if not v.is_floating_point())
    if packed:  # transformers keeps some GGUF types packed when a matmul kernel is installed
        raise UserError(
            f"transformers kept GGUF weights packed ({packed[0]}, ...), so they cannot be saved "
            "as safetensors: convert in an environment without the `kernels` package"
        )
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = type(model)(config)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in _tied_keys(plain)]
    assert not missing and not unexpected, (
        f"GGUF rebuild: missing {missing}, unexpected {unexpected}"
    )
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain.eval()


def _tied_keys(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied if isinstance(tied, (list, set, tuple)) else tied.keys())


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise `gguf_path` into an HF folder at `out_dir` (weights, tokenizer, generation config)."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise UserError(f"GGUF file {gguf_path} does not exist: check the path")
    summary = gguf_summary(gguf_path)
    _check_supported(gguf_path, summary)
    model, tok = _load(gguf_path, summary)
    plain = _plain_copy(model)
    del model
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir, safe_serialization=True)
    if not summary["chat_template"]:
        tok.chat_template = None
    tok.save_pretrained(out_dir)
    return out_dir
