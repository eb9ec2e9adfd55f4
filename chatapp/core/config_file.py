"""Edits of config.toml that keep the rest of the file as the user wrote it (comments, order).

One writer for every setting the app remembers: the default model, the theme, saved sampling
presets. It changes only the lines of the one key or table it sets, then checks that the file
still parses to what it held before plus that change; when it would not (a layout it cannot
edit line by line, such as an inline table), it refuses rather than guess.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the `tomli` backport (a conditional dependency)
    import tomli as tomllib

__all__ = ["ConfigWriteError", "set_config", "toml_value", "tomllib"]

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
TABLE_HEADER = re.compile(r"\s*\[")


class ConfigWriteError(Exception):
    """config.toml could not be changed (unreadable, not valid TOML, a layout we cannot
    edit safely); the message says what to do instead."""


def toml_value(value: Any) -> str:
    """``value`` (a string, bool, int or finite float) written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be stored in config.toml")
        return repr(value)
    if isinstance(value, str):
        # TOML basic strings take JSON's escapes; DEL must be escaped in TOML, not in JSON.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"cannot write {type(value).__name__} to config.toml")


def _key(name: str) -> str:
    return name if BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def set_config(path: Path, key: str, value: Any) -> Path:
    """Set ``key`` in the TOML file at ``path`` and return the path.

    A scalar value is a top-level ``key = value`` (None removes the line); a dict is the
    table ``[key]`` (dotted for a nested one: ``presets.calm``), whose lines it replaces.
    Raises ConfigWriteError with a one-line reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigWriteError(f"could not read {path} ({e})") from None
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigWriteError(f"{path} is not valid TOML ({e}); fix it first") from None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    expected = copy.deepcopy(before)
    if isinstance(value, dict):
        parts = key.split(".")
        _set_table(lines, parts, value)
        where = expected
        for part in parts[:-1]:
            where = where.setdefault(part, {})
        where[parts[-1]] = dict(value)
        by_hand = f"add a [{key}] table there by hand"
    else:
        _set_top_level(lines, key, value)
        expected.pop(key, None)
        if value is not None:
            expected[key] = value
        if value is None:
            by_hand = f"remove its `{key}` line by hand"
        else:
            by_hand = f"set {key} = {toml_value(value)} there by hand"
    new = "".join(lines)
    try:
        ok = tomllib.loads(new) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:  # e.g. a multi-line string that holds "model = ", or an inline table: never guess
        raise ConfigWriteError(f"could not edit {path} safely; {by_hand}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise ConfigWriteError(f"could not write {path} ({e.strerror or e})") from None
    return path


def _set_top_level(lines: list[str], key: str, value: Any) -> None:
    # Top-level keys come before the first [table].
    first_table = next((i for i, ln in enumerate(lines) if TABLE_HEADER.match(ln)), len(lines))
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    at = next((i for i, ln in enumerate(lines[:first_table]) if pattern.match(ln)), None)
    entry = [] if value is None else [f"{_key(key)} = {toml_value(value)}\n"]
    if at is not None:
        lines[at : at + 1] = entry
    else:
        lines[:0] = entry


def _set_table(lines: list[str], parts: list[str], values: dict[str, Any]) -> None:
    dot = r"\s*\.\s*"
    header = re.compile(rf"\s*\[\s*{dot.join(re.escape(_key(p)) for p in parts)}\s*\]\s*(#.*)?$")
    block = [f"[{'.'.join(_key(p) for p in parts)}]\n"]
    block += [f"{_key(k)} = {toml_value(v)}\n" for k, v in values.items()]
    start = next((i for i, ln in enumerate(lines) if header.match(ln)), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("\n")
        lines.extend(block)
        return
    end = next(
        (i for i in range(start + 1, len(lines)) if TABLE_HEADER.match(lines[i])), len(lines)
    )
    # Blank lines and comments just before the next table belong to it, not to this one.
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip()[:1] == "#"):
        end -= 1
    lines[start:end] = block
