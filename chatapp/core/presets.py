"""Sampling presets for ``/preset``: three built in, and the user's own, saved in config.toml as
``[presets.NAME]`` tables of /set names (a saved one may also replace a built-in one)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chatapp.core.settings import Settings, check_preset, config_path, save_setting

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    # Focused, repeatable answers: facts, code, extraction.
    "precise": {"temperature": 0.2, "top_k": 40, "top_p": 0.9},
    # Everyday chat.
    "balanced": {"temperature": 0.7, "top_k": 50, "top_p": 0.95},
    # Varied wording and ideas: brainstorming, stories.
    "creative": {"temperature": 1.1, "top_k": 100, "top_p": 0.98},
}
NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class PresetError(ValueError):
    """An unknown or broken preset, or one that cannot be saved; the message is one line."""


def describe(values: dict[str, Any]) -> str:
    """``temperature=0.2 top_k=40 top_p=0.9``."""
    return " ".join(f"{k}={v}" for k, v in values.items())


def preset_names(settings: Settings) -> list[str]:
    """The built-in presets, then the saved ones."""
    return list(dict.fromkeys([*BUILTIN_PRESETS, *settings.presets]))


def preset_values(name: str, settings: Settings) -> dict[str, Any]:
    """The sampling values of preset ``name`` (a saved one first, as it may replace a built-in
    one), checked with the engine's rules."""
    if name in settings.presets:
        try:
            return check_preset(settings.presets[name])
        except ValueError as e:
            raise PresetError(f"preset {name} in {config_path()} is not usable: {e}") from None
    if name in BUILTIN_PRESETS:
        return dict(BUILTIN_PRESETS[name])
    raise PresetError(f"unknown preset {name!r}; use one of: {', '.join(preset_names(settings))}")


def save_preset(name: str, sampling: dict[str, Any], settings: Settings) -> Path:
    """Store ``sampling`` (a chat's values, by /set name) as ``[presets.NAME]`` in config.toml,
    keeping the rest of the file; returns the file's path. Raises PresetError or
    ConfigWriteError with a one-line reason."""
    if not NAME.fullmatch(name) or name == "save":
        raise PresetError(f"a preset name is letters, digits, _ and - (up to 40), not {name!r}")
    values = {k: v for k, v in sampling.items() if v is not None}  # TOML has no "none"
    if not values:
        raise PresetError("nothing to save: this chat uses the defaults (/set or /preset first)")
    path = save_setting(f"presets.{name}", values)
    settings.presets[name] = values
    return path
