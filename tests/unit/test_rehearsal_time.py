"""A rehearsal compresses waiting, never work: the window is measured in real seconds of work.

At 600x a step that works one real second would otherwise move the clock ten minutes, and the
window's countdown (and the `{phase, overdue}` trigger) would call a rehearsal of seconds late.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fakes import Harness

from cockpit.engine.views import Outcome
from cockpit.events import StepStateChanged, TriggerFired

OVERRUN = '\n[[trigger]]\nid = "overrun"\nwhen = { phase = "window", overdue = "0m" }\naction = "alert"\n'


def _step(step_id: str, with_: str, extra: str = "") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "fake.work"\n{extra}\nwith = {{ {with_} }}\n'


def _clock_span(h: Harness, step_id: str) -> timedelta:
    changes = [e for e in h.of_type(StepStateChanged) if e.step_id == step_id]
    started = next(e.clock for e in changes if e.state == "running")
    ended = next(e.clock for e in changes if e.state == "succeeded")
    return ended - started


def test_work_runs_on_the_clock_at_wall_speed_and_waits_are_compressed(tmp_path: Path) -> None:
    body = _step("work", "seconds = 1.0") + _step("wait", "clock_seconds = 600", 'needs = ["work"]') + OVERRUN
    h = Harness(tmp_path, body, speed=600, start=timedelta(seconds=-1)).start()
    try:
        assert h.settle(30) == Outcome.DONE
        work = _clock_span(h, "work")
        assert timedelta(seconds=0.9) <= work < timedelta(seconds=10)  # not 600 s: one real second
        assert _clock_span(h, "wait") >= timedelta(seconds=600)  # ten minutes of clock in about one second
        # 11 minutes of the 30-minute window: no overrun, where the compressed work alone made 10.
        assert not h.of_type(TriggerFired)
    finally:
        h.close()


def test_a_long_rehearsal_of_real_work_runs_late_only_by_its_real_seconds(tmp_path: Path) -> None:
    # Three real seconds of work against a window of one minute at 600x: ten minutes compressed
    # (late by nine); in real seconds, well inside.
    header_window = "1m"
    body = _step("work", "seconds = 3.0") + OVERRUN
    from fakes import HEADER

    h = Harness(
        tmp_path,
        body,
        speed=600,
        start=timedelta(seconds=-1),
        header=HEADER.replace('window = "30m"', f'window = "{header_window}"'),
    ).start()
    try:
        assert h.settle(30) == Outcome.DONE
        assert _clock_span(h, "work") < timedelta(seconds=30)
        assert not h.of_type(TriggerFired)
    finally:
        h.close()
