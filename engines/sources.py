"""Documents from pretraining sources, streamed one at a time (never the whole corpus in RAM).

Kinds: `file` (one document), `folder` (every text file below, or those with `extensions`),
`glob`, `jsonl` (one document per line, from `text_field`), `parquet` (column `text_field`,
batch by batch), `stdlib` (the running Python's standard library .py files, no tests) and
`synthetic` (built-in generators from engines.tasks: `tasks`, `stories`, `facts`).

Bytes that are not UTF-8 are replaced with U+FFFD; pass a `SourceStats` to count them along
with documents, bytes and files as the iteration goes.

    stats = SourceStats()
    for doc in iter_documents("folder", path="notes/", extensions=[".md"], stats=stats):
        ...
"""

from __future__ import annotations

import glob as globlib
import itertools
import json
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import UserError
from engines.tasks import SYNTHETIC, synthetic_documents

if TYPE_CHECKING:
    import pyarrow.parquet as pq

KINDS = ("file", "folder", "glob", "jsonl", "parquet", "stdlib", "synthetic")
PATH_KINDS = ("file", "folder", "jsonl", "parquet")  # the kinds that read `path`
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "dist-packages"}
STDLIB_SKIP_DIRS = SKIP_DIRS | {
    "test",
    "tests",
    "idle_test",
    "encodings",
}  # encodings: codec tables, not code
SNIFF_BYTES = 8192
PARQUET_BATCH_ROWS = 1024


@dataclass
class SourceStats:
    """Counters updated while a source is iterated."""

    docs: int = 0
    bytes: int = 0
    bad_utf8_docs: int = 0
    files: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _utf8(raw: bytes) -> tuple[str, bool]:
    """The text of `raw` with bad bytes replaced, and whether any were bad."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _decode(raw: bytes, stats: SourceStats) -> str:
    """One document from raw bytes, counted in `stats`."""
    text, bad = _utf8(raw)
    stats.docs += 1
    stats.bytes += len(raw)
    stats.bad_utf8_docs += bad
    return text


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read source file {path}: {err.strerror or err}") from err


def _looks_binary(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return b"\0" in f.read(SNIFF_BYTES)
    except OSError as err:
        raise UserError(f"cannot read source file {path}: {err.strerror or err}") from err


def _need(value: object, field: str, kind: str, example: str) -> None:
    if value is None:
        raise UserError(f"source kind {kind!r} needs {field}; set e.g. {field} = {example}")


def _existing(path: str | os.PathLike, kind: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{kind} source path {p} does not exist; check the source's path")
    return p


# ---------------------------------------------------------------- file-based kinds


def _walk(root: Path, skip: set[str]) -> Iterator[Path]:
    """Files below root in sorted order, skipping hidden entries and `skip` directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _file_docs(paths: Iterator[Path], stats: SourceStats) -> Iterator[str]:
    for path in paths:
        raw = _read(path)
        stats.files += 1
        if raw:
            yield _decode(raw, stats)


def _folder_paths(root: Path, extensions: list[str] | None) -> Iterator[Path]:
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions or []}
    for path in _walk(root, SKIP_DIRS):
        keep = path.suffix.lower() in wanted if wanted else not _looks_binary(path)
        if keep:
            yield path


def _glob_paths(pattern: str) -> list[Path]:
    matches = sorted(globlib.glob(os.path.expanduser(pattern), recursive=True))
    files = [Path(p) for p in matches if Path(p).is_file()]
    if not files:
        raise UserError(
            f"glob {pattern!r} matched no files; check the pattern (use ** for subfolders)"
        )
    return files


def stdlib_files() -> list[Path]:
    """The .py files of the running Python's standard library, tests excluded, sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in _walk(root, STDLIB_SKIP_DIRS) if p.suffix == ".py")


# ---------------------------------------------------------------- record-based kinds


def _jsonl_docs(path: Path, text_field: str, stats: SourceStats) -> Iterator[str]:
    stats.files += 1
    try:
        f = path.open("rb")
    except OSError as err:
        raise UserError(f"cannot read source file {path}: {err.strerror or err}") from err
    with f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield _jsonl_text(path, lineno, line, text_field, stats)


def _jsonl_text(path: Path, lineno: int, line: bytes, field: str, stats: SourceStats) -> str:
    text, bad = _utf8(line)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}:{lineno}: not valid JSON ({err.msg}); fix or remove the line"
        ) from err
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise UserError(
            f"{path}:{lineno}: no string field {field!r} in this record; "
            f"set text_field to the field that holds the text"
        )
    doc = record[field]
    stats.docs += 1
    stats.bad_utf8_docs += bad
    stats.bytes += len(doc.encode("utf-8", errors="replace"))
    return doc


def _parquet_docs(path: Path, text_field: str, stats: SourceStats) -> Iterator[str]:
    """Opens the file and checks the column now; rows are read batch by batch later."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise UserError(f"cannot read parquet file {path}: {err}") from err
    columns = pf.schema_arrow.names
    if text_field not in columns:
        raise UserError(
            f"{path}: no column {text_field!r} (columns: {', '.join(columns)}); "
            "set text_field to the column that holds the text"
        )
    return _parquet_rows(pf, text_field, stats)


