"""Training checkpoints, written atomically.

``<out>/`` is an ordinary model folder (Hugging Face layout, the best weights so far, so it
loads in ``engine.load``, ``chatapp`` and transformers); ``<out>/training/`` holds what
``--resume`` needs: the latest float32 weights, the optimizer state and the step.

Each save builds a complete new folder beside ``out`` and swaps it in with two renames, so a
kill mid-save leaves the previous checkpoint (as ``out`` or, between the renames,
``.<name>.old``, which ``recover`` puts back).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engine.atomic_dir import building, recover
from engine.errors import ModelLoadError
from engine.loader import DTYPES, write_checkpoint
from engine.model import Transformer
from engine.tokenizer import Tokenizer

TRAINING = "training"
STATE = "state.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"


def save(
    out: Path,
    net: Transformer,
    tokenizer: Tokenizer,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    *,
    best: bool,
    save_dtype: str = "float32",
    metadata: dict[str, str] | None = None,
) -> None:
    """Write the training state, and the model files too when ``best`` (else keep the
    previous best ones)."""
    out = Path(out)
    with building(out) as tmp:  # puts back a checkpoint a killed save had moved aside
        if best or not (out / "config.json").is_file():
            dtype = DTYPES[save_dtype]
            export = net if dtype == torch.float32 else copy.deepcopy(net).to(dtype)
            write_checkpoint(export, tokenizer, tmp, metadata=metadata)
        else:
            for f in out.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
        train_dir = tmp / TRAINING
        train_dir.mkdir()
        save_file(_own_tensors(net), str(train_dir / WEIGHTS))
        torch.save(optimizer.state_dict(), train_dir / OPTIMIZER)
        (train_dir / STATE).write_text(json.dumps(state, indent=2))


def _own_tensors(net: Transformer) -> dict[str, torch.Tensor]:
    state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    if net.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # shares memory with the embedding
    return state


def read_state(out: Path) -> dict[str, Any]:
    recover(out)
    path = out / TRAINING / STATE
    if not path.is_file():
        raise ModelLoadError(f"{out} has no training state to resume from ({path} is missing)")
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ModelLoadError(f"{path} is corrupt; start again without --resume") from None
    return state


def load_training_state(
    out: Path, net: Transformer, optimizer: torch.optim.Optimizer, device: torch.device
) -> dict[str, Any]:
    """Load the latest weights and optimizer state into ``net``/``optimizer``; the step etc."""
    state = read_state(out)
    weights = load_file(str(out / TRAINING / WEIGHTS), device=str(device))
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ModelLoadError(f"{out}: the training state does not match this model's shape")
    net.tie_weights()
    # weights_only: the optimizer file is plain tensors and numbers; never unpickle code.
    opt_state = torch.load(out / TRAINING / OPTIMIZER, map_location=device, weights_only=True)
    optimizer.load_state_dict(opt_state)
    return state
