"""Folders that appear complete or not at all: build beside, fsync, swap by rename.

Every writer of a model folder (``engine.save``, training checkpoints, ``chatapp import``,
the guide's export, the GGUF cache) builds into a temp folder next to the destination and
renames it into place. The files are fsynced first, so a power cut cannot leave a folder of
empty files behind a completed rename; temp folders that a killed run left are removed by the
next build in the same place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_SECONDS = 3600  # a temp folder this old belongs to no build that is still running


def old_path(dest: Path) -> Path:
    """Where ``dest`` waits while its replacement is renamed in (a kill in between is undone
    by ``recover``)."""
    return dest.with_name(f".{dest.name}.old")


def recover(dest: Path) -> None:
    """Put back the previous ``dest`` if a swap was killed between its two renames."""
    old = old_path(dest)
    if not dest.exists() and old.is_dir():
        old.rename(dest)


def remove_stale(parent: Path, name: str, *, now: float | None = None) -> None:
    """Remove ``.NAME.*`` temp folders in ``parent`` older than ``STALE_SECONDS``."""
    now = time.time() if now is None else now
    for d in parent.glob(f".{name}.*"):
        try:
            if (
                d.is_dir()
                and not d.name.endswith(".old")
                and now - d.stat().st_mtime > STALE_SECONDS
            ):
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and the folder entries themselves to disk."""
    for root, _dirs, files in os.walk(folder):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_into_place(tmp: Path, dest: Path) -> None:
    """Rename the complete ``tmp`` to ``dest``; an existing ``dest`` goes only once it can."""
    fsync_tree(tmp)
    if dest.exists() or dest.is_symlink():
        old = old_path(dest)
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)
    _fsync_dir(dest.parent)


@contextmanager
def building(dest: Path, tag: str = "") -> Iterator[Path]:
    """A fresh temp folder beside ``dest`` to build in; on success it replaces ``dest``, on
    any failure (an exception, Ctrl+C) it is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover(dest)
    remove_stale(dest.parent, dest.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{tag}", dir=dest.parent))
    try:
        yield tmp
        swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
