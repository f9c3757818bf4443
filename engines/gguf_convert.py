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
import mmap
import struct
from pathlib import Path

from engines.errors import UserError


def gguf_summary(gguf_path: Path) -> dict:
    """Architecture, name, tensor types and whether a chat template is present, from the header."""
    try:
        metadata, types = _read_header(gguf_path)
    except Exception as exc:  # both readers raise bare ValueError/struct/index errors
        raise UserError(f"{gguf_path} is not a readable GGUF file ({exc}): check the file") from exc
    from gguf import GGMLQuantizationType

    return {
        "architecture": metadata.get("general.architecture"),
        "name": metadata.get("general.name"),
        "tensor_types": sorted({GGMLQuantizationType(t).name for t in types}),
        "chat_template": "tokenizer.chat_template" in metadata,
    }


_WIDTH = {0: 1, 1: 1, 7: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def _read_header(gguf_path: Path) -> tuple[dict, list[int]]:
    """(string metadata, tensor type ids), walking the header only: arrays are skipped, not read."""
    with open(gguf_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise ValueError("no GGUF magic bytes at the start")
        _version, n_tensors, n_kv = struct.unpack_from("<IQQ", blob, 4)
        pos, metadata = 24, {}
        for _ in range(n_kv):
            key, pos = _string(blob, pos)
            (vtype,) = struct.unpack_from("<I", blob, pos)
            if vtype == _STRING:
                metadata[key], pos = _string(blob, pos + 4)
            else:
                pos = _skip(blob, pos + 4, vtype)
        types = []
        for _ in range(n_tensors):
            _name, pos = _string(blob, pos)
            (n_dims,) = struct.unpack_from("<I", blob, pos)
            pos += 4 + 8 * n_dims
            types.append(struct.unpack_from("<I", blob, pos)[0])
            pos += 12  # type (u32) + offset (u64)
    return metadata, types


def _string(blob, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", blob, pos)
    return bytes(blob[pos + 8 : pos + 8 + n]).decode("utf-8", errors="replace"), pos + 8 + n


def _skip(blob, pos: int, vtype: int) -> int:
    if vtype in _WIDTH:
        return pos + _WIDTH[vtype]
    if vtype == _STRING:
        return pos + 8 + struct.unpack_from("<Q", blob, pos)[0]
    if vtype != _ARRAY:
        raise ValueError(f"unknown metadata value type {vtype}")
    item_type, count = struct.unpack_from("<IQ", blob, pos)
    pos += 12
    if item_type in _WIDTH:
        return pos + count * _WIDTH[item_type]
    for _ in range(count):
        pos = _skip(blob, pos, item_type)
    return pos


def _supported_architectures() -> set[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS
    except ImportError:
        GGUF_CONFIG_ARCHS = ()
    return set(GGUF_SUPPORTED_ARCHITECTURES) | set(GGUF_CONFIG_ARCHS)


def _check_supported(gguf_path: Path, summary: dict) -> None:
    arch, supported = summary["architecture"], _supported_architectures()
    if arch not in supported:
        raise UserError(
            f"{gguf_path}: transformers cannot read GGUF architecture {arch!r} "
            f"(tensor types {', '.join(summary['tensor_types'])}); supported architectures are "
            f"{', '.join(sorted(supported))}. Import the model as a Hugging "
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
