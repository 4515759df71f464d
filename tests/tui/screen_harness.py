"""Driving the cockpit's screen over a session of fake steps: the helpers the screen tests share.

The `cockpit` fixture (tests/conftest.py) builds a `Cockpit`: an app over a runbook of fake
steps, closed at the end of the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakes import make_session
from textual.pilot import Pilot

from cockpit.app import CockpitApp, make_app
from cockpit.session import Session
from widgets.steps_table import StepsTable


def _step(step_id: str, kind: str = "fake.work", extra: str = "", with_: str = "", phase: str = "window") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "{phase}"\nkind = "{kind}"\n{extra}\nwith = {{ {with_} }}\n'


async def until(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def state(session: Session, step_id: str) -> str:
    return session.engine.step_runtime(step_id).state.value


def actions(session: Session) -> list[tuple[str, str, str | None, str]]:
    return [a[1:] for a in session.journal.actions(session.engine.run_id)]


async def select(pilot: Pilot[Any], step_id: str) -> None:
    pilot.app.query_one(StepsTable).select_step(step_id)
    await pilot.pause()


class Cockpit:
    """An app over a session of fake steps, closed at the end of the test."""

    def __init__(self, tmp_path: Path, body: str, **options: Any) -> None:
        self.session = make_session(tmp_path, body, **options)
        self.app: CockpitApp = make_app(self.session, refresh_interval=0.1)

    def close(self) -> None:
        self.session.close()
