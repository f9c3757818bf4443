"""The lab through the real `workbench` entry point: eval on the user's own JSONL end to end,
eval compare, prompt with steps, and the errors a user can cause (exit 2, file:line, field)."""

from __future__ import annotations

import json


def test_user_jsonl_end_to_end_then_compare(wb, tiny_chat, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text(
        '{"id": "a", "question": "What is 2 + 2?", "answer": "4", "match": "numeric"}\n'
        '{"id": "b", "question": "Name a colour", "answer": "red", "match": "contains"}\n'
    )
    p = wb("eval", "--model", str(tiny_chat), "--strategy", "cot", "--tasks", str(tasks),
           "--max-new-tokens", "6", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["n"] == 2 and summary["strategy"] == "cot" and summary["tokens_in"] > 0
    p = wb("eval", "compare", "--json")
    [row] = [json.loads(line) for line in p.stdout.splitlines()]
    assert row["task"] == "mine" and row["strategy"] == "cot" and row["n"] == 2


def test_bad_task_line_names_file_line_and_field(wb, tmp_path):
    tasks = tmp_path / "bad.jsonl"
    tasks.write_text('{"question": "a", "answer": "b"}\n\n{"question": "c", "answr": "d"}\n')
    p = wb("eval", "--model", "x", "--strategy", "zero-shot", "--tasks", str(tasks))
    assert p.returncode == 2
    assert f"{tasks}:3: field 'answr' is unknown" in p.stderr
    tasks.write_text('{"question": "a", "answer": "b", "match": "fuzzy"}\n')
    p = wb("eval", "--model", "x", "--strategy", "zero-shot", "--tasks", str(tasks))
    assert p.returncode == 2 and f"{tasks}:1: field 'match'" in p.stderr
    p = wb("eval", "--model", "x", "--strategy", "zero-shot")
    assert p.returncode == 2 and "--tasks" in p.stderr
    p = wb("eval", "--model", "x", "--strategy", "fewshot", "--tasks", "arithmetic")
    assert p.returncode == 2 and "did you mean 'few-shot'" in p.stderr


def test_prompt_shows_tool_steps_and_lists_strategies(wb, tiny_chat, tmp_path):
    p = wb("prompt", str(tiny_chat), "--list")
    assert p.returncode == 0 and "self-consistency" in p.stdout and "react" in p.stdout
    p = wb("prompt", str(tiny_chat), "--strategy", "cot", "What is 2 + 2?", "--max-new-tokens", "8")
    assert p.returncode == 0, p.stderr
    assert "answer:" in p.stdout and "tokens:" in p.stderr


def test_rag_refuses_an_empty_folder(wb, tmp_path):
    (tmp_path / "empty").mkdir()
    p = wb("rag", "index", str(tmp_path / "empty"), "--name", "x")
    assert p.returncode == 2 and "has no .txt" in p.stderr


def test_generate_with_choice_and_a_bad_schema(wb, tiny_chat, tmp_path):
    p = wb("generate", str(tiny_chat), "Is it?", "--choice", "yes", "--choice", "no")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() in ("yes", "no")
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "properties": {"a": {"type": "nope"}}}')
    p = wb("generate", str(tiny_chat), "x", "--json-schema", str(schema))
    assert p.returncode == 2 and "invalid JSON schema" in p.stderr
