"""Models in the user data dir: resolving names and listing what is installed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelLoadError
from engine.paths import models_dir


@dataclass(frozen=True)
class ModelInfo:
    """One installed model, described without loading its weights."""

    name: str
    path: Path
    architecture: str
    parameters: int
    context_length: int
    dtype: str
    size_bytes: int
    source: str = ""


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """A path that exists, else the name of a model under ``<data>/models/``."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    name = str(source)
    if name and "/" not in name and "\\" not in name and name not in (".", ".."):
        candidate = models_dir() / name
        if candidate.is_dir():
            return candidate
    raise ModelLoadError(
        f"no model at {source!r}: give a checkpoint folder, a .gguf file or an installed "
        "model name (see `chatapp models`)"
    )


def describe(path: Path) -> ModelInfo:
    """Read a checkpoint folder's config and safetensors headers (no tensor data)."""
    from safetensors import safe_open

    from engine import ggml_blocks
    from engine.config import ModelConfig
    from engine.quantize import GGML_KINDS, GGML_SUFFIX

    cfg = ModelConfig.from_hf(json.loads((path / "config.json").read_text(encoding="utf-8")))
    params = 0
    dtype = cfg.torch_dtype
    kinds: set[str] = set()
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():  # noqa: SIM118 - safe_open is not a dict
                if k.endswith((".scales", ".zeros")):
                    continue  # quantization metadata, not parameters
                part = st.get_slice(k)
                n = 1
                for d in part.get_shape():
                    n *= d
                prefix, _, ggml_kind = k.rpartition(GGML_SUFFIX)
                if prefix and ggml_kind in GGML_KINDS:  # [rows, bytes a row] of blocks
                    kinds.add(ggml_kind)
                    n = part.get_shape()[0] * ggml_blocks.columns(ggml_kind, part.get_shape()[1])
                elif k.endswith(".qweight"):
                    int4 = part.get_dtype() == "U8"  # two 4-bit values per byte
                    kinds.add("int4" if int4 else "int8")
                    n *= 2 if int4 else 1
                params += n
    if kinds:
        dtype = "+".join(sorted(kinds))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    source = ""
    src_file = path / "source.json"
    if src_file.is_file():
        try:
            source = str(json.loads(src_file.read_text(encoding="utf-8")).get("source", ""))
        except (ValueError, AttributeError):
            source = ""
    return ModelInfo(
        name=path.name,
        path=path,
        architecture=cfg.architecture,
        parameters=params,
        context_length=cfg.context_length,
        dtype=dtype,
        size_bytes=size,
        source=source,
    )


def list_models() -> list[ModelInfo]:
    """Every loadable model under ``<data>/models/``, sorted by name (broken ones skipped)."""
    root = models_dir()
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith(".") or not (p / "config.json").is_file():
            continue
        try:
            out.append(describe(p))
        except Exception:  # noqa: BLE001 - a broken folder must not hide the others
            continue
    return out
