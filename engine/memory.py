"""Handing freed memory back to the operating system.

glibc's malloc keeps freed blocks for reuse, and raises its mmap threshold after large frees,
so the transient buffers of a load (file reads, unpacked int4 values, dequantized blocks) would
stay in the process's resident set for its whole life. ``trim_heap`` returns them.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    return libc


def trim_heap() -> None:
    """Return freed heap pages to the OS (glibc; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block. A load makes many objects and no
    cycles, and each automatic full collection meanwhile walks every object that torch's
    import made (about 180,000): some 70 ms of a 0.4 s load, measured."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def available_bytes() -> int | None:
    """Memory the OS can give this process now (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
