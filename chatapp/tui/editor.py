"""Editing the prompt in the user's own editor: ``$VISUAL``, else ``$EDITOR``, else one found on
PATH. The TUI runs it while the app is suspended (Ctrl+G, ``/editor``)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

# Tried in order when neither $VISUAL nor $EDITOR is set (git's default first).
FALLBACK_EDITORS = ("vi", "nano", "notepad")


class EditorError(Exception):
    """The editor could not be found, started, or it failed; the message is one line."""


def editor_command() -> list[str]:
    """The editor's argv (``EDITOR="code --wait"`` → ``["code", "--wait"]``)."""
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if not value:
            continue
        try:
            argv = shlex.split(value, posix=os.name != "nt")
        except ValueError as e:
            raise EditorError(f"${var} is not a command chatapp can run ({e})") from None
        if not argv:
            continue
        if shutil.which(argv[0]) is None:
            raise EditorError(f"${var} is {value!r}, but {argv[0]!r} is not on PATH")
        return argv
    for name in FALLBACK_EDITORS:
        if shutil.which(name):
            return [name]
    raise EditorError("no editor found: set $EDITOR (for example EDITOR=nano)")


def edit_text(text: str, argv: list[str]) -> str:
    """Run ``argv`` on a temporary file holding ``text``; return the file's text afterwards
    (the newline editors add at the end dropped). The file is removed in every case."""
    fd, name = tempfile.mkstemp(prefix="chatapp-prompt-", suffix=".md", text=True)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        try:
            done = subprocess.run([*argv, str(path)], check=False)
        except OSError as e:
            raise EditorError(f"could not run {argv[0]} ({e.strerror or e})") from None
        if done.returncode != 0:
            raise EditorError(f"{Path(argv[0]).name} exited with status {done.returncode}")
        try:
            edited = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise EditorError(f"could not read the edited text back ({e.strerror or e})") from None
    finally:
        path.unlink(missing_ok=True)
    return edited.replace("\r\n", "\n").rstrip("\n")
