"""What a byte-level vocabulary holds, declared once: the special tokens, the minimum size,
and the integer type its ids pack into. Plain Python (no torch, no tokenizers), so specs can
import it to validate a vocabulary size without loading anything heavy."""

from __future__ import annotations

EOT = "<|endoftext|>"
PAD = "<|pad|>"
END = "<|end|>"
REWARD = "<|reward|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [EOT, PAD, *(f"<|{role}|>" for role in ROLES), END, REWARD]  # ids 0..6
N_BYTES = 256
MIN_VOCAB = N_BYTES + len(SPECIAL_TOKENS)  # 263: every byte plus the special tokens
UINT16_LIMIT = 65535  # ids below this fit uint16


def token_dtype_name(vocab_size: int) -> str:
    """ "uint16" when every id of a `vocab_size` vocabulary fits, else "uint32"."""
    return "uint16" if vocab_size < UINT16_LIMIT else "uint32"
