"""Which model a name means, and which model to run when the user names none: one place for the
chat, ``chatapp ask`` and the model commands.

Names are the installed folders under ``<data dir>/models/`` plus ``guide``, the built-in model
(it lives in ``assets/``, not the data dir, and cannot be removed). Wherever a model name is
typed, a pull alias (``smollm2``) or a unique prefix of a name also does.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from chatapp.models.assets import DEFAULT_MODEL_NAME, default_model_path
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from engine.registry import ModelInfo

BUILTIN = DEFAULT_MODEL_NAME
BUILTIN_SOURCE = "built-in"  # the ``source`` the built-in model is listed with
NO_MODEL_HINT = "no model installed yet: run `chatapp pull smollm2` or `chatapp import FILE`"


@dataclass(frozen=True)
class DefaultModel:
    """The model used when none is named, and where that choice comes from (for the user)."""

    name: str
    origin: str


def installed_names() -> list[str]:
    """The installed models' names (folders with a ``config.json``), sorted; no headers read."""
    from engine.paths import models_dir

    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and (p / "config.json").is_file()
    )


def model_names() -> list[str]:
    """Every name a model can be chosen by: the built-in model first, then the installed ones,
    then the remote ones (``chatapp remote add``)."""
    from chatapp.remote.registry import RemoteError, list_remotes

    builtin = [BUILTIN] if default_model_path() is not None else []
    local = builtin + [n for n in installed_names() if n != BUILTIN]
    try:
        remote = [r.name for r in list_remotes() if r.name not in local]
    except RemoteError:  # a damaged remotes.json must not hide the local models
        remote = []
    return local + remote


def available_models() -> list[ModelInfo]:
    """The built-in model (its ``source`` is ``built-in``) and the installed ones, described
    from their files (no weights loaded), for ``chatapp models`` and the picker."""
    from engine.registry import describe, list_models

    out = []
    path = default_model_path()
    if path is not None:
        # A damaged checkout must not hide the installed models.
        with contextlib.suppress(Exception):
            out.append(replace(describe(path), name=BUILTIN, source=BUILTIN_SOURCE))
    local = out + [m for m in list_models() if m.name != BUILTIN]
    return local + remote_models([m.name for m in local])


REMOTE_ARCHITECTURE = "remote"  # how remote models are marked in the lists


def remote_models(taken: Sequence[str] = ()) -> list[ModelInfo]:
    """The remote models (``chatapp remote add``) as list entries: architecture ``remote``,
    the server's model id and URL as their source; nothing is asked of the servers."""
    from chatapp.remote.registry import RemoteError, list_remotes
    from engine.registry import ModelInfo

    try:
        remotes = list_remotes()
    except RemoteError:
        return []
    return [
        ModelInfo(
            name=r.name,
            path=Path(),
            architecture=REMOTE_ARCHITECTURE,
            parameters=0,
            context_length=0,
            dtype="remote",
            size_bytes=0,
            source=f"{r.model or 'default model'} at {r.url}",
        )
        for r in remotes
        if r.name not in taken
    ]


def pull_alias(text: str, names: Sequence[str]) -> str:
    """The installed name a ``chatapp pull`` name stands for (``smollm2`` →
    ``smollm2-135m-instruct``) when that model is among ``names``; else ``text``."""
    from chatapp.models.pull import SOURCES

    source = SOURCES.get(text.lower())
    return source.model_name if source is not None and source.model_name in names else text


def resolve_model_name(text: str, names: Sequence[str] | None = None) -> str:
    """The model ``text`` means: a name as it is; a pull alias or a unique prefix (any case) of a
    name, that name; anything else unchanged (a path, or a miss for the loader to report)."""
    names = model_names() if names is None else names
    if text in names:
        return text
    if not text or Path(text).expanduser().exists():
        return text
    alias = pull_alias(text, names)
    if alias != text:
        return alias
    starting = [n for n in names if n.lower().startswith(text.lower())]
    return starting[0] if len(starting) == 1 else text


def close_names(text: str, names: Sequence[str]) -> list[str]:
    """Names ``text`` might have meant: the ones it is a prefix of, else the most alike (a
    name's start counts as much as the whole: ``smolm`` is close to ``smollm2-135m-…``)."""
    typed = text.lower()
    starting = [n for n in names if n.lower().startswith(typed)]
    if starting:
        return starting

    def likeness(name: str) -> float:
        name = name.lower()
        return max(
            difflib.SequenceMatcher(None, typed, part).ratio()
            for part in (name, name[: len(typed)], name[: len(typed) + 1])
        )

    scored = sorted(((likeness(n), n) for n in names), key=lambda p: -p[0])
    return [n for score, n in scored if score >= 0.7][:3]


def did_you_mean(text: str, names: Sequence[str]) -> str:
    """``"; did you mean a or b?"`` for a mistyped name, or ``""``."""
    near = [n for n in close_names(text, names) if n != text]
    if not near:
        return ""
    return f"; did you mean {' or '.join(near)}?"


def require_model(text: str, names: Sequence[str] | None = None) -> str:
    """``resolve_model_name``, but a ``ModelLoadError`` (with the closest names) when ``text``
    is neither a model name nor an existing path."""
    names = model_names() if names is None else names
    resolved = resolve_model_name(text, names)
    if resolved in names or (resolved and Path(resolved).expanduser().exists()):
        return resolved
    hint = did_you_mean(text, names) or _pull_hint(text) or " (see `chatapp models`)"
    raise ModelLoadError(f"no model named {text!r}{hint}")


def _pull_hint(text: str) -> str:
    """``"; `chatapp pull smollm2` installs it"`` when ``text`` names a pullable model that is
    not installed yet (by its pull name, its model name or a prefix of either)."""
    from chatapp.models.pull import SOURCES

    typed = text.lower()
    for source in SOURCES.values():
        if typed and (source.name.startswith(typed) or source.model_name.startswith(typed)):
            return f"; `chatapp pull {source.name}` installs it"
    return ""


def engine_source(name: str) -> str:
    """What ``engine.load`` takes for a resolved name: the built-in model's folder for
    ``guide`` (the engine knows only the data dir), the name or path itself otherwise."""
    if name == BUILTIN:
        path = default_model_path()
        if path is not None:
            return str(path)
    return name


def default_model(configured: str | None = None, config_file: str = "config.toml") -> DefaultModel:
    """``$CHATAPP_MODEL``, else ``configured`` (config.toml's ``model``, which
    ``chatapp default NAME`` sets), else the built-in model, else the first installed model;
    ``ModelLoadError`` when there is none at all. The chat and ``chatapp ask`` both use this."""
    env = os.environ.get("CHATAPP_MODEL")
    if env:
        return DefaultModel(env, "$CHATAPP_MODEL")
    if configured:
        return DefaultModel(configured, f"`model` in {config_file}")
    if default_model_path() is not None:
        return DefaultModel(BUILTIN, "the built-in model: no default is set")
    installed = installed_names()
    if installed:
        return DefaultModel(installed[0], "the first installed model: no default is set")
    raise ModelLoadError(NO_MODEL_HINT)


def resolve_model_source(explicit: str | None, configured: str | None = None) -> str:
    """``explicit`` (``--model``, ``/model``), else the default model (``default_model``)."""
    if explicit:
        return explicit
    return default_model(configured).name
