"""``chatapp default [NAME]``: show or set the default model, the one the chat opens with and
``chatapp ask`` answers with. It is stored as ``model`` in config.toml (the one place)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from chatapp.cli import error


def register(subs: Any, parser: argparse.ArgumentParser) -> None:
    p = subs.add_parser(
        "default",
        help="show or set the default model (the chat's and ask's)",
        description="Without NAME: print the default model and where that choice comes from. "
        "With NAME: make it the default (written as `model` in config.toml). "
        "$CHATAPP_MODEL, when set, comes first.",
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="a model name (guide is the built-in one), pull alias, unique prefix or path",
    )
    p.set_defaults(func=cmd_default)


def cmd_default(args: argparse.Namespace) -> int:
    from chatapp.core.settings import (
        ConfigWriteError,
        config_path,
        load_settings,
        set_default_model,
    )
    from chatapp.models.choice import default_model, model_names, require_model
    from engine.errors import ModelLoadError

    if args.name is None:
        settings, warning = load_settings()
        if warning:
            print(f"chatapp: warning: {warning}", file=sys.stderr)
        try:
            chosen = default_model(settings.model, str(config_path()))
        except ModelLoadError as e:
            return error(str(e))
        print(f"{chosen.name} ({chosen.origin})")
        return 0
    try:
        name = require_model(args.name)
    except ModelLoadError as e:
        return error(str(e))
    if name not in model_names():  # a path: kept absolute, so it means the same anywhere
        name = str(Path(name).expanduser().resolve())
    try:
        path = set_default_model(name)
    except ConfigWriteError as e:
        return error(str(e))
    print(f"The default model is now {name} (`model` in {path}).")
    env = os.environ.get("CHATAPP_MODEL")
    if env:
        print(
            f"chatapp: warning: $CHATAPP_MODEL ({env}) comes first while it is set", file=sys.stderr
        )
    return 0


def after_install(name: str) -> str:
    """The line ``pull`` and ``import`` end with: ``name`` becomes the default when the only
    model so far was the built-in one and no default was set; otherwise how to make it so."""
    from chatapp.core.settings import ConfigWriteError, load_settings, set_default_model
    from chatapp.models.choice import installed_names

    settings, _ = load_settings()
    if settings.model == name:
        return f"{name} is the default model."
    if settings.model or any(n != name for n in installed_names()):
        return f"Make it the default model: chatapp default {name}"
    try:
        set_default_model(name)
    except ConfigWriteError as e:
        return f"Make it the default model: chatapp default {name} ({e})"
    return (
        f"{name} is now the default model (the chat's and `chatapp ask`'s); "
        "`chatapp default guide` goes back to the built-in one."
    )
