"""Load what a model name means: a remote model (``chatapp remote add``) or a local one."""

from __future__ import annotations

from typing import Any


def load_model(source: str, quant: str = "auto") -> Any:
    """A ``RemoteModel`` when ``source`` names a remote (no network until it is used, so a
    chat with a remote model reopens while its server is down), else ``engine.load``."""
    from chatapp.remote.registry import find_remote

    remote = find_remote(source)
    if remote is not None:
        from chatapp.remote.client import RemoteModel

        return RemoteModel(remote)
    import engine

    return engine.load(source, quant=quant)