def _parquet_rows(pf: pq.ParquetFile, text_field: str, stats: SourceStats) -> Iterator[str]:
    stats.files += 1
    for batch in pf.iter_batches(columns=[text_field], batch_size=PARQUET_BATCH_ROWS):
        for value in batch.column(0).to_pylist():
            if value:
                raw = value if isinstance(value, bytes) else value.encode("utf-8")
                yield _decode(raw, stats)


# ---------------------------------------------------------------- the entry point


def source_files(kind: str, *, path: str | None = None, glob: str | None = None) -> list[Path]:
    """The files a file-based source reads, in reading order ([] for stdlib and synthetic,
    whose content is fixed by the Python version and the seed). For cache keys."""
    if kind in ("file", "jsonl", "parquet") and path:
        return [Path(path)]
    if kind == "folder" and path and Path(path).is_dir():
        return list(_walk(Path(path), SKIP_DIRS))
    if kind == "glob" and glob:
        return _glob_paths(glob)
    return []


def _documents(kind: str, opts: dict, stats: SourceStats) -> Iterator[str]:
    """The unbounded document stream of one source kind."""
    if kind == "file":
        _need(opts["path"], "path", kind, "'notes.txt'")
        path = _existing(opts["path"], kind)
        if path.is_dir():
            raise UserError(f"file source path {path} is a folder; use kind = 'folder'")
        return _file_docs(iter([path]), stats)
    if kind == "folder":
        _need(opts["path"], "path", kind, "'data/'")
        root = _existing(opts["path"], kind)
        if not root.is_dir():
            raise UserError(f"folder source path {root} is not a folder; use kind = 'file'")
        return _file_docs(_folder_paths(root, opts["extensions"]), stats)
    if kind == "glob":
        _need(opts["glob"], "glob", kind, "'data/**/*.md'")
        return _file_docs(iter(_glob_paths(opts["glob"])), stats)
    if kind in ("jsonl", "parquet"):
        _need(opts["path"], "path", kind, f"'data.{kind}'")
        read = _jsonl_docs if kind == "jsonl" else _parquet_docs
        return read(_existing(opts["path"], kind), opts["text_field"], stats)
    if kind == "stdlib":
        return _file_docs(iter(stdlib_files()), stats)
    _need(opts["name"], "name", kind, "'stories'")
    if opts["name"] not in SYNTHETIC:
        raise UserError(f"unknown synthetic source {opts['name']!r}; valid: {', '.join(SYNTHETIC)}")
    docs = synthetic_documents(opts["name"], opts["n_docs"], opts["seed"])
    return (_decode(d.encode("utf-8"), stats) for d in docs)


def iter_documents(
    kind: str,
    *,
    path: str | os.PathLike | None = None,
    glob: str | None = None,
    text_field: str = "text",
    name: str | None = None,
    seed: int = 0,
    n_docs: int | None = None,
    extensions: list[str] | None = None,
    stats: SourceStats | None = None,
) -> Iterator[str]:
    """Stream the documents of one source; at most `n_docs` of them when it is set.

    Raises UserError at once for an unknown kind, a missing path or a glob that matches
    nothing, and while iterating for an unreadable file, a JSONL line that is not JSON or
    lacks `text_field`, or a source that yields no documents at all.
    """
    if kind not in KINDS:
        raise UserError(f"unknown source kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    stats = stats if stats is not None else SourceStats()
    opts = {"path": path, "glob": glob, "text_field": text_field, "name": name}
    opts |= {"seed": seed, "n_docs": n_docs, "extensions": extensions}
    docs = _documents(kind, opts, stats)
    if n_docs is not None:
        docs = itertools.islice(docs, n_docs)
    where = path or glob or name or kind
    return _non_empty(docs, f"{kind} source {where}")


def _non_empty(docs: Iterator[str], label: str) -> Iterator[str]:
    empty = True
    for doc in docs:
        empty = False
        yield doc
    if empty:
        raise UserError(f"{label} has no documents; point it at files with text in them")
