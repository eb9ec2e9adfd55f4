"""``engine.load`` and ``engine.save``: checkpoints in the Hugging Face folder layout."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from engine.config import ModelConfig
from engine.errors import ModelLoadError
from engine.formats import hf
from engine.formats.safetensors_file import SafetensorsFormatError, read_safetensors
from engine.generate import Model
from engine.model import Transformer
from engine.registry import resolve_source
from engine.tokenizer import Tokenizer

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SMALL_MODEL_PARAMETERS = 30_000_000  # below this, "auto" keeps float32 on the CPU
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load(source: str | os.PathLike[str], *, dtype: str = "auto", device: str = "cpu") -> Model:
    """Load a checkpoint folder, a ``.gguf`` file or a model name from the data dir."""
    path = resolve_source(source)
    name = path.name
    if path.is_file() and path.suffix.lower() == ".gguf":
        from engine.formats.gguf import gguf_checkpoint

        name = path.stem  # not the cache folder's name, which carries a digest
        path = gguf_checkpoint(path)
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise _pickle_error(path)
        raise ModelLoadError(f"{path} is not a model: give a checkpoint folder or a .gguf file")
    cfg = read_config(path)
    torch_dtype = _pick_dtype(dtype, cfg, device)
    tokenizer = Tokenizer.from_dir(path, eos_ids=cfg.eos_token_ids + _generation_eos(path))
    state = read_weights(path, cfg, dtype=torch_dtype)
    with torch.device("meta"), _SkipInit():
        net = Transformer(cfg)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and not _tied(cfg, k)]
    if missing:
        raise ModelLoadError(
            f"{path}: the weights lack tensor {missing[0]!r} (and {len(missing) - 1} more)"
            if len(missing) > 1
            else f"{path}: the weights lack tensor {missing[0]!r}"
        )
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ModelLoadError(
            f"{path}: unexpected tensor {unexpected[0]!r} for {cfg.architecture}; "
            "is config.json from the same model?"
        )
    for k, t in state.items():
        want = tuple(expected[k].shape)
        if tuple(t.shape) != want:
            raise ModelLoadError(
                f"{path}: tensor {k!r} has shape {tuple(t.shape)} but the config needs {want}"
            )
    state = {k: t.to(device=device, dtype=torch_dtype) for k, t in state.items()}
    net.load_state_dict(state, strict=False, assign=True)
    net.tie_weights()
    net.init_rope(device)
    return Model(net, tokenizer, name=name, path=str(path))


class _SkipInit(TorchFunctionMode):
    """Skip ``torch.nn.init`` while building a net whose parameters the checkpoint replaces.
    Besides saving the work, ``normal_`` on a meta tensor goes through ``torch._refs``, which
    imports ``torch._dynamo`` and sympy: about a second and 80 MiB of RSS on the first load."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


def read_config(path: Path) -> ModelConfig:
    cj = path / "config.json"
    if not path.is_dir():
        raise ModelLoadError(f"{path} does not exist")
    if not cj.is_file():
        if any(path.glob("*.gguf")):
            raise ModelLoadError(f"{path} holds a .gguf file: load the file itself, not the folder")
        raise ModelLoadError(f"{path} has no config.json; is it a Hugging Face model folder?")
    try:
        data = json.loads(cj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{cj} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{cj} is not a JSON object")
    return ModelConfig.from_hf(data)


def _generation_eos(path: Path) -> list[int]:
    gc = path / "generation_config.json"
    try:
        eos = json.loads(gc.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    items = eos if isinstance(eos, list) else [eos]
    return [int(e) for e in items if isinstance(e, int)]


def _tied(cfg: ModelConfig, key: str) -> bool:
    return cfg.tie_word_embeddings and key == "lm_head.weight"


def _pick_dtype(dtype: str, cfg: ModelConfig, device: str) -> torch.dtype:
    if dtype == "auto":
        # Decoding is memory-bound: bfloat16 halves the bytes read per token (and the RSS).
        # On CPUs without native bf16 matmul it would be slower than float32, so use float32.
        if device == "cpu" and not _cpu_has_bf16():
            return torch.float32
        # Tiny models are not memory-bound: per-token overhead dominates and float32 kernels
        # are faster (the 5M-parameter guide: 558 vs 365 tok/s), at a few MB more.
        if device == "cpu" and _approx_parameters(cfg) < SMALL_MODEL_PARAMETERS:
            return torch.float32
        return torch.bfloat16
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _approx_parameters(cfg: ModelConfig) -> int:
    h, kv = cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim
    attn = h * cfg.num_heads * cfg.head_dim * 2 + h * kv * 2
    mlp = h * cfg.intermediate_size * (3 if cfg.mlp == "gated" else 2)
    embed = cfg.vocab_size * h * (1 if cfg.tie_word_embeddings else 2)
    return cfg.num_layers * (attn + mlp) + embed


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _pickle_error(path: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{path.name} is a pickle checkpoint, which is never loaded (it can run code); convert it "
        "to safetensors first (e.g. transformers' save_pretrained(..., safe_serialization=True))"
    )


def read_weights(
    path: Path, cfg: ModelConfig, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` (or its shards) and map names to ours; each tensor is cast to
    ``dtype`` as it is read, so a float32 file never sits in memory twice."""
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(f"{index} is not a valid safetensors index") from None
        files = [path / f for f in sorted(set(weight_map.values()))]
    else:
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _pickle_error(pickles[0])
        raise ModelLoadError(f"{path} has no model.safetensors")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise ModelLoadError(f"{f} is missing (named in the safetensors index)")
        try:
            tensors |= read_safetensors(f, dtype)
        except SafetensorsFormatError as e:
            raise ModelLoadError(f"{f} is corrupt or truncated ({e}); download it again") from None
        except OSError as e:
            raise ModelLoadError(f"cannot read {f}: {e.strerror or e}") from None
    return hf.from_hf(cfg, tensors)


def save(
    model: Model, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` as a Hugging Face folder (loads in transformers too), atomically:
    everything goes to a temp folder that replaces ``path`` only when complete."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        write_checkpoint(model.net, model.tokenizer, tmp, metadata=metadata)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def write_checkpoint(
    net: Transformer, tokenizer: Tokenizer, folder: Path, *, metadata: dict[str, Any] | None = None
) -> None:
    """The files of a checkpoint, written into an existing ``folder``."""
    cfg = net.config
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    tensors = hf.to_hf(cfg, state)
    dtype = next(iter(tensors.values())).dtype
    hf_cfg = cfg.to_hf() | {"torch_dtype": str(dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(json.dumps(hf_cfg, indent=2))
    eos = sorted(tokenizer.eos_ids | set(cfg.eos_token_ids))
    gen = {"eos_token_id": eos, "bos_token_id": cfg.bos_token_id}
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2))
    meta = {"format": "pt"} | {k: str(v) for k, v in (metadata or {}).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata=meta)
    tokenizer.save(folder)
