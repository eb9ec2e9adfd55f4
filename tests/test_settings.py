"""config.toml: defaults, values, and one warning for a broken file."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.core.settings import Settings, config_path, load_settings, parse_value


def test_a_missing_file_gives_defaults_without_a_warning(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "config.toml") == (Settings(), None)


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'model = "smollm2"\ntheme = "nord"\nsystem = "Be brief."\n'
        "[sampling]\ntemperature = 0.5\nmax_tokens = 64\nseed = 1\n[history]\nenabled = false\n"
    )
    settings, warning = load_settings(path)
    assert warning is None
    assert settings == Settings(
        model="smollm2",
        system="Be brief.",
        theme="nord",
        history_enabled=False,
        sampling={"temperature": 0.5, "max_tokens": 64, "seed": 1},
    )


def test_broken_toml_gives_defaults_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("model = ")
    settings, warning = load_settings(path)
    assert settings == Settings()
    assert warning is not None and "not valid TOML" in warning and "\n" not in warning


def test_bad_values_are_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[sampling]\ntemperature = "hot"\ntop_k = 5\nflavour = 1\n')
    settings, warning = load_settings(path)
    assert settings.sampling == {"top_k": 5}
    assert (
        warning is not None and "sampling.temperature" in warning and "sampling.flavour" in warning
    )


def test_the_path_matches_the_engine_config_dir(chatapp_home: Path) -> None:
    import engine

    assert config_path() == engine.config_dir() / "config.toml"


def test_parse_value_gives_one_line_errors() -> None:
    assert parse_value("top_k", "5") == 5
    assert parse_value("temperature", "0.7") == 0.7
    assert parse_value("seed", "none") is None
    with pytest.raises(ValueError, match="top_k must be an integer, got '0.5'"):
        parse_value("top_k", "0.5")
    with pytest.raises(ValueError, match="unknown setting 'x'"):
        parse_value("x", "1")


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("temperature = -1", "sampling.temperature (temperature must be in [0, 100], got -1)"),
        ("temperature = nan", "sampling.temperature"),
        ("max_tokens = 0", "sampling.max_tokens (max_tokens must be an integer in [1,"),
        ("top_p = 0", "sampling.top_p"),
    ],
)
def test_out_of_range_values_are_named_once_with_the_file(
    line: str, named: str, tmp_path: Path
) -> None:
    """Checked when the file is read, with the engine's own rules: the TUI and `ask` never
    start with a value every reply would then fail on."""
    path = tmp_path / "config.toml"
    path.write_text(f"[sampling]\n{line}\ntop_k = 5\n")
    settings, warning = load_settings(path)
    assert settings.sampling == {"top_k": 5}
    assert warning is not None and str(path) in warning and named in warning
    assert "\n" not in warning


def test_unknown_top_level_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('model = "m"\nmodle = "typo"\n')
    settings, warning = load_settings(path)
    assert settings.model == "m" and warning is not None and "modle" in warning


def test_set_refuses_an_absurd_max_tokens() -> None:
    from chatapp.core.settings import sampling_params

    value = parse_value("max_tokens", "99999999999999999999")
    with pytest.raises(ValueError, match="max_new_tokens must be an integer in"):
        sampling_params({"max_tokens": value})
