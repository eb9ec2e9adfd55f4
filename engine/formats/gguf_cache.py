"""Where a GGUF file's conversion lives in the cache, without the converter.

Loading a file that was converted before only needs its cache folder's name, so this module
imports neither the ``gguf`` package nor numpy (``engine.formats.gguf`` does, and is imported
only to convert).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine import paths
from engine.errors import ModelLoadError

# Bump when the converted folder changes shape, so old cache entries are rebuilt.
# 2: control tokens outside the byte alphabet, warnings.json; 3: Q4_K/Q6_K kept as blocks; 4: Q8_0 too;
# 5: Q4_0, Q4_1, Q5_0, Q5_1 too; 6: tokenizer.json merges as "a b" (a faster parse)
CONVERTER_VERSION = 6
# The quantized conversion's cache folders end with this (and hold a different format).
QUANTIZED_SUFFIX = "-q"


def cache_root() -> Path:
    return paths.cache_dir() / "gguf"


def cache_key(path: Path) -> str:
    """Folder name for ``path``: its stem and a digest of size, mtime and first MiB."""
    try:
        st = path.stat()
        with path.open("rb") as f:
            head = f.read(1 << 20)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror or e}") from None
    h = hashlib.sha256(f"{CONVERTER_VERSION}:{st.st_size}:{st.st_mtime_ns}:".encode())
    h.update(head)
    return f"{path.stem}-{h.hexdigest()[:16]}"


def cache_folder(path: Path, *, quantized: bool) -> Path:
    """Where the conversion of ``path`` goes (it may not exist yet)."""
    return cache_root() / (cache_key(path) + (QUANTIZED_SUFFIX if quantized else ""))


def is_complete(folder: Path) -> bool:
    """Folders appear complete: a conversion is renamed into place when it is done."""
    return (folder / "config.json").is_file()


def converted(path: Path, *, quantized: bool) -> Path | None:
    """The finished conversion of ``path`` in the cache, or None."""
    dest = cache_folder(path, quantized=quantized)
    return dest if is_complete(dest) else None
