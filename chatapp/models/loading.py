"""Load what a model name means: a remote model (``chatapp remote add``) or a local one."""

from __future__ import annotations

import gc
from typing import Any


def load_model(source: str, quant: str = "auto") -> Any:
    """The model ``source`` names (see ``choice.require_model``: a pull alias or a unique
    prefix works, a miss fails with the closest names): a ``RemoteModel`` for a remote (no
    network until it is used, so a chat with a remote model reopens while its server is
    down), else ``engine.load``."""
    from chatapp.models.choice import engine_source, require_model
    from chatapp.remote.registry import find_remote

    name = require_model(source)
    remote = find_remote(name)
    if remote is not None:
        from chatapp.remote.client import RemoteModel

        return RemoteModel(remote)
    import engine

    model = engine.load(engine_source(name), quant=quant)
    # What is alive now (torch, textual, the model's modules: some 200,000 objects) lives as
    # long as the process, so the cyclic collector need not walk it again: without this, a
    # full collection runs about once a reply and holds the GIL for ~100 ms (measured in the
    # TUI), stalling the decode thread. One collection first, so no garbage is frozen with
    # it; objects made later are collected as usual.
    gc.collect()
    gc.freeze()
    return model
