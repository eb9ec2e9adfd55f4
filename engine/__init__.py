"""chatapp's language-model engine: GPT-2 and Llama-family decoders with a reusable KV cache.

model = engine.load("path/or/name")
for delta in model.chat([{"role": "user", "content": "Hi"}], engine.SamplingParams()):
    print(delta, end="")

The names below are imported on first use (PEP 562), so ``import engine.paths`` or
``import engine.errors`` does not import torch: the app draws its first frame before that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.memory import gc_paused

if TYPE_CHECKING:
    from engine.config import SUPPORTED_ARCHITECTURES, ModelConfig
    from engine.errors import ContextOverflowError, GenerationError, ModelLoadError
    from engine.generate import GenerationStats, Model
    from engine.loader import load, save
    from engine.paths import config_dir, data_dir, models_dir
    from engine.registry import ModelInfo, list_models
    from engine.sampling_params import SamplingParams
    from engine.tokenizer import TemplateRenderError, Tokenizer

# Public name -> the module that defines it.
_EXPORTS = {
    "SUPPORTED_ARCHITECTURES": "engine.config",
    "ModelConfig": "engine.config",
    "ContextOverflowError": "engine.errors",
    "ModelLoadError": "engine.errors",
    "GenerationError": "engine.errors",
    "GenerationStats": "engine.generate",
    "Model": "engine.generate",
    "load": "engine.loader",
    "save": "engine.loader",
    "config_dir": "engine.paths",
    "data_dir": "engine.paths",
    "models_dir": "engine.paths",
    "ModelInfo": "engine.registry",
    "list_models": "engine.registry",
    "SamplingParams": "engine.sampling_params",
    "TemplateRenderError": "engine.tokenizer",
    "Tokenizer": "engine.tokenizer",
}

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "ContextOverflowError",
    "GenerationError",
    "GenerationStats",
    "Model",
    "ModelConfig",
    "ModelInfo",
    "ModelLoadError",
    "SamplingParams",
    "TemplateRenderError",
    "Tokenizer",
    "config_dir",
    "data_dir",
    "list_models",
    "load",
    "models_dir",
    "save",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # ``engine.tokenizer`` etc.: submodules, as when this file imported them all.
        try:
            return importlib.import_module(f"engine.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"engine.{name}":
                raise
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    # The first of these imports torch (~200,000 objects): with the cyclic GC running, the
    # full collections it triggers took a quarter of the import (0.93 -> 0.70 s here).
    with gc_paused():
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
