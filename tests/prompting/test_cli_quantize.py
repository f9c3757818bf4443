"""`--quantize` on the prompting lab's verbs, through the real `workbench` entry point: `prompt`,
`eval` (the experiment records its quantization; `eval compare` shows the model as
`MODEL [int8]`), `rag query --model`; and a bad value is one line naming the flag and the
choices, exit 2, before any model loads."""

from __future__ import annotations

import json

from store import Store


def test_eval_quantized_is_stored_and_compared_apart_from_fp32(wb, home, tiny_chat, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text('{"id": "a", "question": "What is 2 + 2?", "answer": "4"}\n')
    common = ("eval", "--model", str(tiny_chat), "--strategy", "zero-shot", "--tasks", str(tasks),
              "--max-new-tokens", "4", "--json")  # fmt: skip
    p = wb(*common, "--quantize", "int8")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["quantize"] == "int8"
    assert wb(*common).returncode == 0  # the same model with its own weights
    stored = Store(home).list_prompt_experiments()
    assert [e["transcripts"][0]["summary"]["quantize"] for e in stored] == ["int8", "none"]
    assert {e["model"] for e in stored} == {str(tiny_chat)}  # the name stays the model's
    p = wb("eval", "compare", "--json")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert sorted(r["model"] for r in rows) == [str(tiny_chat), f"{tiny_chat} [int8]"]
    p = wb(*common[:-1], "--quantize", "int8")  # the printed summary names the quantization
    assert p.returncode == 0 and f"zero-shot on {tiny_chat} [int8] over mine" in p.stdout


def test_prompt_quantized_answers(wb, tiny_chat):
    p = wb("prompt", str(tiny_chat), "--strategy", "cot", "What is 2 + 2?",
           "--max-new-tokens", "6", "--quantize", "int8")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "answer:" in p.stdout and "tokens:" in p.stderr


def test_rag_query_answers_with_a_quantized_model(wb, tiny_chat, docs):
    p = wb("rag", "index", str(docs), "--name", "towns", "--embed-model", str(tiny_chat))
    assert p.returncode == 0, p.stderr
    p = wb("rag", "query", "towns", "Who founded Brindlewick?", "--k", "2",
           "--model", str(tiny_chat), "--quantize", "int8")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "1. [" in p.stdout and "sources: " in p.stdout


def test_a_bad_quantize_is_one_line_and_exit_2(wb, tiny_chat, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    cases = [
        ("prompt", str(tiny_chat), "hi", "--quantize", "int3"),
        ("eval", "--model", str(tiny_chat), "--strategy", "zero-shot", "--tasks", str(tasks),
         "--quantize", "fp8"),
        ("rag", "query", "towns", "q", "--model", str(tiny_chat), "--quantize", "int2"),
    ]  # fmt: skip
    for args in cases:
        p = wb(*args)
        bad = args[-1]
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stderr == f"error: --quantize {bad}: none, int8 or int4\n", (args, p.stderr)
