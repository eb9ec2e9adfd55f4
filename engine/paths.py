"""Where the user's models, database and config live (platformdirs, app name ``chatapp``).

``CHATAPP_HOME`` replaces both roots, so tests and users can keep separate worlds.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "chatapp"


def data_dir() -> Path:
    """The root for models and the database."""
    home = os.environ.get("CHATAPP_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """The root for ``config.toml``."""
    home = os.environ.get("CHATAPP_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """One folder per imported or trained checkpoint."""
    return data_dir() / "models"


def cache_dir() -> Path:
    """Derived files that can be rebuilt (e.g. converted GGUF files)."""
    return data_dir() / "cache"
