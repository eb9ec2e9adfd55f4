"""Importing a GGUF file or a Hugging Face folder into ``<data dir>/models/<name>/``.

Everything is written to a hidden temp folder beside the destination, loaded once to prove it
works, then renamed into place: a failed import leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatapp.models.assets import DEFAULT_MODEL_NAME
from engine.atomic_dir import building
from engine.errors import ModelLoadError
from engine.paths import models_dir

# Files of a Hugging Face folder that never come along: pickles are never loaded anyway.
SKIP_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".msgpack", ".h5", ".onnx", ".gguf")


class ModelImportError(Exception):
    """An import that cannot go ahead (bad name, name taken, nothing to import)."""


NAME_CHARS = re.compile(r"[\w.+:@-]+")


def validate_name(name: str) -> str:
    """``name`` if it can be a new model's name; else a ``ModelImportError`` saying why."""
    _check_folder_name(name)
    if name.lower() == DEFAULT_MODEL_NAME:
        raise ModelImportError(
            f"{name!r} is the built-in model's name; pick another with --name NAME"
        )
    if not NAME_CHARS.fullmatch(name):
        # Names are typed in commands and shown in tables: no markup brackets, no controls.
        raise ModelImportError(
            f"model name {name!r} may hold only letters, digits and . _ - + : @ "
            "(e.g. --name my-model-q4)"
        )
    return name


def _check_folder_name(name: str) -> str:
    """``name`` if it names a folder directly under models/ (older installs may have names
    that ``validate_name`` now refuses: they can still be found and removed)."""
    if not name or not name.strip():
        raise ModelImportError("the model name is empty; pass --name NAME")
    if "/" in name or "\\" in name or "\x00" in name:
        raise ModelImportError(f"model name {name!r} must not contain path separators")
    if name.startswith("."):
        raise ModelImportError(f"model name {name!r} must not start with a dot")
    if name != name.strip():
        raise ModelImportError(f"model name {name!r} must not start or end with spaces")
    return name


def default_name(src: Path) -> str:
    """A model name from a file or folder name: lowercased, runs of odd characters -> ``-``."""
    stem = src.stem if src.is_file() else src.name
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.")
    return name or "model"


def model_path(name: str) -> Path:
    return models_dir() / _check_folder_name(name)


def import_model(
    src: str | Path,
    name: str | None = None,
    *,
    force: bool = False,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
    quant: str = "auto",
) -> Path:
    """Import ``src`` (a ``.gguf`` file or a Hugging Face folder) as ``name``; return its folder.

    ``quant``: ``auto`` keeps the weights' form (a GGUF's quantized tensors stay quantized, a
    folder's weights are copied as they are); ``none`` stores floats; ``int8`` / ``int4``
    quantize (see ``engine.load``). ``source`` is recorded in ``source.json`` (default: the
    resolved ``src`` path).
    Raises ``ModelImportError`` or ``engine.ModelLoadError`` with one-line messages.
    """
    step = on_step or (lambda _msg: None)
    src = Path(src).expanduser()
    if not src.exists():
        raise ModelImportError(f"{src} does not exist: give a .gguf file or a model folder")
    name = validate_name(name if name is not None else default_name(src))
    dest = models_dir() / name
    if dest.exists() and not force:
        raise ModelImportError(
            f"a model named {name!r} is already installed; pass --force to replace it "
            "or --name to pick another name"
        )
    meta: dict[str, Any] = {
        "source": source or str(src.resolve()),
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    is_gguf = src.is_file() and src.suffix.lower() == ".gguf"
    if src.is_file() and not is_gguf:
        raise ModelImportError(f"{src.name} is not a .gguf file or a Hugging Face model folder")
    from engine.loader import QUANTS

    if quant not in QUANTS:
        raise ModelImportError(f"unknown --quant {quant!r}; use one of {', '.join(QUANTS)}")
    # Built beside the destination, fsynced, swapped in by rename; a killed import's leftovers
    # are removed by the next one.
    with building(dest, tag="import-") as tmp:
        if is_gguf:
            from engine.formats.gguf import convert_gguf, gguf_metadata_summary

            step(f"Converting {src.name}")
            meta["quantization"] = gguf_metadata_summary(src).get("file_type")
            if quant in ("auto", "none"):
                convert_gguf(src, tmp, quantized=quant == "auto")
            else:  # requantize: through a float conversion
                with tempfile.TemporaryDirectory(
                    dir=dest.parent, prefix=f".{name}.convert-"
                ) as flt:
                    convert_gguf(src, Path(flt))
                    _quantize_folder(Path(flt), tmp, quant, step)
        elif quant in ("int8", "int4"):
            _check_hf_folder(src)
            _quantize_folder(src, tmp, quant, step)
            meta["quantization"] = quant
        else:
            step(f"Copying {src.name}")
            _copy_hf_folder(src, tmp)
            meta["quantization"] = _hf_dtype(tmp)
        if quant in ("int8", "int4"):
            meta["quantization"] = f"{meta.get('quantization') or 'float'} -> {quant}"
        meta.update(extra or {})
        (tmp / "source.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        step("Checking that it loads")
        import engine

        engine.load(tmp)
    return dest


def _quantize_folder(src: Path, dst: Path, kind: str, step: Callable[[str], None]) -> None:
    from engine.loader import quantize_checkpoint

    step(f"Quantizing to {kind}")
    quantize_checkpoint(src, dst, kind)
    for f in sorted(src.rglob("*")):  # files the engine does not read (a README, a license)
        rel = f.relative_to(src)
        if f.is_file() and not (dst / rel).exists() and f.suffix.lower() in (".md", ".txt"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / rel)


def _check_hf_folder(src: Path) -> None:
    if not (src / "config.json").is_file():
        if any(src.glob("*.gguf")):
            raise ModelImportError(f"{src} holds a .gguf file: import the file itself")
        raise ModelImportError(f"{src} has no config.json; is it a Hugging Face model folder?")


def _copy_hf_folder(src: Path, dst: Path) -> None:
    _check_hf_folder(src)
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        if f.suffix.lower() in SKIP_SUFFIXES:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst / rel)


def _hf_dtype(folder: Path) -> str | None:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dtype = cfg.get("torch_dtype") or cfg.get("dtype") if isinstance(cfg, dict) else None
    return str(dtype) if dtype else None


def read_source_info(folder: Path) -> dict[str, Any]:
    """``source.json`` of an installed model, or ``{}``."""
    try:
        data = json.loads((folder / "source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remove_model(name: str) -> Path:
    """Delete the installed model ``name``; return the folder it was in."""
    path = model_path(name)
    if not path.is_dir() or path.is_symlink():
        if path.is_symlink():
            path.unlink()
            return path
        raise ModelLoadError(f"no installed model named {name!r} (see `chatapp models`)")
    shutil.rmtree(path)
    return path
