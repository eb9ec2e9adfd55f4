"""The README's engine example runs as written (with a real folder in place of the placeholder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_engine_example_runs(
    tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [example] = [b for b in blocks if "engine.load(" in b]
    assert '"path/to/hf-folder"' in example
    code = example.replace('"path/to/hf-folder"', repr(str(tiny_models["llama"])))
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "'stop_reason'" in out and "'time_to_first_token'" in out
