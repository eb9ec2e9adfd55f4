"""Training: tokenizer, pretraining on text, chat fine-tuning on conversations, DDP.

spec = TrainSpec(out=models_dir() / "mine", chat=[Path("chats.jsonl")], preset="tiny")
result = train(spec, on_event=print)

The names below are imported on first use (PEP 562), as in ``engine/__init__``: the modules of
this package import each other by their own paths, never through this file, so importing one
of them does not import the rest (and nothing imports this file back while it runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.train.data import DataError
    from engine.train.pipeline import TrainSpec, prepare, train
    from engine.train.presets import PRESETS, preset_config
    from engine.train.trainer import TrainConfig, Trainer, TrainResult

# Public name -> the module that defines it.
_EXPORTS = {
    "DataError": "engine.train.data",
    "TrainSpec": "engine.train.pipeline",
    "prepare": "engine.train.pipeline",
    "train": "engine.train.pipeline",
    "PRESETS": "engine.train.presets",
    "preset_config": "engine.train.presets",
    "TrainConfig": "engine.train.trainer",
    "Trainer": "engine.train.trainer",
    "TrainResult": "engine.train.trainer",
}

__all__ = [
    "PRESETS",
    "DataError",
    "TrainConfig",
    "TrainResult",
    "TrainSpec",
    "Trainer",
    "prepare",
    "preset_config",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
