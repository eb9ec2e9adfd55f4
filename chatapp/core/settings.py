"""User defaults from ``<config dir>/config.toml``: model, sampling, theme, prompt history.

    model = "smollm2"
    theme = "textual-dark"
    system = "You are a helpful assistant."

    [sampling]
    temperature = 0.7
    max_tokens = 512

    [history]
    enabled = true

A missing file means defaults; a broken one means defaults plus one warning line.
Values are only shape-checked here; ``engine.SamplingParams`` validates them when a reply runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the `tomli` backport (a conditional dependency)
    import tomli as tomllib

# The /set names users type, mapped to engine.SamplingParams fields.
SAMPLING_KEYS: dict[str, str] = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_tokens": "max_new_tokens",
    "seed": "seed",
}
INT_KEYS = frozenset({"top_k", "max_tokens", "seed"})


@dataclass
class Settings:
    """Defaults for new conversations and the app."""

    model: str | None = None
    system: str = ""
    theme: str | None = None
    history_enabled: bool = True
    # Keys are /set names (``max_tokens``, not ``max_new_tokens``); only the ones the user set.
    sampling: dict[str, Any] = field(default_factory=dict)


def config_path() -> Path:
    """``<config dir>/config.toml``."""
    return config_dir() / "config.toml"


def parse_value(key: str, text: str) -> Any:
    """Turn the text of ``/set KEY VALUE`` into a number; ValueError with a one-line reason."""
    if key not in SAMPLING_KEYS:
        raise ValueError(f"unknown setting {key!r}; use one of: {', '.join(SAMPLING_KEYS)}")
    text = text.strip()
    if key == "seed" and text.lower() in ("none", "random", "off", ""):
        return None
    try:
        return int(text) if key in INT_KEYS else float(text)
    except ValueError:
        kind = "an integer" if key in INT_KEYS else "a number"
        raise ValueError(f"{key} must be {kind}, got {text!r}") from None


def sampling_params(values: dict[str, Any]) -> Any:
    """``engine.SamplingParams`` from values keyed by /set names; the engine's validation
    raises ValueError naming the bad field (no torch import: settings are checked at start)."""
    from engine.sampling_params import SamplingParams

    return SamplingParams(**{SAMPLING_KEYS[k]: v for k, v in values.items()})


TOP_LEVEL_KEYS = ("model", "system", "theme", "history", "sampling")


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """Read the config file; return the settings and a warning line (None when all is well)."""
    path = path or config_path()
    settings = Settings()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return settings, None
    except OSError as e:
        return settings, f"could not read {path} ({e.strerror}); using defaults"
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        return settings, f"{path} is not valid TOML ({e}); using defaults"
    problems: list[str] = []

    def pick(table: dict[str, Any], key: str, types: tuple[type, ...], where: str) -> Any:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            problems.append(f"{where}{key}")
            return None
        return value

    settings.model = pick(data, "model", (str,), "") or None
    settings.system = pick(data, "system", (str,), "") or ""
    settings.theme = pick(data, "theme", (str,), "") or None
    history = data.get("history", {})
    if isinstance(history, dict):
        enabled = pick(history, "enabled", (bool,), "history.")
        if enabled is not None:
            settings.history_enabled = enabled
    else:
        problems.append("history")
    sampling = data.get("sampling", {})
    if isinstance(sampling, dict):
        for key, value in sampling.items():
            if key not in SAMPLING_KEYS:
                problems.append(f"sampling.{key}")
                continue
            allowed: tuple[type, ...] = (int,) if key in INT_KEYS else (int, float)
            if pick(sampling, key, allowed, "sampling.") is None:
                continue
            try:  # the engine's own range checks, once, for ask and the TUI alike
                sampling_params({key: value})
            except ValueError as e:
                problems.append(f"sampling.{key} ({str(e).replace(SAMPLING_KEYS[key], key)})")
                continue
            settings.sampling[key] = value
    else:
        problems.append("sampling")
    problems += sorted(k for k in data if k not in TOP_LEVEL_KEYS)
    if problems:
        return settings, f"{path}: ignored bad or unknown setting(s): {', '.join(problems)}"
    return settings, None


class ConfigWriteError(Exception):
    """config.toml could not be changed (unreadable, not valid TOML, a layout we cannot
    edit safely); the message says what to do instead."""


def set_default_model(name: str | None, path: Path | None = None) -> Path:
    """Write ``model = NAME`` into config.toml (``None`` removes it), keeping the rest of the
    file as it is (comments included); returns the file's path. The one place the default
    model is stored: the chat and ``chatapp ask`` both read it."""
    import json
    import re

    path = path or config_path()
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
    # Top-level keys come before the first [table]; TOML basic strings take JSON's escapes.
    first_table = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[", ln)), len(lines))
    key = next(
        (i for i, ln in enumerate(lines[:first_table]) if re.match(r"\s*model\s*=", ln)), None
    )
    entry = [] if name is None else [f"model = {json.dumps(name, ensure_ascii=False)}\n"]
    if key is not None:
        lines[key : key + 1] = entry
    else:
        lines[:0] = entry
    new = "".join(lines)
    expected = {k: v for k, v in before.items() if k != "model"}
    if name is not None:
        expected["model"] = name
    try:
        ok = tomllib.loads(new) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:  # e.g. a multi-line string that holds "model = ": never guess
        setting = f"model = {json.dumps(name)}" if name else "remove its `model` line"
        raise ConfigWriteError(f"could not edit {path} safely; {setting} there by hand")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return path
