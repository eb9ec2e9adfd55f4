"""Where the app's static files and the embedded default model are."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "guide"


def assets_dir() -> Path:
    """``assets/`` beside the packages (a source checkout or editable install), or
    ``$CHATAPP_ASSETS``."""
    env = os.environ.get("CHATAPP_ASSETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "assets"


def default_model_path() -> Path | None:
    """The embedded default model (a checkpoint folder), if it is present."""
    path = assets_dir() / "models" / DEFAULT_MODEL_NAME
    return path if (path / "config.json").is_file() else None
