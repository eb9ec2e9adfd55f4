"""chatapp's language-model engine: GPT-2 and Llama-family decoders with a reusable KV cache.

model = engine.load("path/or/name")
for delta in model.chat([{"role": "user", "content": "Hi"}], engine.SamplingParams()):
    print(delta, end="")
"""

from engine.config import SUPPORTED_ARCHITECTURES, ModelConfig
from engine.errors import ContextOverflowError, ModelLoadError
from engine.generate import GenerationStats, Model
from engine.loader import load, save
from engine.paths import config_dir, data_dir, models_dir
from engine.registry import ModelInfo, list_models
from engine.sampling import SamplingParams
from engine.tokenizer import TemplateRenderError, Tokenizer

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "ContextOverflowError",
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
