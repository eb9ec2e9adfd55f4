"""What the command and the engine import: ``chatapp --help`` and the app's first frame must
not wait for torch, and ``engine``'s names load on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import engine


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import chatapp.cli; chatapp.cli.build_parser()",
        "import engine.paths, engine.errors",
        "import chatapp.core.store, chatapp.core.settings; chatapp.core.store.db_path(); chatapp.core.settings.config_path()",
    ],
)
def test_the_command_line_and_paths_do_not_import_torch(code: str) -> None:
    assert "torch" not in modules_after(code)


def test_help_does_not_import_rich_or_textual() -> None:
    mods = modules_after("import chatapp.cli; chatapp.cli.build_parser()")
    assert not {"rich", "textual"} & mods


def test_every_public_engine_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    assert set(engine.__all__) <= set(dir(engine))


def test_engine_submodules_are_attributes_too() -> None:
    assert engine.tokenizer.Tokenizer is engine.Tokenizer  # type: ignore[attr-defined]


def test_an_unknown_engine_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        engine.lod  # type: ignore[attr-defined]  # noqa: B018


def test_loading_a_model_does_not_import_the_compiler(tiny_models: dict[str, Path]) -> None:
    # Random init of meta tensors would import torch._dynamo and sympy (~1 s, ~80 MiB).
    mods = modules_after(f"import engine; engine.load({str(tiny_models['llama'])!r})")
    assert "torch" in mods and "torch._dynamo" not in mods and "sympy" not in mods


def test_the_chat_without_a_terminal_says_to_use_ask(tmp_path: Path) -> None:
    """``chatapp > log < /dev/null`` (a script, a service): one line and a non-zero status,
    not a TUI drawn into a file forever."""
    out = subprocess.run(
        [sys.executable, "-m", "chatapp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={"CHATAPP_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert "needs a terminal" in out.stderr and "chatapp ask" in out.stderr
    assert out.stderr.count("\n") == 1


def test_a_training_module_imports_only_what_it_uses() -> None:
    """``engine.train``'s modules import each other by path, not through the package: loading
    the data module loads neither the trainer nor the pipeline."""
    mods = modules_after("import engine.train.data")
    assert {"engine.train", "engine.train.data"} <= mods
    assert not {"engine.train.pipeline", "engine.train.trainer"} & mods


def test_every_public_training_name_resolves() -> None:
    import engine.train

    for name in engine.train.__all__:
        assert getattr(engine.train, name) is not None
