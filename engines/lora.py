"""LoRA through peft: wrap a causal LM, report the trainable share, save and merge adapters.
QLoRA: the same adapters over a frozen base whose linear layers are bitsandbytes 4-bit NF4.

model, share = apply_lora(model, r=8, alpha=16, dropout=0.05, targets=["q_proj", "v_proj"])
model, share = apply_lora(model, ..., quantize_base="nf4")   # QLoRA (CUDA + bitsandbytes)
model.save_pretrained(out / "adapter")          # the adapter alone (a few MB)
merge_adapter(out / "adapter", out / "merged")  # a plain HF folder, loads without peft
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from engines.errors import UserError

# Test-only: "1" lets a 4-bit base train on CPU through bitsandbytes' CPU backend, so the
# QLoRA path is tested on machines without a GPU. Not for real runs (slow, and unsupported).
QLORA_ON_CPU_ENV = "WORKBENCH_QLORA_ON_CPU"
# NF4 storage per quantized parameter: a 4-bit code, and per block of 64 an absmax that is
# itself quantized to 8 bits (double quantization: one fp32 scale per 256 absmaxes).
NF4_BLOCK = 64
NF4_BYTES_PER_PARAM = 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * 256)


def linear_module_names(model) -> list[str]:
    import torch

    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    return sorted(names - {"lm_head"})


def qlora_weight_params(params: int, config: dict) -> int:
    """A base of `params` parameters with its linear layers in NF4, counted as the fp32
    parameters that take the same memory (the training-memory rule counts 4 bytes a weight):
    the embeddings and an untied LM head stay fp32, the rest (norms too) costs NF4 bytes."""
    vocab, width = int(config.get("vocab_size", 0)), int(config.get("hidden_size", 0))
    dense = min(params, vocab * width * (1 if config.get("tie_word_embeddings") else 2))
    return dense + math.ceil((params - dense) * NF4_BYTES_PER_PARAM / 4)


def qlora_refusal(device: str, field: str = "lora.quantize_base") -> str | None:
    """Why a 4-bit base cannot train on `device` ("cpu" | "cuda") here, or None when it can."""
    if device != "cuda" and os.environ.get(QLORA_ON_CPU_ENV) != "1":
        return (
            f"field {field!r}: QLoRA needs a CUDA GPU: bitsandbytes' 4-bit base trains there, "
            f"and this job runs on {device}; on CPU use plain LoRA (drop {field}) or quantize "
            "for inference with --quantize int4"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return (
            f"field {field!r}: QLoRA needs bitsandbytes, which is not installed: "
            "pip install bitsandbytes (or pip install -e '.[qlora]')"
        )
    return None


def apply_lora(
    model, *, r: int, alpha: int, dropout: float, targets: list[str], quantize_base: str = "none"
):
    """The peft-wrapped model and the share of parameters that train. quantize_base="nf4":
    the base's linear layers become frozen 4-bit NF4 (bf16 compute) under the adapters."""
    from peft import LoraConfig, get_peft_model

    known = linear_module_names(model)
    missing = [t for t in targets if t not in known]
    if missing:
        raise UserError(
            f"lora.target_modules {missing} are not linear layers of this model; "
            f"choose from {known}"
        )
    if quantize_base == "nf4":
        model = _nf4_base(model)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(_stored_params(p) for p in model.parameters())
    return model, trainable / total


def _stored_params(p) -> int:
    """A parameter's count as the model's weights (a Params4bit packs two per byte)."""
    return p.numel() * 2 if type(p).__name__ == "Params4bit" else p.numel()


def _nf4_base(model):
    """`model` with every linear layer but lm_head as a frozen bitsandbytes Linear4bit (NF4,
    bf16 compute), quantized on the GPU layer by layer (on CPU only under QLORA_ON_CPU_ENV),
    then prepared for k-bit training by peft (no gradient checkpointing: memory as LoRA's)."""
    import torch
    from peft import prepare_model_for_kbit_training

    device = "cuda" if torch.cuda.is_available() else "cpu"
    refusal = qlora_refusal(device)
    if refusal:
        raise UserError(refusal)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and name != "lm_head":
                setattr(parent, name, _to_linear4bit(child, device))
    model = model.to(device)
    model.is_loaded_in_4bit = True  # peft wraps Linear4bit with its bnb LoRA layer
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def _to_linear4bit(linear, device: str):
    import bitsandbytes as bnb
    import torch

    q = bnb.nn.Linear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None,
        compute_dtype=torch.bfloat16, quant_type="nf4", device="meta",
    )  # fmt: skip
    q.weight = bnb.nn.Params4bit(
        linear.weight.data.to(device), requires_grad=False, quant_type="nf4",
        blocksize=NF4_BLOCK, compress_statistics=True,
    )  # fmt: skip
    if linear.bias is not None:
        q.bias = torch.nn.Parameter(linear.bias.data.to(device), requires_grad=False)
    q.register_load_state_dict_pre_hook(_keep_own_quant_state)
    return q.to(device)  # Params4bit quantizes when it first moves to a device


def _keep_own_quant_state(module, state_dict, prefix, *args) -> None:
    """Resuming a checkpoint: its codes load into the 4-bit weight; the scales saved beside
    them (weight.absmax, weight.quant_map, ...) are the layer's own, made from the same base."""
    for key in [k for k in state_dict if k.startswith(prefix + "weight.")]:
        del state_dict[key]


def merged_model(peft_model):
    """A plain transformers model with the adapter folded into its weights; a 4-bit base is
    dequantized first (to the model's float dtype), so the result loads without bitsandbytes."""
    if getattr(peft_model.get_base_model(), "is_loaded_in_4bit", False):
        return _merged_dequantized(peft_model)
    return peft_model.merge_and_unload()


def _merged_dequantized(peft_model):
    """Each LoRA layer over a Linear4bit becomes an nn.Linear of dequantized W + its delta,
    every other Linear4bit a dequantized nn.Linear: one rounding, the one training saw."""
    import bitsandbytes as bnb
    from peft.tuners.lora import LoraLayer

    adapter = peft_model.active_adapter
    model = peft_model.get_base_model()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                linear = _dequantized(child.get_base_layer())
                linear.weight.data += child.get_delta_weight(adapter).to(linear.weight.dtype)
                setattr(parent, name, linear)
            elif isinstance(child, bnb.nn.Linear4bit):
                setattr(parent, name, _dequantized(child))
    model.is_loaded_in_4bit = False
    return model


def _dequantized(q):
    """A Linear4bit as an nn.Linear in the dtype it was quantized from."""
    import bitsandbytes as bnb
    import torch

    state = q.weight.quant_state
    weight = bnb.functional.dequantize_4bit(q.weight.data, state).to(state.dtype)
    linear = torch.nn.Linear(
        q.in_features, q.out_features, bias=q.bias is not None, device=weight.device,
        dtype=weight.dtype,
    )  # fmt: skip
    linear.weight.data.copy_(weight)
    if q.bias is not None:
        linear.bias.data.copy_(q.bias.data)
    return linear


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Load base + adapter from an adapter folder, merge, save a plain HF folder."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise UserError(f"{adapter_dir} has no adapter_config.json: not a LoRA adapter folder")
    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, local_files_only=True)
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True).save_pretrained(out_dir)
    return out_dir
