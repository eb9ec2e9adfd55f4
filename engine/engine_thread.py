"""One thread for all of a process's torch work: loads and generations.

torch's OpenMP (libgomp) keeps a team of worker threads for each thread that runs a parallel
kernel. Once two threads have done so (a model loaded in one worker thread and replies in
others: the TUI's thread workers and a server's executor rotate over a pool), libgomp manages
more threads than there are cores and, for good, stops spin-waiting between kernels: every
kernel then wakes its team from sleep. Measured on 2 cores: an int4 matmul 36 -> 85 us and
SmolLM2's decode 121 -> 65 tok/s for the rest of the process (and the thread tuner then falls
back to one thread). Loading and generating on this one thread keeps one team.

No torch here: the app imports this before it has loaded torch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_here = threading.local()


def _mark_engine_thread() -> None:
    _here.engine = True


def engine_executor() -> ThreadPoolExecutor:
    """The process's engine thread, as an executor (for ``loop.run_in_executor``)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                1, thread_name_prefix="engine", initializer=_mark_engine_thread
            )
        return _executor


def on_engine_thread(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` run on the engine thread (directly when called there): its result is
    returned and its exception raised in the calling thread, which waits."""
    if getattr(_here, "engine", False):
        return fn(*args)
    return engine_executor().submit(fn, *args).result()
