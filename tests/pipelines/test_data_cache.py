"""The tokenized-data cache: shared safely by concurrent jobs, keyed on the data itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from pipelines.pretrain_data import data_key
from pipelines.registry import load_spec
from pipelines.runner import execute, prepare_run
from store import Store
from tests.conftest import ROOT

torch.set_num_threads(1)

SPEC = """
pipeline = "pretrain"
seed = 5
[[data.sources]]
kind = "file"
path = "words.txt"
[[data.sources]]
kind = "synthetic"
generator = "stories"
max_docs = 300
[tokenizer]
vocab_size = 300
sample_bytes = 50000
[model]
n_layer = 1
n_head = 2
n_embd = 16
block_size = 16
[train]
batch_size = 2
max_steps = 4
warmup_steps = 1
eval_every = 2
eval_batches = 1
sample_every = 0
checkpoint_every = 2
log_every = 1
device = "cpu"
"""

PREPARE = """
import sys, time
from pathlib import Path
from pipelines.pretrain_data import prepare_data
from pipelines.registry import load_spec
from store import Store
spec, store = load_spec(Path(sys.argv[1])), Store(sys.argv[2])
while time.time() < float(sys.argv[3]):
    time.sleep(0.01)
gen = prepare_data(spec, store.cache_dir / "data", store)
try:
    while True:
        next(gen)
except StopIteration as done:
    data = done.value
print(data.root, len(data.tokenizer), sum(s["tokens_train"] for s in data.sources))
"""


def write_spec(tmp_path: Path) -> Path:
    (tmp_path / "words.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 300)
    path = tmp_path / "job.toml"
    path.write_text(SPEC)
    return path


def test_three_jobs_preparing_the_same_new_data_share_one_cache(tmp_path, home):
    spec = write_spec(tmp_path)
    go = str(time.time() + 4)  # every process starts preparing at the same moment
    cmd = [sys.executable, "-c", PREPARE, str(spec), str(home), go]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=pipe, stderr=pipe, text=True) for _ in "abc"]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert len({out for out, _ in outs}) == 1  # one folder, one tokenizer, the same tokens
    entries = [p for p in (home / "cache" / "data").iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1 and (entries[0] / "manifest.json").exists(), entries


def test_an_edited_data_file_gets_new_shards_and_a_resume_is_refused(tmp_path, home):
    path = write_spec(tmp_path)
    spec = load_spec(path)
    store = Store(home)
    run_id = prepare_run(store, spec)
    assert execute(store, run_id, spec).status == "done"
    key = data_key(spec)
    words = tmp_path / "words.txt"
    words.write_text(words.read_text().replace("fox", "cat"))  # same size, new content
    assert data_key(spec) != key
    out = execute(store, run_id, load_spec(path), resume=True)
    assert out.status == "failed" and out.exit_code == 2, out
    assert f"{words.resolve()}: content changed" in out.reason
    assert "the data changed since it was written" in out.reason


def test_hash_content_keys_on_contents_not_mtime(tmp_path):
    path = write_spec(tmp_path)
    spec = load_spec(path, overrides=["data.hash_content=true"])
    key = data_key(spec)
    words = tmp_path / "words.txt"
    words.write_text(words.read_text())  # touched: new mtime, same bytes
    assert data_key(spec) == key
    plain = load_spec(path)
    assert data_key(plain) != key
