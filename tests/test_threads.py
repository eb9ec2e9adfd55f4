"""The decode-thread chooser: it keeps whichever thread count its measured steps favour. And
the one engine thread that loads and generates."""

from __future__ import annotations

import threading

import pytest

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


def test_engine_work_runs_on_one_thread_with_results_errors_and_nesting() -> None:
    from engine.engine_thread import on_engine_thread

    def where() -> threading.Thread:
        return threading.current_thread()

    first = on_engine_thread(where)
    others = [on_engine_thread(where) for _ in range(3)]
    from_a_thread: list[threading.Thread] = []
    t = threading.Thread(target=lambda: from_a_thread.append(on_engine_thread(where)))
    t.start()
    t.join()
    assert first is not threading.current_thread()
    assert all(o is first for o in others) and from_a_thread == [first]
    assert on_engine_thread(lambda: on_engine_thread(where)) is first  # no deadlock when nested

    def fail() -> None:
        raise ValueError("raised on the engine thread")

    with pytest.raises(ValueError, match="raised on the engine thread"):
        on_engine_thread(fail)
