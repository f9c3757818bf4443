"""Load and describe local Hugging Face model folders.

    model, tok = load_causal_lm("~/.workbench/models/smollm2-135m-instruct")
    describe_model(path)  # {"architecture": "LlamaForCausalLM", "params": 134515008, ...}

`describe_model` reads only config.json, the tokenizer config and the safetensors headers,
so it is cheap enough for a model list; `load_causal_lm` loads weights (fp32 on CPU, bf16 on
CUDA) and never touches the network.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from engines.errors import UserError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(
            f"model folder {folder} has no config.json: point at a Hugging Face model folder "
            "(save_pretrained output) or import the model first"
        )
    return folder


def _require_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"model folder {folder} has no tokenizer (tokenizer.json / tokenizer_config.json): "
            "copy one in or import with --tokenizer"
        )


def pick_device(device: str = "auto") -> str:
    """ "auto" → "cuda" when available, else "cpu"; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_causal_lm(
    path: str | Path, *, device: str = "auto", dtype: Any = None, quantize: str | None = None
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a local folder; fp32 on CPU and bf16 on CUDA by default.

    quantize: "int8" or "int4" (CPU only, engines.quantize) for faster decode; None/"none": off.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our front ends show their own progress
    folder = _folder(path)
    _require_tokenizer(folder)
    device = pick_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    model = model.to(device).eval()
    if quantize not in (None, "none"):
        from engines.quantize import quantize_model

        model = quantize_model(model, quantize)
    return model, tok


def safetensors_params(folder: Path) -> int:
    """Parameter count summed from the headers of every *.safetensors file (weights unread)."""
    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        for name, info in _safetensors_header(file).items():
            if name != "__metadata__":
                total += math.prod(info["shape"])
    return total


def _safetensors_header(file: Path) -> dict:
    with open(file, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def _text_config(config: dict) -> dict:
    return config.get("text_config") or config


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tc = folder / "tokenizer_config.json"
    return tc.is_file() and bool(json.loads(tc.read_text()).get("chat_template"))


def guess_kind(architecture: str, chat_template: bool, folder: Path) -> str:
    """ "assistant" | "base" | "reward" | "embedding" | "other", from names in the folder."""
    if (folder / "modules.json").is_file() or architecture.endswith(("Model", "ForMaskedLM")):
        return "embedding"
    if architecture.endswith("ForSequenceClassification"):
        return "reward"
    if architecture.endswith(("ForCausalLM", "LMHeadModel")):
        return "assistant" if chat_template else "base"
    return "other"


def describe_model(path: str | Path) -> dict:
    """Architecture, params, vocab, context, chat template and kind guess, without loading weights."""
    folder = _folder(path)
    config = json.loads((folder / "config.json").read_text())
    text = _text_config(config)
    architecture = (config.get("architectures") or [config.get("model_type", "unknown")])[0]
    chat = _has_chat_template(folder)
    context = text.get("max_position_embeddings") or text.get("n_positions") or text.get("n_ctx")
    return {
        "architecture": architecture,
        "model_type": config.get("model_type"),
        "params": safetensors_params(folder),
        "vocab": text.get("vocab_size"),
        "context": context,
        "chat_template": chat,
        "tokenizer": any((folder / n).is_file() for n in TOKENIZER_FILES),
        "kind": guess_kind(architecture, chat, folder),
    }
