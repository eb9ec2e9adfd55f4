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


def test_the_sidebar_keys_in_the_readme_are_the_footers() -> None:
    """The README names the keys the chat list binds (the footer shows the first one)."""
    from chatapp.tui.screens.dialogs import key_label
    from chatapp.tui.widgets.sidebar import ConversationList

    text = README.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| Ctrl+B |"))
    for binding in ConversationList.BINDINGS:
        for key in binding.key.split(","):  # type: ignore[union-attr]
            label = key_label(key)
            assert label in row or f"`{key}`" in row, (key, row)


def test_the_server_sections_commands_are_the_clis() -> None:
    """Every ``chatapp …`` line in "Bigger models: use a server" parses as the CLI has it."""
    import shlex

    from chatapp.cli import build_parser

    text = README.read_text(encoding="utf-8")
    section = text.split("## Bigger models: use a server", 1)[1].split("\n## ", 1)[0]
    lines = [ln.split("#", 1)[0].strip() for ln in section.splitlines()]
    commands = [shlex.split(ln)[1:] for ln in lines if ln.startswith("chatapp ")]
    assert {c[0] for c in commands} >= {"remote", "ask"} and len(commands) >= 5
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # SystemExit (a failed test) for a wrong option
        assert callable(args.func), argv
