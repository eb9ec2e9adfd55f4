"""User defaults from ``<config dir>/config.toml``: model, sampling, theme, prompt history.

    model = "smollm2"
    theme = "textual-dark"
    system = "You are a helpful assistant."

    [sampling]
    temperature = 0.7
    max_tokens = 512

    [history]
    enabled = true

    [keys]                  # binding id = key(s), e.g. new_chat = "ctrl+t"
    new_chat = "ctrl+t"

    [presets.calm]          # a sampling preset of /preset (``/preset save calm`` writes one)
    temperature = 0.4

A missing file means defaults; a broken one means defaults plus one warning line.
Values are only shape-checked here; ``engine.SamplingParams`` validates them when a reply runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.core.config_file import ConfigWriteError as ConfigWriteError  # for its callers
from chatapp.core.config_file import set_config, tomllib
from engine.paths import config_dir

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
    # [keys]: binding id → key string(s), as written (the TUI checks the ids and conflicts).
    keys: dict[str, str] = field(default_factory=dict)
    # [presets.NAME]: sampling values by /set name, as written (``check_preset`` validates).
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


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


def check_preset(values: dict[str, Any]) -> dict[str, Any]:
    """The values of a sampling preset, checked as config.toml's [sampling] is (known /set
    names, numbers of the right kind, the engine's ranges); ValueError with a one-line reason."""
    for key, value in values.items():
        if key not in SAMPLING_KEYS:
            raise ValueError(f"unknown setting {key!r}")
        allowed: tuple[type, ...] = (int,) if key in INT_KEYS else (int, float)
        if not isinstance(value, allowed) or isinstance(value, bool):
            kind = "an integer" if key in INT_KEYS else "a number"
            raise ValueError(f"{key} must be {kind}, got {value!r}")
        try:
            sampling_params({key: value})
        except ValueError as e:
            raise ValueError(str(e).replace(SAMPLING_KEYS[key], key)) from None
    return dict(values)


TOP_LEVEL_KEYS = ("model", "system", "theme", "history", "sampling", "keys", "presets")


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
    keys = data.get("keys", {})
    if isinstance(keys, dict):
        for binding_id, value in keys.items():
            if isinstance(value, str) and value.strip():
                settings.keys[binding_id] = value
            else:
                problems.append(f"keys.{binding_id}")
    else:
        problems.append("keys")
    presets = data.get("presets", {})
    if isinstance(presets, dict):
        for name, values in presets.items():
            if not isinstance(values, dict):
                problems.append(f"presets.{name}")
                continue
            settings.presets[name] = values  # checked again when used: /preset names the file
            try:
                check_preset(values)
            except ValueError as e:
                problems.append(f"presets.{name} ({e})")
    else:
        problems.append("presets")
    problems += sorted(k for k in data if k not in TOP_LEVEL_KEYS)
    if problems:
        return settings, f"{path}: ignored bad or unknown setting(s): {', '.join(problems)}"
    return settings, None


def save_setting(key: str, value: Any, path: Path | None = None) -> Path:
    """Write one setting into config.toml keeping the rest of the file: a top-level ``key``
    (``theme``, ``model``; None removes it) or, for a dict, the table ``[key]``
    (``presets.calm``). Raises ConfigWriteError with a one-line reason."""
    return set_config(path or config_path(), key, value)


def set_default_model(name: str | None, path: Path | None = None) -> Path:
    """Write ``model = NAME`` into config.toml (``None`` removes it), keeping the rest of the
    file as it is (comments included); returns the file's path. The one place the default
    model is stored: the chat and ``chatapp ask`` both read it."""
    return save_setting("model", name, path)
