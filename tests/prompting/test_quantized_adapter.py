"""Quantized decode at the prompting lab's pipeline entry: `load_adapter(folder, quantize=…)`
swaps every linear layer, a strategy runs on it and the experiment records the quantization;
the ops keep one adapter per (model, quantization) and refuse an unknown kind by name."""

from __future__ import annotations

import pytest
from torch import nn

from engines.errors import UserError
from engines.quantize import Int8Linear
from pipelines.prompting.adapter import load_adapter
from pipelines.prompting.core import Options
from pipelines.prompting.experiment import run_experiment
from pipelines.prompting.tasksets import load_taskset
from workbench.ops import OpError
from workbench.ops import prompting as lab
from workbench.ops.stores import open_store


def linear_kinds(model: nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules() if isinstance(m, nn.Linear | Int8Linear)}


def test_an_int8_adapter_runs_self_consistency_and_the_experiment_says_int8(tiny_chat):
    adapter = load_adapter(tiny_chat, "tiny", quantize="int8")
    assert adapter.quantize == "int8" and linear_kinds(adapter.model) == {"Int8Linear"}
    tasks = load_taskset("arithmetic", n=2)
    exp = run_experiment(adapter, "self-consistency", tasks, Options(samples=2, max_new_tokens=4))
    assert exp.n == 2 and exp.tokens_out > 0
    assert exp.quantize == "int8" and exp.summary()["quantize"] == "int8"
    plain = load_adapter(tiny_chat, "tiny")
    assert plain.quantize == "none" and linear_kinds(plain.model) == {"Linear"}
    with pytest.raises(UserError, match="quantize is 'int3': use one of none, int8, int4"):
        load_adapter(tiny_chat, quantize="int3")


def test_ops_keep_an_adapter_per_quantization_and_try_prompt_uses_it(home, tiny_chat):
    store = open_store(home)
    ref = str(tiny_chat)
    req = lab.EvalRequest(ref, "constrained", "", max_new_tokens=4, choice=("yes", "no"),
                          quantize="int8")  # fmt: skip
    result = lab.try_prompt(store, ref, "constrained", "Is 7 prime?", req)
    assert result.output in ("yes", "no")
    [((folder, kind), adapter)] = lab._adapters.items()  # the one loaded model
    assert folder == tiny_chat and kind == "int8" and linear_kinds(adapter.model) == {"Int8Linear"}
    assert lab.adapter_for(store, ref) is not adapter  # fp32 is another load
    with pytest.raises(OpError, match=r"^--quantize int4x: none, int8 or int4$"):
        lab.try_prompt(store, ref, "zero-shot", "hi", lab.EvalRequest(ref, "zero-shot", "",
                                                                      quantize="int4x"))  # fmt: skip
