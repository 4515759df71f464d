"""Snapshots of the cockpit's screens (pytest-textual-snapshot; SVGs under __snapshots__)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from scenes import WALL, app_for, dns_propagating, smoke_failed_and_rolling_back, window_in_progress
from textual.pilot import Pilot
from textual.widgets import Input

from widgets.steps_table import StepsTable

pytestmark = pytest.mark.tui


@pytest.fixture(autouse=True)
def _fixed_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import cockpit.views

    monkeypatch.setattr(cockpit.views.time, "time", lambda: WALL)
    import widgets.dns_grid

    monkeypatch.setattr(widgets.dns_grid.time, "time", lambda: WALL)
    # Times of day (the DNS ETA) are shown in local time: one zone for every machine.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def _select(step_id: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.query_one(StepsTable).select_step(step_id)
        await pilot.pause()
        await pilot.pause()  # the panel's head changes height: let the layout follow

    return run_before


def test_main_screen_80x24(snap_compare: Any, tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=_select("import"))
    finally:
        session.close()


def test_main_screen_wide(snap_compare: Any, tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(140, 36), run_before=_select("read-only"))
    finally:
        session.close()


def test_a_failed_step_during_the_rollback(snap_compare: Any, tmp_path: Path) -> None:
    session = smoke_failed_and_rolling_back(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=_select("smoke-cases"))
    finally:
        session.close()


def test_the_rollback_modal(snap_compare: Any, tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)

    async def open_modal(pilot: Pilot[Any]) -> None:
        await pilot.press("b")
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.press(*"error rate at 40%")
        await pilot.pause()

    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=open_modal)
    finally:
        session.close()


def test_below_80x24_a_notice_replaces_the_screen(snap_compare: Any, tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(70, 20))
    finally:
        session.close()


def test_the_dns_summary_on_the_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    session = dns_propagating(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=_select("dns-propagation"))
    finally:
        session.close()


def test_the_dns_grid(snap_compare: Any, tmp_path: Path) -> None:
    session = dns_propagating(tmp_path)

    async def open_grid(pilot: Pilot[Any]) -> None:
        await pilot.press("g")
        await pilot.pause()

    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=open_grid)
    finally:
        session.close()
