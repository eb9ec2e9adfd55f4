"""The decode-thread chooser: it keeps whichever thread count its measured steps favour."""

from __future__ import annotations

from engine.threads import ThreadTuner


def run(tuner: ThreadTuner, step_time: dict[int, float], steps: int) -> list[int]:
    """Drive ``steps`` decode steps whose time depends on the thread count."""
    used = []
    for _ in range(steps):
        n = tuner.next_threads()
        used.append(n)
        tuner.record(step_time[n])
    return used


def test_idle_machine_keeps_all_threads_and_tries_one_rarely() -> None:
    tuner = ThreadTuner(2)
    used = run(tuner, {2: 0.020, 1: 0.028}, 1000)
    assert tuner.best == 2
    assert used.count(1) <= 15  # a few short trials, backing off


def test_busy_machine_switches_to_one_thread_within_a_few_steps() -> None:
    tuner = ThreadTuner(2)
    used = run(tuner, {2: 0.250, 1: 0.027}, 200)  # two threads starve: another process runs
    assert tuner.best == 1
    assert used[:10].count(2) <= 3
    assert used.count(2) <= 8  # later trials of two threads end after one slow step


def test_the_choice_follows_the_machine_back() -> None:
    tuner = ThreadTuner(2)
    run(tuner, {2: 0.250, 1: 0.027}, 50)
    assert tuner.best == 1
    run(tuner, {2: 0.020, 1: 0.027}, 300)  # the other process ended
    assert tuner.best == 2


def test_one_configured_thread_never_tries_anything() -> None:
    tuner = ThreadTuner(1)
    assert set(run(tuner, {1: 0.03}, 100)) == {1}
