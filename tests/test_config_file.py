"""config.toml edits: one key or table changes, everything else stays as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.core.config_file import ConfigWriteError, set_config, tomllib
from chatapp.core.settings import load_settings

ORIGINAL = """# my settings
model = "smollm2"  # the usual one

[sampling]
temperature = 0.5

# presets below
[presets.calm]
temperature = 0.3

# history: keep it
[history]
enabled = true
"""


def test_a_top_level_key_is_set_replaced_and_removed_keeping_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL, encoding="utf-8")
    set_config(path, "theme", "nord")
    text = path.read_text(encoding="utf-8")
    assert text == 'theme = "nord"\n' + ORIGINAL
    set_config(path, "theme", "dracula")
    assert path.read_text(encoding="utf-8") == 'theme = "dracula"\n' + ORIGINAL
    set_config(path, "theme", None)
    assert path.read_text(encoding="utf-8") == ORIGINAL


def test_a_table_is_replaced_in_place_or_appended(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL, encoding="utf-8")
    set_config(path, "presets.calm", {"temperature": 0.25, "top_k": 20})
    text = path.read_text(encoding="utf-8")
    assert "[presets.calm]\ntemperature = 0.25\ntop_k = 20\n\n# history: keep it\n" in text
    assert text.startswith("# my settings\n") and "# presets below\n" in text
    set_config(path, "presets.wild", {"temperature": 1.5})
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["presets"] == {
        "calm": {"temperature": 0.25, "top_k": 20},
        "wild": {"temperature": 1.5},
    }
    assert data["model"] == "smollm2" and data["history"] == {"enabled": True}


def test_a_layout_it_cannot_edit_line_by_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    inline = "presets = { calm = { temperature = 0.3 } }\n"
    path.write_text(inline, encoding="utf-8")
    with pytest.raises(ConfigWriteError, match=r"could not edit .* safely; add a \[presets.x\]"):
        set_config(path, "presets.x", {"temperature": 0.5})
    assert path.read_text(encoding="utf-8") == inline  # untouched
    path.write_text("model = ", encoding="utf-8")
    with pytest.raises(ConfigWriteError, match="not valid TOML"):
        set_config(path, "theme", "nord")


def test_strings_with_quotes_and_controls_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    value = 'a "quoted" \\ name\x1b\x7f 中文'
    set_config(path, "theme", value)
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"theme": value}


def test_saved_presets_and_keys_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[keys]\nnew_chat = "ctrl+t"\nquit = 3\n'
        "[presets.calm]\ntemperature = 0.3\n[presets.hot]\ntemperature = 500\n",
        encoding="utf-8",
    )
    settings, warning = load_settings(path)
    assert settings.keys == {"new_chat": "ctrl+t"}
    assert settings.presets == {"calm": {"temperature": 0.3}, "hot": {"temperature": 500}}
    assert warning is not None and str(path) in warning and "\n" not in warning
    assert "keys.quit" in warning and "presets.hot (temperature must be in [0, 100]" in warning
