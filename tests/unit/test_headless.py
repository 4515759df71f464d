"""The headless printer: a line per state change, periodic progress, colour only on a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

from fakes import Harness

from cockpit.engine.views import Outcome
from cockpit.events import StepStateChanged
from cockpit.headless import HeadlessPrinter, describe_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_text() -> None:
    assert describe_progress(45000, 100000, "rows", 12300) == "45,000/100,000 rows (45%), 12,300 rows/s, ETA 4s"
    assert describe_progress(7, None, "files", None) == "7 files"


def test_plain_when_piped_and_coloured_on_a_terminal() -> None:
    event = StepStateChanged(step_id="a", state="failed", previous="running", attempt=1, reason="boom")
    piped, tty = io.StringIO(), _Terminal()
    HeadlessPrinter(piped)(event)
    HeadlessPrinter(tty)(event)
    assert piped.getvalue() == "a                      failed       boom\n"
    assert "\x1b[31;1m" in tty.getvalue() and "boom" in tty.getvalue()


def test_periodic_progress_names_each_running_step(tmp_path: Path) -> None:
    body = (
        '\n[[step]]\nid = "copy"\nphase = "window"\nkind = "fake.work"\nbudget = "100ms"\n'
        "with = { seconds = 1.5, progress_total = 100000 }\n"
    )
    h = Harness(tmp_path, body).start()
    out = io.StringIO()
    printer = HeadlessPrinter(out, t0=h.runbook.t0)
    try:
        h.wait_for(
            lambda: (
                bool(h.engine.view().steps["copy"].progress)
                and h.engine.view().steps["copy"].progress[0].rate is not None
            )
        )
        h.wait_for(lambda: h.engine.view().steps["copy"].late_by is not None)
        printer.print_progress(h.engine.view())
        line = out.getvalue()
        assert "copy" in line and "/100,000 rows (" in line and "rows/s, ETA" in line and "over budget" in line
        assert h.settle() == Outcome.DONE
    finally:
        h.close()


def test_json_mode_prints_every_event_as_one_object() -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(out, as_json=True)
    printer(StepStateChanged(step_id="a", state="running", previous="ready", attempt=1))
    assert json.loads(out.getvalue()) == {
        "type": "step_state",
        "seq": 0,
        "wall": 0.0,
        "step_id": "a",
        "state": "running",
        "previous": "ready",
        "attempt": 1,
        "reason": "",
    }
