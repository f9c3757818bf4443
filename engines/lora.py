"""LoRA through peft: wrap a causal LM, report the trainable share, save and merge adapters.

model, share = apply_lora(model, r=8, alpha=16, dropout=0.05, targets=["q_proj", "v_proj"])
model.save_pretrained(out / "adapter")          # the adapter alone (a few MB)
merge_adapter(out / "adapter", out / "merged")  # a plain HF folder, loads without peft
"""

from __future__ import annotations

from pathlib import Path

from engines.errors import UserError


def linear_module_names(model) -> list[str]:
    import torch

    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    return sorted(names - {"lm_head"})


def apply_lora(model, *, r: int, alpha: int, dropout: float, targets: list[str]):
    """The peft-wrapped model and the share of parameters that train."""
    from peft import LoraConfig, get_peft_model

    known = linear_module_names(model)
    missing = [t for t in targets if t not in known]
    if missing:
        raise UserError(
            f"lora.target_modules {missing} are not linear layers of this model; "
            f"choose from {known}"
        )
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return model, trainable / total


def merged_model(peft_model):
    """A plain transformers model with the adapter folded into its weights."""
    return peft_model.merge_and_unload()


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
