"""Document sources: every kind on small files, bad UTF-8 counted, errors name file and line."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engines.errors import UserError
from engines.sources import KINDS, SourceStats, iter_documents, stdlib_files


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.md").write_text("# beta")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.py").write_text("print('gamma')\n")
    (tmp_path / "sub" / "bad.txt").write_bytes(b"caf\xe9 ok")  # latin-1, not UTF-8
    (tmp_path / "sub" / "img.bin").write_bytes(b"\x89PNG\0\0\0binary")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: main")
    (tmp_path / "empty.txt").write_text("")
    return tmp_path


def test_file(tree):
    stats = SourceStats()
    assert list(iter_documents("file", path=tree / "a.txt", stats=stats)) == ["alpha"]
    assert stats == SourceStats(docs=1, bytes=5, bad_utf8_docs=0, files=1)


def test_folder_all_text_files_sorted(tree):
    stats = SourceStats()
    docs = list(iter_documents("folder", path=tree, stats=stats))
    # sorted walk; binary, hidden and empty files give no documents
    assert docs == ["alpha", "# beta", "caf\ufffd ok", "print('gamma')\n"]
    assert stats.docs == 4 and stats.bad_utf8_docs == 1 and stats.files == 5


def test_folder_with_extensions(tree):
    docs = list(iter_documents("folder", path=tree, extensions=[".py", "md"]))
    assert docs == ["# beta", "print('gamma')\n"]


def test_glob(tree):
    docs = list(iter_documents("glob", glob=str(tree / "**" / "*.txt")))
    assert docs == ["alpha", "caf\ufffd ok"]
    with pytest.raises(UserError, match=r"glob .*\*\.rst.* matched no files"):
        iter_documents("glob", glob=str(tree / "*.rst"))  # at once, before any iteration


def test_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": "one"}), "", json.dumps({"text": "twö", "id": 2})]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"text": "bad \xff byte"}\n')
    stats = SourceStats()
    docs = list(iter_documents("jsonl", path=path, stats=stats))
    assert docs == ["one", "twö", "bad \ufffd byte"]
    assert (
        stats.docs == 3 and stats.bad_utf8_docs == 1 and stats.bytes == 3 + 4 + 12
    )  # U+FFFD is 3 bytes


def test_jsonl_other_field_and_limit(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"body": f"doc {i}"}) + "\n" for i in range(10)))
    assert list(iter_documents("jsonl", path=path, text_field="body", n_docs=3)) == [
        "doc 0",
        "doc 1",
        "doc 2",
    ]


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(UserError, match=rf"{path}:2: not valid JSON"):
        list(iter_documents("jsonl", path=path))
    path.write_text('{"text": "ok"}\n\n{"body": "x"}\n')
    with pytest.raises(UserError, match=rf"{path}:3: no string field 'text'.*set text_field"):
        list(iter_documents("jsonl", path=path))


def test_parquet_batch_by_batch(tmp_path, monkeypatch):
    import engines.sources as S

    monkeypatch.setattr(S, "PARQUET_BATCH_ROWS", 2)
    path = tmp_path / "d.parquet"
    table = pa.table({"id": [1, 2, 3, 4, 5], "content": ["a", "bb", None, "dddd", "é"]})
    pq.write_table(table, path, row_group_size=2)
    stats = SourceStats()
    docs = list(iter_documents("parquet", path=path, text_field="content", stats=stats))
    assert docs == ["a", "bb", "dddd", "é"] and stats.bytes == 1 + 2 + 4 + 2
    with pytest.raises(UserError, match=r"no column 'text' \(columns: id, content\)"):
        iter_documents("parquet", path=path)


def test_stdlib_is_sorted_code_without_tests():
    files = stdlib_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    assert files == sorted(files)
    rel = [p.relative_to(root) for p in files]
    assert any(str(r) == "json/decoder.py" for r in rel)
    assert not any({"test", "tests", "site-packages"} & set(r.parts) for r in rel)
    docs = list(iter_documents("stdlib", n_docs=3))
    assert len(docs) == 3 and all(isinstance(d, str) and d for d in docs)


def test_synthetic_is_deterministic():
    a = list(iter_documents("synthetic", name="stories", seed=4, n_docs=3))
    assert a == list(iter_documents("synthetic", name="stories", seed=4, n_docs=3))
    assert len(a) == 3
    with pytest.raises(UserError, match="unknown synthetic source 'poems'"):
        list(iter_documents("synthetic", name="poems"))


def test_user_errors(tmp_path):
    # spec-like mistakes raise at the call, before any document is read
    with pytest.raises(UserError, match="valid kinds: " + ", ".join(KINDS)):
        iter_documents("http", path="x")
    with pytest.raises(UserError, match=rf"{tmp_path / 'missing.txt'} does not exist"):
        iter_documents("file", path=tmp_path / "missing.txt")
    with pytest.raises(UserError, match="needs path"):
        iter_documents("folder")
    with pytest.raises(UserError, match="is not a folder"):
        iter_documents("folder", path=__file__)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=rf"folder source {tmp_path / 'empty'} has no documents"):
        list(iter_documents("folder", path=tmp_path / "empty"))


def test_unreadable_file_is_named(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("x")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # root could read a chmod 0 file
    with pytest.raises(UserError, match=rf"cannot read source file {path}: Permission denied"):
        list(iter_documents("file", path=path))


def test_streams_lazily(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "first"}\nnot json\n')
    docs = iter_documents("jsonl", path=path)
    assert next(docs) == "first"  # the bad line is only read when asked for
    with pytest.raises(UserError):
        next(docs)
