"""Training: tokenizer, pretraining on text, chat fine-tuning on conversations, DDP.

spec = TrainSpec(out=models_dir() / "mine", chat=[Path("chats.jsonl")], preset="tiny")
result = train(spec, on_event=print)
"""

from engine.train.data import DataError
from engine.train.pipeline import TrainSpec, prepare, train
from engine.train.presets import PRESETS, preset_config
from engine.train.trainer import TrainConfig, Trainer, TrainResult

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
