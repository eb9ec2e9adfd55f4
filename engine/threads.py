"""How many threads to decode with, chosen by measuring decode steps as they run.

On an idle machine one torch thread per core decodes fastest (SmolLM2 Q4_1 on 2 cores: 48 tok/s
against 35 with one thread). When another process keeps a core busy, the OpenMP threads that
wait for each other at every kernel lose their turns, and two threads collapse to 3-5 tok/s
while one thread still gives 36-39. No setting serves both, so the decode loop times its steps
and now and then tries the other thread count for a few steps, keeping whichever is faster;
when the other count keeps losing, it is tried less and less often.
"""

from __future__ import annotations

import statistics
from collections import deque

import torch

PROBE_STEPS = 3  # decode steps per trial of the other thread count
FIRST_PROBE = 2  # steps into the first generation before the first trial
BASE_INTERVAL = 64  # steps between trials after one that won
MAX_INTERVAL = 1024  # trials that keep losing back off to this
WIN_MARGIN = 0.9  # the other count must be 10% faster to take over
ABORT_FACTOR = 3.0  # a trial step this much slower than usual ends the trial at once


class ThreadTuner:
    """Chooses between ``most`` threads (the configured count) and one; state carries over
    from one generation to the next, so a reply starts with what the last one learned."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.best = most
        self.interval = FIRST_PROBE
        self.since_probe = 0
        self.probe_left = 0
        self.probe_times: list[float] = []
        self.best_times: deque[float] = deque(maxlen=8)

    @property
    def other(self) -> int:
        return 1 if self.best == self.most else self.most

    @property
    def active(self) -> bool:
        return self.most > 1

    def next_threads(self) -> int:
        """The thread count for the next decode step."""
        if not self.active:
            return self.most
        if self.probe_left == 0 and self.since_probe >= self.interval and self.best_times:
            self.probe_left = PROBE_STEPS
            self.probe_times = []
        return self.other if self.probe_left else self.best

    def record(self, seconds: float) -> None:
        """The time the step chosen by ``next_threads`` took."""
        if not self.active:
            return
        if not self.probe_left:
            self.best_times.append(seconds)
            self.since_probe += 1
            return
        self.probe_times.append(seconds)
        self.probe_left -= 1
        usual = statistics.median(self.best_times)
        if seconds > ABORT_FACTOR * usual:
            self.probe_left = 0  # clearly worse: do not finish the trial
        if self.probe_left:
            return
        if statistics.median(self.probe_times) < WIN_MARGIN * usual:
            self.best = self.other
            self.best_times.clear()
            self.interval = BASE_INTERVAL
        else:
            self.interval = min(MAX_INTERVAL, max(BASE_INTERVAL, 4 * self.interval))
        self.since_probe = 0


def set_threads(n: int) -> None:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
