"""Snapshots of the cockpit's screens (pytest-textual-snapshot; SVGs under __snapshots__)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from scenes import (
    WALL,
    app_for,
    dns_propagating,
    interrupted_after_restart,
    ponr_waiting,
    smoke_failed_and_rolling_back,
    window_in_progress,
)
from textual.pilot import Pilot
from textual.widgets import Input

pytestmark = pytest.mark.tui


@pytest.fixture(autouse=True)
def _fixed_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import cockpit.engine.views

    monkeypatch.setattr(cockpit.engine.views.time, "time", lambda: WALL)
    import widgets.screens.dns

    monkeypatch.setattr(widgets.screens.dns.time, "time", lambda: WALL)
    # Times of day (the DNS ETA) are shown in local time: one zone for every machine.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


async def _connected(pilot: Pilot[Any]) -> None:
    """The run is connected once the main screen is mounted: wait for it, and for the layout."""
    await pilot.pause()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def _select(step_id: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _connected(pilot)
        pilot.app.main.select_step(step_id)
        await pilot.pause()
        await pilot.pause()  # the panel's head changes height: let the layout follow

    return run_before


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
def test_a_progress_line_with_rate_and_eta(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The import at 62%: the bar, the counts, the rate and the ETA, at both sizes; two triggers counted."""
    session = window_in_progress(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=size, run_before=_select("verify-sample"))
    finally:
        session.close()


@pytest.mark.parametrize("size", SIZES)
def test_a_waiting_point_of_no_return(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The ⚠ mark stays while it asks; its question whole; the "what now" line names it and its keys."""
    session = ponr_waiting(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=size, run_before=_select("open-v2"))
    finally:
        session.close()


@pytest.mark.parametrize("size", SIZES)
def test_an_interrupted_step_after_a_restart(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Selected by itself, named in the "what now" line with r/k/d, its time stopped, a notice saying so."""
    session = interrupted_after_restart(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=size, run_before=_connected)
    finally:
        session.close()


@pytest.mark.parametrize("size", SIZES)
def test_a_rollback_in_progress_with_a_notice(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The notice has its own line: the countdown and the position stay in sight, fired triggers first."""
    session = smoke_failed_and_rolling_back(tmp_path)

    async def notice(pilot: Pilot[Any]) -> None:
        await _select("smoke-cases")(pilot)
        pilot.app.notify(
            "trigger critical-feature fired: step 'smoke-cases' is failed", title="ROLLBACK", severity="error"
        )
        await pilot.pause()

    try:
        assert snap_compare(app_for(session), terminal_size=size, run_before=notice)
    finally:
        session.close()


def test_the_rollback_modal(snap_compare: Any, tmp_path: Path) -> None:
    session = window_in_progress(tmp_path)

    async def open_modal(pilot: Pilot[Any]) -> None:
        await _connected(pilot)
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
        assert snap_compare(app_for(session), terminal_size=(70, 20), run_before=_connected)
    finally:
        session.close()


def test_the_dns_summary_on_the_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    session = dns_propagating(tmp_path)
    try:
        assert snap_compare(app_for(session), terminal_size=(80, 24), run_before=_select("dns-propagation"))
    finally:
        session.close()


@pytest.mark.parametrize("size", SIZES)
def test_the_dns_grid(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The header and the "what now" line stay above the grid; the authoritative answers are whole."""
    session = dns_propagating(tmp_path)

    async def open_grid(pilot: Pilot[Any]) -> None:
        await _connected(pilot)
        await pilot.press("g")
        await pilot.pause()

    try:
        assert snap_compare(app_for(session), terminal_size=size, run_before=open_grid)
    finally:
        session.close()
