"""Which model to run when the user names none: one order for the chat and ``chatapp ask``."""

from __future__ import annotations

import os

from engine.errors import ModelLoadError

NO_MODEL_HINT = "no model installed yet: run `chatapp pull smollm2` or `chatapp import FILE`"


def resolve_model_source(
    explicit: str | None, configured: str | None = None, last_used: str | None = None
) -> str:
    """``explicit`` (``--model``), else ``$CHATAPP_MODEL``, else ``configured`` (config.toml's
    ``model``), else ``last_used`` (the chat's last model, if it still exists), else the
    embedded default model, else the first installed model; ``ModelLoadError`` when there is
    none at all."""
    if explicit:
        return explicit
    env = os.environ.get("CHATAPP_MODEL")
    if env:
        return env
    if configured:
        return configured
    from engine.registry import list_models, resolve_source

    if last_used:
        try:
            resolve_source(last_used)
            return last_used
        except ModelLoadError:
            pass
    from chatapp.models.assets import default_model_path

    default = default_model_path()
    if default is not None:
        return str(default)
    installed = list_models()
    if installed:
        return installed[0].name
    raise ModelLoadError(NO_MODEL_HINT)
