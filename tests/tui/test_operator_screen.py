"""The screen in a live window: the keys keep working, dialogs follow the journal, the log says
when and which attempt, and the header and the "what now" line are always in sight."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from screen_harness import _step, actions, select, state, until
from textual.widgets import Input, Log, SelectionList

from cockpit.operator import Operator
from widgets.header import TopBars
from widgets.screens.dialogs import ChecklistModal, ConfirmModal, GateModal
from widgets.screens.dns import DnsScreen
from widgets.screens.help import HelpScreen
from widgets.steps_table import StepsTable

pytestmark = pytest.mark.tui


def _notices(app: Any) -> list[str]:
    return [n.message for n in app.notices]


async def test_the_arrows_move_between_steps_after_the_log_was_enlarged(cockpit: Any) -> None:
    c = cockpit(
        _step("one", with_='log_text = "from one"')
        + _step("two", extra='needs = ["one"]')
        + _step("three", extra='needs = ["two"]')
    )
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "three") == "succeeded")
        await until(pilot, lambda: c.app.query_one(StepsTable).selected_step == "three")  # followed there
        await pilot.press("up")
        await until(pilot, lambda: c.app.query_one(StepsTable).selected_step == "two")
        await pilot.press("l")
        await pilot.pause()
        assert c.app.screen.maximized is not None
        assert c.app.screen.query_one(TopBars).region.y == 0  # the header stays on top
        hint = str(c.app.screen.query_one("#log-hint").render())
        assert "escape back" in hint
        assert c.app.screen.query_one("#log-empty").display  # "two" logged nothing: it says so
        await pilot.press("escape")
        await pilot.pause()
        assert c.app.screen.maximized is None
        await pilot.press("up")
        await pilot.pause()
        assert c.app.query_one(StepsTable).selected_step == "one"
        await pilot.press("down", "down")
        await pilot.pause()
        assert c.app.query_one(StepsTable).selected_step == "three"


async def test_a_question_answered_elsewhere_closes_its_dialog_and_says_who(cockpit: Any) -> None:
    c = cockpit(_step("go", "manual", with_='question = "Window open?", confirm = "GO"'))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "go") == "waiting")
        await pilot.press("a")
        assert isinstance(c.app.screen, GateModal)
        await pilot.press(*"G")  # the operator starts typing...
        c.session.engine.answer("go", True, Operator("sam"), typed="GO")  # ...and a second operator answers
        await until(pilot, lambda: not isinstance(c.app.screen, GateModal))
        assert any("the dialog closed: go was settled" in m and "by sam (answer: yes)" in m for m in _notices(c.app))
        await pilot.press("O", "enter")  # what was being typed goes nowhere: no second answer
        await pilot.pause()
    assert [a[0] for a in actions(c.session)] == ["sam"]
    lines = c.session.journal.log_lines(c.session.engine.run_id, "go")
    assert "[cockpit] answered yes by sam" in lines


async def test_a_checklist_shows_the_ticks_made_elsewhere_and_records_none_twice(cockpit: Any) -> None:
    c = cockpit(_step("decom", "checklist", with_='items = ["Render off", "Supabase paused", "Code removed"]'))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "decom") == "waiting")
        await pilot.press("a")
        modal = c.app.screen
        assert isinstance(modal, ChecklistModal)
        await pilot.press("space")  # the operator ticks the first item on screen
        c.session.engine.tick("decom", 0, Operator("sam"))  # sam ticks it in his cockpit
        c.session.engine.tick("decom", 1, Operator("sam"))
        await until(pilot, lambda: 1 in modal.query_one(SelectionList).selected)
        await pilot.press("enter")
        await pilot.pause()
    assert [(a[0], a[3]) for a in actions(c.session)] == [("sam", "Render off"), ("sam", "Supabase paused")]
    assert not any("already ticked" in m for m in _notices(c.app))


async def test_a_retry_says_whether_the_step_continues_or_starts_over(
    cockpit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fakes

    c = cockpit(_step("flaky", with_="fail_attempts = 9"))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "flaky") == "failed")
        await select(pilot, "flaky")
        await pilot.press("r")
        assert isinstance(c.app.screen, ConfirmModal)
        assert "It starts over: this kind keeps no checkpoint." in str(c.app.screen.query("Static").last().render())
        await pilot.press("escape")
        monkeypatch.setattr(fakes.WorkStep, "resumes", True)
        await pilot.press("r")
        assert "It continues from its checkpoint." in str(c.app.screen.query("Static").last().render())


async def test_the_log_is_timed_and_ruled_between_attempts_searchable_and_written_whole(
    cockpit: Any, tmp_path: Path
) -> None:
    c = cockpit(_step("flaky", with_="fail_attempts = 1, lines = 30"))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "flaky") == "failed")
        c.app.main.following = False
        await select(pilot, "flaky")
        await pilot.press("r")
        await pilot.click("#yes")
        await until(pilot, lambda: state(c.session, "flaky") == "succeeded")
        await pilot.pause(0.3)
        lines = list(c.app.query_one(Log).lines)
        rule = next(i for i, line in enumerate(lines) if "attempt 2" in line and line.startswith("─"))
        assert rule > 0 and all(line[2] == ":" and line[5] == ":" for line in lines[:rule])  # HH:MM:SS first
        await pilot.press("slash")
        assert isinstance(c.app.focused, Input)
        await pilot.press(*"line 3", "enter")
        await pilot.pause(0.2)
        shown = list(c.app.query_one(Log).lines)
        assert shown and all("line 3" in line or line.startswith("─") for line in shown)
        assert "lines with 'line 3'" in str(c.app.query_one("#log-hint").render())
        await pilot.press("escape")  # the search is cleared: every line again
        await pilot.pause(0.2)
        assert len(c.app.query_one(Log).lines) == len(lines)
        await pilot.press("w")
        await pilot.pause()
    written = tmp_path / "logs" / f"run-{c.session.engine.run_id}-flaky.log"
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(written.parent).st_mode) == 0o700
    text = written.read_text().splitlines()
    assert len([t for t in text if not t.startswith("─")]) == 60  # two attempts of 30 lines
    assert any("attempt 2" in t for t in text)


async def test_pause_is_offered_while_running_and_resume_while_paused(cockpit: Any) -> None:
    c = cockpit(_step("long", with_="seconds = 30"))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "long") == "running")

        def offered() -> set[str]:
            return {b.binding.action for b in c.app.screen.active_bindings.values() if b.enabled and b.binding.show}

        await pilot.pause(0.3)
        assert "pause" in offered() and "resume" not in offered()
        await pilot.press("p")
        await until(pilot, lambda: "resume" in offered())
        assert "pause" not in offered()
        await pilot.press("p")
        await until(pilot, lambda: "pause" in offered())


async def test_full_screen_views_keep_the_header_and_the_what_now_line(cockpit: Any) -> None:
    c = cockpit(_step("go", "manual", with_='question = "Window open?"'))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "go") == "waiting")
        for key, screen in (("g", DnsScreen), ("question_mark", HelpScreen)):
            await pilot.press(key)
            await pilot.pause(0.3)
            assert isinstance(c.app.screen, screen)
            bars = c.app.screen.query_one(TopBars)
            assert "go asks: Window open?" in str(bars.what_now.render()) and bars.region.y == 0
            await pilot.press("escape")
            await pilot.pause()


async def test_the_newest_log_line_stays_in_sight_when_the_panel_s_head_grows(cockpit: Any) -> None:
    # A checklist's check logs 40 lines, shown while a second check runs; then the checklist
    # waits: the gate's line joins the panel's head, the log gets shorter, and its last line
    # must not fall out of sight.
    lines = '{ kind = "shell", with = { argv = ["sh", "-c", "seq 1 40; exit 1"], effect = "probe" } }'
    slow = '{ kind = "shell", with = { argv = ["sh", "-c", "sleep 1; exit 1"], effect = "probe" } }'
    items = f'items = [{{ item = "v1 is gone", check = {lines} }}, {{ item = "v1 is quiet", check = {slow} }}]'
    c = cockpit(_step("decom", "checklist", with_=items))
    async with c.app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: state(c.session, "decom") == "waiting")
        log = c.app.query_one("#step-log", Log)
        await until(pilot, lambda: log.line_count >= 40)
        await pilot.pause(0.5)
        assert log.max_scroll_y > 0  # the lines overflow the panel: there is something to lose
        assert log.scroll_y == log.max_scroll_y, "the newest line fell out of sight"
